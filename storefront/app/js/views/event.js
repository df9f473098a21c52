// The event page: its shows, zones and prices, and live availability (a conditional GET
// every few seconds, so an unchanged answer is a 304). General admission is held from
// here; assigned zones open the seat map. A queued on-sale sends the buyer to the queue.

import { h, add, replace, announce } from '../dom.js';
import { money, when, plural } from '../format.js';
import { heading, errorSlot, live, actionButton, subject } from '../ui.js';
import { hold } from '../holding.js';
import * as store from '../store.js';

/** How often the page asks for fresh availability. */
export const AVAILABILITY_REFRESH_MS = 2000;

export async function eventPage(ctx) {
  const errors = errorSlot();
  const event = await subject(ctx, 'Event', `/v1/events/${ctx.params.eventId}`, errors);
  if (!event) return;
  const show = event.shows.find((s) => s.show_id === ctx.query.get('show')) || event.shows[0];
  add(ctx.main, 
    heading(ctx, event.title),
    h('p', { class: 'where' }, `${event.venue.name}, ${event.venue.city}`),
    h('p', { class: 'description' }, event.description),
    queueBanner(event),
    event.shows.length > 1 ? showPicker(ctx, event, show) : null,
    errors.el);
  if (event.status === 'cancelled') return add(ctx.main, h('p', { class: 'problem', role: 'alert' }, 'This event was cancelled.'));
  if (show) await zonesOf(ctx, event, show, errors);
}

function queueBanner(event) {
  if (!event.queue) return null;
  const pass = store.pass(event.event_id);
  if (pass) return h('p', { class: 'banner ok' }, `You're in: your pass lasts until ${when(pass.expires_at)}.`);
  return h('div', { class: 'banner' },
    h('p', {}, 'This on-sale has a waiting room: join the queue, and you will be let in to buy in the order people arrived.'),
    h('a', { class: 'button primary', href: `/events/${event.event_id}/queue` }, 'Join the queue'));
}

function showPicker(ctx, event, chosen) {
  return h('nav', { class: 'shows', 'aria-label': 'Shows' },
    h('ul', {}, event.shows.map((show) => h('li', {},
      h('a', { href: `/events/${event.event_id}?show=${show.show_id}`, 'aria-current': show === chosen ? 'page' : null },
        when(show.starts_at, event.venue.timezone))))));
}

async function zonesOf(ctx, event, show, errors) {
  const rows = new Map();
  const table = h('table', { class: 'zones' },
    h('caption', {}, when(show.starts_at, event.venue.timezone)),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Zone'), h('th', { scope: 'col' }, 'Price'),
      h('th', { scope: 'col' }, 'Available'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Buy')))),
    h('tbody', {}, [...show.zones].sort((a, b) => a.sort_order - b.sort_order).map((zone) => {
      const row = zoneRow(ctx, event, show, zone, errors);
      rows.set(zone.zone_id, row);
      return row.el;
    })));
  add(ctx.main, table);
  await live(ctx, `/v1/shows/${show.show_id}/availability`, AVAILABILITY_REFRESH_MS,
    (availability) => availability.zones.forEach((z) => rows.get(z.zone_id)?.update(z)),
    (error) => errors.show(error));
}

function zoneRow(ctx, event, show, zone, errors) {
  const count = h('td', { class: 'available', dataset: { zone: zone.zone_id } }, '…');
  const buy = h('td', { class: 'buy' });
  const el = h('tr', {}, h('th', { scope: 'row' }, zone.name), h('td', {}, money(zone.price_minor, zone.currency)), count, buy);
  let shown = null;
  const update = (z) => {
    if (z.available === shown) return;
    const first = shown === null;
    shown = z.available;
    replace(count, z.available > 0 ? `${z.available.toLocaleString()} left` : 'Sold out');
    count.dataset.available = String(z.available);
    if (first) replace(buy, buyControls(ctx, event, show, zone, errors));
    buy.querySelectorAll('button, select').forEach((c) => { c.disabled = z.available <= 0; });
  };
  return { el, update };
}

function buyControls(ctx, event, show, zone, errors) {
  if (zone.seating === 'assigned') {
    return h('a', { class: 'button', href: `/events/${event.event_id}/shows/${show.show_id}/seats?zone=${zone.zone_id}` }, 'Choose seats');
  }
  const id = `qty-${zone.zone_id}`;
  const options = [];
  for (let n = zone.min_per_order; n <= zone.max_per_order; n += 1) options.push(h('option', { value: n }, n));
  const quantity = h('select', { id, name: 'quantity' }, options);
  const button = actionButton('Hold tickets', async () => {
    errors.clear();
    await holdAndGo(ctx, event, show, zone, { quantity: Number(quantity.value) }, errors);
  }, { class: 'primary', 'aria-label': `Hold tickets in ${zone.name}` });
  return h('div', { class: 'buy-ga' }, h('label', { for: id }, 'Tickets', h('span', { class: 'sr-only' }, ` for ${zone.name}`)), quantity, button);
}

/** Holds, then shows the hold; a queued event without a pass goes to the queue first.
 * Resolves to the refusal (shown in `errors`) or null. */
export async function holdAndGo(ctx, event, show, zone, pick, errors) {
  if (event.queue && !store.pass(event.event_id)) {
    await ctx.navigate(`/events/${event.event_id}/queue`);
    return null;
  }
  try {
    const held = await hold(event.event_id, show.show_id, zone.zone_id, pick);
    announce(`${plural(held.quantity, 'ticket')} held`);
    await ctx.navigate(`/holds/${held.hold_id}`);
    return null;
  } catch (error) {
    errors.show(error);
    return error;
  }
}
