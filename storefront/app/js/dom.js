// Building the page from data without HTML strings: every text goes in as a text node, so
// nothing an API answer says can become markup (and the strict CSP needs no inline code).

const SVG_NS = 'http://www.w3.org/2000/svg';

/** `h('button', {class: 'primary', onclick: f}, 'Hold')`: an element with attributes,
 * listeners (`on…` keys), and children (strings, nodes, arrays, null/false skipped). */
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Appends `children` to `el`, skipping null, undefined and false (which `Element.append`
 * would write out as text). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replaces everything in `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says `text` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A new text node in a later task, so a repeated message is announced again.
  setTimeout(() => { region.textContent = text; }, 50);
}
