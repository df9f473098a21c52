// Pieces every page uses: its heading and title, error messages from the API's problems,
// and live data refreshed with conditional GETs.

import { h, add } from './dom.js';
import { get } from './api.js';

/** Sets the document title and returns the page's heading; focus moves to `<main>` so a
 * screen reader starts reading the new page. */
export function heading(ctx, text) {
  document.title = `${text} · Tessera`;
  ctx.main.focus({ preventScroll: true });
  scrollTo(0, 0);
  return h('h1', {}, text);
}

/** GETs what a page is about (`path`). When that fails the page is its heading and the
 * API's problem, and the result is null. */
export async function subject(ctx, title, path, errors) {
  try {
    return (await get(path, { signal: ctx.signal })).data;
  } catch (error) {
    add(ctx.main, heading(ctx, title), errors.el);
    errors.show(error);
    return null;
  }
}

/** The problem the API answered, in words: its title, its detail, each field's error. */
export function problem(error) {
  if (error?.name === 'AbortError') return null;
  const fields = (error.errors || []).map((f) => h('li', {}, `${f.field || f.pointer || ''}: ${f.message || f.detail || ''}`));
  return h('div', { class: 'problem', role: 'alert' },
    h('strong', {}, error.title || 'Something went wrong'),
    error.detail && error.detail !== error.title ? h('p', {}, error.detail) : null,
    fields.length ? h('ul', {}, fields) : null);
}

/** A slot showing the latest error (or nothing). */
export function errorSlot() {
  const el = h('div', { class: 'error-slot' });
  return {
    el,
    show(error) { el.replaceChildren(...[problem(error)].filter(Boolean)); },
    clear() { el.replaceChildren(); },
  };
}

/** Polls `path` every `intervalMs` with `If-None-Match`: `onData` runs on the first answer
 * and on every change (a 304 changes nothing); paused while the tab is hidden. */
export function live(ctx, path, intervalMs, onData, onError = () => {}) {
  let etag = null;
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const answer = await get(path, { etag, signal: ctx.signal });
      if (!answer.notModified) {
        etag = answer.etag;
        onData(answer.data);
      }
    } catch (error) {
      if (error.name !== 'AbortError') onError(error);
    } finally {
      busy = false;
    }
  };
  ctx.every(intervalMs, tick);
  return tick();
}

/** A button that runs `action` once at a time: disabled (and marked busy) until it settles,
 * so a double click sends one request. */
export function actionButton(label, action, attrs = {}) {
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await action();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
  return button;
}
