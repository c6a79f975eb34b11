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
}
