// Entry point: session, navigation by role, hash routing (#/regulation, #/agenda…).

import { h, clear } from './dom.js';
import { ROLES } from './format.js';
import { clearSession, currentSession, hasRole } from './session.js';

/** The screens, who may open them, and the module that draws each one. */
export const ROUTES = [
  {
    path: '/regulation',
    label: 'Régulation SAS',
    roles: ['regulator'],
    load: () => import('./views/intake.js'),
  },
  {
    path: '/rendez-vous',
    label: 'Prise de rendez-vous',
    roles: ['secretary'],
    load: () => import('./views/intake.js'),
  },
  {
    path: '/inscription',
    label: 'Guichet médecin traitant',
    roles: ['secretary', 'coordinator'],
    load: () => import('./views/enrol.js'),
  },
  { path: '/agenda', label: 'Mon agenda', roles: ['professional'], load: () => import('./views/agenda.js') },
  {
    path: '/participation',
    label: 'Ma participation',
    roles: ['professional'],
    load: () => import('./views/participation.js'),
  },
  {
    path: '/propositions',
    label: 'Nouveaux patients proposés',
    roles: ['professional'],
    load: () => import('./views/proposals.js'),
  },
  {
    path: '/patients',
    label: 'Patients sans médecin traitant',
    roles: ['coordinator'],
    load: () => import('./views/patients.js'),
  },
  {
    path: '/tableau-de-bord',
    label: 'Tableau de bord',
    roles: ['coordinator', 'ars'],
    load: () => import('./views/dashboard.js'),
  },
  {
    path: '/rapport-annuel',
    label: 'Rapport annuel ACI',
    roles: ['coordinator', 'ars'],
    load: () => import('./views/report.js'),
    hidden: true, // opened from the dashboard, for a CPTS and a year
  },
  {
    path: '/annuaire',
    label: 'Annuaire du territoire',
    roles: ['regulator', 'secretary', 'professional', 'coordinator'],
    load: () => import('./views/directory.js'),
  },
];

const PENDING_SLOT = 'cpts.pending-slot';
const main = document.getElementById('main');
let cleanup = null;

export const allowedRoutes = (session) => ROUTES.filter((r) => hasRole(session, ...r.roles));

export function navigate(path, params = null) {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  window.location.hash = `#${path}${query}`;
}

function parseHash() {
  const [path, query = ''] = window.location.hash.replace(/^#/, '').split('?');
  return { path: path || '/', params: new URLSearchParams(query) };
}

function renderNav(session, current) {
  const nav = clear(document.getElementById('nav'));
  const userBox = clear(document.getElementById('user-box'));
  if (!session) return;
  nav.append(
    h(
      'ul',
      {},
      allowedRoutes(session)
        .filter((r) => !r.hidden)
        .map((r) =>
          h(
            'li',
            {},
            h('a', { href: `#${r.path}`, 'aria-current': r.path === current ? 'page' : null }, r.label),
          ),
        ),
    ),
  );
  const roleLabel = session.roles.map((r) => ROLES[r] || r).join(', ');
  userBox.append(
    h('span', { class: 'user-name' }, session.name),
    h('span', { class: 'user-role' }, roleLabel),
    h('button', { type: 'button', class: 'secondary small', onClick: logout }, 'Se déconnecter'),
  );
}

function logout() {
  clearSession();
  navigate('/connexion');
}

function deniedView(route) {
  return h(
    'section',
    { class: 'panel denied', 'aria-labelledby': 'denied-title' },
    h('h1', { id: 'denied-title' }, 'Accès refusé'),
    h('p', {}, `L'écran « ${route.label} » n'est pas ouvert à votre rôle.`),
    h('p', {}, h('a', { href: '#/' }, "Revenir à l'accueil")),
  );
}

let shown = 0; // the latest navigation: an earlier one still loading draws nothing

/** A fresh container for one screen: a screen still drawing after its user moved on draws off the page. */
function viewHost() {
  const host = h('div', { class: 'view' });
  main.replaceChildren(host);
  return host;
}

/** The stop function of a screen (timers, polling), run at once when the user has already moved on. */
function keep(navigation, stop) {
  if (navigation === shown) cleanup = stop;
  else if (typeof stop === 'function') stop();
}

async function show() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  const current = ++shown;
  const session = currentSession();
  const { path, params } = parseHash();
  const routes = allowedRoutes(session);
  if (!session) {
    renderNav(null, path);
    document.title = 'Connexion — Console CPTS · SAS';
    const view = await import('./views/login.js');
    if (current !== shown) return;
    keep(current, await view.render(viewHost(), { params }));
    return;
  }
  if (path === '/' || path === '/connexion') {
    navigate(routes[0]?.path || '/aucun-ecran');
    return;
  }
  const route = ROUTES.find((r) => r.path === path);
  renderNav(session, path);
  clear(main);
  if (!route) {
    main.append(
      h(
        'section',
        { class: 'panel' },
        h('h1', {}, 'Page introuvable'),
        h(
          'p',
          {},
          routes.length ? h('a', { href: '#/' }, "Revenir à l'accueil") : 'Aucun écran pour ce rôle.',
        ),
      ),
    );
    return;
  }
  document.title = `${route.label} — Console CPTS · SAS`;
  if (!routes.includes(route)) {
    main.append(deniedView(route));
    return;
  }
  const view = await route.load();
  if (current !== shown) return;
  keep(current, await view.render(viewHost(), { session, params, route, navigate }));
  if (current !== shown) return;
  main.focus({ preventScroll: true });
}

/** `/rendez-vous?creneau=ID` is the booking link of a FHIR Slot: keep the slot, then open the intake. */
function takeBookingLink() {
  const slot = new URLSearchParams(window.location.search).get('creneau');
  if (window.location.pathname === '/rendez-vous' && slot) {
    sessionStorage.setItem(PENDING_SLOT, slot);
    window.history.replaceState(null, '', '/#/');
  }
}

takeBookingLink();
window.addEventListener('hashchange', show);
window.addEventListener('session-expired', () => navigate('/connexion'));
show();
