/**
 * Smoke: the storefront's first page opens on a phone and on a desktop, becomes
 * interactive, and logs no error and breaks no CSP rule on the way (the kit fails the
 * scenario on any).
 */
import { appReady, buyer, scenario, screenshot } from '../kit.mjs';

async function opensHome(browser, options) {
  const { page } = await buyer(browser, options);
  await page.goto('/');
  await appReady(page);
  await screenshot(page, 'home');
}

await scenario('smoke', async (browser) => {
  await opensHome(browser, { phone: true });
  await opensHome(browser, { phone: false });
});
