/**
 * A queued on-sale: the event page sends the buyer to the waiting room, which shows the
 * place, the people ahead and the wait, moves on by itself when the buyer is admitted,
 * and the buyer then holds with the pass.
 *
 * FIXTURE: {event_id, ga_zone_name, ahead}: `ahead` people joined before this buyer.
 */
import assert from 'node:assert/strict';
import { appReady, assertAccessible, assertFitsWidth, buyer, fixture, scenario, screenshot, waitFor } from '../kit.mjs';

const f = fixture();
/** The fixture admits a few people a second; the buyer is let in well within this. */
const ADMISSION_TIMEOUT_MS = 60_000;

await scenario('queue', async (browser) => {
  const { page } = await buyer(browser, { phone: true });
  await page.goto(`/events/${f.event_id}`);
  await appReady(page);
  await page.getByRole('link', { name: 'Join the queue' }).click();
  await page.waitForURL(new RegExp(`/events/${f.event_id}/queue$`));

  const ahead = page.locator('.queue-facts .ahead');
  await ahead.waitFor();
  const waiting = Number((await ahead.textContent()).replace(/\D/g, ''));
  assert.ok(waiting > 0 && waiting <= f.ahead, `people ahead while waiting: ${waiting}`);
  assert.equal(await page.locator('[data-position]').getAttribute('data-position'), String(f.ahead + 1));
  await assertFitsWidth(page);
  await assertAccessible(page, 'the waiting room');
  await screenshot(page, 'queue');
  // A reload keeps the place (the kept ticket), it does not join again.
  await page.reload();
  await appReady(page);
  const again = page.locator('[data-position]');
  await waitFor(async () => (await page.url()).endsWith(`/events/${f.event_id}`) || (await again.count()) > 0,
    { what: 'the queue page is back after a reload' });
  if (await again.count()) assert.equal(await again.getAttribute('data-position'), String(f.ahead + 1));

  await page.waitForURL(new RegExp(`/events/${f.event_id}$`), { timeout: ADMISSION_TIMEOUT_MS });
  await page.getByText("You're in").waitFor();
  await page.getByRole('button', { name: `Hold tickets in ${f.ga_zone_name}` }).click();
  await page.waitForURL(/\/holds\//);
  await page.getByRole('timer').waitFor();
  await screenshot(page, 'admitted-hold');
});
