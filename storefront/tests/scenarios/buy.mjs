/**
 * A buyer on a phone finds the event by search, holds 2 general-admission tickets, checks
 * out and gets an order with 2 QR codes that read as the tickets' signed codes; meanwhile
 * a second buyer (another context) watching the event sees availability drop by 2 without
 * a reload, its unchanged answers costing 304s. Reload keeps the hold step; back and
 * forward keep the order. A hold the zone cannot fill shows the API's message.
 *
 * FIXTURE: {event_id, title, search, ga_zone_id, ga_zone_name, capacity}
 */
import assert from 'node:assert/strict';
import { appReady, assertAccessible, assertFitsWidth, buyer, decodeQr, fixture, scenario, screenshot, waitFor } from '../kit.mjs';

const f = fixture();
/** Availability refreshes every 2 s; a change reaches the edge by push: this is ample. */
const LIVE_TIMEOUT_MS = 15_000;

const availableIn = (page) => page.locator(`td.available[data-zone="${f.ga_zone_id}"]`);

async function findTheEvent(page) {
  await page.goto('/');
  await appReady(page);
  await assertFitsWidth(page);
  await assertAccessible(page, 'the events list');
  await screenshot(page, 'home');
  await page.getByLabel('Search').fill(f.search);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: new RegExp(f.title) }).click();
  await waitFor(async () => (await availableIn(page).getAttribute('data-available')) === String(f.capacity),
    { what: `the event page shows ${f.capacity} available` });
}

async function holdTwo(page) {
  await page.getByLabel(`Tickets for ${f.ga_zone_name}`, { exact: true }).selectOption('2');
  await page.getByRole('button', { name: `Hold tickets in ${f.ga_zone_name}` }).click();
  await page.waitForURL(/\/holds\//);
  await page.getByRole('timer').filter({ hasText: /Held for you for \d+:\d\d/ }).waitFor();
  await assertFitsWidth(page);
  await assertAccessible(page, 'the hold and checkout');
  await screenshot(page, 'hold');
  // A reload keeps the step: the same hold, still counting down.
  const url = page.url();
  await page.reload();
  await appReady(page);
  assert.equal(page.url(), url);
  await page.getByRole('timer').filter({ hasText: /Held for you for \d+:\d\d/ }).waitFor();
  return url.split('/holds/')[1];
}

async function checkOut(page, holdId) {
  await page.getByLabel('Full name').fill('Ada Lovelace');
  await page.getByLabel('E-mail').fill('ada@example.com');
  assert.match(await page.getByLabel('Test payment reference').inputValue(), /^test_/);
  await page.getByRole('button', { name: /Confirm and pay/ }).click();
  await page.waitForURL(new RegExp(`/orders/${holdId}$`));
  const qrs = page.locator('.ticket .qr');
  await waitFor(async () => (await qrs.count()) === 2, { what: 'the order shows 2 tickets' });
  const order = await (await page.request.get(`/v1/orders/${holdId}`)).json();
  const decoded = [await decodeQr(qrs.nth(0)), await decodeQr(qrs.nth(1))];
  assert.deepEqual(decoded.sort(), order.tickets.map((t) => t.code).sort(), 'each QR code reads as a ticket code');
  assert.equal(new Set(decoded).size, 2);
  await assertFitsWidth(page);
  await assertAccessible(page, 'the order');
  await screenshot(page, 'order');
}

async function backAndForward(page, holdId) {
  await page.goBack();
  await page.getByRole('heading', { level: 1, name: f.title }).waitFor();
  await page.goForward();
  await page.waitForURL(new RegExp(`/orders/${holdId}$`));
  await waitFor(async () => (await page.locator('.ticket .qr').count()) === 2, { what: 'forward shows the order again' });
}

await scenario('buy', async (browser) => {
  const watcher = await buyer(browser, { label: 'watcher', expectFailedLoads: [409] });
  const notModified = [];
  watcher.page.on('response', (r) => { if (r.url().includes('/availability') && r.status() === 304) notModified.push(r); });
  await watcher.page.goto(`/events/${f.event_id}`);
  await appReady(watcher.page);
  await waitFor(async () => (await availableIn(watcher.page).getAttribute('data-available')) === String(f.capacity),
    { what: 'the watcher sees the full zone' });

  const { page } = await buyer(browser, { phone: true });
  await findTheEvent(page);
  await assertFitsWidth(page);
  await assertAccessible(page, 'the event page');
  await screenshot(page, 'event');
  const holdId = await holdTwo(page);
  await checkOut(page, holdId);
  await backAndForward(page, holdId);

  await waitFor(async () => (await availableIn(watcher.page).getAttribute('data-available')) === String(f.capacity - 2),
    { timeout: LIVE_TIMEOUT_MS, what: `the watcher's page shows ${f.capacity - 2} available without a reload` });
  // Nothing changes from here on: the watcher's next poll must revalidate to a 304 (the
  // earlier polls may all have seen a change, the hold and the confirm, however fast they came).
  const changedBefore = notModified.length;
  await waitFor(async () => notModified.length > changedBefore,
    { timeout: LIVE_TIMEOUT_MS, what: 'an unchanged availability poll answered 304 (If-None-Match)' });
  await screenshot(watcher.page, 'event-after');

  // More than is left: the API's own words, readable, and nothing held.
  await watcher.page.getByLabel(`Tickets for ${f.ga_zone_name}`, { exact: true }).selectOption(String(f.capacity));
  await watcher.page.getByRole('button', { name: `Hold tickets in ${f.ga_zone_name}` }).click();
  const alert = watcher.page.getByRole('alert').filter({ hasText: 'Not enough tickets left' });
  await alert.waitFor();
  assert.match(watcher.page.url(), new RegExp(`/events/${f.event_id}$`));
});
