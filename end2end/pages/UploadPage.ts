import { expect, type Page } from '@playwright/test';

/** `/upload`: merchant, files, validation table, upload. */
export class UploadPage {
  constructor(readonly page: Page) {}

  async chooseMerchant(name: string): Promise<void> {
    await this.page.getByTestId('merchant').selectOption({ label: name });
  }

  /** Chooses `paths`, once the page is hydrated and a merchant chosen (before that the input
   * has no handler, or is disabled, and the choice would go nowhere). */
  async pick(paths: string[]): Promise<void> {
    await this.page.waitForSelector('body[data-hydrated]');
    const input = this.page.getByTestId('pick-files');
    await expect(input).toBeEnabled({ timeout: 20_000 });
    await input.setInputFiles(paths);
  }

  file(name: string) {
    return this.page.locator(`[data-testid="file-row"][data-file="${name}"]`);
  }

  async waitUntilChecked(names: string[]): Promise<void> {
    for (const name of names) {
      await expect(this.file(name).getByTestId('file-status')).not.toHaveText(/Checking/, { timeout: 20_000 });
    }
  }

  /** The `Encoding` choice of a file that is not UTF-8, and its decoded first lines. */
  encodingOf(name: string) {
    const details = this.file(name).locator('xpath=following-sibling::tr[1]');
    return { select: details.getByLabel('Encoding'), preview: details.getByTestId('encoding-preview') };
  }

  /** The accepted columns' lines, `code` first. */
  columnRules() {
    return this.page.getByTestId('column-rule');
  }

  columnRule(column: string) {
    return this.page.locator(`[data-testid="column-rule"][data-column="${column}"]`);
  }

  downloadTemplate() {
    return this.page.getByRole('button', { name: 'Download a template CSV' });
  }

  /** The "Download all N rejected rows" button of file `name`. */
  downloadRejects(name: string) {
    return this.file(name)
      .locator('xpath=following-sibling::tr[1]')
      .getByRole('button', { name: /^Download all [\d,]+ rejected rows$/ });
  }

  /** The mapping step of the files with one header layout, named by the first of them. */
  mappingGroup(firstFile: string) {
    const group = this.page.locator(`[data-testid="mapping-group"][data-files^="${firstFile}"]`);
    return {
      group,
      choice: (header: string) => group.getByLabel(header, { exact: true }),
      preview: group.getByTestId('mapping-preview'),
      apply: group.getByTestId('apply-mapping'),
      asLastTime: group.getByTestId('mapped-as-last-time'),
    };
  }

  uploadButton() {
    return this.page.getByRole('button', { name: 'Upload', exact: true });
  }

  done() {
    return this.page.getByTestId('upload-done');
  }

  /** What the running upload says meanwhile: a connection problem and its retry, or what it waits for. */
  notice() {
    return this.page.getByTestId('upload-notice');
  }
}
