import { expect, test, type Page } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique, type Merchant } from '../support/accounts';
import { bigFile, writeFiles } from '../support/csv';
import { withDb } from '../support/db';

/** What the database holds of the merchant's staging: rows, and its latest batch. */
async function staging(merchant: Merchant): Promise<{ rows: number; distinct: number; state?: string; cleared?: number }> {
  return withDb(async (db) => {
    const rows = await db.query(
      `SELECT count(*)::int AS rows, count(DISTINCT code)::int AS distinct FROM codes_check_temp WHERE merchant_id = $1`,
      [merchant.id],
    );
    const batch = await db.query(
      `SELECT state, rows_cleared::int AS cleared FROM staging_batches WHERE merchant_id = $1 ORDER BY created_at DESC LIMIT 1`,
      [merchant.id],
    );
    return { ...rows.rows[0], ...(batch.rows[0] ?? {}) };
  });
}

/** Chooses `paths`, waits for validation, uploads, and waits for the check's figures. */
async function uploadAndCheck(page: Page, paths: string[], names: string[], rows: number): Promise<void> {
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(names);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText(`Staged ${rows.toLocaleString('en-US')} rows from ${names.length} file(s).`, {
    timeout: 30_000,
  });
  await new ReviewSection(page).waitForFigures();
}

test('after Clear staging the review says what was deleted and shows nothing of the old check', async ({ page }, testInfo) => {
  // Seen: after Clear staging the review still showed the old check's figures, "Clean: will be
  // inserted", a green "Checked at", and report buttons, next to "Nothing is staged".
  test.setTimeout(90_000);
  const merchant = createMerchant('Cleared');
  const p = `CL${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'a.csv': bigFile(p, 120), 'b.csv': bigFile(`${p}b`, 80) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  await uploadAndCheck(page, paths, ['a.csv', 'b.csv'], 200);

  await page.getByTestId('clear-staging').click();
  await page.getByTestId('confirm-clear').click();
  await expect(page.getByTestId('batch-cleared')).toContainText('Deleted 200 staged rows at ');
  await expect(page.getByTestId('figure-total')).toHaveCount(0);
  await expect(page.getByTestId('check-status')).toHaveCount(0);
  await expect(page.getByTestId('file-figures')).toHaveCount(0);
  await expect(page.getByRole('link', { name: /report/i })).toHaveCount(0);
  await expect(page.getByTestId('run-preflight')).toHaveCount(0);
  expect(await staging(merchant)).toMatchObject({ rows: 0, state: 'cleared', cleared: 200 });

  // The review page says the same, read afresh.
  await page.goto(`/review?merchant=${merchant.id}`);
  await expect(page.getByTestId('batch-cleared')).toContainText('Deleted 200 staged rows');
  await expect(page.getByTestId('figure-total')).toHaveCount(0);
});

test('after an insert the review names the job and offers no second insert; the home page says where each batch stands', async ({ page }, testInfo) => {
  // Seen: after an insert the same figures stayed and "Prepare the insert" was offered; its
  // pre-flight said the user's own 400 codes had "reached production meanwhile".
  test.setTimeout(90_000);
  const merchant = createMerchant('Inserted');
  const p = `IN${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'a.csv': bigFile(p, 400) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  await uploadAndCheck(page, paths, ['a.csv'], 400);

  await page.goto('/');
  const line = page.locator(`[data-testid="merchant-batch"][data-merchant="${merchant.id}"]`);
  await expect(line.getByTestId('merchant-batch-status')).toHaveText(/^400 rows staged, checked (just now|1 min ago)$/);
  await line.getByRole('link', { name: 'review and insert' }).click();

  await page.getByTestId('run-preflight').click();
  await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 400 clean codes.');
  await page.getByTestId('insert-confirmation').fill('YES');
  await page.getByTestId('insert').click();
  await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  const job = page.url().split('/').pop()!;
  await expect(page.getByTestId('job-status')).toHaveText('completed', { timeout: 30_000 });

  await page.goto(`/review?merchant=${merchant.id}`);
  await expect(page.getByTestId('batch-inserted')).toHaveText(
    `Inserted as job ${job}, 400 codes. Clear staging to start the next batch.`,
  );
  await expect(page.getByTestId('batch-inserted').getByRole('link')).toHaveAttribute('href', `/jobs/${job}`);
  await expect(page.getByTestId('run-preflight')).toHaveCount(0);
  await expect(page.getByTestId('run-check')).toHaveCount(0);
  const inDb = await withDb(async (db) => {
    const codes = await db.query(`SELECT count(*)::int AS n FROM codes WHERE import_job_id = $1`, [job]);
    const batch = await db.query(`SELECT state, job_id::text AS job FROM staging_batches WHERE merchant_id = $1`, [
      merchant.id,
    ]);
    return { codes: codes.rows[0].n, ...batch.rows[0] };
  });
  expect(inDb).toEqual({ codes: 400, state: 'inserted', job });

  await page.goto('/');
  await expect(line.getByTestId('merchant-batch-status')).toHaveText('inserted as a job of 400 codes; 400 rows still staged');
});

test('the same file chosen again on a fresh page is marked staged already and skipped unless chosen again', async ({ page }, testInfo) => {
  // Seen: the same file on a fresh page after a finished upload was staged a second time,
  // silently; on the same page, re-picking it did nothing, with no reason given.
  test.setTimeout(90_000);
  const merchant = createMerchant('Twice');
  const p = `TW${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'codes.csv': bigFile(p, 150) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  await uploadAndCheck(page, paths, ['codes.csv'], 150);

  await page.goto('/upload');
  await new AppShell(page).waitForHydration();
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['codes.csv']);
  await expect(upload.file('codes.csv').getByTestId('file-status')).toContainText(
    /Staged already on \d{4}-\d\d-\d\d \d\d:\d\d UTC as codes\.csv \(150 rows\): skipped/,
  );
  await expect(page.getByTestId('batch-totals')).toContainText('0 file(s) to upload, 0 excluded, 1 staged already');
  await expect(upload.uploadButton()).toBeDisabled();
  // Picked again on the same page: it says so.
  await upload.pick(paths);
  await expect(page.getByTestId('picked-again')).toHaveText('codes.csv chosen already: each file is listed once.');
  expect(await staging(merchant)).toMatchObject({ rows: 150, distinct: 150 });

  // Chosen explicitly, it is staged again.
  await upload.file('codes.csv').getByTestId('restage').check();
  await expect(upload.file('codes.csv').getByTestId('file-status')).toContainText('will be staged again');
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 150 rows from 1 file(s).', { timeout: 30_000 });
  expect(await staging(merchant)).toMatchObject({ rows: 300, distinct: 150 });
});

test('cancel asks whether to keep or remove the staged rows, and Upload after it never appends a second copy', async ({ page }, testInfo) => {
  // Seen: cancelling at 24,000 of 252,000 rows and pressing Upload again staged all 252,000
  // again: 276,000 staged, the 24,000 counted as internal duplicates, nothing said.
  test.setTimeout(120_000);
  const merchant = createMerchant('Cancelled');
  const p = `CA${unique()}`;
  // Five chunks (100,000 rows each), each held back a moment: time to cancel. The page has two
  // of a file's chunks under way at once, and sends the next as one is stored: a cancel after
  // the first leaves the ones under way to be stored (counted), never the whole file.
  const paths = writeFiles(testInfo.outputPath('files'), { 'a.csv': bigFile(p, 450_000) });
  const slowChunks = () =>
    page.route('**/api/uploads/**', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 700));
      await route.continue();
    });
  await slowChunks();
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  const status = upload.file('a.csv').getByTestId('file-status');
  /** Cancels once the first chunk is stored; the rows staged when the upload stopped. */
  const cancelAfterFirstChunk = async () => {
    await upload.uploadButton().click();
    await expect(page.getByTestId('upload-progress')).toContainText(/^[1-9][\d,]* of 450,000 rows/, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const stopped = /Upload stopped\. ([\d,]+) of 450,000 rows are staged\. Keep them staged, or remove them\?/;
    await expect(page.getByTestId('cancel-choice')).toContainText(stopped, { timeout: 30_000 });
    const rows = Number(stopped.exec((await page.getByTestId('cancel-choice').textContent()) ?? '')![1].replace(/,/g, ''));
    // Whole chunks, at least the first, not the whole file.
    expect([100_000, 200_000, 300_000, 400_000]).toContain(rows);
    return rows;
  };
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv']);
  const stopped = await cancelAfterFirstChunk();
  await page.getByTestId('cancel-keep').click();
  await expect(page.getByTestId('upload-cancelled')).toContainText(
    `Upload cancelled. ${stopped.toLocaleString('en-US')} of 450,000 rows are staged: choosing the same files again marks them staged already.`,
  );
  const kept = await staging(merchant);
  expect(kept.rows).toBe(stopped);
  expect(kept.distinct).toBe(kept.rows);

  // Upload again: the file's kept rows mark it staged already; it is skipped, nothing doubled.
  await expect(status).toContainText(
    new RegExp(`Staged already on .* as a\\.csv \\(${kept.rows.toLocaleString('en-US')} of 450,000 rows, cancelled\\): skipped`),
  );
  await expect(upload.uploadButton()).toBeDisabled();
  await page.goto('/upload');
  await new AppShell(page).waitForHydration();
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv']);
  await expect(status).toContainText('skipped');
  await expect(upload.uploadButton()).toBeDisabled();
  expect(await staging(merchant)).toEqual(kept);

  // Removing: clear the batch, then cancel again choosing to remove: nothing stays staged, and
  // the next upload stages the file exactly once.
  await page.goto(`/review?merchant=${merchant.id}`);
  await new AppShell(page).waitForHydration();
  await page.getByTestId('clear-staging').click();
  await page.getByTestId('confirm-clear').click();
  await expect(page.getByTestId('batch-cleared')).toBeVisible();
  await page.goto('/upload');
  await new AppShell(page).waitForHydration();
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv']);
  await cancelAfterFirstChunk();
  await page.getByTestId('cancel-remove').click();
  await expect(page.getByTestId('upload-cancelled')).toHaveText('Upload cancelled. 0 of 450,000 rows are staged.');
  expect(await staging(merchant)).toMatchObject({ rows: 0 });
  await page.unroute('**/api/uploads/**');
  await expect(status).toHaveText(/Valid/);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 450,000 rows from 1 file(s).', { timeout: 60_000 });
  expect(await staging(merchant)).toMatchObject({ rows: 450_000, distinct: 450_000 });
});
