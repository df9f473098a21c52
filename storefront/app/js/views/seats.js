// The seat map page: pick seats (click, or arrows and Enter), or ask for the best
// available; the map follows every change while it is open (a conditional GET every few
// seconds), and a pick someone else took first is shown as taken at once.

import { h, add, replace, announce } from '../dom.js';
import { get } from '../api.js';
import { money, when, plural } from '../format.js';
import { heading, errorSlot, live, actionButton } from '../ui.js';
import { decodeStatus, drawSeats, seatsOf, seatLabel, neighbour, rowsOf, STATUS } from '../seatmap.js';
import { holdAndGo, AVAILABILITY_REFRESH_MS } from './event.js';

export async function seatsPage(ctx) {
  const errors = errorSlot();
  let event;
  try {
    ({ data: event } = await get(`/v1/events/${ctx.params.eventId}`, { signal: ctx.signal }));
  } catch (error) {
    add(ctx.main, heading(ctx, 'Seats'), errors.el);
    return errors.show(error);
  }
  const show = event.shows.find((x) => x.show_id === ctx.params.showId);
  const zones = (show?.zones || []).filter((z) => z.seating === 'assigned');
  const zone = zones.find((z) => z.zone_id === ctx.query.get('zone')) || zones[0];
  add(ctx.main, heading(ctx, `${event.title}: choose seats`));
  if (!zone) return add(ctx.main, h('p', { role: 'alert' }, 'This show has no seated zones.'));
  add(ctx.main, 
    h('p', { class: 'where' }, `${when(show.starts_at, event.venue.timezone)} · ${zone.name} · ${money(zone.price_minor, zone.currency)} a seat`),
    h('p', {}, h('a', { href: `/events/${event.event_id}?show=${show.show_id}` }, '← All zones')),
    zones.length > 1 ? zonePicker(event, show, zones, zone) : null);
  const map = seatMap(ctx, event, show, zone, errors);
  add(ctx.main, errors.el, map.el);
  await live(ctx, `/v1/shows/${show.show_id}/seats`, AVAILABILITY_REFRESH_MS,
    (data) => map.update(data.zones.find((z) => z.zone_id === zone.zone_id)),
    (error) => errors.show(error));
}

function zonePicker(event, show, zones, chosen) {
  return h('nav', { 'aria-label': 'Seated zones' }, h('ul', { class: 'shows' }, zones.map((z) => h('li', {},
    h('a', { href: `/events/${event.event_id}/shows/${show.show_id}/seats?zone=${z.zone_id}`, 'aria-current': z === chosen ? 'page' : null }, z.name)))));
}

/** The map, the picked seats and the two ways to hold. */
function seatMap(ctx, event, show, zone, errors) {
  const state = { seats: null, rows: null, states: null, picked: new Set(), svg: null, focus: null };
  const frame = h('div', { class: 'seat-frame' }, h('p', { class: 'loading' }, 'Loading seats…'));
  const summary = h('div', { class: 'picked-summary', 'aria-live': 'polite' });
  const pickedHold = actionButton('Hold seats', () => holdPicked(), { class: 'primary', disabled: true });
  const best = bestAvailable(ctx, event, show, zone, errors);
  const el = h('section', { 'aria-label': 'Seats' }, legend(), frame, summary, pickedHold, best);

  const holdPicked = async () => {
    errors.clear();
    const seats = [...state.picked].sort((a, b) => a - b);
    const refused = await holdAndGo(ctx, event, show, zone, { seats }, errors);
    if (refused?.code !== 'seat_unavailable') return;
    markTaken(refused.seats);
    const names = refused.seats.filter((i) => state.seats[i]).map((i) => seatLabel(state.seats[i])).join('; ');
    errors.show({ title: refused.title, detail: `Just taken: ${names}. Pick another seat.` });
  };
  const markTaken = (indexes) => {
    for (const index of indexes.filter((i) => state.seats[i])) {
      if (state.states[index] === 0) state.states[index] = 1;
      state.picked.delete(index);
      paint(index);
    }
    showPicked();
  };
  const paint = (index) => {
    const el = state.svg.querySelector(`[data-seat="${index}"]`);
    if (!el) return;
    const name = STATUS[state.states[index]];
    const picked = state.picked.has(index);
    el.setAttribute('class', `seat ${name}${picked ? ' picked' : ''}`);
    el.setAttribute('aria-pressed', String(picked));
    el.setAttribute('aria-label', `${seatLabel(state.seats[index])}, ${picked ? 'picked' : name}`);
    if (name === 'available') el.removeAttribute('aria-disabled'); else el.setAttribute('aria-disabled', 'true');
  };
  const showPicked = () => {
    const seats = [...state.picked].sort((a, b) => a - b).map((i) => state.seats[i]);
    replace(summary, seats.length
      ? [h('p', {}, `${plural(seats.length, 'seat')} picked: ${money(zone.price_minor * seats.length, zone.currency)}`),
        h('ul', {}, seats.map((seat) => h('li', {}, seatLabel(seat))))]
      : h('p', {}, 'Pick seats on the map, or let us pick the best available.'));
    pickedHold.disabled = seats.length === 0;
    pickedHold.textContent = seats.length ? `Hold ${plural(seats.length, 'seat')}` : 'Hold seats';
  };
  const toggle = (index) => {
    if (state.states[index] !== 0) return announce(`${seatLabel(state.seats[index])} is not available`);
    if (state.picked.has(index)) state.picked.delete(index);
    else if (state.picked.size >= zone.max_per_order) return errors.show({ title: 'Too many seats', detail: `At most ${zone.max_per_order} seats in one order.` });
    else state.picked.add(index);
    paint(index);
    showPicked();
  };
  const first = (data) => {
    state.seats = seatsOf(data);
    state.rows = rowsOf(state.seats);
    state.states = decodeStatus(data.status, data.seat_count);
    state.svg = drawSeats(data, state.seats, state.states);
    wireKeys(state, toggle);
    state.svg.addEventListener('click', (event) => {
      const index = event.target.dataset?.seat;
      if (index !== undefined) toggle(Number(index));
    });
    replace(frame, state.svg);
    showPicked();
  };
  const update = (data) => {
    if (!data) return;
    if (!state.seats) return first(data);
    const next = decodeStatus(data.status, data.seat_count);
    const lost = [];
    for (let i = 0; i < next.length; i += 1) {
      if (next[i] === state.states[i]) continue;
      state.states[i] = next[i];
      if (next[i] !== 0 && state.picked.delete(i)) lost.push(i);
      paint(i);
    }
    if (lost.length) {
      announce(`${plural(lost.length, 'seat')} you picked ${lost.length === 1 ? 'was' : 'were'} just taken`);
      showPicked();
    }
  };
  return { el, update };
}

/** One tab stop for the whole map: arrows move between seats, Enter or Space picks. */
function wireKeys(state, toggle) {
  const start = state.seats.find((seat) => state.states[seat.index] === 0) || state.seats[0];
  if (!start) return;
  const focusOn = (seat) => {
    state.svg.querySelector('[tabindex="0"]')?.setAttribute('tabindex', '-1');
    const el = state.svg.querySelector(`[data-seat="${seat.index}"]`);
    el.setAttribute('tabindex', '0');
    el.focus();
  };
  state.svg.querySelector(`[data-seat="${start.index}"]`).setAttribute('tabindex', '0');
  state.svg.addEventListener('keydown', (event) => {
    const index = event.target.dataset?.seat;
    if (index === undefined) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      return toggle(Number(index));
    }
    if (!event.key.startsWith('Arrow')) return;
    event.preventDefault();
    const next = neighbour(state.seats, state.rows, state.seats[Number(index)], event.key);
    if (next) focusOn(next);
  });
}

function bestAvailable(ctx, event, show, zone, errors) {
  const options = [];
  for (let n = 1; n <= zone.max_per_order; n += 1) options.push(h('option', { value: n, selected: n === 2 }, n));
  const quantity = h('select', { id: 'best-qty' }, options);
  const button = actionButton('Best available', async () => {
    errors.clear();
    await holdAndGo(ctx, event, show, zone, { quantity: Number(quantity.value), best_available: true }, errors);
  });
  return h('div', { class: 'best' }, h('label', { for: 'best-qty' }, 'Seats side by side'), quantity, button);
}

function legend() {
  return h('ul', { class: 'legend', 'aria-label': 'Legend' },
    ['available', 'picked', 'held', 'sold'].map((name) => h('li', {}, h('span', { class: `dot ${name}`, 'aria-hidden': 'true' }), name)));
}
