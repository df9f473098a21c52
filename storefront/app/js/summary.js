// What a hold or an order is, in words: the event, show, zone, seats or quantity and the
// total; shared by the hold page and the order page.

import { h } from './dom.js';
import { get } from './api.js';
import { money, when, plural } from './format.js';
import { seatsOf, seatLabel } from './seatmap.js';

/** Summary of a hold or order: event, show, zone, seats or quantity, total. */
export async function describeTickets(ctx, order, event, labels) {
  const show = event?.shows.find((s) => s.show_id === order.show_id);
  const zone = show?.zones.find((z) => z.zone_id === order.zone_id);
  labels = labels || await seatLabels(ctx, order);
  return h('section', { class: 'summary', 'aria-label': 'Summary' },
    h('h2', {}, event ? event.title : 'Event'),
    show ? h('p', {}, `${when(show.starts_at, event.venue.timezone)} · ${event.venue.name}, ${event.venue.city}`) : null,
    h('p', {}, `${zone ? zone.name : 'Zone'} · ${plural(order.quantity, 'ticket')} · ${money(order.total_minor, order.currency)}`),
    seatsOfOrder(order).length ? h('ul', { class: 'seat-list' }, seatsOfOrder(order).map((i) => h('li', {}, labels.get(i) || `Seat ${i}`))) : null,
    order.buyer ? h('p', { class: 'buyer' }, `For ${order.buyer.name} (${order.buyer.email})`) : null,
    order.status === 'cancelled' ? h('p', { class: 'problem', role: 'alert' }, cancelled(order)) : null,
    h('p', { class: 'reference' }, `Order reference ${order.hold_id}`));
}

function cancelled(order) {
  const refund = order.refund ? ` A refund of ${money(order.refund.amount_minor ?? order.total_minor, order.currency)} is ${order.refund.status || 'due'}.` : '';
  return `This order was cancelled.${refund}`;
}

/** Seat labels ("Row 3, seat 12") for an order's seats, from the show's layout. */
export async function seatLabels(ctx, order) {
  const labels = new Map();
  if (!seatsOfOrder(order).length) return labels;
  try {
    const { data } = await get(`/v1/shows/${order.show_id}/seats`, { signal: ctx.signal });
    const zone = data.zones.find((z) => z.zone_id === order.zone_id);
    const wanted = new Set(seatsOfOrder(order));
    for (const seat of zone ? seatsOf(zone) : []) if (wanted.has(seat.index)) labels.set(seat.index, seatLabel(seat));
  } catch {
    // Labels fall back to the seat's index.
  }
  return labels;
}

/** A hold's seats (the API leaves `seats` out for general admission). */
const seatsOfOrder = (order) => order.seats || [];
