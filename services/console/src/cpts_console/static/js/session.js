// The user's session: the bearer token in sessionStorage (gone when the tab closes) and what it says.

const KEY = 'cpts.session';
const ROLES = ['secretary', 'regulator', 'professional', 'coordinator', 'ars', 'admin'];

function decodePayload(token) {
  const part = token.split('.')[1] || '';
  const base64 = part
    .replace(/-/g, '+')
    .replace(/_/g, '/')
    .padEnd(Math.ceil(part.length / 4) * 4, '=');
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

const asList = (value) =>
  (Array.isArray(value) ? value : value ? [value] : []).filter((v) => typeof v === 'string');

/**
 * Roles and scopes read from the token, as the services read them (`roles` or Keycloak's
 * `realm_access.roles`,
 * `cpts`, `departements`, `idnps` or Pro Santé Connect's `SubjectNameID`). For display only: every service
 * verifies the token itself.
 */
export function describeToken(token) {
  const claims = decodePayload(token);
  const roles = asList(claims.roles?.length ? claims.roles : claims.realm_access?.roles).filter((r) =>
    ROLES.includes(r),
  );
  const idnps = claims.idnps || claims.SubjectNameID || null;
  const name = claims.name || [claims.given_name, claims.family_name].filter(Boolean).join(' ') || claims.sub;
  return {
    subject: claims.sub,
    name,
    roles,
    cpts: asList(claims.cpts),
    departements: asList(claims.departements),
    idnps,
    expiresAt: claims.exp ? new Date(claims.exp * 1000) : null,
  };
}

/** The current session, or null when absent or expired. */
export function currentSession() {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const stored = JSON.parse(raw);
    const session = { ...describeToken(stored.token), token: stored.token, name: stored.name || null };
    session.name = session.name || describeToken(stored.token).name;
    if (session.expiresAt && session.expiresAt.getTime() < Date.now()) {
      sessionStorage.removeItem(KEY);
      return null;
    }
    return session;
  } catch {
    sessionStorage.removeItem(KEY);
    return null;
  }
}

export function saveSession({ token, name = null }) {
  sessionStorage.setItem(KEY, JSON.stringify({ token, name }));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

export const hasRole = (session, ...roles) =>
  Boolean(session) && (session.roles.includes('admin') || roles.some((r) => session.roles.includes(r)));
