/**
 * The kit's own check: on pages served by interception (no storefront needed), a clean
 * page passes, and what must fail a scenario is seen: a CSP violation, a console error,
 * an uncaught error, a missing app-ready, a condition that never holds. `decodeQr` reads
 * a known QR code. Each provoked problem is checked, then cleared so the run passes.
 */
import assert from 'node:assert/strict';
import { appReady, assertAccessible, assertNoProblems, buyer, decodeQr, scenario, waitFor } from '../kit.mjs';

const ORIGIN = 'http://kit.test';
const CSP = "default-src 'self'; script-src 'self'";
/** 'tessera-kit-selftest' as a version 2-M QR code (made with segno 1.6.6), row by row. */
const QR_TEXT = 'tessera-kit-selftest';
const QR_ROWS = [
  '1111111000011110001111111', '1000001011010010001000001', '1011101011010011101011101',
  '1011101010000100001011101', '1011101001011010101011101', '1000001000000100001000001',
  '1111111010101010101111111', '0000000011011011100000000', '1000001010000111011001110',
  '1010100110000001000110110', '1010111000011011000110111', '0011110110001000111011011',
  '0110011011011110101100001', '1111000011000001110100000', '1011011001111001111100111',
  '1001010100010010001101101', '1000101010010001111111111', '0000000011101100100011010',
  '1111111001110000101010101', '1000001001001101100011001', '1011101001001011111110111',
  '1011101000000011001000111', '1011101000111001000001101', '1000001000110011110101001',
  '1111111011100110101111001',
];
const READY_JS = "performance.mark('app-ready'); document.documentElement.setAttribute('data-app-ready', '');";
/** Short deadlines for the checks that are meant to time out. */
const SHORT_TIMEOUT_MS = 300;

function qrSvg(rows, modulePx = 6) {
  const rects = rows.flatMap((row, y) =>
    [...row].map((bit, x) => (bit === '1' ? `<rect x="${x}" y="${y}" width="1" height="1"/>` : '')),
  );
  const size = rows.length;
  return `<svg id="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" width="${size * modulePx}" height="${size * modulePx}" shape-rendering="crispEdges">${rects.join('')}</svg>`;
}

const PAGES = {
  '/clean': `<!doctype html><title>clean</title><script src="/ready.js"></script>`,
  '/csp': `<!doctype html><title>csp</title><script>document.title = 'inline ran';</script>`,
  '/error': `<!doctype html><title>error</title><script src="/error.js"></script>`,
  '/not-ready': `<!doctype html><title>never ready</title>`,
  '/qr': `<!doctype html><title>qr</title><body>${qrSvg(QR_ROWS)}</body>`,
  '/unlabelled': `<!doctype html><html lang="en"><title>unlabelled</title><body><main><input type="text"></main></body></html>`,
};
const SCRIPTS = {
  '/ready.js': READY_JS,
  '/error.js': "console.error('kit: a console error'); throw new Error('kit: an uncaught error');",
};

/** Serves PAGES and SCRIPTS under ORIGIN with a strict CSP. */
async function serveKitPages(context) {
  await context.route(`${ORIGIN}/**`, (route) => {
    const { pathname } = new URL(route.request().url());
    const page = PAGES[pathname];
    const script = SCRIPTS[pathname];
    if (page === undefined && script === undefined) return route.fulfill({ status: 404, body: '' });
    return route.fulfill({
      status: 200,
      headers: { 'content-security-policy': CSP },
      contentType: page === undefined ? 'text/javascript' : 'text/html',
      body: page ?? script,
    });
  });
}

/** Takes the problems the buyer recorded (so the run can pass) and returns them. */
function takeProblems(record) {
  return record.problems.splice(0);
}

await scenario('kit', async (browser) => {
  const record = await buyer(browser, { baseURL: ORIGIN });
  const { page } = record;
  await serveKitPages(record.context);

  await page.goto('/clean');
  assert.ok((await appReady(page)) >= 0, 'the app-ready mark is a time');
  assertNoProblems(record);

  await page.goto('/csp');
  await waitFor(() => record.problems.some((p) => p.startsWith('CSP violation: script-src')), {
    what: 'the inline script is reported as a CSP violation',
  });
  assert.notEqual(await page.title(), 'inline ran', 'the CSP blocked the inline script');
  takeProblems(record);

  await page.goto('/error');
  await waitFor(() => record.problems.some((p) => p.includes('kit: an uncaught error')), { what: 'the page error is seen' });
  assert.ok(record.problems.some((p) => p.startsWith('console error') && p.includes('kit: a console error')), record.problems.join('\n'));
  assert.throws(() => assertNoProblems(record), /kit: an uncaught error/);
  takeProblems(record);

  await page.goto('/not-ready');
  await assert.rejects(appReady(page, { timeout: SHORT_TIMEOUT_MS }), /did not set data-app-ready/);
  await assert.rejects(waitFor(() => false, { timeout: SHORT_TIMEOUT_MS, what: 'never' }), /waiting until never/);

  await page.goto('/unlabelled');
  await assert.rejects(assertAccessible(page, 'a form control without a label'), /label/);

  await page.goto('/qr');
  assert.equal(await decodeQr(page.locator('#qr')), QR_TEXT);
  await assert.rejects(decodeQr(page.locator('body > svg rect').first()), /no QR code/);
});
