/**
 * The storefront's browser kit: what every scenario in ./scenarios/ drives Chromium with
 * (playwright-core on Debian's /usr/bin/chromium; no browser download).
 *
 * - `scenario(name, body)`: launches Chromium, runs `body(browser)`, fails if any buyer saw
 *   a problem, always closes the browser, and sets the exit code (0 passed, 1 failed).
 * - `buyer(browser, {phone})`: an isolated buyer (its own context: cookies, storage, cache)
 *   whose pages record every page error, console error and CSP violation as a problem.
 * - `appReady(page)`, `waitFor(fn, {timeout, what})`, `screenshot(page, name)`,
 *   `decodeQr(locator)`, `fixture()`: the steps scenarios share.
 *
 * Environment: STOREFRONT_URL (every buyer's baseURL), FIXTURE (JSON from the runner),
 * SCREENSHOTS (default target/storefront-screenshots), CHROMIUM (default /usr/bin/chromium).
 * How to run one by hand: ./README.md.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import jsQR from 'jsqr';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

/** Debian's Chromium (`apt-get install -y chromium`); env CHROMIUM names another. */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';
/** No sandbox (the tests run as root in CI), no GPU, and nothing the browser would fetch
 * on its own (component updates, sync, field trials): the page's requests are all there is. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** A 390×844 phone (the common iPhone size) with touch, and a laptop-sized desktop. */
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 800 } };
/** The app marks itself ready (<html data-app-ready>, performance mark `app-ready`) once
 * interactive; on loopback that is well under a second, this bound only catches a hang. */
export const APP_READY_TIMEOUT_MS = 15_000;
/** `waitFor`'s default deadline, and how often it looks again. */
export const WAIT_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;
/** White margin added around a QR screenshot: jsQR needs the quiet zone the spec asks for,
 * and an element's box may be cropped tight to the modules. */
const QUIET_ZONE_PX = 16;
const DEFAULT_SCREENSHOTS = 'target/storefront-screenshots';
/** The function the CSP init script reports violations through (see `watchCsp`). */
const CSP_BINDING = '__tesseraReportCspViolation';

/** Every buyer of this process, so `scenario` can check them all at the end. */
const buyers = [];
/** Page → its buyer, for `screenshot` (file names) and `appReady` (problems in errors). */
const buyerOfPage = new WeakMap();
let scenarioName = 'scenario';

/** Runs one scenario: the process exits 0 if `body` returns and no buyer saw a problem. */
export async function scenario(name, body) {
  scenarioName = name;
  let browser;
  try {
    browser = await launch();
    await body(browser);
    assertNoProblems();
    console.log(`scenario ${name}: passed`);
  } catch (error) {
    process.exitCode = 1;
    console.error(`scenario ${name}: FAILED\n${error?.stack ?? error}${allProblems()}`);
  } finally {
    await browser?.close();
  }
}

/** Chromium, headless. Playwright gives every launch a fresh temporary user-data-dir (and
 * refuses `--user-data-dir` in args), so each launch starts from an empty profile. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || DEFAULT_CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** An isolated buyer: a new context (its own cookies, storage and HTTP cache) and a page
 * at STOREFRONT_URL. `phone: true` is a 390×844 touch phone; `expectFailedLoads` names
 * the refusals the scenario provokes (see `expectedLoadFailure`); other options go to
 * `browser.newContext`. Returns `{context, page, label, problems}`. */
export async function buyer(browser, { phone = false, label, expectFailedLoads = [], ...options } = {}) {
  const device = phone ? PHONE : DESKTOP;
  const context = await browser.newContext({ ...device, baseURL: storefrontUrl(options), ...options });
  const record = { context, label: uniqueLabel(label ?? (phone ? 'phone' : 'desktop')), problems: [], expectFailedLoads };
  buyers.push(record);
  await watchCsp(context, record);
  context.on('page', (page) => watchPage(page, record));
  record.page = await context.newPage();
  watchPage(record.page, record);
  return record;
}

function storefrontUrl(options) {
  const url = options.baseURL ?? process.env.STOREFRONT_URL;
  assert.ok(url, 'STOREFRONT_URL is not set: the edge serving the storefront, e.g. http://127.0.0.1:3000');
  return url;
}

function uniqueLabel(wanted) {
  const taken = buyers.filter((b) => b.label === wanted || b.label.startsWith(`${wanted}-`)).length;
  return taken === 0 ? wanted : `${wanted}-${taken + 1}`;
}

/** Records the page's uncaught errors, console errors and CSP messages (idempotent: the
 * context's `page` event and `buyer` may both hand over the same page). */
function watchPage(page, record) {
  if (buyerOfPage.has(page)) return;
  buyerOfPage.set(page, record);
  page.on('pageerror', (error) => record.problems.push(`page error at ${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    const where = message.location()?.url || page.url();
    if (message.type() === 'error') {
      if (expectedLoadFailure(record, text)) return;
      record.problems.push(`console error at ${where}: ${text}`);
    } else if (/Content Security Policy/i.test(text)) {
      record.problems.push(`CSP (console ${message.type()}) at ${where}: ${text}`);
    }
  });
}

/** Chromium logs every request answered 4xx/5xx (or cut) as a console error: a scenario
 * that provokes a refusal on purpose names it (`buyer(browser, {expectFailedLoads: [409]})`
 * or a network error's name, e.g. 'ERR_CONNECTION_RESET'); any other stays a problem. */
function expectedLoadFailure(record, text) {
  if (!text.startsWith('Failed to load resource')) return false;
  return record.expectFailedLoads.some((expected) => (typeof expected === 'number'
    ? text.includes(`status of ${expected} `)
    : text.includes(expected)));
}

/** Every `securitypolicyviolation` event of every page of the context, reported from an
 * init script (it runs before the page's own scripts, and CSP does not apply to it). */
async function watchCsp(context, record) {
  await context.exposeBinding(CSP_BINDING, (_source, v) => {
    record.problems.push(
      `CSP violation: ${v.directive} blocked ${v.blocked || '(inline)'} in ${v.source || v.document}:${v.line} (${v.disposition})`,
    );
  });
  await context.addInitScript((binding) => {
    document.addEventListener(
      'securitypolicyviolation',
      (e) =>
        window[binding]({
          directive: e.effectiveDirective,
          blocked: e.blockedURI,
          source: e.sourceFile,
          document: e.documentURI,
          line: e.lineNumber,
          disposition: e.disposition,
        }),
      true,
    );
  }, CSP_BINDING);
}

/** Fails if any buyer (or only `record`) saw a problem, listing them all. */
export function assertNoProblems(record) {
  const seen = (record ? [record] : buyers).flatMap((b) => b.problems.map((p) => `${b.label}: ${p}`));
  assert.equal(seen.length, 0, `the page must log no errors and break no CSP rule; seen:\n  ${seen.join('\n  ')}`);
}

function allProblems(records = buyers) {
  const seen = records.flatMap((b) => b.problems.map((p) => `${b.label}: ${p}`));
  return seen.length === 0 ? '' : `\nproblems the pages reported:\n  ${seen.join('\n  ')}`;
}

/** Waits until the app marks itself interactive (<html data-app-ready>) and returns the
 * time of its `app-ready` performance mark (ms since navigation start). */
export async function appReady(page, { timeout = APP_READY_TIMEOUT_MS } = {}) {
  const record = buyerOfPage.get(page);
  try {
    // A locator, not waitForFunction: it needs no eval, so a strict CSP cannot break it.
    await page.locator('html[data-app-ready]').waitFor({ state: 'attached', timeout });
  } catch (error) {
    throw new assert.AssertionError({
      message: `the app did not set data-app-ready on <html> within ${timeout} ms at ${page.url()} (${error.message.split('\n')[0]})${allProblems(record ? [record] : [])}`,
    });
  }
  const readyMs = await page.evaluate(() => performance.getEntriesByName('app-ready')[0]?.startTime ?? null);
  assert.notEqual(readyMs, null, `data-app-ready is set but performance.mark('app-ready') is missing at ${page.url()}`);
  return readyMs;
}

/** Polls `fn` until it returns something truthy (returned), failing after `timeout` ms
 * with `what` in the message. The one way scenarios wait. */
export async function waitFor(fn, { timeout = WAIT_TIMEOUT_MS, what } = {}) {
  assert.ok(what, 'waitFor needs `what`: the condition, for the failure message');
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() >= deadline) {
      throw new assert.AssertionError({ message: `timed out after ${timeout} ms waiting until ${what}` });
    }
    await delay(POLL_INTERVAL_MS);
  }
}

/** The WCAG 2 A and AA rules axe-core checks automatically (labels, names of buttons and
 * controls, contrast, ARIA use, …). */
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
let axeSource = null;

/** The page as it is now breaks none of axe-core's WCAG 2 A/AA rules: every form control
 * and seat has a name a screen reader reads, contrast is enough, ARIA is used right.
 * axe runs through the DevTools protocol (`evaluate`), which the page's CSP does not
 * govern, so the strict policy stays on while it runs. */
export async function assertAccessible(page, what) {
  axeSource ??= await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async (tags) => {
    const result = await globalThis.axe.run(document, { runOnly: { type: 'tag', values: tags } });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }, AXE_TAGS);
  assert.equal(violations.length, 0, `accessibility of ${what} at ${page.url()}:\n  ${violations.join('\n  ')}`);
}

/** The page is no wider than its viewport (nothing to scroll sideways on a phone): a
 * phone-sized layout that works. */
export async function assertFitsWidth(page) {
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  assert.ok(scrollWidth <= clientWidth, `${page.url()} is ${scrollWidth} px wide in a ${clientWidth} px viewport`);
}

/** A full-page PNG of `page` as SCREENSHOTS/<scenario>/<name>-<buyer>.png; its path. */
export async function screenshot(page, name) {
  const label = buyerOfPage.get(page)?.label ?? 'page';
  const dir = path.resolve(process.env.SCREENSHOTS || DEFAULT_SCREENSHOTS, scenarioName);
  const file = path.join(dir, `${name}-${label}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The text of the QR code `locator` shows, read from a screenshot of the element. */
export async function decodeQr(locator) {
  const shot = PNG.sync.read(await locator.screenshot());
  const image = withQuietZone(shot, QUIET_ZONE_PX);
  const pixels = new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.length);
  const code = jsQR(pixels, image.width, image.height);
  assert.ok(code, `no QR code could be read from ${locator} (${shot.width}×${shot.height} px)`);
  return code.data;
}

function withQuietZone(png, margin) {
  const padded = new PNG({ width: png.width + 2 * margin, height: png.height + 2 * margin });
  padded.data.fill(0xff);
  PNG.bitblt(png, padded, 0, 0, png.width, png.height, margin, margin);
  return padded;
}

/** The JSON the runner passes in FIXTURE (ids of what it created for the scenario). */
export function fixture() {
  const text = process.env.FIXTURE;
  assert.ok(text, "FIXTURE is not set: the runner's JSON (tests/storefront.rs); by hand, e.g. FIXTURE='{}'");
  return JSON.parse(text);
}
