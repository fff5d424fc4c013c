// Guichet médecin traitant: enrol a caller without a médecin traitant on the CPTS's list (patient-matching).

import { communePoints, errorText, matching } from '../api.js';
import { combobox } from '../combobox.js';
import { append, checkedValues, choices, clear, field, h, message, replace, select } from '../dom.js';
import { dateShort, parisDateKey, PATIENT_STATUS, SEXES } from '../format.js';
import { nirKeyValid, searchCommunes } from '../lookups.js';

const PREFILL = 'cpts.enrol-prefill';
const OUTCOMES = {
  created: 'Patient inscrit sur la liste de la CPTS.',
  existing: 'Ce patient était déjà inscrit : son dossier est conservé.',
  re_enrolled: 'Patient réinscrit sur la liste.',
};
const PRIORITY_FACTS = [
  ['ald', 'Affection de longue durée (ALD)'],
  ['c2s', 'Complémentaire santé solidaire (C2S)'],
  ['disability', 'Situation de handicap'],
  ['pregnancy', 'Grossesse'],
  ['complex', 'Patient complexe (évaluation infirmière)'],
];

function resultView(result) {
  const p = result.patient;
  return h(
    'section',
    { class: 'panel confirmation', 'aria-labelledby': 'enrolled-title' },
    h('h2', { id: 'enrolled-title', tabindex: '-1' }, OUTCOMES[result.outcome] || 'Inscription enregistrée'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Patient'),
      h(
        'dd',
        {},
        `${p.identity.first_names} ${p.identity.birth_name.toUpperCase()}` +
          `${p.identity.used_name ? ` (${p.identity.used_name})` : ''}, ` +
          `né(e) le ${dateShort(p.identity.birth_date)}`,
      ),
      h('dt', {}, 'Commune'),
      h('dd', {}, p.commune_name || p.commune_insee),
      h('dt', {}, 'Statut'),
      h('dd', {}, p.status_label || PATIENT_STATUS[p.status] || p.status),
      h('dt', {}, 'Priorité'),
      h('dd', {}, `${p.priority.explanation} (score ${p.priority.score})`),
    ),
    result.near_duplicates.length
      ? message(
          'warning',
          `${result.near_duplicates.length} doublon(s) possible(s) signalé(s) à la coordination : ` +
            result.near_duplicates.map((d) => d.reason).join(' ; '),
        )
      : null,
  );
}

export async function render(main, { session }) {
  const cptsIds = session.cpts;
  const prefill = JSON.parse(sessionStorage.getItem(PREFILL) || 'null');
  sessionStorage.removeItem(PREFILL);
  const commune = combobox({
    search: searchCommunes,
    placeholder: 'Nom ou code postal',
    id: 'enrol-commune',
  });
  if (prefill?.commune_insee) {
    const known = await communePoints([prefill.commune_insee]);
    const c = known.get(prefill.commune_insee);
    if (c) commune.set({ value: c.insee, label: `${c.name} (${c.postcodes[0] || c.departement})` });
  }
  const input = (name, attrs = {}) => h('input', { name, id: `enrol-${name}`, ...attrs });
  const cpts = select(
    cptsIds.map((c) => [c, c]),
    { id: 'enrol-cpts', name: 'cpts' },
  );
  const facts = choices('Critères de priorité', 'facts', PRIORITY_FACTS, { inline: false });
  const communeField = field('Commune de résidence', commune.input, {
    required: true,
    container: commune.element,
  });
  const status = h('div', { class: 'form-status' });
  const result = h('div', {});

  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'enrol-title' },
    h('h2', { id: 'enrol-title' }, 'Inscrire un patient sans médecin traitant'),
    cptsIds.length > 1 ? field('CPTS', cpts) : null,
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Identité'),
      field('Nom de naissance', input('birth_name', { value: prefill?.family_name || '' }), {
        required: true,
      }),
      field("Nom d'usage (facultatif)", input('used_name')),
      field('Prénom(s)', input('first_names', { value: prefill?.given_name || '' }), { required: true }),
      field(
        'Date de naissance',
        input('birth_date', { type: 'date', max: parisDateKey(), value: prefill?.birth_date || '' }),
        { required: true },
      ),
      field(
        'Sexe',
        select([['', '—'], ...Object.entries(SEXES)], {
          name: 'sex',
          id: 'enrol-sex',
          value: prefill?.sex || '',
        }),
        { required: true },
      ),
      field('Téléphone', input('phone', { type: 'tel', value: prefill?.phone || '' })),
      field('NIR (facultatif)', input('ins_nir', { maxlength: 15, value: prefill?.ins_nir || '' })),
    ),
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Lieu et mobilité'),
      communeField,
      field(
        'Distance maximale acceptée (km, facultatif)',
        input('max_distance_km', { type: 'number', min: 1, max: 100, step: 1 }),
      ),
      h(
        'div',
        { class: 'choice' },
        h('input', { type: 'checkbox', id: 'enrol-home', name: 'home' }),
        h('label', { for: 'enrol-home' }, 'Ne peut pas se déplacer (visites à domicile)'),
      ),
    ),
    h(
      'fieldset',
      { class: 'grid' },
      h('legend', {}, 'Priorité'),
      facts,
      field(
        "Sortie d'hospitalisation le (facultatif)",
        input('hospital_discharge_on', { type: 'date', max: parisDateKey() }),
      ),
      field('Évaluation « complexe » par (facultatif)', input('complex_assessed_by')),
    ),
    h(
      'div',
      { class: 'choice' },
      h('input', { type: 'checkbox', id: 'enrol-consent', name: 'consent' }),
      h(
        'label',
        { for: 'enrol-consent' },
        'Le patient consent à son inscription et à être proposé à un médecin de la CPTS',
      ),
    ),
    status,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Inscrire le patient')),
  );

  append(main, [
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Guichet médecin traitant'),
      h('p', { class: 'scope' }, `CPTS : ${cptsIds.join(', ') || 'aucune'}`),
    ),
    prefill ? message('info', 'Formulaire prérempli depuis la demande de soins non programmés.') : null,
    result,
    form,
  ]);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const problems = [];
    for (const [name, label] of [
      ['birth_name', 'Nom de naissance'],
      ['first_names', 'Prénom(s)'],
      ['birth_date', 'Date de naissance'],
      ['sex', 'Sexe'],
    ])
      if (!value(name)) problems.push(`${label} : à renseigner`);
    if (!commune.selected()) problems.push('Commune : choisissez une commune dans la liste');
    if (value('ins_nir') && !nirKeyValid(value('ins_nir'))) problems.push('NIR : format ou clé invalide');
    if (!form.elements.consent.checked)
      problems.push("Consentement : l'inscription demande l'accord du patient");
    if (problems.length) {
      replace(
        status,
        message(
          'error',
          h('p', {}, 'Vérifiez le formulaire :'),
          h(
            'ul',
            {},
            problems.map((p) => h('li', {}, p)),
          ),
        ),
      );
      return;
    }
    const chosen = checkedValues(facts);
    const body = {
      commune_insee: commune.selected().value,
      consent: true,
      identity: {
        birth_name: value('birth_name'),
        used_name: value('used_name') || null,
        first_names: value('first_names'),
        birth_date: value('birth_date'),
        sex: value('sex'),
        phone: value('phone') || null,
        ins_nir: value('ins_nir').replace(/\s/g, '').toUpperCase() || null,
      },
      mobility: {
        max_distance_km: value('max_distance_km') ? Number(value('max_distance_km')) : null,
        needs_home_visit: form.elements.home.checked,
      },
      priority: {
        ald: chosen.includes('ald'),
        c2s: chosen.includes('c2s'),
        disability: chosen.includes('disability'),
        pregnancy: chosen.includes('pregnancy'),
        complex: chosen.includes('complex'),
        complex_assessed_by: chosen.includes('complex') ? value('complex_assessed_by') || null : null,
        complex_assessed_on:
          chosen.includes('complex') && value('complex_assessed_by') ? parisDateKey() : null,
        hospital_discharge_on: value('hospital_discharge_on') || null,
      },
    };
    const target = cptsIds.length > 1 ? cpts.value : cptsIds[0];
    replace(status, h('p', { class: 'loading', role: 'status' }, 'Inscription…'));
    try {
      const enrolled = await matching(`/cpts/${target}/patients`, { method: 'POST', body });
      clear(status);
      replace(result, resultView(enrolled));
      form.reset();
      commune.reset();
      result.querySelector('h2').focus();
    } catch (error) {
      replace(status, message('error', errorText(error)));
    }
  });
}
