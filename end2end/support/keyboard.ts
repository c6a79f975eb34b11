import { expect, type Locator, type Page } from '@playwright/test';

/** The focused element in words, and whether its focus ring shows: a non-transparent outline or
 * a box shadow on it or, when the element itself is drawn invisible (a transparent file input
 * over its label), on the nearest ancestor that is drawn. */
export async function focusRing(page: Page): Promise<{ element: string; visible: boolean }> {
  return page.evaluate(() => {
    const focused = document.activeElement as HTMLElement | null;
    if (!focused || focused === document.body) return { element: 'nothing', visible: false };
    const transparent = (color: string) => color === 'transparent' || /rgba\(.*,\s*0\)$/.test(color);
    const ring = (el: Element) => {
      const style = getComputedStyle(el);
      const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 && !transparent(style.outlineColor);
      return outline || (style.boxShadow !== 'none' && style.boxShadow !== '');
    };
    let drawn: Element | null = focused;
    while (drawn && getComputedStyle(drawn).opacity === '0') drawn = drawn.parentElement;
    const name = focused.getAttribute('aria-label') ?? focused.getAttribute('data-testid') ?? focused.textContent?.trim().slice(0, 40);
    return { element: `<${focused.tagName.toLowerCase()}> ${name ?? ''}`, visible: drawn !== null && ring(drawn) };
  });
}

/** Presses Tab (or `key`, e.g. Shift+Tab to go back) until `target` has the focus, checking at
 * every stop on the way that the focus is visible; fails after `max` presses. */
export async function tabTo(page: Page, target: Locator, key = 'Tab', max = 150): Promise<void> {
  await expect(target).toHaveCount(1);
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(key);
    const ring = await focusRing(page);
    // Past the last control the focus leaves the page (nothing focused) before it starts over.
    if (ring.element === 'nothing') continue;
    expect(ring.visible, `focus ring on ${ring.element} (tabbing to ${target})`).toBe(true);
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`${target} was not reached in ${max} presses of Tab`);
}

/** Fails unless the focused element's focus ring shows; `step` names the step in the failure. */
export async function expectVisibleFocus(page: Page, step: string): Promise<void> {
  const ring = await focusRing(page);
  expect(ring.visible, `focus ring on ${ring.element} at ${step}`).toBe(true);
}
