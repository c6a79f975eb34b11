import { expect, test } from '@playwright/test';
import { randomUUID } from 'node:crypto';
import { AppShell } from '../pages/AppShell';
import { JobsPage } from '../pages/JobsPage';
import { openAs } from '../pages/LoginPage';
import { createMerchant, createUser } from '../support/accounts';
import { withDb } from '../support/db';
import { expectAccessible } from '../support/a11y';

test('the home page loads and hydrates under the Content-Security-Policy, which it never breaks', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // Chromium reports every blocked script, style or connection on the console.
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) errors.push(message.text());
  });
  const merchant = createMerchant();
  const response = await page.goto('/login');
  expect(response?.headers()['content-security-policy']).toContain("script-src 'self' 'wasm-unsafe-eval'");
  await openAs(page, createUser('merchant_admin', [merchant]), '/');

  await expect(page.getByRole('heading', { name: 'Code Import', level: 1 })).toBeVisible();
  await expect(new AppShell(page).nav('Upload')).toBeVisible();
  await new AppShell(page).waitForHydration();
  await expectAccessible(page, 'the home page');
  await page.goto('/review');
  await new AppShell(page).waitForHydration();
  await expectAccessible(page, 'the review with nothing staged');
  await page.goto('/upload');
  await new AppShell(page).waitForHydration();
  await expectAccessible(page, 'the upload page with no file chosen');
  expect(errors).toEqual([]);
});

test('navigation to Jobs happens in the page and shows the empty state', async ({ page }) => {
  const merchant = createMerchant();
  await openAs(page, createUser('merchant_admin', [merchant]), '/');
  const shell = new AppShell(page);
  // A full page load would wipe this; client-side routing keeps it.
  await page.evaluate(() => ((window as any).__sameDocument = true));

  await shell.nav('Jobs').click();

  const jobs = new JobsPage(page);
  await expect(page).toHaveURL(/\/jobs$/);
  await expect(jobs.heading()).toBeVisible();
  await expect(jobs.emptyState()).toHaveText('No imports yet — Upload files');
  await expectAccessible(page, 'the job history with no job');
  await jobs.emptyState().getByRole('link', { name: 'Upload files' }).click();
  await expect(page).toHaveURL(/\/upload$/);
  await page.goBack();
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  await expect(shell.nav('Jobs')).toHaveAttribute('aria-current', 'page');
});

test('a job inserted in the database appears on refresh and after reload', async ({ page }) => {
  const merchant = createMerchant('NBD');
  await openAs(page, createUser('merchant_admin', [merchant]), '/jobs');
  const jobs = new JobsPage(page);
  await expect(jobs.emptyState()).toBeVisible();

  const jobId = randomUUID();
  await withDb((db) =>
    db.query(
      `INSERT INTO codes_import_jobs (id, merchant_id, status, total_codes_to_insert, codes_inserted,
                                      completed_at, source_info)
       VALUES ($1, $2, 'completed', 10907894, 10907894, now(), $3)`,
      [jobId, merchant.id, JSON.stringify({ files: [{ name: 'NBD_01.csv' }, { name: 'NBD_02.csv' }] })],
    ),
  );

  // The Refresh button reloads the list without leaving the page (a hydrated interaction).
  await page.evaluate(() => ((window as any).__sameDocument = true));
  await jobs.refresh().click();
  const row = jobs.row(jobId);
  await expect(row).toBeVisible();
  await expect(row).toContainText('completed');
  await expect(row).toContainText('10,907,894');
  await expect(row).toContainText('NBD_01.csv, NBD_02.csv');
  await expect(row).toContainText(merchant.name);
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  await expect(jobs.emptyState()).toHaveCount(0);

  await page.reload();
  await new AppShell(page).waitForHydration();
  await expect(jobs.row(jobId)).toContainText('10,907,894');
});
