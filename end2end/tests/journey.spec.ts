import { expect, test } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';
import { expectAccessible } from '../support/a11y';

test('the whole journey: upload, check, insert after typing YES, verify, roll back after typing DELETE', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const merchant = createMerchant('Journey');
  const p = `J${unique()}`;
  await withDb((db) => db.query(`INSERT INTO codes (merchant_id, code) VALUES ($1, $2)`, [merchant.id, `${p}-1`]));
  const paths = writeFiles(testInfo.outputPath('files'), {
    '1.csv': `code,points\n${p}-1,10\n${p}-2,20\n${p}-3,30\n`,
    '2.csv': `code;points\n${p}-3;30\n${p}-4;40\n`,
    '3.csv': `code\tprice\n${p}-5\t1.50\n${p}-6\t2\n${p}-6\t2\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['1.csv', '2.csv', '3.csv']);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 8 rows from 3 file(s).', { timeout: 20_000 });

  const review = new ReviewSection(page);
  await review.waitForFigures();
  await expect(review.figure('clean')).toContainText('5');
  await expectAccessible(page, 'the review with figures, below the finished upload');

  await page.getByTestId('run-preflight').click();
  await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 5 clean codes.');
  await expectAccessible(page, 'the review with the pre-flight ready');
  const insert = page.getByTestId('insert');
  await expect(insert).toBeDisabled();
  await page.getByTestId('insert-confirmation').fill('yes');
  await expect(insert).toBeDisabled();
  await page.getByTestId('insert-confirmation').fill('YES');
  await insert.click();

  await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  const job = page.url().split('/').pop()!;
  await expect(page.getByTestId('job-status')).toHaveText('completed', { timeout: 30_000 });
  await expect(page.getByTestId('job-inserted')).toHaveText('5');
  const inserted = await withDb((db) =>
    db.query(`SELECT code, points::text, price::text FROM codes WHERE import_job_id = $1 ORDER BY code`, [job]),
  );
  expect(inserted.rows).toEqual([
    { code: `${p}-2`, points: '20', price: null },
    { code: `${p}-3`, points: '30', price: null },
    { code: `${p}-4`, points: '40', price: null },
    { code: `${p}-5`, points: null, price: '1.50' },
    { code: `${p}-6`, points: null, price: '2' },
  ]);
  await page.getByTestId('verify').click();
  await expect(page.getByTestId('verification')).toHaveText('Recorded 5 · found in production 5 · they match.');
  await expectAccessible(page, 'a completed job, verified');

  const rollback = page.getByTestId('rollback');
  await page.getByTestId('rollback-confirmation').fill('delete');
  await expect(rollback).toBeDisabled();
  await page.getByTestId('rollback-confirmation').fill('DELETE');
  await rollback.click();
  await expect(page.getByTestId('job-status')).toHaveText('rolled_back');
  const left = await withDb((db) => db.query(`SELECT count(*)::int AS n FROM codes WHERE merchant_id = $1`, [merchant.id]));
  expect(left.rows[0].n).toBe(1);
  await expect(page.getByTestId('rollback-done')).toHaveText('Rolled back: 5 codes deleted.');
  await page.getByTestId('verify').click();
  await expect(page.getByTestId('verification')).toHaveText('Rolled back: 0 codes remain, as expected.');
  await expectAccessible(page, 'a rolled-back job');

  // The history lists it, rolled back, with its files.
  await page.goto('/jobs');
  await new AppShell(page).waitForHydration();
  const row = page.locator(`[data-testid="job-row"][data-job-id="${job}"]`);
  await expect(row.getByTestId('job-status')).toHaveText('rolled_back');
  await expect(row).toContainText('1.csv, 2.csv, 3.csv');
  await expectAccessible(page, 'the job history with a rolled-back job');
  await page.getByTestId('filter-status').selectOption('completed');
  await expect(row).toHaveCount(0);
  await page.getByTestId('filter-status').selectOption('rolled_back');
  await expect(row).toHaveCount(1);
});
