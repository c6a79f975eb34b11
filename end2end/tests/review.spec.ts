import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { holdStagingWrites, stageCodes, withDb } from '../support/db';

const count = (text: string) => Number(text.replace(/,/g, ''));

test('after an upload the check runs, and its figures, chart, per-file table and filter agree', async ({ page }, testInfo) => {
  test.setTimeout(90_000);
  const merchant = createMerchant('Review');
  const p = `V${unique()}`;
  // Production already holds codes 1 and 2.
  await withDb((db) =>
    db.query(`INSERT INTO codes (merchant_id, code) VALUES ($1, $2), ($1, $3)`, [merchant.id, `${p}-1`, `${p}-2`]),
  );
  const paths = writeFiles(testInfo.outputPath('files'), {
    // 6 rows: 1 and 2 are database duplicates.
    'a.csv': ['code', 1, 2, 3, 4, 5, 6].map((n) => (n === 'code' ? n : `${p}-${n}`)).join('\n') + '\n',
    // 4 rows: 3 repeats a.csv (internal); 1 repeats a.csv and is in production (both).
    'b.csv': `code\n${p}-3\n${p}-7\n${p}-1\n${p}-8\n`,
    // 3 rows: 9 twice (the second is internal).
    'c.csv': `code\n${p}-9\n${p}-9\n${p}-10\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv', 'b.csv', 'c.csv']);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 13 rows from 3 file(s).', { timeout: 20_000 });

  const review = new ReviewSection(page);
  await review.waitForFigures();
  await expect(review.figure('total')).toContainText('13');
  await expect(review.figure('clean')).toContainText('8');
  await expect(review.figure('clean')).toContainText('61.5 %');
  // The kinds of row are disjoint, so the cards add up to the staged rows: 8 + 2 + 2 + 1.
  await expect(review.figure('internal-only')).toContainText('2');
  await expect(review.figure('database-only')).toContainText('2');
  await expect(review.figure('both')).toContainText('1');
  await expect(page.getByTestId('figures-sum')).toContainText('3 rows repeat a code of the batch and 3 have a code already in production (1 are both)');

  // One bar for the batch and one per file.
  await expect(page.getByTestId('chart').getByRole('img')).toHaveCount(4);
  await expect(page.getByTestId('chart').getByRole('img').first()).toHaveAttribute('aria-label', /Clean: will be inserted 61\.5 %/);

  // Columns: rows, internal only, database only, both, clean, clean %; each row adds up.
  const table = await review.fileTable();
  expect(table.files).toEqual([
    ['a.csv', '6', '0', '2', '0', '4', '66.7 %'],
    ['b.csv', '4', '1', '0', '1', '2', '50.0 %'],
    ['c.csv', '3', '1', '0', '0', '2', '66.7 %'],
  ]);
  for (const file of [...table.files, table.total]) {
    expect(count(file[2]) + count(file[3]) + count(file[4]) + count(file[5]), `${file[0]} adds up`).toBe(count(file[1]));
  }
  for (let column = 1; column <= 5; column++) {
    const sum = table.files.reduce((total, file) => total + count(file[column]), 0);
    expect(sum, `column ${column} adds up`).toBe(count(table.total[column]));
  }
  expect(table.total.slice(1, 6)).toEqual(['13', '2', '2', '1', '8']);

  // The rows shown first are the duplicates, with their status in words.
  await expect(review.previewRows()).toHaveCount(5);
  await expect(review.previewRows().first()).toContainText('Database duplicate');
  await expect(review.previewRows().first()).not.toContainText('DATABASE_DUPLICATE');
  // The filter shows only the chosen status.
  const expected: Record<string, [string, string[]]> = {
    internal: ['INTERNAL_DUPLICATE', [`${p}-3`, `${p}-9`]],
    database: ['DATABASE_DUPLICATE', [`${p}-1`, `${p}-2`]],
    both: ['BOTH_DUPLICATE', [`${p}-1`]],
  };
  for (const [filter, [status, codes]] of Object.entries(expected)) {
    await review.filter(filter);
    await expect(review.previewRows()).toHaveCount(codes.length);
    for (const row of await review.previewRows().all()) {
      await expect(row).toHaveAttribute('data-status', status);
    }
    await expect(review.previewRows().getByTestId('preview-code').first()).toHaveText(codes[0]);
  }
  await review.filter('clean');
  await expect(review.previewRows()).toHaveCount(8);
  // Below the upload the view is the section's own; its link gives it an address.
  await review.filterFile('b.csv');
  await expect(review.previewRows()).toHaveCount(2);
  const viewLink = page.getByTestId('view-link');
  await expect(viewLink).toHaveAttribute('href', `/review?merchant=${merchant.id}&status=clean&file=b.csv`);
  const sharedView = (await viewLink.getAttribute('href'))!;

  // The reports: their rows and statuses match the figures on the page.
  for (const [report, rows] of [['duplicates', 5], ['full-report', 13]] as const) {
    const downloading = page.waitForEvent('download');
    await page.getByTestId(`report-${report}`).click();
    const download = await downloading;
    expect(download.suggestedFilename()).toMatch(new RegExp(`^code-import_review-[0-9a-f]+_${report}_\\d{4}-\\d{2}-\\d{2}\\.csv$`));
    const lines = readFileSync(await download.path(), 'utf8').replace(/^\ufeff/, '').trimEnd().split('\n');
    expect(lines[0]).toBe(
      'merchant_id,code,serial,sku,points,sku_name,batch_code,price,internal_dup,existing_dup,status,source_file,source_line,row_number',
    );
    expect(lines.length - 1).toBe(rows);
    const statuses = lines.slice(1).map((line) => line.split(',')[10]);
    const tally = (status: string) => statuses.filter((s) => s === status).length;
    expect([tally('CLEAN'), tally('INTERNAL_DUPLICATE'), tally('DATABASE_DUPLICATE'), tally('BOTH_DUPLICATE')]).toEqual(
      report === 'full-report' ? [8, 2, 2, 1] : [0, 2, 2, 1],
    );
  }

  // The figures are stored: the review page shows them after the upload page is gone.
  await page.goto(`/review?merchant=${merchant.id}`);
  await new AppShell(page).waitForHydration();
  await review.waitForFigures();
  await expect(review.figure('clean')).toContainText('8');
  expect((await review.fileTable()).total.slice(1, 6)).toEqual(['13', '2', '2', '1', '8']);
  // The shared view shows the same rows there.
  await page.goto(sharedView);
  await new AppShell(page).waitForHydration();
  await expect(review.previewRows()).toHaveCount(2);
  await expect(page.getByTestId('file-filter')).toHaveValue('b.csv');
  await expect(page.getByTestId('view-link')).toHaveCount(0);
});

test('a read of the check that fails once, as from a restarting server, does not leave the page at its error', async ({ page }, testInfo) => {
  // Seen: one failed answer to the page's polling and the page showed the error for good,
  // while the check went on and finished on the server.
  test.setTimeout(90_000);
  const merchant = createMerchant('Review retry');
  const p = `R${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'a.csv': `code\n${p}-1\n${p}-2\n${p}-1\n` });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv']);
  // The first read of the review after the upload gets what a proxy answers for a server
  // that is restarting; the reads after it reach the server.
  let failed = 0;
  await page.route('**/api/load-review*', async (route) => {
    if (failed++ === 0) {
      await route.fulfill({ status: 502, contentType: 'text/plain', body: 'Bad Gateway' });
    } else {
      await route.continue();
    }
  });
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 3 rows from 1 file(s).', { timeout: 20_000 });
  const review = new ReviewSection(page);
  await review.waitForFigures();
  expect(failed).toBeGreaterThan(1);
  await expect(review.figure('total')).toContainText('3');
  await expect(review.figure('internal-only')).toContainText('1');
  await expect(page.getByTestId('check-refused')).toHaveCount(0);
});

test('before a check the duplicates view says no check has flagged the rows, and shows the duplicate once checked', async ({ page }) => {
  // Seen: before any check the default view (duplicates) said only "No staged rows match this
  // view" over a batch that repeats a code, as if it had none.
  const merchant = createMerchant('Unchecked view');
  const p = `U${unique()}`;
  await stageCodes(merchant.id, 'a.csv', [`${p}-1`, `${p}-2`, `${p}-1`]);
  await openAs(page, createUser('merchant_admin', [merchant]), `/review?merchant=${merchant.id}`);
  const review = new ReviewSection(page);
  await expect(page.getByTestId('check-status')).toHaveText('Not checked yet.');
  await expect(page.getByTestId('preview-unchecked')).toHaveText(
    'Duplicates are flagged by the check, and no check has seen the rows staged now.',
  );
  await review.runCheck();
  await expect(review.previewRows()).toHaveCount(1);
  await expect(review.row(3).getByTestId('preview-code')).toHaveText(`${p}-1`);
  await expect(page.getByTestId('preview-unchecked')).toHaveCount(0);

  // Once checked, an empty view is just empty: the note is not shown.
  await review.filter('both');
  await expect(page.getByTestId('preview-empty')).toBeVisible();
  await expect(page.getByTestId('preview-unchecked')).toHaveCount(0);
});

test('while a check runs, its polls do not read the staged rows again; its end does', async ({ page }) => {
  // Seen: below a running check the page read the staged rows again at every poll (each
  // second); on a full batch each read scanned the 15 M staged rows for 4-10 s, beside the
  // check, and slowed it.
  test.setTimeout(60_000);
  const merchant = createMerchant('Review reads');
  const p = `Q${unique()}`;
  await stageCodes(merchant.id, 'a.csv', [`${p}-1`, `${p}-2`, `${p}-1`]);
  await openAs(page, createUser('merchant_admin', [merchant]), `/review?merchant=${merchant.id}`);
  const review = new ReviewSection(page);
  await expect(page.getByTestId('preview-empty')).toBeVisible();
  const requests = { rows: 0, polls: 0 };
  page.on('request', (request) => {
    if (request.url().includes('/api/preview-rows')) requests.rows += 1;
    if (request.url().includes('/api/load-review')) requests.polls += 1;
  });
  // The check waits at its write of the flags while the merchant's staged rows are held; reads
  // go on meanwhile.
  const hold = await holdStagingWrites(merchant.id);
  try {
    await page.getByTestId('run-check').click();
    await expect(page.getByTestId('check-status')).toHaveText(/^Checking/);
    await expect.poll(() => requests.polls, { timeout: 15_000 }).toBeGreaterThanOrEqual(4);
    expect(requests.rows, 'reads of the staged rows during the polls of the running check').toBe(0);
  } finally {
    await hold.release();
  }
  await review.waitForFigures();
  await expect(review.previewRows()).toHaveCount(1);
  await expect(review.row(3)).toContainText('Internal duplicate');
  expect(requests.rows).toBeGreaterThanOrEqual(1);
});
