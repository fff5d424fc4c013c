// End of the OpenID Connect login: keep the access token handed by the server, then open the app.

import { saveSession } from './session.js';

const meta = document.querySelector('meta[name="cpts-session"]');
if (meta) {
  const { token } = JSON.parse(meta.getAttribute('content'));
  saveSession({ token });
  meta.remove();
}
window.location.replace('/#/');
