// A professional's SAS participation and capacity for new médecin-traitant patients (registry).

import { errorText, registry } from '../api.js';
import { checkedValues, choices, field, h, message, replace, select } from '../dom.js';
import { dateShort, MT_PUBLICS, parisDateKey, SAS_MODES } from '../format.js';

function sasForm(professional, onSaved) {
  const current = professional.sas_participation;
  const status = h('div', {});
  const input = (name, attrs) => h('input', { name, id: `sas-${name}`, ...attrs });
  const enSus = h('input', {
    type: 'checkbox',
    id: 'sas-en-sus',
    name: 'en_sus',
    checked: current?.accepts_en_sus,
  });
  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'sas-title' },
    h('h2', { id: 'sas-title' }, 'Participation au SAS'),
    current
      ? h(
          'p',
          {},
          h('span', { class: 'badge yes' }, 'Participant'),
          ` depuis le ${dateShort(current.start_date)}` +
            `${current.end_date ? `, jusqu'au ${dateShort(current.end_date)}` : ''}.`,
        )
      : h(
          'p',
          {},
          h('span', { class: 'badge no' }, 'Non participant'),
          ' Déclarez votre participation pour recevoir des patients régulés.',
        ),
    h(
      'div',
      { class: 'grid' },
      field(
        'Mode de participation',
        select(Object.entries(SAS_MODES), {
          name: 'mode',
          id: 'sas-mode',
          value: current?.mode || 'own_practice',
        }),
      ),
      field(
        'Heures par semaine',
        input('hours', { type: 'number', min: 2, max: 60, step: 0.5, value: current?.hours_per_week ?? 2 }),
        { hint: 'Engagement sur l’honneur : au moins 2 h de disponibilité visible par semaine.' },
      ),
      field('Début', input('start_date', { type: 'date', value: current?.start_date || parisDateKey() })),
      field('Fin (facultatif)', input('end_date', { type: 'date', value: current?.end_date || '' })),
      h(
        'div',
        { class: 'choice' },
        enSus,
        h('label', { for: 'sas-en-sus' }, 'J’accepte des patients en sus de mes créneaux'),
      ),
      field(
        'Plafond hebdomadaire en sus',
        input('cap', { type: 'number', min: 1, max: 50, value: current?.en_sus_weekly_cap ?? '' }),
      ),
    ),
    status,
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        { type: 'submit', class: 'primary' },
        current ? 'Mettre à jour ma participation' : 'Déclarer ma participation',
      ),
      current
        ? h('button', { type: 'button', class: 'secondary', onClick: end }, 'Mettre fin à ma participation')
        : null,
    ),
  );

  async function end() {
    try {
      await registry(`/professionals/${professional.idnps}/sas-participation`, { method: 'DELETE' });
      onSaved('Participation au SAS terminée.');
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value;
    const hours = Number(v('hours'));
    if (!(hours >= 2)) {
      replace(status, message('error', 'Au moins 2 heures par semaine.'));
      return;
    }
    try {
      await registry(`/professionals/${professional.idnps}/sas-participation`, {
        method: 'PUT',
        body: {
          mode: v('mode'),
          hours_per_week: hours,
          start_date: v('start_date'),
          end_date: v('end_date') || null,
          accepts_en_sus: enSus.checked,
          en_sus_weekly_cap: enSus.checked && v('cap') ? Number(v('cap')) : null,
        },
      });
      onSaved('Participation au SAS enregistrée.');
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  });
  return form;
}

function mtForm(professional, onSaved) {
  const current = professional.mt_capacity;
  const status = h('div', {});
  const accepting = h('input', { type: 'checkbox', id: 'mt-accepting', checked: current?.accepting });
  const publics = choices('Publics', 'publics', Object.entries(MT_PUBLICS), {
    checked: current?.publics || ['adults'],
  });
  const perMonth = h('input', {
    type: 'number',
    id: 'mt-per-month',
    min: 0,
    max: 100,
    value: current?.new_patients_per_month ?? 2,
  });
  const until = h('input', { type: 'date', id: 'mt-until', value: current?.until || '' });
  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'mt-title' },
    h('h2', { id: 'mt-title' }, 'Nouveaux patients comme médecin traitant'),
    h(
      'p',
      {},
      current?.accepting
        ? h('span', { class: 'badge yes' }, 'Accepte de nouveaux patients')
        : h('span', { class: 'badge no' }, "N'accepte pas de nouveaux patients"),
    ),
    h(
      'div',
      { class: 'grid' },
      h(
        'div',
        { class: 'choice wide' },
        accepting,
        h('label', { for: 'mt-accepting' }, "J'accepte de nouveaux patients sans médecin traitant"),
      ),
      field('Nouveaux patients par mois', perMonth),
      field("Jusqu'au (facultatif)", until),
      h('div', { class: 'wide' }, publics),
    ),
    status,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Enregistrer ma capacité'),
    ),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await registry(`/professionals/${professional.idnps}/mt-capacity`, {
        method: 'PUT',
        body: {
          accepting: accepting.checked,
          new_patients_per_month: Number(perMonth.value || 0),
          publics: checkedValues(publics),
          until: until.value || null,
        },
      });
      onSaved('Capacité médecin traitant enregistrée.');
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  });
  return form;
}

export async function render(main, { session }) {
  const head = h(
    'div',
    { class: 'page-head' },
    h('h1', {}, 'Ma participation'),
    h('p', { class: 'scope' }, `IDNPS ${session.idnps || '—'}`),
  );
  const notice = h('div', { role: 'status' });
  const body = h('div', { class: 'columns' });
  main.append(head, notice, body);
  if (!session.idnps) {
    replace(notice, message('error', "Votre jeton ne porte pas d'identifiant national (IDNPS)."));
    return;
  }
  const draw = async (saved = null) => {
    try {
      const professional = await registry(`/professionals/${session.idnps}`);
      replace(notice, saved ? message('success', saved) : null);
      replace(body, sasForm(professional, draw), mtForm(professional, draw));
    } catch (error) {
      replace(notice, message('error', errorText(error)));
    }
  };
  await draw();
}
