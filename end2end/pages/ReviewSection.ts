import { expect, type Page } from '@playwright/test';

/** The review of a merchant's duplicate check: on `/review`, and below a finished upload. */
export class ReviewSection {
  constructor(readonly page: Page) {}

  figure(name: 'total' | 'clean' | 'internal' | 'database' | 'both') {
    return this.page.getByTestId(`figure-${name}`);
  }

  /** Waits for the check to finish and its figures to show. */
  async waitForFigures(): Promise<void> {
    await expect(this.page.getByTestId('check-status')).toHaveText(/Checked at/, { timeout: 30_000 });
    await expect(this.figure('total')).toBeVisible();
  }

  /** The per-file table: one array of cell texts per file, and the totals row. */
  async fileTable(): Promise<{ files: string[][]; total: string[] }> {
    const table = this.page.getByTestId('file-figures');
    const files = [];
    for (const row of await table.getByTestId('file-figures-row').all()) {
      files.push(await row.locator('td').allInnerTexts());
    }
    const total = await table.getByTestId('file-figures-total').locator('th, td').allInnerTexts();
    return { files, total };
  }

  async filter(status: string): Promise<void> {
    await this.page.getByTestId('status-filter').selectOption(status);
  }

  previewRows() {
    return this.page.getByTestId('preview-row');
  }
}
