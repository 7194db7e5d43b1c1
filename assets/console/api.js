// The console is a client of /api/v1 like any product integration: the same endpoints, the
// same JSON, the same errors. The only differences are the session cookie (sent by the
// browser, HttpOnly, so no script can read it) instead of a bearer token, and the CSRF token
// every state-changing request carries.

let csrfToken = null;
let onSignedOut = () => {};

/** An error answer of the API: `status`, and the `{status, error, detail}` body. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `the server answered ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** Remembers the session's CSRF token (from sign-in or GET /admin/session). */
export function useSession(session) {
  csrfToken = session ? session.csrfToken : null;
}

/** What to do when the server says the session is gone (401). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/** Calls the API. `path` is under /api/v1 unless it starts with `/`. */
export async function call(method, path, body) {
  const url = path.startsWith('/') ? path : `/api/v1/${path}`;
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, { detail: 'The server could not be reached. Check your connection and try again.' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = { detail: text };
    }
  }
  if (response.status === 401 && url !== '/admin/session') {
    csrfToken = null;
    onSignedOut();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const put = (path, body) => call('PUT', path, body);
export const del = (path) => call('DELETE', path);

/** Every page of a cursor-paged list, up to `max` items. */
export async function getAll(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}

/** Signs in; the answer sets the session cookie and gives the CSRF token. */
export async function signIn(credentials) {
  const session = await call('POST', '/admin/session', credentials);
  useSession(session);
  return session;
}

/** The current session, or null when there is none. */
export async function currentSession() {
  try {
    const session = await call('GET', '/admin/session');
    useSession(session);
    return session;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signOut() {
  await call('DELETE', '/admin/session');
  useSession(null);
}

/** `GET` with query parameters (empty ones left out). */
export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
