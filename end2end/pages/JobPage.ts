import { expect, type Page } from '@playwright/test';
import { AppShell } from './AppShell';

/** `/jobs/:id`: one job's audit record, its progress while it runs, verify and rollback. */
export class JobPage {
  constructor(readonly page: Page) {}

  /** Opens the job's page (`base`: another server's URL) and waits for the WASM to take over. */
  async open(jobId: string, base = ''): Promise<void> {
    await new AppShell(this.page).open(`${base}/jobs/${jobId}`);
  }

  status() {
    return this.page.getByTestId('job-status');
  }

  expected() {
    return this.page.getByTestId('job-expected');
  }

  inserted() {
    return this.page.getByTestId('job-inserted');
  }

  /** The running insert's step in words, its phase and the time since it started. */
  progress() {
    return this.page.getByTestId('job-progress');
  }

  phase() {
    return this.page.getByTestId('job-phase');
  }

  elapsed() {
    return this.page.getByTestId('job-elapsed');
  }

  verifyButton() {
    return this.page.getByRole('button', { name: "Recount the job's codes" });
  }

  verification() {
    return this.page.getByTestId('verification');
  }

  /** How many of a completed job's codes are claimed, as the rollback card says before anything is typed. */
  claimed() {
    return this.page.getByTestId('claimed-codes');
  }

  confirmation() {
    return this.page.getByLabel('Type DELETE to roll back');
  }

  rollbackButton() {
    return this.page.getByRole('button', { name: 'Roll back' });
  }

  rolledBack() {
    return this.page.getByTestId('rollback-done');
  }

  async rollBack(): Promise<void> {
    await this.confirmation().fill('DELETE');
    await this.rollbackButton().click();
  }

  async verify(): Promise<void> {
    await this.verifyButton().click();
    await expect(this.verification()).toBeVisible();
  }
}
