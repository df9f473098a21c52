// The events list: search, category and date filters (kept in the URL, so back and reload
// keep them), pages of `GET /v1/events` followed by its cursor.

import { h, add, replace } from '../dom.js';
import { get, query } from '../api.js';
import { money, when } from '../format.js';
import { heading, errorSlot } from '../ui.js';

/** Events per page asked of the API. */
const PAGE_SIZE = 12;

export async function eventsPage(ctx) {
  const filters = {
    q: ctx.query.get('q') || '',
    category: ctx.query.get('category') || '',
    from: ctx.query.get('from') || '',
    to: ctx.query.get('to') || '',
  };
  const list = h('ul', { class: 'event-grid', 'aria-label': 'Events' });
  const more = h('div', { class: 'more' });
  const errors = errorSlot();
  const form = filterForm(ctx, filters);
  add(ctx.main, heading(ctx, 'Find tickets'), form, errors.el, list, more);
  loadCategories(ctx, form.querySelector('#category'), filters.category);
  await loadPage(ctx, filters, null, { list, more, errors });
}

function filterForm(ctx, filters) {
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', { for: 'q' }, 'Search'),
    h('input', { id: 'q', name: 'q', type: 'search', value: filters.q, placeholder: 'Artist, show, venue…', maxlength: 200 }),
    h('label', { for: 'category' }, 'Category'),
    h('select', { id: 'category', name: 'category' }, h('option', { value: '' }, 'All categories')),
    h('label', { for: 'from' }, 'From'),
    h('input', { id: 'from', name: 'from', type: 'date', value: filters.from }),
    h('label', { for: 'to' }, 'Until'),
    h('input', { id: 'to', name: 'to', type: 'date', value: filters.to }),
    h('button', { type: 'submit', class: 'primary' }, 'Search'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    ctx.navigate(`/${query(Object.fromEntries(data))}`);
  });
  return form;
}

async function loadCategories(ctx, select, chosen) {
  try {
    const { data } = await get('/v1/categories', { signal: ctx.signal });
    for (const c of data) {
      select.append(h('option', { value: c.slug, selected: c.slug === chosen }, `${c.name} (${c.event_count})`));
    }
  } catch {
    // The list works without the category names; the filter stays "All".
  }
}

/** The API's filters: dates as instants (a whole day from the start of `from` to the end
 * of `to`, in the reader's zone). */
function apiQuery(filters, cursor) {
  const from = filters.from ? new Date(`${filters.from}T00:00`).toISOString() : '';
  const to = filters.to ? new Date(new Date(`${filters.to}T00:00`).getTime() + 86_400_000).toISOString() : '';
  return query({ q: filters.q, category: filters.category, from, to, limit: PAGE_SIZE, cursor });
}

async function loadPage(ctx, filters, cursor, { list, more, errors }) {
  replace(more, h('p', { class: 'loading' }, 'Loading events…'));
  try {
    const { data } = await get(`/v1/events${apiQuery(filters, cursor)}`, { signal: ctx.signal });
    list.append(...data.items.map(eventCard));
    if (!cursor && data.items.length === 0) list.append(h('li', { class: 'empty' }, 'No events match. Try fewer words or other dates.'));
    replace(more, data.next_cursor
      ? h('button', { type: 'button', onclick: () => loadPage(ctx, filters, data.next_cursor, { list, more, errors }) }, 'More events')
      : null);
  } catch (error) {
    replace(more);
    errors.show(error);
  }
}

function eventCard(event) {
  return h('li', { class: 'event-card' },
    h('a', { href: `/events/${event.event_id}` },
      h('span', { class: 'category' }, event.category),
      h('h2', {}, event.title),
      h('p', { class: 'where' }, `${event.venue_name}, ${event.city}`),
      event.starts_at ? h('p', { class: 'when' }, when(event.starts_at)) : null,
      event.price_from_minor != null ? h('p', { class: 'price' }, `from ${money(event.price_from_minor, event.currency)}`) : null,
      event.status === 'cancelled' ? h('p', { class: 'badge cancelled' }, 'Cancelled') : null));
}
