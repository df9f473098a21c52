// The seat map's drawing and reading: the layout's runs (seats side by side, evenly
// spaced) become SVG seats that are buttons with their label; the packed status (two bits
// a seat, four a byte, first in the low bits, URL-safe base64) is read without copying.

import { s } from './dom.js';

export const STATUS = ['available', 'held', 'sold', 'blocked'];
/** A seat's drawn size bounds (pixels per seat pitch), and the widest a map is drawn. */
const MIN_SEAT_PX = 14;
const MAX_SEAT_PX = 44;
const MAX_MAP_PX = 4000;

/** The state (0–3) of every seat, from the API's `status` string. */
export function decodeStatus(packed, seatCount) {
  const binary = atob(packed.replace(/-/g, '+').replace(/_/g, '/'));
  const states = new Uint8Array(seatCount);
  for (let i = 0; i < seatCount; i += 1) states[i] = (binary.charCodeAt(i >> 2) >> ((i & 3) * 2)) & 3;
  return states;
}

/** Every seat of a zone: index, section, row, number, point. */
export function seatsOf(zone) {
  const seats = [];
  for (const run of zone.runs) {
    for (let k = 0; k < run.count; k += 1) {
      seats.push({
        index: run.first_seat + k, section: run.section, row: run.row, number: run.first_number + k,
        x: run.x + k * run.dx, y: run.y + k * run.dy,
      });
    }
  }
  return seats.sort((a, b) => a.index - b.index);
}

export function seatLabel(seat) {
  const where = seat.section ? `${seat.section}, row ${seat.row}` : `Row ${seat.row}`;
  return `${where}, seat ${seat.number}`;
}

/** The smallest distance between neighbours: the seats' size follows it. */
function spacing(zone) {
  let step = Infinity;
  for (const run of zone.runs) {
    const d = Math.hypot(run.dx, run.dy);
    if (run.count > 1 && d > 0) step = Math.min(step, d);
  }
  return Number.isFinite(step) ? step : 1;
}

/** The SVG of a zone's seats, each seat a button reached by arrows; and each seat's
 * element by its index (repainting one is then no search). */
export function drawSeats(zone, seats, states) {
  const step = spacing(zone);
  const r = step * 0.42;
  const xs = seats.map((seat) => seat.x);
  const ys = seats.map((seat) => seat.y);
  const pad = step * 2; // room for the row labels
  const minX = Math.min(...xs) - pad;
  const minY = Math.min(...ys) - pad - step;
  const width = Math.max(...xs) - minX + pad;
  const height = Math.max(...ys) - minY + pad;
  const svg = s('svg', { viewBox: `${minX} ${minY} ${width} ${height}`, class: 'seat-map', role: 'group', 'aria-label': 'Seat map' },
    s('text', { x: minX + width / 2, y: minY + step, class: 'stage', 'text-anchor': 'middle', 'font-size': step, 'aria-hidden': 'true' }, 'STAGE'));
  for (const row of rowsOf(seats).values()) {
    const first = row[0];
    svg.append(s('text', { x: first.x - step * 0.8, y: first.y, class: 'row-label', 'text-anchor': 'end', 'dominant-baseline': 'central', 'font-size': step * 0.6, 'aria-hidden': 'true' }, first.row));
  }
  const elements = [];
  for (const seat of seats) {
    const state = STATUS[states[seat.index]];
    elements[seat.index] = svg.appendChild(s('circle', {
      cx: seat.x, cy: seat.y, r, class: `seat ${state}`, role: 'button', tabindex: -1,
      'aria-label': `${seatLabel(seat)}, ${state}`, 'aria-pressed': 'false', 'aria-disabled': state === 'available' ? null : 'true',
      dataset: { seat: seat.index },
    }));
  }
  // Stretch the drawing so seats stay big enough to tap: a seat at least this many pixels.
  // ... and no bigger than a comfortable button on a small map.
  svg.style.minWidth = `${Math.min((width / step) * MIN_SEAT_PX, MAX_MAP_PX)}px`;
  svg.style.maxWidth = `${(width / step) * MAX_SEAT_PX}px`;
  return { svg, elements };
}

/** The seat to move to from `from` with an arrow key: along the row, or to the nearest
 * seat of the next row up or down. */
export function neighbour(seats, rows, from, key) {
  if (key === 'ArrowLeft' || key === 'ArrowRight') {
    const row = rows.get(rowKey(from));
    const at = row.indexOf(from);
    return row[at + (key === 'ArrowRight' ? 1 : -1)] || null;
  }
  const order = [...rows.keys()];
  const next = order[order.indexOf(rowKey(from)) + (key === 'ArrowDown' ? 1 : -1)];
  if (next === undefined) return null;
  return rows.get(next).reduce((best, seat) => (Math.abs(seat.x - from.x) < Math.abs(best.x - from.x) ? seat : best));
}

export const rowKey = (seat) => `${seat.section}\u0000${seat.row}`;

/** Seats by row, each row left to right, rows front to back. */
export function rowsOf(seats) {
  const rows = new Map();
  for (const seat of [...seats].sort((a, b) => a.y - b.y || a.x - b.x)) {
    const key = rowKey(seat);
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push(seat);
  }
  return rows;
}

/** A zone's seats as drawn and as picked: their states (kept current from the live map),
 * the buyer's picks, and the SVG that shows both. */
export class SeatBoard {
  constructor(zone) {
    this.seats = seatsOf(zone);
    this.rows = rowsOf(this.seats);
    this.states = decodeStatus(zone.status, zone.seat_count);
    this.picked = new Set();
    ({ svg: this.svg, elements: this.elements } = drawSeats(zone, this.seats, this.states));
  }

  /** Picks or unpicks a seat; `'taken'` or `'full'` (no more in one order) when it can't. */
  toggle(index, maxPicked) {
    if (this.states[index] !== 0) return 'taken';
    if (this.picked.has(index)) this.picked.delete(index);
    else if (this.picked.size >= maxPicked) return 'full';
    else this.picked.add(index);
    this.paint(index);
    return null;
  }

  pickedSeats() {
    return [...this.picked].sort((a, b) => a - b).map((i) => this.seats[i]);
  }

  /** The ledger said these were taken: shown taken (held) at once, unpicked. */
  markTaken(indexes) {
    const known = indexes.filter((i) => this.seats[i]);
    for (const index of known) {
      if (this.states[index] === 0) this.states[index] = 1;
      this.picked.delete(index);
      this.paint(index);
    }
    return known.map((i) => this.seats[i]);
  }

  /** A fresh map: repaints the seats whose state moved; the picks someone took first. */
  apply(zone) {
    const next = decodeStatus(zone.status, zone.seat_count);
    const lost = [];
    for (let i = 0; i < next.length && i < this.states.length; i += 1) {
      if (next[i] === this.states[i]) continue;
      this.states[i] = next[i];
      if (next[i] !== 0 && this.picked.delete(i)) lost.push(i);
      this.paint(i);
    }
    return lost;
  }

  paint(index) {
    const el = this.elements[index];
    if (!el) return;
    const name = STATUS[this.states[index]];
    const picked = this.picked.has(index);
    el.setAttribute('class', `seat ${name}${picked ? ' picked' : ''}`);
    el.setAttribute('aria-pressed', String(picked));
    el.setAttribute('aria-label', `${seatLabel(this.seats[index])}, ${picked ? 'picked' : name}`);
    if (name === 'available') el.removeAttribute('aria-disabled');
    else el.setAttribute('aria-disabled', 'true');
  }
}
