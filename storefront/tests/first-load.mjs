/**
 * The storefront's first load, measured for the bench (scenario `storefront.first_load`):
 * LOADS times, a fresh buyer (a new context: empty HTTP cache) opens `/` until the app is
 * ready and the network is idle; then the same buyer opens `/` again in a new tab (the
 * baseline: a warm cache, where immutable assets are not fetched again and index.html
 * revalidates or is served fresh).
 *
 * Prints one JSON line per load on stdout:
 *   {"load":1,"first":{"bytes":…,"requests":…,"network_requests":…,"app_ready_ms":…},"repeat":{…}}
 * `bytes`: the response headers and bodies Chromium received for every request of that
 * load (Playwright's `request.sizes()`; a request served from the cache transfers 0).
 * Environment: STOREFRONT_URL, LOADS (default 5), CHROMIUM; exits non-zero on any page
 * error, console error or CSP violation, as the scenarios do.
 */
import assert from 'node:assert/strict';
import { appReady, assertNoProblems, buyer, scenario } from './kit.mjs';

const DEFAULT_LOADS = 5;
/** A bound on the run (the bench's full form asks for 30). */
const LOADS_MAX = 200;
/** Until no request has been in flight for 500 ms after app-ready: requests the app makes
 * once interactive (its first API reads) belong to the load too. */
const NETWORK_IDLE_TIMEOUT_MS = 15_000;

function loads() {
  const n = Number(process.env.LOADS ?? DEFAULT_LOADS);
  assert.ok(Number.isInteger(n) && n >= 1 && n <= LOADS_MAX, `LOADS must be 1..=${LOADS_MAX}, got ${process.env.LOADS}`);
  return n;
}

/** The bytes Chromium received for `request`: response headers + body, 0 from the cache. */
async function transferred(request) {
  const response = await request.response();
  assert.ok(response, `${request.url()} failed: ${request.failure()?.errorText}`);
  await response.finished();
  const sizes = await request.sizes();
  // A cache hit reports its headers' size with a body of minus that size: 0 transferred.
  return Math.max(0, sizes.responseHeadersSize + sizes.responseBodySize);
}

/** Opens `/` in `page` and measures it: bytes, requests, time to app-ready. */
async function measure(page) {
  const requests = [];
  page.on('request', (request) => requests.push(request));
  await page.goto('/');
  const appReadyMs = await appReady(page);
  await page.waitForLoadState('networkidle', { timeout: NETWORK_IDLE_TIMEOUT_MS });
  const bytes = await Promise.all(requests.map(transferred));
  return {
    bytes: bytes.reduce((sum, b) => sum + b, 0),
    requests: requests.length,
    network_requests: bytes.filter((b) => b > 0).length,
    app_ready_ms: appReadyMs,
  };
}

/** One fresh buyer's first load, then its repeat load in a new tab of the same context. */
async function firstAndRepeat(browser, load) {
  const record = await buyer(browser);
  const first = await measure(record.page);
  await record.page.close();
  const repeat = await measure(await record.context.newPage());
  assertNoProblems(record);
  await record.context.close();
  return { load, first, repeat };
}

await scenario('first-load', async (browser) => {
  const n = loads();
  for (let load = 1; load <= n; load += 1) {
    console.log(JSON.stringify(await firstAndRepeat(browser, load)));
  }
});
