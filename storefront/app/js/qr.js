// A ticket's QR code as SVG, drawn with DOM calls (no HTML strings, no inline styles: the
// CSP allows neither). Encoding is the vendored qrcode-generator's; the code is ASCII.

import qrcode from '../vendor/qrcode-generator/qrcode.mjs';
import { s } from './dom.js';

/** Modules of quiet zone around the code, as the QR standard asks. */
const QUIET_ZONE = 4;

export function qrSvg(text) {
  // Level M: a code survives a scuffed phone screen; type 0 picks the smallest version.
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET_ZONE;
  let path = '';
  for (let row = 0; row < n; row += 1) {
    for (let col = 0; col < n; col += 1) {
      if (qr.isDark(row, col)) path += `M${col + QUIET_ZONE} ${row + QUIET_ZONE}h1v1h-1z`;
    }
  }
  return s('svg', { viewBox: `0 0 ${size} ${size}`, class: 'qr-code', 'shape-rendering': 'crispEdges', 'aria-hidden': 'true' },
    s('rect', { width: size, height: size, fill: '#fff' }),
    s('path', { d: path, fill: '#000' }));
}
