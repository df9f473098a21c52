// Client-side routes on the History API: real URLs (the edge serves the app for each), so
// reload, back and a shared link all land on the same step. A view is
// `render(ctx) → cleanup?`; leaving a page aborts its requests and stops its timers.

import { replace } from './dom.js';

const routes = [];
let current = null;

/** `route('/events/:eventId', view)`. */
export function route(pattern, view) {
  const names = [];
  const source = pattern.replace(/:([a-zA-Z]+)/g, (_, name) => {
    names.push(name);
    return '([^/]+)';
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), names, view });
}

/** Goes to `url` (pushing history unless `replace`). */
export function navigate(url, { replace: swap = false } = {}) {
  if (swap) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  return render();
}

function match(pathname) {
  for (const { regex, names, view } of routes) {
    const found = regex.exec(pathname);
    if (found) {
      const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(found[i + 1])]));
      return { view, params };
    }
  }
  return null;
}

/** Renders the view for the current URL into `<main>`. */
export async function render() {
  current?.leave();
  const main = document.getElementById('main');
  const controller = new AbortController();
  const timers = new Set();
  const ctx = {
    main,
    params: {},
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    navigate,
    /** `setInterval` that stops when the page is left. */
    every(ms, fn) { const id = setInterval(fn, ms); timers.add(id); return id; },
    /** `setTimeout` that is cancelled when the page is left. */
    later(ms, fn) { const id = setTimeout(fn, ms); timers.add(id); return id; },
  };
  const leave = () => { controller.abort(); timers.forEach((id) => { clearInterval(id); clearTimeout(id); }); };
  current = { leave };
  const found = match(location.pathname);
  if (!found) return replace(main, notFound());
  ctx.params = found.params;
  replace(main);
  try {
    await found.view(ctx);
  } catch (error) {
    if (error?.name === 'AbortError') return;
    replace(main, broken());
    throw error;
  }
}

function broken() {
  const p = document.createElement('p');
  p.setAttribute('role', 'alert');
  p.textContent = 'Something went wrong on this page. Reload to try again.';
  return p;
}

function notFound() {
  const p = document.createElement('p');
  p.textContent = 'This page does not exist.';
  const h1 = document.createElement('h1');
  h1.textContent = 'Not found';
  return [h1, p];
}

/** Same-origin links navigate in the app; the back button re-renders. */
export function start() {
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href]');
    if (!link || link.origin !== location.origin || link.target || event.defaultPrevented) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(link.pathname + link.search);
  });
  addEventListener('popstate', () => render());
  return render();
}
