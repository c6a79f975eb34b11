import { expect, type Page } from '@playwright/test';

/** The review of a merchant's duplicate check: on `/review`, and below a finished upload. */
export class ReviewSection {
  constructor(readonly page: Page) {}

  figure(name: 'total' | 'clean' | 'internal-only' | 'database-only' | 'both') {
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

  /** Shows the rows of one kind: `duplicates`, `internal`, `database`, `both`, `clean` or `all`. */
  async filter(status: string): Promise<void> {
    await this.page.getByTestId('status-filter').selectOption(status);
  }

  async filterFile(name: string): Promise<void> {
    await this.page.getByTestId('file-filter').selectOption(name);
  }

  /** Searches the staged rows for `code`, exactly or as a prefix. */
  async search(code: string, match: 'exact' | 'prefix' = 'exact'): Promise<void> {
    await this.page.getByTestId('code-search').fill(code);
    await this.page.getByTestId('code-match').selectOption(match);
    await this.page.getByTestId('search-code').click();
  }

  previewRows() {
    return this.page.getByTestId('preview-row');
  }

  /** The preview's row with this row number. */
  row(rowNumber: number) {
    return this.page.locator(`[data-testid="preview-row"][data-row="${rowNumber}"]`);
  }

  /** The row a link landed on. */
  markedRow() {
    return this.page.locator('[data-testid="preview-row"][aria-current="true"]');
  }

  /** "Page N of M · R rows". */
  pageOf() {
    return this.page.getByTestId('page-of');
  }

  async jumpTo(page: number): Promise<void> {
    await this.page.getByTestId('jump-page').fill(String(page));
    await this.page.getByTestId('jump').click();
  }

  async runCheck(): Promise<void> {
    await this.page.getByTestId('run-check').click();
    await this.waitForFigures();
  }

  duplicateWarning() {
    return this.page.getByTestId('duplicate-warning');
  }

  confirmDuplicates() {
    return this.page.getByTestId('confirm-duplicates');
  }

  insertButton() {
    return this.page.getByTestId('insert');
  }
}
