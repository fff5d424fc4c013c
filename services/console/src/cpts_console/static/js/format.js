// French formats (Europe/Paris) and the French labels of the services' codes.

export const TIME_ZONE = 'Europe/Paris';

const fmt = (options) => new Intl.DateTimeFormat('fr-FR', { timeZone: TIME_ZONE, ...options });
const DATE_LONG = fmt({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const DATE_SHORT = fmt({ day: '2-digit', month: '2-digit', year: 'numeric' });
const DAY = fmt({ weekday: 'short', day: 'numeric', month: 'short' });
const DAY_LONG = fmt({ weekday: 'long', day: 'numeric', month: 'long' });
const TIME = fmt({ hour: '2-digit', minute: '2-digit' });
const DATE_TIME = fmt({
  day: '2-digit',
  month: '2-digit',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});
const TIME_SECONDS = fmt({ hour: '2-digit', minute: '2-digit', second: '2-digit' });
const KEY_PARTS = fmt({ year: 'numeric', month: '2-digit', day: '2-digit' });
const NUMBER = new Intl.NumberFormat('fr-FR');
const DECIMAL = new Intl.NumberFormat('fr-FR', { maximumFractionDigits: 1 });

const asDate = (value) => (value instanceof Date ? value : new Date(value));
/** A date-only ISO string ("1941-05-17") read as that calendar day, not as UTC midnight. */
const calendarDay = (value) =>
  typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)
    ? new Date(`${value}T12:00:00Z`)
    : asDate(value);

export const dateLong = (v) => DATE_LONG.format(calendarDay(v));
export const dateShort = (v) => DATE_SHORT.format(calendarDay(v));
export const day = (v) => DAY.format(calendarDay(v));
export const dayLong = (v) => DAY_LONG.format(calendarDay(v));
export const time = (v) => TIME.format(asDate(v));
export const dateTime = (v) => DATE_TIME.format(asDate(v));
export const timeSeconds = (v) => TIME_SECONDS.format(asDate(v));
export const number = (v) => NUMBER.format(v);
export const decimal = (v) => DECIMAL.format(v);
/** "3 créneaux": a count and its word, with an s when more than one (or `pluralWord`). */
export const plural = (n, word, pluralWord = `${word}s`) =>
  `${NUMBER.format(n)} ${n > 1 ? pluralWord : word}`;
export const km = (v) => (v === null || v === undefined ? '' : `${DECIMAL.format(v)} km`);

/** The Paris calendar day of an instant, as "YYYY-MM-DD". */
export function parisDateKey(value = new Date()) {
  const parts = Object.fromEntries(KEY_PARTS.formatToParts(asDate(value)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** "YYYY-MM-DD" plus `days` days (calendar arithmetic, no time zone involved). */
export function addDays(key, days) {
  const d = new Date(`${key}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** Age in whole years at today's Paris date. */
export function age(birthDate) {
  const [y, m, d] = birthDate.split('-').map(Number);
  const [ty, tm, td] = parisDateKey().split('-').map(Number);
  return ty - y - (tm < m || (tm === m && td < d) ? 1 : 0);
}

/** "2 min 05 s" until `until`, or null once past. */
export function countdown(until, now = Date.now()) {
  const left = Math.floor((asDate(until).getTime() - now) / 1000);
  if (left <= 0) return null;
  return `${Math.floor(left / 60)} min ${String(left % 60).padStart(2, '0')} s`;
}

export const fullName = (p) =>
  [
    /^d(r|octeur)\.?$/i.test(p.civility || '') ? 'Dr' : null,
    p.given_name,
    (p.family_name || '').toUpperCase(),
  ]
    .filter(Boolean)
    .join(' ');

export const ROLES = {
  regulator: 'Régulation SAS',
  secretary: 'Secrétariat de CPTS',
  professional: 'Professionnel de santé',
  coordinator: 'Coordination de CPTS',
  ars: 'Agence régionale de santé',
  admin: 'Administration',
};

export const REASONS = {
  fever: 'Fièvre',
  pain: 'Douleur',
  respiratory: 'Respiratoire (toux, gêne)',
  digestive: 'Digestif',
  skin: 'Peau',
  trauma_minor: 'Petite traumatologie',
  urinary: 'Urinaire',
  ent: 'ORL',
  mental_health: 'Santé mentale',
  prescription_renewal: "Renouvellement d'ordonnance",
  certificate: 'Certificat',
  child: 'Enfant',
  other: 'Autre',
};
export const URGENCIES = { same_day: 'Dans la journée', '24h': 'Sous 24 h', '48h': 'Sous 48 h' };
export const SEXES = { F: 'Femme', M: 'Homme', U: 'Indéterminé' };
export const SERVICE_TYPES = { AMB: 'Au cabinet', HH: 'Visite à domicile', VR: 'Téléconsultation' };
export const VISIBILITIES = {
  SNP: 'Régulation SAS',
  CPTS: 'CPTS (secrétariat, membres)',
  PRO: 'Professionnels',
  PUBLIC: 'Grand public',
};
export const SLOT_STATUS = { free: 'Libre', held: 'Bloqué', booked: 'Réservé', withdrawn: 'Retiré' };
export const ORIENTATIONS = {
  pdsa: 'Permanence des soins (PDSA)',
  mmg: 'Maison médicale de garde',
  emergency_department: 'Urgences',
  other: 'Autre orientation',
};
export const CLOSE_REASONS = {
  no_slot_in_window: 'Aucun créneau dans les 48 h',
  no_slot_for_modality: 'Aucun créneau pour la modalité demandée',
  patient_declined: 'Le patient a refusé les créneaux proposés',
  outside_regulated_hours: 'Hors horaires régulés',
  other: 'Autre raison',
};
export const DAY_GROUPS = { today: "Aujourd'hui", tomorrow: 'Demain', after_tomorrow: 'Après-demain' };
export const CARD_GROUPS = {
  own_doctor: 'Médecin traitant du patient',
  participant_with_slots: 'Participant au SAS',
  non_participant_with_slots: 'Non participant au SAS',
  participant_without_slots: 'Participant au SAS, sans créneau',
  others: 'Autre professionnel',
};
export const SAS_MODES = {
  own_practice: 'En cabinet (exercice propre)',
  cpts: 'Via la CPTS',
  msp: 'Via une MSP',
  sos_medecins: 'SOS Médecins',
};
export const MT_PUBLICS = {
  adults: 'Adultes',
  children: 'Enfants',
  home_bound: 'Patients ne pouvant se déplacer',
};
export const PROFESSIONS = {
  10: 'Médecin',
  21: 'Pharmacien',
  26: 'Audioprothésiste',
  40: 'Chirurgien-dentiste',
  50: 'Sage-femme',
  60: 'Infirmier',
  70: 'Masseur-kinésithérapeute',
  80: 'Pédicure-podologue',
  91: 'Orthophoniste',
  92: 'Orthoptiste',
};
export const SPECIALTIES = { SM54: 'Médecine générale' };
export const PATIENT_STATUS = {
  waiting: 'En attente',
  proposed: 'Proposé à un médecin',
  mt_declared: 'Médecin traitant trouvé',
  withdrawn: 'Sorti de la liste',
  found_elsewhere: 'MT trouvé par ailleurs',
  merged: 'Fusionné (doublon)',
};
export const PRIORITY_GROUPS = {
  ald: 'ALD',
  '70+': '70 ans et plus',
  c2s: 'C2S',
  other_priority: 'Autre priorité',
  none: 'Sans priorité',
};
export const PROPOSAL_STATUS = {
  pending: 'En attente de réponse',
  accepted: 'Acceptée',
  declined: 'Refusée',
  expired: 'Expirée',
  cancelled: 'Annulée',
};
export const GP_DECLINE_REASONS = {
  no_capacity: 'Plus de capacité',
  too_far: 'Trop éloigné',
  public_not_taken: 'Public non pris en charge',
  other: 'Autre raison',
};
export const APPOINTMENT_STATUS = {
  booked: 'Réservé',
  cancelled: 'Annulé',
  fulfilled: 'Honoré',
  noshow: 'Patient absent',
};

/** "Médecin · Médecine générale" from a professional's codes and labels. */
export function professionLabel(p) {
  const profession =
    p.profession_label || PROFESSIONS[p.profession_code] || `Profession ${p.profession_code}`;
  const specialty = p.specialty_label || SPECIALTIES[p.specialty_code] || null;
  return specialty ? `${profession} · ${specialty}` : profession;
}
