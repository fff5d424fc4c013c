// Calls to the services through the console's proxy (`/api/<service>/…`), with the user's token.

import { clearSession, currentSession } from './session.js';

const STATUS_TEXT = {
  400: 'Requête invalide',
  401: 'Session expirée : reconnectez-vous',
  403: 'Accès refusé',
  404: 'Introuvable',
  409: 'Conflit',
  413: 'Requête trop volumineuse',
  422: 'Données refusées',
  429: 'Trop de requêtes',
  500: 'Erreur du service',
  501: 'Non disponible',
  502: 'Service injoignable',
  503: 'Service indisponible',
  504: 'Le service ne répond pas',
};

/** An error answer of a service (RFC 9457 problem), with a French headline. */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || STATUS_TEXT[status] || `Erreur ${status}`);
    this.status = status;
    this.problem = problem;
  }

  get headline() {
    return STATUS_TEXT[this.status] || `Erreur ${this.status}`;
  }

  /** "Données refusées — patient.ins_nir : invalid key" */
  get text() {
    const fields = (this.problem.errors || []).map((e) => `${e.field} : ${e.message}`).join(' ; ');
    const detail = fields || this.problem.detail || '';
    return detail ? `${this.headline} — ${detail}` : this.headline;
  }
}

function describe(error) {
  if (error instanceof ApiError) return error.text;
  return `Erreur réseau : la console ne joint pas le serveur (${error.message}).`;
}
export { describe as errorText };

/**
 * fetch + JSON + problems. `path` starts with `/api/…` (services) or `/auth/…`, `/geo/…` (console).
 * Answers 204 with null; `{raw: true}` returns the Response (downloads); `accept` asks for another type
 * (`text/html`: the text).
 */
export async function request(
  path,
  {
    method = 'GET',
    query = null,
    body = undefined,
    raw = false,
    auth = true,
    accept = 'application/json',
  } = {},
) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
  }
  const headers = { Accept: accept };
  const session = auth ? currentSession() : null;
  if (session) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && session) {
    clearSession();
    window.dispatchEvent(new CustomEvent('session-expired'));
  }
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      /* not JSON */
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

const service = (prefix) => (path, options) => request(`/api/${prefix}${path}`, options);
export const registry = service('registry');
export const snp = service('snp');
export const matching = service('matching');
export const indicators = service('indicators');

const communeCache = new Map();

/** Names and points of communes (public reference data served by the console), cached per page load. */
export async function communePoints(codes) {
  const missing = [...new Set(codes.filter((c) => c && !communeCache.has(c)))];
  for (let i = 0; i < missing.length; i += 200) {
    const found = await request('/geo/communes', {
      query: { insee: missing.slice(i, i + 200) },
      auth: false,
    });
    for (const c of found) communeCache.set(c.insee, c);
  }
  return new Map(codes.filter((c) => communeCache.has(c)).map((c) => [c, communeCache.get(c)]));
}

export const communeName = (insee) => communeCache.get(insee)?.name || insee || '';

/** Download an authenticated file (CSV, XLSX…) through a Blob: links cannot carry the bearer token. */
export async function download(path, query, fallbackName) {
  const response = await request(path, { query, raw: true });
  const disposition = response.headers.get('content-disposition') || '';
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
