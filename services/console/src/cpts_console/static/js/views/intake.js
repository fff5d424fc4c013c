// Intake of an unscheduled-care request: SAS regulation (origin "sas") or CPTS secretariat ("cpts_phone").

import { errorText, snp } from '../api.js';
import { combobox } from '../combobox.js';
import { choices, checkedValues, field, h, message, replace, select } from '../dom.js';
import { parisDateKey, REASONS, SEXES, URGENCIES } from '../format.js';
import { nirKeyValid, searchCommunes, searchDoctors } from '../lookups.js';
import { hasRole } from '../session.js';
import { showResults } from './candidates.js';

const PENDING_SLOT = 'cpts.pending-slot';

function intakeForm(session, onCreated) {
  const isRegulator = hasRole(session, 'regulator');
  const commune = combobox({ search: searchCommunes, placeholder: 'Nom ou code postal', id: 'commune' });
  const doctor = combobox({ search: searchDoctors, placeholder: 'Nom du médecin traitant', id: 'mt' });
  const status = h('div', { class: 'form-status' });
  const input = (name, attrs = {}) => h('input', { name, id: name, ...attrs });

  const mtChoice = choices(
    'Le patient a-t-il un médecin traitant ?',
    'mt',
    [
      ['known', 'Le patient a un médecin traitant'],
      ['none', 'Pas de médecin traitant'],
    ],
    { type: 'radio', checked: ['known'] },
  );
  const mtField = field('Médecin traitant (recherche par nom)', doctor.input, {
    hint: 'Il sera proposé en premier s’il a des créneaux.',
    container: doctor.element,
  });
  const consent = h(
    'div',
    { class: 'choice', hidden: true },
    h('input', { type: 'checkbox', id: 'consent', name: 'consent' }),
    h(
      'label',
      { for: 'consent' },
      'Le patient accepte d’être inscrit au guichet médecin traitant de la CPTS',
    ),
  );
  mtChoice.addEventListener('change', () => {
    const none = checkedValues(mtChoice)[0] === 'none';
    mtField.hidden = none;
    consent.hidden = !none;
  });

  const urgency = choices('Délai', 'urgency', Object.entries(URGENCIES), { type: 'radio', checked: ['48h'] });
  const constraints = choices('Contraintes', 'constraints', [
    ['home', 'Visite à domicile nécessaire'],
    ['tele', 'Téléconsultation acceptée'],
  ]);
  const communeField = field('Commune ou code postal', commune.input, {
    required: true,
    hint: 'Saisissez au moins deux lettres ou le code postal, puis choisissez dans la liste.',
    container: commune.element,
  });

  const form = h(
    'form',
    { class: 'panel intake', novalidate: true, 'aria-labelledby': 'intake-title' },
    h(
      'h2',
      { id: 'intake-title' },
      isRegulator ? 'Nouvelle demande de régulation' : 'Nouvelle demande de rendez-vous',
    ),
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Patient'),
      field('Nom', input('family_name', { autocomplete: 'off' }), { required: true }),
      field('Prénom', input('given_name', { autocomplete: 'off' }), { required: true }),
      field('Date de naissance', input('birth_date', { type: 'date', max: parisDateKey() }), {
        required: true,
      }),
      field('Sexe', select([['', '—'], ...Object.entries(SEXES)], { name: 'sex', id: 'sex' }), {
        required: true,
      }),
      field('Téléphone', input('phone', { type: 'tel', autocomplete: 'off', inputmode: 'tel' })),
      field('NIR (facultatif)', input('ins_nir', { maxlength: 15, autocomplete: 'off' }), {
        hint: '15 caractères, clé comprise (2A / 2B pour la Corse).',
      }),
    ),
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Localisation'),
      communeField,
      field('Adresse (facultatif)', input('address', { autocomplete: 'off' })),
    ),
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Motif et urgence'),
      field('Motif', select([['', '—'], ...Object.entries(REASONS)], { name: 'reason', id: 'reason' }), {
        required: true,
      }),
      field('Précision (facultatif)', input('reason_text', { maxlength: 500 })),
      urgency,
      constraints,
    ),
    h('fieldset', { class: 'grid' }, h('legend', {}, 'Médecin traitant'), mtChoice, mtField, consent),
    status,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Rechercher des créneaux'),
    ),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const problems = [];
    for (const [name, label] of [
      ['family_name', 'Nom'],
      ['given_name', 'Prénom'],
      ['birth_date', 'Date de naissance'],
      ['sex', 'Sexe'],
      ['reason', 'Motif'],
    ])
      if (!value(name)) problems.push(`${label} : à renseigner`);
    const place = commune.selected();
    const typed = commune.input.value.trim();
    if (!place && !/^\d{5}$/.test(typed))
      problems.push('Commune : choisissez une commune dans la liste ou saisissez un code postal');
    if (value('ins_nir') && !nirKeyValid(value('ins_nir'))) problems.push('NIR : format ou clé invalide');
    const mtNone = checkedValues(mtChoice)[0] === 'none';
    if (!mtNone && !doctor.selected() && doctor.input.value.trim())
      problems.push('Médecin traitant : choisissez-le dans la liste');
    if (problems.length) {
      replace(
        status,
        message(
          'error',
          h('p', {}, 'Vérifiez la demande :'),
          h(
            'ul',
            {},
            problems.map((p) => h('li', {}, p)),
          ),
        ),
      );
      return;
    }
    const wanted = checkedValues(constraints);
    const body = {
      origin: isRegulator ? 'sas' : 'cpts_phone',
      cpts_id: isRegulator ? null : session.cpts[0] || null,
      patient: {
        family_name: value('family_name'),
        given_name: value('given_name'),
        birth_date: value('birth_date'),
        sex: value('sex'),
        phone: value('phone') || null,
        ins_nir: value('ins_nir').replace(/\s/g, '').toUpperCase() || null,
      },
      location: {
        commune_insee: place ? place.value : null,
        postcode: place ? null : typed,
        address: value('address') || null,
      },
      reason_category: value('reason'),
      reason_text: value('reason_text') || null,
      urgency: checkedValues(urgency)[0],
      needs_home_visit: wanted.includes('home'),
      teleconsultation_ok: wanted.includes('tele'),
      mt_idnps: mtNone ? null : doctor.selected()?.value || null,
      mt_none: mtNone,
      consent_mt_referral: mtNone && form.elements.consent.checked,
    };
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    replace(status, h('p', { class: 'loading', role: 'status' }, 'Enregistrement de la demande…'));
    try {
      const created = await snp('/care-requests', { method: 'POST', body });
      onCreated(created, { communeName: place?.commune?.name || typed });
    } catch (error) {
      replace(status, message('error', errorText(error)));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function render(main, { session, route }) {
  const title =
    route.path === '/regulation' ? 'Régulation SAS' : 'Prise de rendez-vous de soins non programmés';
  const scope = hasRole(session, 'regulator')
    ? `Départements : ${session.departements.join(', ') || 'aucun'}`
    : `CPTS : ${session.cpts.join(', ') || 'aucune'}`;
  const area = h('div', { class: 'intake-area' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, title), h('p', { class: 'scope' }, scope)), area);
  let stop = null;

  const start = () => {
    if (stop) stop();
    stop = null;
    const pending = sessionStorage.getItem(PENDING_SLOT);
    replace(
      area,
      pending
        ? message(
            'info',
            `Créneau demandé par lien de réservation (${pending}) : ` +
              'il sera bloqué dès la demande enregistrée.',
          )
        : null,
      intakeForm(session, (request, extra) => {
        sessionStorage.removeItem(PENDING_SLOT);
        stop = showResults(area, { request, session, extra, wantedSlot: pending, onNewRequest: start });
      }),
    );
    area.querySelector('input')?.focus();
  };
  start();
  return () => {
    if (stop) stop();
  };
}
