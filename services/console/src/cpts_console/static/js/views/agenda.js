// A professional's week of unscheduled-care slots: calendar, recurring availability, visibility, withdrawal.

import { errorText, registry, snp } from '../api.js';
import { openDialog } from '../dialog.js';
import { checkedValues, choices, clear, field, h, message, replace, select } from '../dom.js';
import {
  addDays,
  dateLong,
  day,
  dayLong,
  parisDateKey,
  SERVICE_TYPES,
  SLOT_STATUS,
  time,
  timeSeconds,
  VISIBILITIES,
} from '../format.js';

const POLL_SECONDS = 10;
const WEEKDAYS = [
  ['1', 'Lundi'],
  ['2', 'Mardi'],
  ['3', 'Mercredi'],
  ['4', 'Jeudi'],
  ['5', 'Vendredi'],
  ['6', 'Samedi'],
  ['7', 'Dimanche'],
];

/** Monday of the Paris week holding `key` ("YYYY-MM-DD"). */
function mondayOf(key) {
  const weekday = new Date(`${key}T12:00:00Z`).getUTCDay() || 7;
  return addDays(key, 1 - weekday);
}

function hours(minutes) {
  const h0 = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m ? `${h0} h ${String(m).padStart(2, '0')}` : `${h0} h`;
}

function weekSummary(slots) {
  const live = slots.filter((s) => s.status !== 'withdrawn');
  const snpMinutes = live
    .filter((s) => s.visibility.includes('SNP'))
    .reduce((sum, s) => sum + (new Date(s.end) - new Date(s.start)) / 60000, 0);
  const count = (status) => live.filter((s) => s.status === status).length;
  return h(
    'p',
    { class: 'muted' },
    `${count('free')} libre(s), ${count('held')} bloqué(s), ${count('booked')} réservé(s). ` +
      `Disponibilité visible par la régulation SAS : ${hours(Math.round(snpMinutes))} ` +
      '(engagement des participants : au moins 2 h par semaine).',
  );
}

async function changeVisibility(slot, reload) {
  const set = choices('Visible par', 'visibility', Object.entries(VISIBILITIES), {
    checked: slot.visibility,
    inline: false,
  });
  const changed = await openDialog({
    title: `Visibilité du créneau du ${dateLong(slot.start)} à ${time(slot.start)}`,
    content: [set],
    confirmLabel: 'Enregistrer',
    onConfirm: async () => {
      const visibility = checkedValues(set);
      if (!visibility.length) throw new Error('Choisissez au moins une visibilité.');
      try {
        return await snp(`/slots/${slot.slot_id}/visibility`, { method: 'PUT', body: { visibility } });
      } catch (error) {
        throw new Error(errorText(error));
      }
    },
  });
  if (changed) reload();
}

async function withdraw(slot, reload) {
  const done = await openDialog({
    title: `Retirer le créneau du ${dateLong(slot.start)} à ${time(slot.start)} ?`,
    content:
      slot.status === 'booked'
        ? [
            message(
              'warning',
              'Ce créneau est réservé : le rendez-vous sera annulé et la régulation prévenue.',
            ),
          ]
        : [],
    confirmLabel: 'Retirer le créneau',
    danger: true,
    onConfirm: async () => {
      try {
        return await snp(`/slots/${slot.slot_id}`, { method: 'DELETE' });
      } catch (error) {
        throw new Error(errorText(error));
      }
    },
  });
  if (done) reload();
}

const SHORT_VISIBILITY = { SNP: 'SAS', CPTS: 'CPTS', PRO: 'Pros', PUBLIC: 'Public' };
const SHORT_TYPE = { AMB: 'Cabinet', HH: 'Visite', VR: 'Téléconsult.' };

const longVisibility = (slot) => slot.visibility.map((v) => VISIBILITIES[v] || v).join(', ');

function slotView(slot, reload) {
  const when = `${dateLong(slot.start)} à ${time(slot.start)}`;
  const visibility = slot.visibility.map((v) => SHORT_VISIBILITY[v] || v).join(', ');
  const walkIn = slot.appointment_type === 'WALKIN' ? ' libre accès' : '';
  return h(
    'li',
    {
      class: `agenda-slot ${slot.status}`,
      dataset: { slotId: slot.slot_id },
      title:
        `${SERVICE_TYPES[slot.service_type] || slot.service_type} — ` +
        `visible par : ${longVisibility(slot)}`,
    },
    h(
      'div',
      {},
      h('span', { class: 'slot-time' }, `${time(slot.start)}–${time(slot.end)}`),
      ' ',
      SLOT_STATUS[slot.status],
    ),
    h(
      'div',
      { class: 'muted' },
      `${SHORT_TYPE[slot.service_type] || slot.service_type}${walkIn} · ${visibility}`,
    ),
    slot.status === 'withdrawn'
      ? null
      : h(
          'div',
          { class: 'slot-actions' },
          h(
            'button',
            {
              type: 'button',
              class: 'secondary small',
              onClick: () => changeVisibility(slot, reload),
              'aria-label': `Changer la visibilité du créneau du ${when}`,
            },
            'Visibilité',
          ),
          h(
            'button',
            {
              type: 'button',
              class: 'secondary small',
              onClick: () => withdraw(slot, reload),
              'aria-label': `Retirer le créneau du ${when}`,
            },
            'Retirer',
          ),
        ),
  );
}

function recurringForm(professional, onPublished) {
  const sites = professional.sites || [];
  const status = h('div', {});
  const input = (name, attrs) => h('input', { name, id: `rec-${name}`, ...attrs });
  const weekdays = choices('Jours', 'weekdays', WEEKDAYS.slice(0, 6), { checked: ['2'] });
  const visibility = choices('Visible par', 'visibility', Object.entries(VISIBILITIES), {
    checked: ['SNP', 'PRO', 'CPTS'],
  });
  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'recurring-title' },
    h('h2', { id: 'recurring-title' }, 'Publier une disponibilité récurrente'),
    h(
      'div',
      { class: 'grid' },
      field(
        "Lieu d'exercice",
        select(
          sites.map((s) => [s.site_id, [s.name, s.address].filter(Boolean).join(' — ') || s.site_id]),
          { name: 'site', id: 'rec-site' },
        ),
        { required: true, className: 'wide' },
      ),
      h('div', { class: 'wide' }, weekdays),
      field('De', input('start_time', { type: 'time', value: '14:00', step: 300 }), { required: true }),
      field('À', input('end_time', { type: 'time', value: '16:00', step: 300 }), { required: true }),
      field(
        'Durée d’un créneau',
        select(
          [
            ['10', '10 min'],
            ['15', '15 min'],
            ['20', '20 min'],
            ['30', '30 min'],
          ],
          { name: 'slot_minutes', id: 'rec-minutes', value: '15' },
        ),
      ),
      field('À partir du', input('first_day', { type: 'date', value: parisDateKey(), min: parisDateKey() }), {
        required: true,
      }),
      field('Pendant (semaines)', input('weeks', { type: 'number', min: 1, max: 26, value: 4 }), {
        required: true,
      }),
      field(
        'Type de consultation',
        select(Object.entries(SERVICE_TYPES), { name: 'service_type', id: 'rec-type' }),
      ),
      h('div', { class: 'wide' }, visibility),
    ),
    status,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Publier les créneaux')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value;
    const days = checkedValues(weekdays).map(Number);
    const seen = checkedValues(visibility);
    if (!sites.length) {
      replace(status, message('error', "Aucun lieu d'exercice connu pour vous dans le registre."));
      return;
    }
    if (!days.length || !seen.length) {
      replace(status, message('error', 'Choisissez au moins un jour et une visibilité.'));
      return;
    }
    if (v('end_time') <= v('start_time')) {
      replace(status, message('error', "L'heure de fin doit suivre l'heure de début."));
      return;
    }
    try {
      const page = await snp('/slots/recurring', {
        method: 'POST',
        body: {
          idnps: professional.idnps,
          site_id: v('site'),
          weekdays: days,
          start_time: v('start_time'),
          end_time: v('end_time'),
          slot_minutes: Number(v('slot_minutes')),
          first_day: v('first_day'),
          weeks: Number(v('weeks')),
          service_type: v('service_type'),
          visibility: seen,
        },
      });
      replace(status, message('success', `${page.total} créneau(x) publié(s).`));
      onPublished();
    } catch (error) {
      const text =
        error.status === 409 ? 'Ces créneaux chevauchent des créneaux déjà publiés.' : errorText(error);
      replace(status, message('error', text));
    }
  });
  return form;
}

export async function render(main, { session }) {
  const idnps = session.idnps;
  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Mon agenda de soins non programmés'),
      h('p', { class: 'scope' }, `IDNPS ${idnps || '—'}`),
    ),
  );
  if (!idnps) {
    main.append(
      message('error', "Votre jeton ne porte pas d'identifiant national (IDNPS) : agenda indisponible."),
    );
    return undefined;
  }
  let professional;
  try {
    professional = await registry(`/professionals/${idnps}`);
  } catch (error) {
    main.append(message('error', errorText(error)));
    return undefined;
  }
  const state = { monday: mondayOf(parisDateKey()), withdrawn: false, signature: null };
  const weekTitle = h('h2', { id: 'week-title' });
  const updated = h('span', { class: 'updated' });
  const status = h('div', {});
  const week = h('div', { class: 'week' });
  const summary = h('div', {});
  const showWithdrawn = h('input', { type: 'checkbox', id: 'show-withdrawn' });

  async function load(force = false) {
    if (document.hidden && !force) return;
    try {
      const page = await snp('/slots', {
        query: { idnps, from: state.monday, days: 7, include_withdrawn: state.withdrawn },
      });
      updated.textContent = `Mis à jour à ${timeSeconds(new Date())}`;
      const sig = JSON.stringify(page.items.map((s) => [s.slot_id, s.status, s.visibility]));
      if (sig === state.signature && !force) return;
      state.signature = sig;
      clear(status);
      draw(page.items);
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  }

  function draw(slots) {
    weekTitle.textContent = `Semaine du ${dayLong(state.monday)} au ${dayLong(addDays(state.monday, 6))}`;
    const today = parisDateKey();
    const byDay = new Map();
    for (const s of slots) {
      const key = parisDateKey(s.start);
      if (!byDay.has(key)) byDay.set(key, []);
      byDay.get(key).push(s);
    }
    replace(
      week,
      ...Array.from({ length: 7 }, (_, i) => {
        const key = addDays(state.monday, i);
        const items = (byDay.get(key) || []).sort((a, b) => a.start.localeCompare(b.start));
        return h(
          'section',
          { class: `week-day${key === today ? ' today' : ''}`, 'aria-label': dayLong(key) },
          h('h3', {}, day(key), key === today ? " (aujourd'hui)" : ''),
          items.length
            ? h(
                'ul',
                { class: 'plain-list' },
                items.map((s) => slotView(s, () => load(true))),
              )
            : h('p', { class: 'muted' }, 'Aucun créneau'),
        );
      }),
    );
    replace(summary, weekSummary(slots));
  }

  const move = (weeks) => {
    state.monday = addDays(state.monday, 7 * weeks);
    state.signature = null;
    load(true);
  };
  showWithdrawn.addEventListener('change', () => {
    state.withdrawn = showWithdrawn.checked;
    load(true);
  });

  main.append(
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'week-title' },
      h('div', { class: 'results-head' }, weekTitle, updated),
      h(
        'div',
        { class: 'week-nav' },
        h(
          'button',
          { type: 'button', class: 'secondary small', onClick: () => move(-1) },
          '← Semaine précédente',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary small',
            onClick: () => {
              state.monday = mondayOf(parisDateKey());
              load(true);
            },
          },
          'Cette semaine',
        ),
        h(
          'button',
          { type: 'button', class: 'secondary small', onClick: () => move(1) },
          'Semaine suivante →',
        ),
        h(
          'div',
          { class: 'choice' },
          showWithdrawn,
          h('label', { for: 'show-withdrawn' }, 'Afficher les créneaux retirés'),
        ),
      ),
      h(
        'div',
        { class: 'legend', 'aria-hidden': 'true' },
        h('span', { class: 'l-free' }, 'Libre'),
        h('span', { class: 'l-held' }, 'Bloqué par la régulation'),
        h('span', { class: 'l-booked' }, 'Réservé'),
      ),
      summary,
      status,
      week,
    ),
    recurringForm(professional, () => load(true)),
  );
  await load(true);
  const timer = setInterval(load, POLL_SECONDS * 1000);
  return () => clearInterval(timer);
}
