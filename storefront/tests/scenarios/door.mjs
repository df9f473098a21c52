/**
 * The door: staff enter the gate credential once (the browser keeps it), then check a
 * ticket in: "OK"; the same ticket again: "Already checked in at …"; a code that is not
 * a ticket: "Not a ticket".
 *
 * FIXTURE: {gate_token, gate, code}
 */
import assert from 'node:assert/strict';
import { appReady, assertAccessible, assertFitsWidth, buyer, fixture, scenario, screenshot } from '../kit.mjs';

const f = fixture();

async function scan(page, code) {
  await page.getByLabel('Ticket code').fill(code);
  await page.getByRole('button', { name: 'Check in' }).click();
}

await scenario('door', async (browser) => {
  const { page } = await buyer(browser, { phone: true, expectFailedLoads: [409] });
  await page.goto('/door');
  await appReady(page);
  await page.getByLabel('Gate credential').fill(f.gate_token);
  await page.getByLabel(/Gate name/).fill(f.gate);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText(`Gate: ${f.gate}`).waitFor();
  // Kept by the browser: a reload goes straight to scanning.
  await page.reload();
  await appReady(page);
  await page.getByLabel('Ticket code').waitFor();

  const verdict = page.getByRole('status').filter({ has: page.locator('.verdict-title') });
  await scan(page, f.code);
  await page.locator('.verdict[data-result="ok"]').waitFor();
  assert.equal(await page.locator('.verdict-title').textContent(), 'OK');
  await assertFitsWidth(page);
  await assertAccessible(page, 'the door with a verdict');
  await screenshot(page, 'ok');

  await scan(page, f.code);
  await page.locator('.verdict[data-result="already_redeemed"]').waitFor();
  assert.match(await verdict.textContent(), /Already checked in at \d/);
  assert.match(await verdict.textContent(), new RegExp(f.gate));
  await screenshot(page, 'again');

  await scan(page, 'not-a-ticket');
  await page.locator('.verdict[data-result="invalid"]').waitFor();
  assert.equal(await page.locator('.verdict-title').textContent(), 'Not a ticket');
});
