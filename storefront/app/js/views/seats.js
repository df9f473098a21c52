// The seat map page: pick seats (click, or arrows and Enter), or ask for the best
// available; the map follows every change while it is open (a conditional GET every few
// seconds), and a pick someone else took first is shown as taken at once.

import { h, add, replace, announce } from '../dom.js';
import { money, when, plural } from '../format.js';
import { heading, errorSlot, live, actionButton, subject } from '../ui.js';
import { SeatBoard, seatLabel, neighbour } from '../seatmap.js';
import { holdAndGo, AVAILABILITY_REFRESH_MS } from './event.js';

export async function seatsPage(ctx) {
  const errors = errorSlot();
  const event = await subject(ctx, 'Seats', `/v1/events/${ctx.params.eventId}`, errors);
  if (!event) return;
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
  let board = null;
  const frame = h('div', { class: 'seat-frame' }, h('p', { class: 'loading' }, 'Loading seats…'));
  const summary = h('div', { class: 'picked-summary', 'aria-live': 'polite' });
  const pickedHold = actionButton('Hold seats', () => holdPicked(), { class: 'primary', disabled: true });
  const el = h('section', { 'aria-label': 'Seats' }, legend(), frame, summary, pickedHold, bestAvailable(ctx, event, show, zone, errors));

  const showPicked = () => {
    const seats = board.pickedSeats();
    replace(summary, seats.length
      ? [h('p', {}, `${plural(seats.length, 'seat')} picked: ${money(zone.price_minor * seats.length, zone.currency)}`),
        h('ul', {}, seats.map((seat) => h('li', {}, seatLabel(seat))))]
      : h('p', {}, 'Pick seats on the map, or let us pick the best available.'));
    pickedHold.disabled = seats.length === 0;
    pickedHold.textContent = seats.length ? `Hold ${plural(seats.length, 'seat')}` : 'Hold seats';
  };
  const holdPicked = async () => {
    errors.clear();
    const seats = board.pickedSeats().map((seat) => seat.index);
    const refused = await holdAndGo(ctx, event, show, zone, { seats }, errors);
    if (refused?.code !== 'seat_unavailable') return;
    const taken = board.markTaken(refused.seats);
    showPicked();
    errors.show({ title: refused.title, detail: `Just taken: ${taken.map(seatLabel).join('; ')}. Pick another seat.` });
  };
  const toggle = (index) => {
    const refusal = board.toggle(index, zone.max_per_order);
    if (refusal === 'taken') return announce(`${seatLabel(board.seats[index])} is not available`);
    if (refusal === 'full') return errors.show({ title: 'Too many seats', detail: `At most ${zone.max_per_order} seats in one order.` });
    showPicked();
  };
  const update = (data) => {
    if (!data) return;
    if (!board) {
      board = new SeatBoard(data);
      wireInput(board, toggle);
      replace(frame, board.svg);
      return showPicked();
    }
    const lost = board.apply(data);
    if (!lost.length) return;
    announce(`${plural(lost.length, 'seat')} you picked ${lost.length === 1 ? 'was' : 'were'} just taken`);
    showPicked();
  };
  return { el, update };
}

/** A click picks; one tab stop for the whole map: arrows move between seats, Enter or
 * Space picks. */
function wireInput(board, toggle) {
  board.svg.addEventListener('click', (event) => {
    const index = event.target.dataset?.seat;
    if (index !== undefined) toggle(Number(index));
  });
  const start = board.seats.find((seat) => board.states[seat.index] === 0) || board.seats[0];
  if (!start) return;
  const focusOn = (seat) => {
    board.svg.querySelector('[tabindex="0"]')?.setAttribute('tabindex', '-1');
    const el = board.elements[seat.index];
    el.setAttribute('tabindex', '0');
    el.focus();
  };
  board.elements[start.index].setAttribute('tabindex', '0');
  board.svg.addEventListener('keydown', (event) => {
    const index = event.target.dataset?.seat;
    if (index === undefined) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      return toggle(Number(index));
    }
    if (!event.key.startsWith('Arrow')) return;
    event.preventDefault();
    const next = neighbour(board.seats, board.rows, board.seats[Number(index)], event.key);
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
