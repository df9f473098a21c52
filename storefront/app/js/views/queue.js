// The waiting room: join once (a kept Idempotency-Key and ticket keep the place across
// reloads and tabs), then ask the edge how far the line has moved every
// `poll_after_seconds`; once admitted, keep the pass and go back to buying.

import { h, add, replace, announce } from '../dom.js';
import { get, post } from '../api.js';
import { duration } from '../format.js';
import { heading, errorSlot, actionButton, subject } from '../ui.js';
import * as store from '../store.js';

/** When the API names no wait (it always should), ask again after this long. */
const DEFAULT_POLL_SECONDS = 5;
/** After a failed poll, wait this long before asking again. */
const RETRY_SECONDS = 5;

export async function queuePage(ctx) {
  const { eventId } = ctx.params;
  const errors = errorSlot();
  const event = await subject(ctx, 'Waiting room', `/v1/events/${eventId}`, errors);
  if (!event) return;
  add(ctx.main, heading(ctx, `Waiting room: ${event.title}`));
  if (!event.queue || store.pass(eventId)) return ctx.navigate(`/events/${eventId}`, { replace: true });
  const panel = h('section', { class: 'queue', 'aria-live': 'polite', 'aria-label': 'Your place in line' }, h('p', { class: 'loading' }, 'Joining the queue…'));
  add(ctx.main, h('p', {}, 'Keep this page open: it moves on by itself when it is your turn.'), panel, errors.el);
  await step(ctx, event, panel, errors);
}

/** One round: join if needed, else poll; then schedule the next. */
async function step(ctx, event, panel, errors) {
  const eventId = event.event_id;
  try {
    const status = await statusOf(ctx, eventId);
    errors.clear();
    if (status.state === 'admitted') return admitted(ctx, eventId, status);
    if (status.state === 'expired') return expired(ctx, event, panel);
    showPlace(panel, status);
    ctx.later((status.poll_after_seconds || DEFAULT_POLL_SECONDS) * 1000, () => step(ctx, event, panel, errors));
  } catch (error) {
    if (error.name === 'AbortError') return;
    if (error.code === 'queue_ticket_invalid') store.saveQueueTicket(eventId, null);
    errors.show(error);
    ctx.later((error.retryAfter || RETRY_SECONDS) * 1000, () => step(ctx, event, panel, errors));
  }
}

async function statusOf(ctx, eventId) {
  const ticket = store.queueTicket(eventId);
  if (ticket) {
    const { data } = await get(`/v1/events/${eventId}/queue`, { headers: { 'tessera-queue-ticket': ticket }, signal: ctx.signal });
    return data;
  }
  const { data } = await post(`/v1/events/${eventId}/queue`, undefined, {
    headers: { 'idempotency-key': store.joinKey(eventId) }, signal: ctx.signal,
  });
  store.saveQueueTicket(eventId, data.ticket);
  return data;
}

function showPlace(panel, status) {
  const ahead = status.ahead;
  replace(panel,
    h('p', { class: 'position' }, 'Your place in line ', h('strong', { dataset: { position: status.position } }, `#${status.position.toLocaleString()}`)),
    h('dl', { class: 'queue-facts' },
      h('dt', {}, 'People ahead of you'), h('dd', { class: 'ahead' }, ahead.toLocaleString()),
      h('dt', {}, 'Estimated wait'), h('dd', {}, duration(status.estimated_wait_seconds))),
    h('progress', { max: Math.max(status.position, 1), value: Math.max(status.position - ahead, 0), 'aria-label': 'Progress through the line' }));
}

async function admitted(ctx, eventId, status) {
  store.savePass(eventId, status.pass);
  announce("It's your turn: you can buy tickets now");
  await ctx.navigate(`/events/${eventId}`, { replace: true });
}

function expired(ctx, event, panel) {
  replace(panel,
    h('p', { role: 'alert' }, 'Your turn came and went: the time to buy ran out.'),
    actionButton('Join again', async () => {
      store.forgetQueue(event.event_id);
      await ctx.navigate(`/events/${event.event_id}/queue`, { replace: true });
    }, { class: 'primary' }));
}
