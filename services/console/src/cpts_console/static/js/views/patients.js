// Coordinator: the CPTS's patients without a médecin traitant (priority explained), matching rounds,
// proposals.

import { communeName, communePoints, errorText, matching } from '../api.js';
import { clear, field, h, message, replace, select } from '../dom.js';
import {
  age,
  dateShort,
  dateTime,
  decimal,
  km,
  number,
  PATIENT_STATUS,
  PRIORITY_GROUPS,
  PROPOSAL_STATUS,
} from '../format.js';

const STATUS_FILTERS = [['active', 'En attente et proposés'], ...Object.entries(PATIENT_STATUS)];

const patientName = (p) =>
  `${p.first_names} ${p.birth_name.toUpperCase()}${p.used_name ? ` (${p.used_name})` : ''}`;

function table(caption, headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map(([label, cls]) => h('th', { scope: 'col', class: cls || null }, label)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

function roundSummary(round) {
  return h(
    'section',
    { class: 'panel confirmation', 'aria-labelledby': 'round-title' },
    h('h2', { id: 'round-title', tabindex: '-1' }, `Tour d'appariement du ${dateTime(round.started_at)}`),
    h('p', {}, round.summary),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Propositions faites'),
      h('dd', {}, number(round.proposals)),
      h('dt', {}, 'Patients en attente / médecins'),
      h('dd', {}, `${number(round.patients)} / ${number(round.gps)} (capacité ${number(round.capacity)})`),
      h('dt', {}, 'Couverture pondérée'),
      h(
        'dd',
        {},
        `${decimal(round.weighted_coverage * 100)} % ` +
          `(premier arrivé, premier servi : ${decimal(round.fcfs_weighted_coverage * 100)} %)`,
      ),
      h('dt', {}, 'Distance totale'),
      h(
        'dd',
        {},
        `${km(round.total_distance_km)} ` +
          `(premier arrivé, premier servi : ${km(round.fcfs_total_distance_km)})`,
      ),
    ),
  );
}

export async function render(main, { session }) {
  const cptsId = session.cpts[0];
  const notice = h('div', {});
  const panel = h('div', { role: 'tabpanel', id: 'patients-panel', tabindex: '-1' });
  const state = { tab: 'patients', status: 'active', group: '', text: '', patients: [], names: new Map() };
  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Patients sans médecin traitant'),
      h('p', { class: 'scope' }, `CPTS ${cptsId || '—'}`),
    ),
  );
  if (!cptsId) {
    main.append(message('error', 'Votre jeton ne porte aucune CPTS.'));
    return;
  }

  const tabs = [
    ['patients', 'Patients'],
    ['proposals', 'Propositions aux médecins'],
    ['rounds', "Tours d'appariement"],
  ];
  const tabBar = h(
    'div',
    { class: 'tabs', role: 'tablist', 'aria-label': 'Vues' },
    tabs.map(([key, label]) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `tab-${key}`,
          'aria-controls': 'patients-panel',
          'aria-selected': String(key === state.tab),
          onClick: () => show(key),
        },
        label,
      ),
    ),
  );
  const runButton = h(
    'button',
    { type: 'button', class: 'primary', onClick: runRound },
    "Lancer un tour d'appariement",
  );
  main.append(
    h(
      'div',
      { class: 'actions' },
      runButton,
      h('a', { class: 'button secondary', href: '#/inscription' }, 'Inscrire un patient'),
    ),
    notice,
    tabBar,
    panel,
  );

  async function runRound() {
    runButton.disabled = true;
    replace(notice, h('p', { class: 'loading', role: 'status' }, "Tour d'appariement en cours…"));
    try {
      const round = await matching(`/cpts/${cptsId}/rounds`, { method: 'POST' });
      replace(notice, roundSummary(round));
      notice.querySelector('h2').focus();
      await show(state.tab);
    } catch (error) {
      replace(notice, message('error', errorText(error)));
    } finally {
      runButton.disabled = false;
    }
  }

  async function loadPatients(statuses) {
    const query = { limit: 500, status: statuses === 'active' ? null : statuses };
    const page = await matching(`/cpts/${cptsId}/patients`, { query });
    for (const p of page.items) state.names.set(p.patient_id, patientName(p));
    await communePoints(page.items.map((p) => p.commune_insee));
    return page;
  }

  async function show(key) {
    state.tab = key;
    for (const button of tabBar.children)
      button.setAttribute('aria-selected', String(button.id === `tab-${key}`));
    panel.setAttribute('aria-labelledby', `tab-${key}`);
    replace(panel, h('p', { class: 'loading', role: 'status' }, 'Chargement…'));
    try {
      if (key === 'patients') await drawPatients();
      else if (key === 'proposals') await drawProposals();
      else await drawRounds();
    } catch (error) {
      replace(panel, message('error', errorText(error)));
    }
  }

  async function drawPatients() {
    const page = await loadPatients(state.status);
    state.patients = page.items;
    const statusSelect = select(STATUS_FILTERS, { id: 'filter-status', value: state.status });
    const groupSelect = select([['', 'Tous'], ...Object.entries(PRIORITY_GROUPS)], {
      id: 'filter-group',
      value: state.group,
    });
    const text = h('input', {
      type: 'search',
      id: 'filter-text',
      value: state.text,
      placeholder: 'Nom ou commune',
    });
    const body = h('div', {});
    const redraw = () => {
      const needle = state.text.toLowerCase();
      const rows = state.patients.filter(
        (p) =>
          (!state.group || p.priority.group === state.group) &&
          (!needle || `${patientName(p)} ${communeName(p.commune_insee)}`.toLowerCase().includes(needle)),
      );
      replace(
        body,
        h('p', { class: 'muted' }, `${rows.length} patient(s) affiché(s) sur ${page.total}.`),
        table(
          'Patients par ordre de priorité',
          [
            ['Rang', 'num'],
            ['Patient'],
            ['Âge'],
            ['Commune'],
            ['Priorité'],
            ['Explication'],
            ['Attente', 'num'],
            ['Statut'],
          ],
          rows.map((p) =>
            h(
              'tr',
              { dataset: { patientId: p.patient_id } },
              h('td', { class: 'num' }, p.rank ?? '—'),
              h(
                'td',
                {},
                patientName(p),
                h('br'),
                h('span', { class: 'muted' }, `né(e) le ${dateShort(p.birth_date)}`),
              ),
              h('td', {}, `${age(p.birth_date)} ans`),
              h('td', {}, communeName(p.commune_insee)),
              h(
                'td',
                {},
                h(
                  'span',
                  { class: `badge ${p.priority.group === 'none' ? 'no' : 'warn'}` },
                  PRIORITY_GROUPS[p.priority.group] || p.priority.group,
                ),
                h('br'),
                h('span', { class: 'muted' }, `score ${p.priority.score}`),
              ),
              h('td', {}, p.priority.explanation),
              h('td', { class: 'num' }, `${p.priority.waiting_days} j`),
              h('td', {}, PATIENT_STATUS[p.status] || p.status),
            ),
          ),
          'Aucun patient pour ces filtres.',
        ),
      );
    };
    statusSelect.addEventListener('change', () => {
      state.status = statusSelect.value;
      show('patients');
    });
    groupSelect.addEventListener('change', () => {
      state.group = groupSelect.value;
      redraw();
    });
    text.addEventListener('input', () => {
      state.text = text.value.trim();
      redraw();
    });
    replace(
      panel,
      h(
        'div',
        { class: 'filters' },
        field('Statut', statusSelect),
        field('Groupe de priorité', groupSelect),
        field('Rechercher', text),
      ),
      body,
    );
    redraw();
  }

  async function drawProposals() {
    const [page] = await Promise.all([
      matching(`/cpts/${cptsId}/proposals`, { query: { limit: 200 } }),
      loadPatients(Object.keys(PATIENT_STATUS)),
    ]);
    replace(
      panel,
      table(
        'Propositions aux médecins, les plus récentes d’abord',
        [['Médecin'], ['Patient'], ['Distance', 'num'], ['Proposée le'], ['Réponse attendue'], ['Statut']],
        page.items.map((p) =>
          h(
            'tr',
            { dataset: { proposalId: p.proposal_id } },
            h('td', {}, p.gp_name || p.idnps),
            h('td', {}, state.names.get(p.patient_id) || p.patient_id.slice(0, 8)),
            h('td', { class: 'num' }, km(p.distance_km)),
            h('td', {}, dateTime(p.made_at)),
            h('td', {}, dateTime(p.deadline)),
            h(
              'td',
              {},
              PROPOSAL_STATUS[p.status] || p.status,
              p.decline_reason ? h('span', { class: 'muted' }, ` (${p.decline_reason})`) : null,
            ),
          ),
        ),
        'Aucune proposition : lancez un tour d’appariement.',
      ),
    );
  }

  async function drawRounds() {
    const page = await matching(`/cpts/${cptsId}/rounds`, { query: { limit: 50 } });
    replace(
      panel,
      table(
        "Tours d'appariement",
        [
          ['Date'],
          ['Déclenchement'],
          ['Patients', 'num'],
          ['Médecins', 'num'],
          ['Propositions', 'num'],
          ['Résumé'],
        ],
        page.items.map((r) =>
          h(
            'tr',
            {},
            h('td', {}, dateTime(r.started_at)),
            h('td', {}, r.trigger === 'manual' ? 'Manuel' : 'Planifié'),
            h('td', { class: 'num' }, number(r.patients)),
            h('td', { class: 'num' }, number(r.gps)),
            h('td', { class: 'num' }, number(r.proposals)),
            h('td', {}, r.summary),
          ),
        ),
        "Aucun tour d'appariement pour l'instant.",
      ),
    );
  }

  clear(notice);
  await show('patients');
}
