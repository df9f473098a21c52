// The order: what was bought and each ticket as a QR code of its signed code (drawn in the
// browser), with its state at the door, refreshed while the page is open.

import { h, add, replace } from '../dom.js';
import { get } from '../api.js';
import { clock } from '../format.js';
import { heading, errorSlot, live, subject } from '../ui.js';
import { describeTickets, seatLabels } from '../summary.js';
import { qrSvg } from '../qr.js';

/** How often the order page looks for check-ins and cancellations. */
const ORDER_REFRESH_MS = 5000;

export async function orderPage(ctx) {
  const errors = errorSlot();
  const order = await subject(ctx, 'Your order', `/v1/orders/${ctx.params.holdId}`, errors);
  if (!order) return;
  if (order.status === 'held') return ctx.navigate(`/holds/${order.hold_id}`, { replace: true });
  const event = await get(`/v1/events/${order.event_id}`, { signal: ctx.signal }).then((a) => a.data, () => null);
  const labels = await seatLabels(ctx, order);
  const tickets = h('ol', { class: 'tickets', 'aria-label': 'Tickets' });
  add(ctx.main, heading(ctx, 'Your order'), await describeTickets(ctx, order, event, labels), errors.el, tickets);
  const states = new Map();
  const draw = (o) => o.tickets.forEach((t, i) => drawTicket(tickets, states, t, i, labels));
  draw(order);
  await live(ctx, `/v1/orders/${order.hold_id}`, ORDER_REFRESH_MS, draw, (error) => errors.show(error));
}

/** One ticket's card, drawn once and re-labelled when its state changes. */
function drawTicket(list, states, ticket, i, labels) {
  const state = stateText(ticket);
  if (states.get(ticket.ticket_id) === state) return;
  states.set(ticket.ticket_id, state);
  let card = list.querySelector(`[data-ticket="${ticket.ticket_id}"]`);
  if (!card) {
    const name = ticket.seat_index != null ? labels.get(ticket.seat_index) || `Seat ${ticket.seat_index}` : `Ticket ${i + 1}`;
    card = h('li', { class: 'ticket', dataset: { ticket: ticket.ticket_id } },
      h('h3', {}, name),
      h('div', { class: 'qr', role: 'img', 'aria-label': `QR code of ${name}` }, qrSvg(ticket.code)),
      h('p', { class: 'state' }),
      h('details', {}, h('summary', {}, 'Show the code as text'), h('code', { class: 'code' }, ticket.code)));
    list.append(card);
  }
  card.dataset.status = ticket.status;
  replace(card.querySelector('.state'), state);
}

function stateText(ticket) {
  if (ticket.status === 'checked_in') return `Checked in at ${clock(ticket.checked_in_at)}${ticket.checked_in_gate ? ` (${ticket.checked_in_gate})` : ''}`;
  if (ticket.status === 'void') return 'Void: this ticket was cancelled';
  return 'Valid: show this code at the door';
}
