// What the browser keeps between pages and reloads: the buyer's id, queue tickets and
// admission passes per event, the key of a hold still being tried, the door's credential.
// Only the door credential is a secret; it stays in this browser's storage, never in a URL.

const PREFIX = 'tessera.';

function read(storage, key) {
  try {
    return JSON.parse(storage.getItem(PREFIX + key));
  } catch {
    return null;
  }
}

function write(storage, key, value) {
  if (value === null || value === undefined) storage.removeItem(PREFIX + key);
  else storage.setItem(PREFIX + key, JSON.stringify(value));
}

/** An Idempotency-Key made once and kept under `name` until it is forgotten. */
function keptKey(storage, name) {
  let key = read(storage, name);
  if (!key) {
    key = crypto.randomUUID();
    write(storage, name, key);
  }
  return key;
}

/** This browser's customer id (the API's `customer_id`: per-customer limits count by it). */
export function customerId() {
  let id = read(localStorage, 'customer');
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
    write(localStorage, 'customer', id);
  }
  return id;
}

/** The queue ticket for `eventId` (kept so a reload or a second tab keeps the place). */
export const queueTicket = (eventId) => read(localStorage, `queue.${eventId}`);
export const saveQueueTicket = (eventId, ticket) => write(localStorage, `queue.${eventId}`, ticket);
/** The key of this browser's join, so a retried join keeps its place. */
export const joinKey = (eventId) => keptKey(localStorage, `join.${eventId}`);

/** Forgets this browser's place in `eventId`'s queue, so the next visit joins anew. */
export function forgetQueue(eventId) {
  saveQueueTicket(eventId, null);
  write(localStorage, `join.${eventId}`, null);
}

/** The admission pass for `eventId`, while it lasts. */
export function pass(eventId) {
  const saved = read(localStorage, `pass.${eventId}`);
  if (!saved || Date.parse(saved.expires_at) <= Date.now()) return null;
  return saved;
}
export const savePass = (eventId, value) => write(localStorage, `pass.${eventId}`, value);

/** A hold being tried: the same request retried after a failure without an answer reuses
 * its Idempotency-Key, so a retry or a double click never holds twice. */
export function holdKey(body) {
  const fingerprint = JSON.stringify(body);
  const pending = read(sessionStorage, 'pendingHold');
  if (pending && pending.fingerprint === fingerprint) return pending.key;
  const key = crypto.randomUUID();
  write(sessionStorage, 'pendingHold', { fingerprint, key });
  return key;
}
/** The pending hold got a final answer: the next attempt is a new request. */
export const settleHold = () => write(sessionStorage, 'pendingHold', null);

/** The key of a checkout being confirmed (per hold), reused until it succeeds. */
export const confirmKey = (holdId) => keptKey(sessionStorage, `confirm.${holdId}`);

/** The door's credential: entered once, kept by this browser. */
export const doorCredential = () => read(localStorage, 'door');
export const saveDoorCredential = (value) => write(localStorage, 'door', value);

/** The holds this browser made (newest first), to find an order again. */
export const recentHolds = () => read(localStorage, 'holds') || [];
export function rememberHold(holdId) {
  const list = [holdId, ...recentHolds().filter((id) => id !== holdId)].slice(0, 20);
  write(localStorage, 'holds', list);
}
