import { type Page } from '@playwright/test';

/** `/jobs`: the import job history. */
export class JobsPage {
  constructor(readonly page: Page) {}

  heading() {
    return this.page.getByRole('heading', { name: 'Jobs' });
  }

  emptyState() {
    return this.page.getByTestId('jobs-empty');
  }

  row(jobId: string) {
    return this.page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`);
  }

  refresh() {
    return this.page.getByRole('button', { name: 'Refresh' });
  }

  /** The figures of a job's row: files, rows staged, duplicates, codes inserted, status. */
  cell(jobId: string, name: 'job-files' | 'job-rows-staged' | 'job-duplicates' | 'job-inserted' | 'job-status' | 'job-link') {
    return this.row(jobId).getByTestId(name);
  }

  /** What opens below a job's row: its recount and its rollback. */
  actions(jobId: string) {
    return this.page.locator(`[data-testid="job-actions"][data-job-id="${jobId}"]`);
  }

  async verify(jobId: string): Promise<void> {
    await this.row(jobId).getByRole('button', { name: 'Verify' }).click();
  }

  /** Rolls the job back from the list, confirming as the job's page asks. */
  async rollBack(jobId: string): Promise<void> {
    await this.row(jobId).getByRole('button', { name: 'Roll back…' }).click();
    const actions = this.actions(jobId);
    await actions.getByLabel('Type DELETE to roll back').fill('DELETE');
    await actions.getByRole('button', { name: 'Roll back', exact: true }).click();
  }
}
