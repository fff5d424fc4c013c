// Annuaire du territoire: the CPTS's professionals by profession and commune, their SAS participation and
// whether
// they take new médecin-traitant patients, as a list and on a map of the territory's communes.

import { communeName, communePoints, errorText, registry, snp } from '../api.js';
import { clear, field, h, message, replace, select } from '../dom.js';
import { fullName, number, professionLabel, PROFESSIONS } from '../format.js';
import { territoryMap } from '../map.js';

const PAGE = 25;
const GP = (p) => p.profession_code === '10';

/** The CPTS the user may look at: from the token's CPTS, their départements, or their own memberships. */
async function territories(session) {
  if (session.cpts.length) return Promise.all(session.cpts.map((id) => registry(`/cpts/${id}`)));
  if (session.departements.length) {
    const lists = await Promise.all(
      session.departements.map((d) => registry('/cpts', { query: { departement: d } })),
    );
    return lists.flat();
  }
  if (session.idnps) {
    const me = await registry(`/professionals/${session.idnps}`);
    return Promise.all((me.cpts_ids || []).map((id) => registry(`/cpts/${id}`)));
  }
  return [];
}

async function allMembers(cptsId) {
  const first = await registry(`/cpts/${cptsId}/members`, { query: { limit: 500 } });
  const items = [...first.items];
  for (let offset = 500; offset < first.total; offset += 500) {
    items.push(...(await registry(`/cpts/${cptsId}/members`, { query: { limit: 500, offset } })).items);
  }
  return items;
}

/** Run `task` over `items` with at most `width` calls at once. */
async function pool(items, width, task) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (queue.length) await task(queue.shift());
    }),
  );
}

export async function render(main, { session }) {
  const notice = h('div', {});
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Annuaire du territoire')), notice);
  let cptsList;
  try {
    cptsList = await territories(session);
  } catch (error) {
    replace(notice, message('error', errorText(error)));
    return;
  }
  if (!cptsList.length) {
    replace(notice, message('info', 'Aucune CPTS dans votre périmètre.'));
    return;
  }

  const state = {
    cpts: cptsList[0],
    members: [],
    sas: new Set(),
    mt: new Map(),
    profession: '',
    commune: null,
    text: '',
    sasOnly: false,
    page: 0,
  };
  const cptsSelect = select(
    cptsList.map((c) => [c.cpts_id, c.name]),
    { id: 'dir-cpts' },
  );
  const professionSelect = select([['', 'Toutes']], { id: 'dir-profession' });
  const communeSelect = select([['', 'Toutes']], { id: 'dir-commune' });
  const text = h('input', { type: 'search', id: 'dir-text', placeholder: 'Nom' });
  const sasOnly = h('input', { type: 'checkbox', id: 'dir-sas' });
  const heading = h('p', { class: 'muted' });
  const mapBox = h('div', { class: 'map-wrap' });
  const listBox = h('div', {});

  main.append(
    h(
      'div',
      { class: 'filters' },
      cptsList.length > 1 ? field('CPTS', cptsSelect) : null,
      field('Profession', professionSelect),
      field('Commune', communeSelect),
      field('Nom', text),
      h('div', { class: 'choice' }, sasOnly, h('label', { for: 'dir-sas' }, 'Participants au SAS seulement')),
    ),
    heading,
    h(
      'div',
      { class: 'columns-3-2' },
      h(
        'section',
        { 'aria-labelledby': 'dir-list-title' },
        h('h2', { id: 'dir-list-title' }, 'Professionnels'),
        listBox,
      ),
      h(
        'section',
        { 'aria-labelledby': 'dir-map-title' },
        h('h2', { id: 'dir-map-title' }, 'Carte des communes'),
        mapBox,
        h(
          'p',
          { class: 'hint' },
          'Cercle : professionnels de la commune (selon les filtres) ; disque vert : participants au SAS. ' +
            'Sélectionnez une commune pour filtrer la liste.',
        ),
      ),
    ),
  );

  const filtered = () => {
    const needle = state.text.toLowerCase();
    return state.members.filter(
      (p) =>
        (!state.profession || p.profession_code === state.profession) &&
        (!state.commune || p.commune_insee === state.commune) &&
        (!state.sasOnly || state.sas.has(p.idnps)) &&
        (!needle || `${p.family_name} ${p.given_name}`.toLowerCase().includes(needle)),
    );
  };

  function drawMap(communes) {
    // The map counts every commune under the other filters, so that a commune can be picked from it.
    const counts = new Map();
    const needle = state.text.toLowerCase();
    const base = state.members.filter(
      (p) =>
        (!state.profession || p.profession_code === state.profession) &&
        (!state.sasOnly || state.sas.has(p.idnps)) &&
        (!needle || `${p.family_name} ${p.given_name}`.toLowerCase().includes(needle)),
    );
    for (const p of base) {
      const c = counts.get(p.commune_insee) || { total: 0, sas: 0 };
      c.total += 1;
      if (state.sas.has(p.idnps)) c.sas += 1;
      counts.set(p.commune_insee, c);
    }
    replace(
      mapBox,
      territoryMap({
        communes,
        counts,
        selected: state.commune,
        title: `Communes de la ${state.cpts.name}`,
        onSelect: (insee) => {
          state.commune = insee;
          communeSelect.value = insee || '';
          state.page = 0;
          redraw();
        },
      }),
    );
  }

  async function drawList() {
    const rows = filtered();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const visible = rows.slice(state.page * PAGE, (state.page + 1) * PAGE);
    heading.textContent =
      `${number(rows.length)} professionnel(s) sur ${number(state.members.length)} membres ` +
      `de la ${state.cpts.name}, ` +
      `dont ${number(rows.filter((p) => state.sas.has(p.idnps)).length)} participant(s) au SAS.`;
    const mtCell = (p) => {
      if (!GP(p)) return h('td', { class: 'muted' }, '—');
      const mt = state.mt.get(p.idnps);
      if (mt === undefined) return h('td', { class: 'muted' }, '…');
      return h(
        'td',
        {},
        mt?.accepting
          ? h('span', { class: 'badge yes' }, `Oui (${mt.new_patients_per_month}/mois)`)
          : h('span', { class: 'badge no' }, 'Non'),
      );
    };
    const draw = () =>
      replace(
        listBox,
        rows.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                {},
                h('caption', {}, `Page ${state.page + 1} sur ${pages}`),
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Nom', 'Profession', 'Commune', 'SAS', 'Nouveaux patients MT'].map((t) =>
                      h('th', { scope: 'col' }, t),
                    ),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  visible.map((p) =>
                    h(
                      'tr',
                      { dataset: { idnps: p.idnps } },
                      h('td', {}, fullName(p)),
                      h('td', {}, professionLabel(p)),
                      h('td', {}, communeName(p.commune_insee)),
                      h(
                        'td',
                        {},
                        state.sas.has(p.idnps)
                          ? h('span', { class: 'badge sas' }, 'Participant')
                          : h('span', { class: 'muted' }, '—'),
                      ),
                      mtCell(p),
                    ),
                  ),
                ),
              ),
            )
          : h('p', { class: 'muted' }, 'Aucun professionnel pour ces filtres.'),
        pages > 1
          ? h(
              'div',
              { class: 'pager' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'secondary small',
                  disabled: state.page === 0,
                  onClick: () => {
                    state.page -= 1;
                    drawList();
                  },
                },
                '← Précédents',
              ),
              h(
                'button',
                {
                  type: 'button',
                  class: 'secondary small',
                  disabled: state.page >= pages - 1,
                  onClick: () => {
                    state.page += 1;
                    drawList();
                  },
                },
                'Suivants →',
              ),
            )
          : null,
      );
    draw();
    const missing = visible.filter((p) => GP(p) && !state.mt.has(p.idnps));
    if (missing.length) {
      await pool(missing, 4, async (p) => {
        try {
          state.mt.set(p.idnps, (await registry(`/professionals/${p.idnps}`)).mt_capacity);
        } catch {
          state.mt.set(p.idnps, null);
        }
      });
      draw();
    }
  }

  let communes = [];
  function redraw() {
    drawMap(communes);
    drawList();
  }

  async function load() {
    replace(listBox, h('p', { class: 'loading', role: 'status' }, 'Chargement de l’annuaire…'));
    clear(mapBox);
    try {
      const [members, effecteurs] = await Promise.all([
        allMembers(state.cpts.cpts_id),
        snp('/effecteurs', {
          query: { cpts_id: state.cpts.cpts_id, sas_participant: true, limit: 1000 },
        }).catch(() => []),
      ]);
      state.members = members.sort((a, b) => a.family_name.localeCompare(b.family_name, 'fr'));
      state.sas = new Set(effecteurs.map((e) => e.idnps));
      const points = await communePoints(
        [...new Set([...(state.cpts.communes || []), ...members.map((m) => m.commune_insee)])].filter(
          Boolean,
        ),
      );
      communes = (state.cpts.communes || []).map((c) => points.get(c)).filter(Boolean);
      const codes = [...new Set(members.map((m) => m.profession_code))].sort();
      replace(
        professionSelect,
        h('option', { value: '' }, 'Toutes'),
        codes.map((c) => h('option', { value: c }, PROFESSIONS[c] || `Profession ${c}`)),
      );
      replace(
        communeSelect,
        h('option', { value: '' }, 'Toutes'),
        communes.map((c) => h('option', { value: c.insee }, c.name)),
      );
      redraw();
    } catch (error) {
      replace(listBox, message('error', errorText(error)));
    }
  }

  cptsSelect.addEventListener('change', () => {
    state.cpts = cptsList.find((c) => c.cpts_id === cptsSelect.value);
    Object.assign(state, { commune: null, page: 0, mt: new Map() });
    load();
  });
  professionSelect.addEventListener('change', () => {
    state.profession = professionSelect.value;
    state.page = 0;
    redraw();
  });
  communeSelect.addEventListener('change', () => {
    state.commune = communeSelect.value || null;
    state.page = 0;
    redraw();
  });
  text.addEventListener('input', () => {
    state.text = text.value.trim();
    state.page = 0;
    redraw();
  });
  sasOnly.addEventListener('change', () => {
    state.sasOnly = sasOnly.checked;
    state.page = 0;
    redraw();
  });
  await load();
}
