// The door, for staff: the gate's credential is entered once and kept by this browser;
// then each code typed, pasted or sent by a scanner (which types and presses Enter) is
// checked in, and the verdict shown large and coloured for a glance from arm's length.

import { h, add, replace, announce } from '../dom.js';
import { post, newKey } from '../api.js';
import { clock } from '../format.js';
import { heading, errorSlot } from '../ui.js';
import * as store from '../store.js';

/** What each verdict says and how it looks: green lets in, red stops (a second entry too),
 * amber is an offline entry recorded late. */
const VERDICTS = {
  ok: { tone: 'ok', title: 'OK', say: () => 'Let them in.' },
  already_redeemed: { tone: 'bad', title: 'Already checked in', say: (v) => `Already checked in at ${clock(v.checked_in_at)}${v.gate ? ` (${v.gate})` : ''}.` },
  duplicate_offline: { tone: 'warn', title: 'Already checked in', say: (v) => `Entered before, at ${clock(v.checked_in_at)}.` },
  void: { tone: 'bad', title: 'Void', say: () => 'This ticket was cancelled.' },
  revoked: { tone: 'bad', title: 'Void', say: () => 'This ticket was cancelled.' },
  wrong_event: { tone: 'bad', title: 'Wrong event', say: () => 'This ticket is for another event.' },
  wrong_show: { tone: 'bad', title: 'Wrong show', say: () => 'This ticket is for another show of this event.' },
  invalid: { tone: 'bad', title: 'Not a ticket', say: () => 'This code is not a valid ticket.' },
};

export async function doorPage(ctx) {
  add(ctx.main, heading(ctx, 'Door'));
  const credential = store.doorCredential();
  if (!credential) return add(ctx.main, credentialForm(ctx));
  add(ctx.main, h('p', { class: 'gate' }, `Gate: ${credential.gate}`, ' ',
    h('button', { type: 'button', class: 'link', onclick: () => { store.saveDoorCredential(null); ctx.navigate('/door', { replace: true }); } }, 'Use another credential')));
  add(ctx.main, scanForm(ctx, credential));
}

function credentialForm(ctx) {
  const errors = errorSlot();
  const form = h('form', { class: 'door-setup' },
    h('p', {}, 'Enter this door’s gate credential once; this browser keeps it.'),
    h('label', { for: 'gate-token' }, 'Gate credential'),
    h('input', { id: 'gate-token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' }),
    h('label', { for: 'gate-name' }, 'Gate name (as on the credential)'),
    h('input', { id: 'gate-name', name: 'gate', required: true, maxlength: 100 }),
    errors.el,
    h('button', { type: 'submit', class: 'primary' }, 'Save'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    store.saveDoorCredential({ token: data.get('token').trim(), gate: data.get('gate').trim() });
    ctx.navigate('/door', { replace: true });
  });
  return form;
}

function scanForm(ctx, credential) {
  const errors = errorSlot();
  const verdict = h('div', { class: 'verdict', role: 'status', 'aria-live': 'assertive' });
  const code = h('textarea', { id: 'code', name: 'code', rows: 3, required: true, spellcheck: 'false', autocomplete: 'off', autofocus: true });
  const button = h('button', { type: 'submit', class: 'primary big' }, 'Check in');
  const form = h('form', { class: 'scan' }, h('label', { for: 'code' }, 'Ticket code'), code, button, errors.el, verdict);
  code.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button.disabled || !code.value.trim()) return;
    button.disabled = true;
    errors.clear();
    replace(verdict);
    try {
      showVerdict(verdict, await scan(ctx, credential, code.value.trim()));
      code.value = '';
    } catch (error) {
      if (error.status === 401) store.saveDoorCredential(null);
      errors.show(error);
    } finally {
      button.disabled = false;
      code.focus();
    }
  });
  return form;
}

/** One scan: the verdict, whether `ok` (201) or a refusal (409 with a verdict body). */
async function scan(ctx, credential, code) {
  const body = { code, gate: credential.gate, nonce: newKey() };
  try {
    const { data } = await post('/v1/checkin', body, { headers: { authorization: `Bearer ${credential.token}` }, signal: ctx.signal });
    return data;
  } catch (error) {
    if (error.status === 409 && error.body?.result) return error.body;
    throw error;
  }
}

function showVerdict(el, v) {
  const known = VERDICTS[v.result] || { tone: 'bad', title: v.result, say: () => 'Refused.' };
  el.className = `verdict ${known.tone}`;
  el.dataset.result = v.result;
  replace(el, h('p', { class: 'verdict-title' }, known.title), h('p', { class: 'verdict-detail' }, known.say(v)));
  announce(`${known.title}. ${known.say(v)}`);
}
