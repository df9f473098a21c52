// The hold and its checkout: what is held, a countdown to `expires_at`, the buyer's name
// and e-mail and a test payment reference, then confirm (its Idempotency-Key kept per hold,
// so a retried confirm never pays twice). A hold that is already an order goes there.

import { h, add, replace, announce } from '../dom.js';
import { get, post, newKey } from '../api.js';
import { money, countdown, plural } from '../format.js';
import { heading, errorSlot, actionButton, subject } from '../ui.js';
import { describeTickets } from '../summary.js';
import * as store from '../store.js';

/** A countdown tick. */
const TICK_MS = 1000;
/** Said to screen readers once, when this little time is left. */
const WARN_AT_SECONDS = 60;

export async function holdPage(ctx) {
  const errors = errorSlot();
  const order = await subject(ctx, 'Your hold', `/v1/orders/${ctx.params.holdId}`, errors);
  if (!order) return;
  if (order.status === 'confirmed' || order.status === 'cancelled') return ctx.navigate(`/orders/${order.hold_id}`, { replace: true });
  const event = await get(`/v1/events/${order.event_id}`, { signal: ctx.signal }).then((a) => a.data, () => null);
  add(ctx.main, heading(ctx, 'Your hold'), await describeTickets(ctx, order, event), errors.el);
  if (order.status !== 'held') return add(ctx.main, ended(order.status, order.event_id));
  const timer = h('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
  add(ctx.main, timer, checkoutForm(ctx, order, errors, timer), releaseButton(ctx, order, errors));
}

function ended(status, eventId) {
  const why = status === 'expired' ? 'This hold expired and its tickets went back on sale.' : 'This hold was released.';
  return h('div', { class: 'problem', role: 'alert' }, h('p', {}, why), h('a', { href: `/events/${eventId}` }, 'Back to the event'));
}

function checkoutForm(ctx, order, errors, timer) {
  const form = h('form', { class: 'checkout', novalidate: true },
    h('h2', {}, 'Checkout'),
    field('name', 'Full name', { autocomplete: 'name', required: true, maxlength: 100 }),
    field('email', 'E-mail', { type: 'email', autocomplete: 'email', required: true, maxlength: 254 }),
    field('payment', 'Test payment reference', { value: `test_${newKey().slice(0, 8)}`, required: true, maxlength: 128 },
      'A test sale: no card is charged. Any reference will do.'),
    h('p', { class: 'total' }, `Total ${money(order.total_minor, order.currency)}`),
    h('button', { type: 'submit', class: 'primary' }, `Confirm and pay ${money(order.total_minor, order.currency)}`));
  const submit = form.querySelector('button[type=submit]');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.disabled || !form.reportValidity()) return;
    submit.disabled = true;
    errors.clear();
    try {
      await confirm(ctx, order, new FormData(form));
    } catch (error) {
      errors.show(error);
      submit.disabled = false;
    }
  });
  startCountdown(ctx, order, timer, submit);
  return form;
}

function field(name, label, attrs, hint) {
  const id = `f-${name}`;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name, ...attrs, 'aria-describedby': hint ? `${id}-hint` : null }),
    hint ? h('p', { id: `${id}-hint`, class: 'hint' }, hint) : null);
}

async function confirm(ctx, order, data) {
  const body = {
    payment_ref: data.get('payment').trim(),
    buyer: { name: data.get('name').trim(), email: data.get('email').trim() },
  };
  await post(`/v1/holds/${order.hold_id}/confirm`, body, {
    headers: { 'idempotency-key': store.confirmKey(order.hold_id) }, signal: ctx.signal,
  });
  announce('Order confirmed');
  await ctx.navigate(`/orders/${order.hold_id}`, { replace: true });
}

function startCountdown(ctx, order, timer, submit) {
  const expiresAt = Date.parse(order.expires_at);
  let warned = false;
  const tick = () => {
    const left = (expiresAt - Date.now()) / 1000;
    replace(timer, left > 0 ? `Held for you for ${countdown(left)}` : 'Your hold has expired.');
    timer.classList.toggle('urgent', left <= WARN_AT_SECONDS);
    if (left <= WARN_AT_SECONDS && !warned) {
      warned = true;
      announce(left > 0 ? `${plural(Math.ceil(left), 'second')} left to check out` : 'Your hold has expired');
    }
    if (left <= 0) submit.disabled = true;
  };
  tick();
  ctx.every(TICK_MS, tick);
}

function releaseButton(ctx, order, errors) {
  return actionButton('Release these tickets', async () => {
    try {
      await post(`/v1/holds/${order.hold_id}/release`, undefined, { headers: { 'idempotency-key': newKey() }, signal: ctx.signal });
      announce('Tickets released');
      await ctx.navigate(`/events/${order.event_id}`, { replace: true });
    } catch (error) {
      errors.show(error);
    }
  }, { class: 'link' });
}
