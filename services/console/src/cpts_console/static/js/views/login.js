// Login: demo users of the embedded run, or Pro Santé Connect / Keycloak (OpenID Connect) in production.

import { errorText, request } from '../api.js';
import { h, message, replace } from '../dom.js';
import { saveSession } from '../session.js';

const ROLE_HINTS = {
  regulator: 'Recherche de créneaux, réservation, orientation.',
  secretary: 'Rendez-vous de soins non programmés, guichet médecin traitant.',
  professional: 'Agenda, participation au SAS, nouveaux patients proposés.',
  coordinator: 'Patients sans médecin traitant, appariement, indicateurs.',
  ars: 'Indicateurs des CPTS du département, sans donnée patient.',
};

async function loginAs(user, status) {
  replace(status, h('p', { class: 'loading', role: 'status' }, `Connexion en tant que ${user.label}…`));
  try {
    const session = await request('/auth/demo-login', {
      method: 'POST',
      body: { user: user.key },
      auth: false,
    });
    saveSession({ token: session.token, name: session.name });
    window.location.hash = '#/';
  } catch (error) {
    replace(status, message('error', errorText(error)));
  }
}

export async function render(main) {
  const status = h('div', { class: 'login-status' });
  const section = h('section', { class: 'panel login', 'aria-labelledby': 'login-title' });
  main.append(section);
  let config;
  try {
    config = await request('/auth/config', { auth: false });
  } catch (error) {
    section.append(h('h1', { id: 'login-title' }, 'Connexion'), message('error', errorText(error)));
    return;
  }
  if (config.demo) {
    const users = await request('/auth/demo-users', { auth: false });
    section.append(
      h('h1', { id: 'login-title' }, 'Connexion (démonstration)'),
      h(
        'p',
        { class: 'lead' },
        `Plateforme locale${config.cpts_name ? ` — ${config.cpts_name}` : ''}. ` +
          'Choisissez un utilisateur de démonstration : ' +
          "le jeton est signé par l'émetteur local, jamais accepté en production.",
      ),
      h(
        'ul',
        { class: 'demo-users' },
        users.map((user) =>
          h(
            'li',
            {},
            h(
              'button',
              {
                type: 'button',
                class: 'demo-user',
                dataset: { user: user.key },
                onClick: () => loginAs(user, status),
              },
              h('span', { class: 'demo-label' }, user.label),
              h('span', { class: 'demo-description' }, user.description),
              h('span', { class: 'demo-hint' }, ROLE_HINTS[user.role] || ''),
            ),
          ),
        ),
      ),
      status,
    );
  } else {
    section.append(h('h1', { id: 'login-title' }, 'Connexion'));
    if (config.oidc) {
      section.append(
        h(
          'p',
          { class: 'lead' },
          'Connectez-vous avec votre carte CPS ou e-CPS (Pro Santé Connect), ou votre compte de CPTS.',
        ),
        h('a', { class: 'button primary', href: '/auth/oidc/login' }, 'Se connecter avec Pro Santé Connect'),
      );
    } else {
      section.append(message('error', "La connexion n'est pas configurée sur ce serveur (OpenID Connect)."));
    }
  }
}
