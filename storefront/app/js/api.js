// The public API, as the storefront uses it: JSON in and out, problem+json (RFC 9457)
// turned into an `ApiError` whose message is the problem's own title and detail, and
// conditional GETs (`If-None-Match`) so an unchanged answer costs a 304.

/** An answer that was not a success: what the API said, ready to show. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `Request failed (${status})`);
    this.status = status;
    this.title = problem?.title || 'Something went wrong';
    this.detail = problem?.detail || '';
    this.code = problem?.code || 'network';
    this.seats = problem?.seats || [];
    this.errors = problem?.errors || [];
    this.retryAfter = null;
    /** The answer's JSON as sent (a check-in verdict is a JSON refusal, not a problem). */
    this.body = problem ?? null;
  }
}

const JSON_TYPES = ['application/json', 'application/problem+json'];

/** `GET`/`POST` on the API. `etag`: a conditional GET whose 304 answers `{notModified}`. */
export async function call(method, path, { body, headers = {}, etag, signal } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers }, signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (etag) init.headers['if-none-match'] = etag;
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { title: 'No connection', detail: 'The server could not be reached. Check your connection and try again.' });
  }
  if (response.status === 304) return { status: 304, notModified: true, etag };
  const data = await readJson(response);
  if (!response.ok) throw problemOf(response, data);
  return { status: response.status, data, etag: response.headers.get('etag') };
}

async function readJson(response) {
  const type = (response.headers.get('content-type') || '').split(';')[0].trim();
  if (!JSON_TYPES.includes(type)) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function problemOf(response, data) {
  const error = new ApiError(response.status, data);
  const retry = Number(response.headers.get('retry-after'));
  if (Number.isFinite(retry) && retry > 0) error.retryAfter = retry;
  return error;
}

/** A fresh `Idempotency-Key`. */
export function newKey() {
  return crypto.randomUUID();
}

export const get = (path, options) => call('GET', path, options);
export const post = (path, body, options = {}) => call('POST', path, { ...options, body });

/** Query string from the truthy entries of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : '';
}
