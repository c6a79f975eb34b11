import { expect, type Page } from '@playwright/test';

/** A phone's viewport (an iPhone 12–15's CSS pixels). */
export const PHONE = { width: 390, height: 844 };

/** Fails unless the page is no wider than the viewport (nothing to scroll sideways) and Sign out
 * is on screen, within the viewport's width; `state` names the page in the failure. */
export async function expectFitsPhone(page: Page, state: string): Promise<void> {
  const { scrollWidth, viewport } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
  }));
  expect(scrollWidth, `page width of ${state} at ${viewport} px`).toBeLessThanOrEqual(viewport);
  const signOut = page.getByRole('button', { name: 'Sign out' });
  await expect(signOut, `Sign out on ${state}`).toBeVisible();
  const box = (await signOut.boundingBox())!;
  expect(box.x, `Sign out's left edge on ${state}`).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width, `Sign out's right edge on ${state}`).toBeLessThanOrEqual(viewport);
}

/** How many lines each element's text takes: a code on one line is read whole. */
export async function linesOfText(page: Page, selector: string): Promise<number[]> {
  return page.locator(selector).evaluateAll((cells) =>
    cells.map((cell) => {
      const range = document.createRange();
      range.selectNodeContents(cell);
      // One rectangle per line box the text occupies.
      const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      return tops.size;
    }),
  );
}
