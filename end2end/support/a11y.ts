import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';

/** Rules whose every violation fails, whatever the impact axe gives it: a table header with no
 * text leaves a screen-reader user guessing what a column holds. */
const ALWAYS = ['empty-table-header'];

/** Fails unless axe-core finds no critical or serious violation (nor one of `ALWAYS`) on the page
 * as it stands; `state` names the page and its state in the failure. */
export async function expectAccessible(page: Page, state: string): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const grave = results.violations
    .filter((v) => v.impact === 'critical' || v.impact === 'serious' || ALWAYS.includes(v.id))
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.length} node(s), e.g. ${v.nodes[0]?.target.join(' ')}`);
  expect(grave, `axe-core on ${state}`).toEqual([]);
}
