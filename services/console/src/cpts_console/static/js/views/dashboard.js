// Tableau de bord (coordinators, ARS): the ACI indicators of a CPTS per mission, over time, small cells
// masked.
// Only aggregates: no patient appears on this screen.

import { download, errorText, indicators, registry, request } from '../api.js';
import { lineChart } from '../chart.js';
import { field, h, message, replace, select } from '../dom.js';
import {
  addDays,
  CLOSE_REASONS,
  dateLong,
  ORIENTATIONS,
  parisDateKey,
  PRIORITY_GROUPS,
  SERVICE_TYPES,
  time,
  URGENCIES,
} from '../format.js';
import { reportAvailable } from './report.js';

const MISSIONS = [
  ['1a', 'Accès à un médecin traitant (mission 1a)'],
  ['1b', 'Soins non programmés (mission 1b)'],
  ['registry', 'Territoire et membres'],
];
const KINDS = [
  ['week', 'Semaine'],
  ['month', 'Mois'],
  ['quarter', 'Trimestre'],
  ['year', 'Année'],
  ['day', 'Jour'],
];
const MONTH = new Intl.DateTimeFormat('fr-FR', { month: 'short', year: '2-digit', timeZone: 'UTC' });
const MONTH_LONG = new Intl.DateTimeFormat('fr-FR', { month: 'long', year: 'numeric', timeZone: 'UTC' });
const ATTRIBUTES = {
  status: 'Statut',
  service_type: 'Type de consultation',
  origin: 'Origine',
  urgency: 'Délai demandé',
  age_band: 'Âge',
  priority_group: 'Priorité',
  kind: 'Nature',
  orientation: 'Orientation',
  reason: 'Raison',
  source: 'Source',
};
const CATEGORIES = {
  ...SERVICE_TYPES,
  ...URGENCIES,
  ...PRIORITY_GROUPS,
  ...ORIENTATIONS,
  ...CLOSE_REASONS,
  active: 'Membres actifs',
  adherent: 'Adhérents',
  sas: 'Régulation SAS',
  cpts_phone: 'Secrétariat de CPTS',
  member_referral: 'Adressé par un membre',
  slot: 'Sur créneau',
  en_sus: 'En sus',
  guichet: 'Guichet',
};
const MASKED = '< 6 (masqué)';

/** Short label of a period key for an axis: "S47", "nov. 26", "T4 26", "24/11". */
function shortPeriod(kind, key) {
  if (kind === 'week') return `S${key.split('-W')[1]}`;
  if (kind === 'month') return MONTH.format(new Date(`${key}-15T12:00:00Z`));
  if (kind === 'quarter') return `T${key.split('-Q')[1]} ${key.slice(2, 4)}`;
  if (kind === 'day') return `${key.slice(8, 10)}/${key.slice(5, 7)}`;
  return key;
}

function longPeriod(period) {
  const { kind, key } = period;
  if (kind === 'week') return `semaine ${Number(key.split('-W')[1])} de ${key.slice(0, 4)}`;
  if (kind === 'month') return MONTH_LONG.format(new Date(`${key}-15T12:00:00Z`));
  if (kind === 'quarter') return `${key.split('-Q')[1]}e trimestre ${key.slice(0, 4)}`;
  if (kind === 'day') return dateLong(key);
  return `année ${key}`;
}

/** A date inside the period `count - 1` periods before today's (the API takes a date for `from`). */
function firstOf(kind, count) {
  const today = parisDateKey();
  const back = count - 1;
  if (kind === 'day') return addDays(today, -back);
  if (kind === 'week') return addDays(today, -7 * back);
  const [y, m] = today.split('-').map(Number);
  const months = kind === 'month' ? back : kind === 'quarter' ? 3 * back : 12 * back;
  const d = new Date(Date.UTC(y, m - 1 - months, 1));
  return d.toISOString().slice(0, 10);
}

function formatter(definition) {
  const digits = definition?.decimals ?? 0;
  const nf = new Intl.NumberFormat('fr-FR', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  const unit = definition?.unit || '';
  return (v) => (unit === '%' ? `${nf.format(v)} %` : `${nf.format(v)} ${unit}`.trim());
}

function valueText(value, masked, format) {
  if (masked) return MASKED;
  if (value === null || value === undefined) return 'non calculable';
  return format(value);
}

function breakdownTable(breakdowns, format) {
  const shown = breakdowns.filter((b) => b.cells.length);
  if (!shown.length) return null;
  return h(
    'details',
    {},
    h('summary', {}, 'Détail de la période'),
    shown.map((b) =>
      h(
        'table',
        {},
        h('caption', {}, ATTRIBUTES[b.attribute] || b.attribute),
        h(
          'tbody',
          {},
          b.cells.map((c) =>
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, CATEGORIES[c.category] || c.category),
              h(
                'td',
                { class: 'num' },
                c.masked ? h('span', { class: 'badge masked' }, MASKED) : valueText(c.value, false, format),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

const DOWNLOAD_LABELS = [
  [/\.xlsx$/, 'Exporter en XLSX'],
  [/\.ods$/, 'Exporter en ODS'],
  [/\.pdf$/, 'Rapport (PDF)'],
  [/report|rapport/, 'Rapport annuel'],
];

/** Downloads the indicators service offers besides the CSV (XLSX, annual report…), read from its OpenAPI, with
 * the query parameters each one takes. */
async function extraDownloads() {
  try {
    const doc = await request('/api/indicators/openapi.json', { auth: false });
    return Object.entries(doc.paths || {})
      .filter(([path, ops]) => ops.get && path.startsWith('/indicators/cpts/{cpts_id}/'))
      // A file of the CPTS alone (the annual report, per year, has its own button).
      .filter(([path]) => !path.slice('/indicators/cpts/{cpts_id}/'.length).includes('{'))
      .map(([path, ops]) => ({
        path,
        summary: ops.get.summary || path,
        label: DOWNLOAD_LABELS.find(([pattern]) => pattern.test(path))?.[1],
        params: (ops.get.parameters || []).filter((p) => p.in === 'query').map((p) => p.name),
      }))
      .filter((d) => d.label);
  } catch {
    return [];
  }
}

/** The years an annual report may be asked for: this one and the five before, from the ACI's 2019. */
function reportYears() {
  const now = Number(parisDateKey().slice(0, 4));
  return Array.from({ length: 6 }, (_, i) => now - i)
    .filter((y) => y >= 2019)
    .map((y) => [String(y), String(y)]);
}

export async function render(main, { session, navigate }) {
  const notice = h('div', {});
  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Tableau de bord des indicateurs'),
      h(
        'p',
        { class: 'scope' },
        session.cpts.length
          ? `CPTS : ${session.cpts.join(', ')}`
          : `Départements : ${session.departements.join(', ')}`,
      ),
    ),
    notice,
  );
  let cptsList;
  let catalogue;
  try {
    const lists = session.cpts.length
      ? await Promise.all(session.cpts.map((id) => registry(`/cpts/${id}`)))
      : (
          await Promise.all(session.departements.map((d) => registry('/cpts', { query: { departement: d } })))
        ).flat();
    cptsList = lists;
    catalogue = await indicators('/indicators/catalogue');
  } catch (error) {
    replace(notice, message('error', errorText(error)));
    return;
  }
  if (!cptsList.length) {
    replace(notice, message('info', 'Aucune CPTS dans votre périmètre.'));
    return;
  }
  const definitions = new Map(catalogue.indicators.map((d) => [d.id, d]));
  const state = { cpts: cptsList[0].cpts_id, kind: 'month', count: 6, mission: '1a' };

  const cptsSelect = select(
    cptsList.map((c) => [c.cpts_id, c.name]),
    { id: 'dash-cpts' },
  );
  const kindSelect = select(KINDS, { id: 'dash-kind', value: state.kind });
  const countSelect = select(
    [
      ['6', '6 périodes'],
      ['12', '12 périodes'],
      ['24', '24 périodes'],
    ],
    { id: 'dash-count' },
  );
  const summary = h('p', { class: 'muted' });
  const grid = h('div', { class: 'indicator-grid', role: 'tabpanel', id: 'dash-panel', tabindex: '-1' });
  const downloads = h('div', { class: 'actions' });
  const tabBar = h(
    'div',
    { class: 'tabs', role: 'tablist', 'aria-label': 'Missions' },
    MISSIONS.map(([key, label]) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          id: `mission-${key}`,
          'aria-controls': 'dash-panel',
          'aria-selected': String(key === state.mission),
          onClick: () => {
            state.mission = key;
            draw();
          },
        },
        label,
      ),
    ),
  );

  main.append(
    h(
      'div',
      { class: 'filters' },
      field('CPTS', cptsSelect),
      field('Période', kindSelect),
      field('Historique', countSelect),
    ),
    downloads,
    summary,
    tabBar,
    grid,
  );

  const [extras, withReport] = await Promise.all([extraDownloads(), reportAvailable()]);
  const yearSelect = select(reportYears(), { id: 'dash-report-year' });
  const reportControls = withReport
    ? h(
        'div',
        { class: 'report-link' },
        field('Année du rapport', yearSelect),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary',
            onClick: () => navigate('/rapport-annuel', { cpts: state.cpts, annee: yearSelect.value }),
          },
          'Rapport annuel ACI',
        ),
      )
    : null;
  const downloadExtra = async (extra) => {
    const wanted = { period: state.kind, from: firstOf(state.kind, state.count) };
    const query = Object.fromEntries(Object.entries(wanted).filter(([k]) => extra.params.includes(k)));
    try {
      await download(
        `/api/indicators${extra.path.replace('{cpts_id}', state.cpts)}`,
        query,
        extra.path.split('/').pop(),
      );
    } catch (error) {
      replace(notice, message('error', errorText(error)));
    }
  };
  replace(
    downloads,
    h('button', { type: 'button', class: 'secondary', onClick: () => exportCsv() }, 'Exporter en CSV'),
    extras.map((e) =>
      h(
        'button',
        { type: 'button', class: 'secondary', title: e.summary, onClick: () => downloadExtra(e) },
        e.label,
      ),
    ),
    reportControls,
  );

  async function exportCsv() {
    try {
      await download(
        `/api/indicators/indicators/cpts/${state.cpts}/export.csv`,
        { period: state.kind, from: firstOf(state.kind, state.count) },
        `indicateurs-${state.cpts}.csv`,
      );
    } catch (error) {
      replace(notice, message('error', errorText(error)));
    }
  }

  let current = null;
  async function load() {
    replace(grid, h('p', { class: 'loading', role: 'status' }, 'Chargement des indicateurs…'));
    try {
      current = await indicators(`/indicators/cpts/${state.cpts}`, { query: { period: state.kind } });
      summary.textContent =
        `Période en cours : ${longPeriod(current.period)}. ` +
        `Effectifs de 1 à ${current.small_cell_threshold - 1} masqués ` +
        '(jamais de donnée permettant de réidentifier un patient). ' +
        `Catalogue ${current.catalogue_version}, calculé à ${time(current.computed_at)}.`;
      await draw();
    } catch (error) {
      replace(grid, message('error', errorText(error)));
    }
  }

  async function draw() {
    for (const b of tabBar.children)
      b.setAttribute('aria-selected', String(b.id === `mission-${state.mission}`));
    grid.setAttribute('aria-labelledby', `mission-${state.mission}`);
    const values = current.indicators.filter(
      (v) => definitions.get(v.indicator_id)?.mission === state.mission,
    );
    const cards = values.map((v) => {
      const definition = definitions.get(v.indicator_id);
      const format = formatter(definition);
      const chart = h('div', { class: 'chart-box' }, h('p', { class: 'loading' }, 'Évolution…'));
      const card = h(
        'article',
        { class: 'panel indicator-card', dataset: { indicator: v.indicator_id } },
        h('h3', {}, v.label),
        h(
          'p',
          { class: `indicator-value${v.masked ? ' masked' : ''}` },
          valueText(v.value, v.masked, format),
        ),
        h(
          'p',
          { class: 'muted' },
          definition.direction === 'up'
            ? 'Objectif : à la hausse ↑'
            : definition.direction === 'down'
              ? 'Objectif : à la baisse ↓'
              : 'Suivi (sans objectif de sens)',
        ),
        chart,
        breakdownTable(v.breakdowns, format),
        h('details', {}, h('summary', {}, 'Définition'), h('p', {}, definition.description)),
      );
      return { card, chart, id: v.indicator_id, format, label: v.label };
    });
    replace(
      grid,
      cards.length
        ? cards.map((c) => c.card)
        : h('p', { class: 'muted' }, 'Aucun indicateur pour cette mission.'),
    );
    const queue = [...cards];
    const from = firstOf(state.kind, state.count);
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (queue.length) {
          const c = queue.shift();
          try {
            const series = await indicators(
              `/indicators/cpts/${state.cpts}/series/${encodeURIComponent(c.id)}`,
              { query: { period: state.kind, from } },
            );
            replace(
              c.chart,
              lineChart({
                title: `${c.label} par ${KINDS.find(([k]) => k === state.kind)[1].toLowerCase()}`,
                format: c.format,
                points: series.points.map((p) => ({
                  label: shortPeriod(state.kind, p.period.key),
                  value: p.value,
                  masked: p.masked,
                })),
              }),
            );
          } catch (error) {
            replace(c.chart, message('error', errorText(error)));
          }
        }
      }),
    );
  }

  cptsSelect.addEventListener('change', () => {
    state.cpts = cptsSelect.value;
    load();
  });
  kindSelect.addEventListener('change', () => {
    state.kind = kindSelect.value;
    load();
  });
  countSelect.addEventListener('change', () => {
    state.count = Number(countSelect.value);
    load();
  });
  await load();
}
