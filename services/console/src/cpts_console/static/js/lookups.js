// Searches shared by several screens: communes (registry autocomplete) and doctors (registry search).

import { communePoints, registry } from './api.js';
import { fullName, professionLabel } from './format.js';

/** Communes by the start of their name or postcode, for a combobox. */
export async function searchCommunes(text) {
  const found = await registry('/communes', { query: { q: text, limit: 8 } });
  return found.map((c) => ({
    value: c.insee,
    label: `${c.name} (${c.postcodes[0] || c.departement})`,
    detail: `INSEE ${c.insee}${c.postcodes.length > 1 ? ` · ${c.postcodes.join(', ')}` : ''}`,
    commune: c,
  }));
}

/** General practitioners by the start of their name, for a combobox. */
export async function searchDoctors(text) {
  const page = await registry('/professionals', { query: { name: text, profession: '10', limit: 8 } });
  const names = await communePoints(page.items.map((p) => p.commune_insee).filter(Boolean));
  return page.items.map((p) => ({
    value: p.idnps,
    label: fullName(p),
    detail: [professionLabel(p), names.get(p.commune_insee)?.name, `IDNPS ${p.idnps}`]
      .filter(Boolean)
      .join(' · '),
  }));
}

/** The key of a NIR (15 characters, Corsica 2A/2B counted as 19/18): true when it checks. */
export function nirKeyValid(nir) {
  const value = nir.replace(/\s/g, '').toUpperCase();
  if (!/^[0-9]{5}(2A|2B|[0-9]{2})[0-9]{8}$/.test(value)) return false;
  const digits = value.slice(0, 13).replace('2A', '19').replace('2B', '18');
  return 97n - (BigInt(digits) % 97n) === BigInt(value.slice(13));
}
