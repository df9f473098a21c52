/**
 * Holding never holds twice: the first attempt reaches the ledger but its answer is lost
 * (the connection drops after the request was served), the page says so; the buyer then
 * double-clicks "Hold tickets": the retry reuses the Idempotency-Key, so the ledger
 * answers with the same hold. The runner counts the holds at the ledger afterwards (one).
 *
 * FIXTURE: {event_id, ga_zone_name}
 */
import assert from 'node:assert/strict';
import { appReady, buyer, fixture, scenario } from '../kit.mjs';

const f = fixture();

await scenario('double_click', async (browser) => {
  const { page } = await buyer(browser, { expectFailedLoads: ['ERR_CONNECTION_RESET'] });
  await page.goto(`/events/${f.event_id}`);
  await appReady(page);
  const hold = page.getByRole('button', { name: `Hold tickets in ${f.ga_zone_name}` });
  await hold.waitFor();
  await page.getByLabel(`Tickets for ${f.ga_zone_name}`, { exact: true }).selectOption('2');

  const keys = [];
  let lost = null;
  await page.route('**/v1/holds', async (route) => {
    keys.push(route.request().headers()['idempotency-key']);
    if (lost) return route.continue();
    const served = await route.fetch();
    lost = await served.json();
    return route.abort('connectionreset');
  });
  await hold.click();
  await page.getByRole('alert').filter({ hasText: 'No connection' }).waitFor();
  assert.equal(lost.status, 'held', 'the lost attempt was served: the ledger holds it');

  await hold.dblclick();
  await page.waitForURL(/\/holds\//);
  await page.getByRole('timer').waitFor();
  assert.ok(page.url().endsWith(`/holds/${lost.hold_id}`), `the retry answered the first hold ${lost.hold_id}: ${page.url()}`);
  assert.ok(keys.length >= 2, `a retry was sent: ${keys.length}`);
  assert.equal(new Set(keys).size, 1, `every attempt carried the same Idempotency-Key: ${keys}`);
});
