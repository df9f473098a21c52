// Making a hold: the one place the storefront writes inventory. The request is retried
// under the same Idempotency-Key after a failure without an answer (a timeout, a 5xx, a
// 429), so a retry or a double click never holds twice; a final answer (a hold, or a
// refusal such as sold out) ends the key.

import { post } from './api.js';
import * as store from './store.js';

/** Holds `pick` (`{quantity}` or `{seats}` or `{quantity, best_available}`) of a zone;
 * resolves to the hold (HoldView). */
export async function hold(eventId, showId, zoneId, pick) {
  const body = { show_id: showId, zone_id: zoneId, customer_id: store.customerId(), ...pick };
  const headers = { 'idempotency-key': store.holdKey(body) };
  const pass = store.pass(eventId);
  if (pass) headers['tessera-pass'] = pass.token;
  try {
    const { data } = await post('/v1/holds', body, { headers });
    store.settleHold();
    store.rememberHold(data.hold_id);
    return data;
  } catch (error) {
    if (!isTransient(error)) store.settleHold();
    throw error;
  }
}

/** No final answer: the same request may be sent again under the same key. */
function isTransient(error) {
  return error.status === 0 || error.status === 429 || error.status >= 500;
}
