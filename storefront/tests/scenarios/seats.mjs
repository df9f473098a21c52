/**
 * Assigned seats: a buyer picks 3 seats on the map (two by click, one with the keyboard)
 * and holds them; a second buyer watching the map sees them taken without a reload; a
 * third whose map had not caught up picks one of them and is told `seat_unavailable`,
 * and its map shows the seat taken at once, then the rest once it refreshes.
 *
 * FIXTURE: {event_id, show_id, seat_zone_id, row}
 */
import assert from 'node:assert/strict';
import { appReady, assertAccessible, buyer, fixture, scenario, screenshot, waitFor } from '../kit.mjs';

const f = fixture();
const LIVE_TIMEOUT_MS = 15_000;
const mapUrl = `/events/${f.event_id}/shows/${f.show_id}/seats?zone=${f.seat_zone_id}`;

const seat = (page, number) => page.getByRole('button', { name: new RegExp(`^Row ${f.row}, seat ${number}, `) });
const stateOf = async (page, number) => (await seat(page, number).getAttribute('aria-label')).split(', ').pop();

async function openMap(label) {
  const b = await buyer(browser, { label, expectFailedLoads: label === 'late' ? [409] : [] });
  await b.page.goto(mapUrl);
  await appReady(b.page);
  await seat(b.page, 1).waitFor();
  return b;
}

let browser;

await scenario('seats', async (launched) => {
  browser = launched;
  const watcher = await openMap('watcher');
  const late = await openMap('late');
  // The late buyer's map stops catching up: every refresh answers "unchanged".
  await late.page.route('**/v1/shows/*/seats', (route) => route.fulfill({ status: 304 }));

  const { page } = await openMap('buyer');
  await seat(page, 1).click();
  await seat(page, 2).click();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  for (const n of [1, 2, 3]) assert.equal(await seat(page, n).getAttribute('aria-pressed'), 'true', `seat ${n} picked`);
  await assertAccessible(page, 'the seat map with picks');
  await screenshot(page, 'picked');
  await page.getByRole('button', { name: 'Hold 3 seats' }).click();
  await page.waitForURL(/\/holds\//);
  await page.getByText(`Row ${f.row}, seat 3`).waitFor();

  await waitFor(async () => (await Promise.all([1, 2, 3].map((n) => stateOf(watcher.page, n)))).every((s) => s === 'held'),
    { timeout: LIVE_TIMEOUT_MS, what: "the watcher's map shows seats 1-3 held without a reload" });
  assert.equal(await stateOf(watcher.page, 4), 'available');
  await screenshot(watcher.page, 'taken');

  assert.equal(await stateOf(late.page, 3), 'available', "the late buyer's map has not caught up");
  await seat(late.page, 3).click();
  await seat(late.page, 4).click();
  await late.page.getByRole('button', { name: 'Hold 2 seats' }).click();
  await late.page.getByRole('alert').filter({ hasText: 'Some of these seats are no longer available' }).waitFor();
  assert.equal(await stateOf(late.page, 3), 'held', 'the refused seat turns taken at once');
  assert.equal(await seat(late.page, 4).getAttribute('aria-pressed'), 'true', 'the free pick stays picked');
  await screenshot(late.page, 'conflict');
  await late.page.unroute('**/v1/shows/*/seats');
  await waitFor(async () => (await stateOf(late.page, 1)) === 'held',
    { timeout: LIVE_TIMEOUT_MS, what: "the late buyer's map catches up" });
});
