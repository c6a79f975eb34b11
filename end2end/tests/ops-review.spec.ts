import { expect, test } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { JobPage } from '../pages/JobPage';
import { JobsPage } from '../pages/JobsPage';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { createMerchant, createUser, unique } from '../support/accounts';
import { codesOfJob, completedJob, stageCodes } from '../support/db';

/** `rows` codes `<prefix>-1` … `<prefix>-<rows>`. */
const codes = (prefix: string, rows: number) => Array.from({ length: rows }, (_, i) => `${prefix}-${i + 1}`);

test('a search by code finds a code on page 300, and its row number lands on that page', async ({ page }) => {
  test.setTimeout(90_000);
  const merchant = createMerchant('Search');
  const p = `S${unique()}`;
  await stageCodes(merchant.id, 'big.csv', codes(p, 20_000));
  await openAs(page, createUser('ops'), `/review?merchant=${merchant.id}`);
  const review = new ReviewSection(page);
  await review.runCheck();

  // No duplicates: the default view says so; every row is one choice away.
  await expect(page.getByTestId('preview-empty')).toBeVisible();
  await review.filter('all');
  await expect(review.pageOf()).toHaveText('Page 1 of 400 · 20,000 rows');

  await review.search(`${p}-14975`);
  await expect(review.previewRows()).toHaveCount(1);
  await expect(review.pageOf()).toHaveText('Page 1 of 1 · 1 row');
  await expect(review.row(14_975).getByTestId('preview-code')).toHaveText(`${p}-14975`);
  await review.row(14_975).getByRole('link', { name: '14,975' }).click();
  await expect(review.pageOf()).toHaveText('Page 300 of 400 · 20,000 rows');
  await expect(review.markedRow()).toHaveAttribute('data-row', '14975');
  await expect(review.markedRow()).toBeInViewport();
  await expect(review.previewRows()).toHaveCount(50);

  // By prefix: 1497 and 14970 … 14979.
  await review.filter('all');
  await review.search(`${p}-1497`, 'prefix');
  await expect(review.previewRows()).toHaveCount(11);
  await expect(review.pageOf()).toHaveText('Page 1 of 1 · 11 rows');

  // A jump, kept in the address: the same view after a reload.
  await page.getByTestId('clear-search').click();
  // The search's own pager (1 page) gives way to all rows' before the jump.
  await expect(review.pageOf()).toHaveText('Page 1 of 400 · 20,000 rows');
  await review.jumpTo(123);
  await expect(review.pageOf()).toHaveText('Page 123 of 400 · 20,000 rows');
  await expect(review.previewRows().first()).toHaveAttribute('data-row', '6101');
  expect(page.url()).toContain('page=123');
  await page.reload();
  await new AppShell(page).waitForHydration();
  await expect(review.pageOf()).toHaveText('Page 123 of 400 · 20,000 rows');
  await page.getByTestId('next-page').click();
  await expect(review.pageOf()).toHaveText('Page 124 of 400 · 20,000 rows');
  await expect(review.previewRows().first()).toHaveAttribute('data-row', '6151');
  await page.getByTestId('previous-page').click();
  await expect(review.previewRows().first()).toHaveAttribute('data-row', '6101');
});

test('an internal duplicate links to its first occurrence and a database duplicate to the job that put its code in production', async ({
  page,
}) => {
  test.setTimeout(90_000);
  const merchant = createMerchant('Origins');
  const p = `O${unique()}`;
  const staged = codes(p, 20_000);
  // Row 14,990 repeats row 20's code; row 14,991's code came in with an earlier job.
  staged[14_989] = staged[19];
  const job = await completedJob(merchant.id, [staged[14_990]]);
  await stageCodes(merchant.id, 'seed.csv', staged);
  await openAs(page, createUser('ops'), `/review?merchant=${merchant.id}`);
  const review = new ReviewSection(page);
  await review.runCheck();

  // The default view: the problem rows only.
  await expect(review.previewRows()).toHaveCount(2);
  await expect(review.row(14_990)).toContainText('Internal duplicate');
  const first = review.row(14_990).getByTestId('first-occurrence-link');
  await expect(first).toHaveText('row 20 (seed.csv:21)');
  await expect(review.row(14_991).getByTestId('production-origin')).toContainText('source code-import');
  await expect(review.row(14_991).getByTestId('production-job-link')).toHaveText(job.replace(/-/g, '').slice(0, 8));

  await first.click();
  await expect(review.pageOf()).toHaveText('Page 1 of 400 · 20,000 rows');
  await expect(review.markedRow()).toHaveAttribute('data-row', '20');
  await expect(review.markedRow().getByTestId('preview-code')).toHaveText(staged[19]);
  await expect(review.markedRow()).toContainText('Clean');

  // The file filter combines with the status filter, in the address.
  await page.goto(`/review?merchant=${merchant.id}&status=database&file=seed.csv`);
  await new AppShell(page).waitForHydration();
  await expect(review.previewRows()).toHaveCount(1);
  await review.row(14_991).getByTestId('production-job-link').click();
  await expect(page).toHaveURL(new RegExp(`/jobs/${job}$`));
  await expect(page.getByTestId('job-record')).toContainText(job);
});

test('the duplicate-threshold warning shows above 50 % with the figure and needs its own confirmation, and not below', async ({
  page,
}) => {
  test.setTimeout(90_000);
  const [above, below] = [createMerchant('Above'), createMerchant('Below')];
  const p = `T${unique()}`;
  // Above: 3 of 4 codes are in production; below: 1 of 4.
  await completedJob(above.id, [`${p}-a1`, `${p}-a2`, `${p}-a3`]);
  await stageCodes(above.id, 'above.csv', [1, 2, 3, 4].map((n) => `${p}-a${n}`));
  await completedJob(below.id, [`${p}-b1`]);
  await stageCodes(below.id, 'below.csv', [1, 2, 3, 4].map((n) => `${p}-b${n}`));
  await openAs(page, createUser('ops'), `/review?merchant=${above.id}`);
  const review = new ReviewSection(page);
  await review.runCheck();

  await expect(review.duplicateWarning()).toContainText('75.0 % of the staged rows are duplicates (3 of 4), above the 50 % threshold');
  await page.getByTestId('run-preflight').click();
  await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 1 clean codes.');
  await page.getByTestId('insert-confirmation').fill('YES');
  await expect(review.insertButton()).toBeDisabled();
  await review.confirmDuplicates().check();
  await expect(review.insertButton()).toBeEnabled();
  await review.insertButton().click();
  await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  await expect(new JobPage(page).status()).toHaveText('completed', { timeout: 30_000 });

  await page.goto(`/review?merchant=${below.id}`);
  await new AppShell(page).waitForHydration();
  await review.runCheck();
  await page.getByTestId('run-preflight').click();
  await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 3 clean codes.');
  await page.getByTestId('insert-confirmation').fill('YES');
  await expect(review.insertButton()).toBeEnabled();
  await expect(review.duplicateWarning()).toHaveCount(0);
});

test('the job list shows each job by short id and date with its counts, and verifies and rolls back in place', async ({ page }) => {
  const merchant = createMerchant('History');
  const p = `H${unique()}`;
  const job = await completedJob(merchant.id, [1, 2, 3, 4].map((n) => `${p}-${n}`), 2);
  await openAs(page, createUser('merchant_admin', [merchant]), '/jobs');
  const jobs = new JobsPage(page);

  await expect(jobs.cell(job, 'job-link')).toHaveText(job.replace(/-/g, '').slice(0, 8));
  await expect(jobs.row(job)).toContainText(new Date().toISOString().slice(0, 10));
  await expect(jobs.cell(job, 'job-files')).toContainText('1 file');
  await expect(jobs.cell(job, 'job-files')).toContainText('staged.csv');
  await expect(jobs.cell(job, 'job-rows-staged')).toHaveText('6');
  await expect(jobs.cell(job, 'job-duplicates')).toHaveText('2');
  await expect(jobs.cell(job, 'job-inserted')).toHaveText('4');

  await jobs.verify(job);
  await expect(jobs.actions(job).getByTestId('verification')).toHaveText('Recorded 4 · found in production 4 · they match.');

  await jobs.rollBack(job);
  await expect(jobs.cell(job, 'job-status')).toHaveText('rolled_back');
  await expect(jobs.row(job).getByRole('button', { name: 'Roll back…' })).toHaveCount(0);
  expect(await codesOfJob(job)).toBe(0);

  // The job's page: its files as a table, its pre-flight in words.
  await jobs.cell(job, 'job-link').click();
  await expect(page.getByTestId('job-file')).toHaveCount(1);
  await expect(page.getByTestId('job-file')).toContainText('staged.csv');
  await expect(page.getByTestId('job-file')).toContainText('2.0 KB');
  await expect(page.getByTestId('preflight-record')).toContainText('The pre-flight passed.');
  await expect(page.locator('pre')).toHaveCount(0);
});
