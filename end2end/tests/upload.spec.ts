import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { bigFile, writeFiles } from '../support/csv';
import { freePort, ServerProcess } from '../support/server';
import { holdStagingWrites, sideDatabase, stageCodes, withDb } from '../support/db';
import { expectAccessible } from '../support/a11y';

test('three files are validated in the browser, the invalid one is excluded, the rest staged', async ({ page }, testInfo) => {
  const merchant = createMerchant('Upload');
  const prefix = `T${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), {
    // BOM, CRLF, batch_id, an unknown column, a blank line, a blank code, bad points, a quoted comma.
    '01_first.csv':
      '\ufeffCode,Points,Batch_ID,Colour\r\n' +
      `${prefix}-1,10,B1,red\r\n` +
      '\r\n' +
      ',5,B1,blue\r\n' +
      `${prefix}-2,ten,B1,green\r\n` +
      `"${prefix}-3,x",30,B2,red\r\n`,
    // Semicolons and a merchant_id column naming the merchant; one row names another merchant.
    '02_second.csv':
      'code;merchant_id;price\n' +
      `${prefix}-4;${merchant.id};1.50\n` +
      `${prefix}-5;00000000-0000-0000-0000-000000000001;2\n` +
      `${prefix}-6;;3\n`,
    '03_broken.csv': 'sku,points\nA,1\n',
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['01_first.csv', '02_second.csv', '03_broken.csv']);

  // Colour is no column of Code Import's: the file waits until its columns are mapped (the
  // suggestions ignore Colour), then is checked with the mapping.
  const first = upload.file('01_first.csv');
  await expect(first.getByTestId('file-status')).toHaveText('Columns to map (below)');
  const columns = upload.mappingGroup('01_first.csv');
  await expect(columns.choice('Colour')).toHaveValue('');
  await expect(columns.choice('Batch_ID')).toHaveValue('batch_code');
  await columns.apply.click();
  await upload.waitUntilChecked(['01_first.csv']);

  await expect(first.getByTestId('rows-staged')).toHaveText('2');
  await expect(first.getByTestId('rows-skipped')).toHaveText('2');
  await expect(first.getByTestId('skip-reasons')).toHaveText('1 blank code, 1 blank line');
  await expect(first.getByTestId('rows-rejected')).toHaveText('1');
  await expect(first.getByTestId('file-status')).toHaveText('Valid · 1 row rejected');
  await expect(first).toContainText('ignored: Colour');
  await expect(page.getByText('01_first.csv:5: points "ten" is not a number')).toBeVisible();
  const downloading = page.waitForEvent('download');
  await first.locator('xpath=following-sibling::tr[1]').getByRole('button', { name: 'Download all 1 rejected rows' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('01_first.rejected.csv');
  expect(readFileSync(await download.path(), 'utf8')).toBe(
    `\ufeffCode,Points,Batch_ID,Colour,error_line,error_reason\n${prefix}-2,ten,B1,green,5,"points ""ten"" is not a number"\n`,
  );
  const second = upload.file('02_second.csv');
  await expect(second.getByTestId('rows-staged')).toHaveText('2');
  await expect(second.getByTestId('rows-rejected')).toHaveText('1');
  await expect(page.getByText(/02_second\.csv:3: merchant_id .* is not the merchant this upload is for/)).toBeVisible();
  await expect(upload.file('03_broken.csv').getByTestId('file-status')).toHaveText('Excluded');
  await expect(page.getByText('03_broken.csv is excluded: there is no code column')).toBeVisible();
  await expect(page.getByTestId('batch-totals')).toHaveText(
    '2 file(s) to upload, 1 excluded: 4 rows to stage, 2 skipped, 2 rejected.',
  );
  await expectAccessible(page, 'the upload page with validated, excluded and rejected files');

  await upload.uploadButton().click();

  await expect(upload.done()).toHaveText('Staged 4 rows from 2 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query(
      `SELECT row_number::int, code, source_file, source_line::int, points::text, batch_code, price::text
       FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number`,
      [merchant.id],
    ),
  );
  expect(staged.rows).toEqual([
    { row_number: 1, code: `${prefix}-1`, source_file: '01_first.csv', source_line: 2, points: '10', batch_code: 'B1', price: null },
    { row_number: 2, code: `${prefix}-3,x`, source_file: '01_first.csv', source_line: 6, points: '30', batch_code: 'B2', price: null },
    { row_number: 3, code: `${prefix}-4`, source_file: '02_second.csv', source_line: 2, points: null, batch_code: null, price: '1.50' },
    { row_number: 4, code: `${prefix}-6`, source_file: '02_second.csv', source_line: 4, points: null, batch_code: null, price: '3' },
  ]);
  await expect(new AppShell(page).userEmail()).toBeVisible();
});

test('an upload goes on after the server is killed mid-way and comes back', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const merchant = createMerchant('Restart');
  const prefix = `R${unique()}`;
  const rows = 450_000;
  const paths = writeFiles(testInfo.outputPath('files'), { 'big.csv': bigFile(prefix, rows) });
  const server = new ServerProcess(await freePort());
  await server.start();
  try {
    await openAs(page, createUser('merchant_admin', [merchant]), `${server.url}/upload`);
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['big.csv']);
    await expect(upload.file('big.csv').getByTestId('rows-staged')).toHaveText('450,000');
    const firstChunk = page.waitForResponse((r) => /\/chunks\/0$/.test(r.url()) && r.status() === 200);

    await upload.uploadButton().click();
    await firstChunk;
    await server.kill();
    await expect(page.getByText(/Connection problem/)).toBeVisible({ timeout: 20_000 });
    await server.start();

    await expect(upload.done()).toHaveText('Staged 450,000 rows from 1 file(s).', { timeout: 90_000 });
    const counts = await withDb((db) =>
      db.query(
        `SELECT count(*)::int AS rows, count(DISTINCT code)::int AS codes, min(row_number)::int AS first,
                max(row_number)::int AS last, max(source_line)::int AS last_line
         FROM codes_check_temp WHERE merchant_id = $1`,
        [merchant.id],
      ),
    );
    expect(counts.rows[0]).toEqual({ rows: rows, codes: rows, first: 1, last: rows, last_line: rows + 1 });
  } finally {
    await server.kill();
  }
});

test('after a reload the page shows the unfinished upload and the same file resumes it', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const merchant = createMerchant('Reload');
  const prefix = `L${unique()}`;
  const rows = 350_000;
  const paths = writeFiles(testInfo.outputPath('files'), { 'reload.csv': bigFile(prefix, rows) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['reload.csv']);
  const firstChunk = page.waitForResponse((r) => /\/chunks\/0$/.test(r.url()) && r.status() === 200);
  await upload.uploadButton().click();
  await firstChunk;

  await page.reload();

  await new AppShell(page).waitForHydration();
  const notice = page.getByTestId('unfinished-upload');
  await expect(notice).toContainText('An upload is unfinished');
  await expect(notice).toContainText(`of ${rows.toLocaleString('en')} rows are staged from reload.csv`);
  // Resuming sends only what is missing: chunk 0 is not sent again.
  const resent: string[] = [];
  page.on('request', (r) => {
    if (/\/chunks\/\d+$/.test(r.url())) resent.push(r.url().split('/').pop()!);
  });
  await upload.pick(paths);
  await upload.waitUntilChecked(['reload.csv']);
  await upload.uploadButton().click();

  await expect(upload.done()).toHaveText('Staged 350,000 rows from 1 file(s).', { timeout: 90_000 });
  expect(resent).not.toContain('0');
  const counts = await withDb((db) =>
    db.query(
      `SELECT count(*)::int AS rows, count(DISTINCT code)::int AS codes, max(row_number)::int AS last
       FROM codes_check_temp WHERE merchant_id = $1`,
      [merchant.id],
    ),
  );
  expect(counts.rows[0]).toEqual({ rows, codes: rows, last: rows });
});

test('choosing a folder lists its CSV files, sub-folders included, by their path in name order', async ({ page }, testInfo) => {
  const merchant = createMerchant('Folder');
  const folder = testInfo.outputPath('batch');
  writeFiles(folder, {
    'b_second.csv': 'code\nF-2\n',
    'a_first.CSV': 'code\nF-1\n',
    'notes.txt': 'not a code file\n',
    // Two files of one name in different sub-folders are two files.
    'east/codes.csv': 'code\nF-3\n',
    'west/codes.csv': 'code\nF-4\nF-5\n',
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);

  await page.getByTestId('pick-folder').setInputFiles(folder);

  const expected = ['a_first.CSV', 'b_second.csv', 'east/codes.csv', 'west/codes.csv'];
  await upload.waitUntilChecked(expected);
  const names = await page.locator('[data-testid="file-row"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-file')));
  expect(names).toEqual(expected);
  await expect(page.getByTestId('batch-totals')).toHaveText('4 file(s) to upload, 0 excluded: 5 rows to stage, 0 skipped, 0 rejected.');

  await upload.uploadButton().click();

  await expect(upload.done()).toHaveText('Staged 5 rows from 4 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query('SELECT code, source_file FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number', [merchant.id]),
  );
  expect(staged.rows).toEqual([
    { code: 'F-1', source_file: 'a_first.CSV' },
    { code: 'F-2', source_file: 'b_second.csv' },
    { code: 'F-3', source_file: 'east/codes.csv' },
    { code: 'F-4', source_file: 'west/codes.csv' },
    { code: 'F-5', source_file: 'west/codes.csv' },
  ]);
});

test('after a crash of the database the page says the staged rows were lost, and the files go again from row 1', async ({ page }, testInfo) => {
  test.setTimeout(90_000);
  // A database of its own: emptying staging, as PostgreSQL's crash recovery does, touches
  // every merchant's uploads, and other tests run beside this one.
  const database = sideDatabase('crash');
  const server = new ServerProcess(await freePort(), database);
  await server.start();
  try {
    const merchant = createMerchant('Crash', database);
    const paths = writeFiles(testInfo.outputPath('files'), { 'codes.csv': 'code\nC-1\nC-2\nC-3\n' });
    await openAs(page, createUser('merchant_admin', [merchant], database), `${server.url}/upload`);
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['codes.csv']);
    await upload.uploadButton().click();
    await expect(upload.done()).toHaveText('Staged 3 rows from 1 file(s).', { timeout: 20_000 });
    // The check has finished (its status says what it did otherwise).
    await new ReviewSection(page).waitForFigures();

    // Crash recovery empties the unlogged tables: staging and its sentinel.
    await withDb((db) => db.query('TRUNCATE codes_check_temp, staging_intact'), database);
    await page.goto(`${server.url}/upload`);
    await new AppShell(page).waitForHydration();

    const notice = page.getByTestId('lost-upload');
    await expect(notice).toContainText('The database restarted after a crash');
    await expect(notice).toContainText('Nothing in production was touched. Upload the files again.');
    await expect(notice).toContainText('The last upload was of codes.csv.');
    await expect(page.getByTestId('unfinished-upload')).toHaveCount(0);

    await upload.pick(paths);
    await upload.waitUntilChecked(['codes.csv']);
    await upload.uploadButton().click();
    await expect(upload.done()).toHaveText('Staged 3 rows from 1 file(s).', { timeout: 20_000 });
    const after = await withDb(
      (db) =>
        db.query(
          `SELECT (SELECT array_agg(row_number::int ORDER BY row_number) FROM codes_check_temp WHERE merchant_id = $1) AS rows,
                  (SELECT array_agg(status ORDER BY created_at) FROM uploads WHERE merchant_id = $1) AS uploads`,
          [merchant.id],
        ),
      database,
    );
    expect(after.rows[0]).toEqual({ rows: [1, 2, 3], uploads: ['lost', 'completed'] });
    await page.goto(`${server.url}/upload`);
    await new AppShell(page).waitForHydration();
    await expect(page.getByTestId('lost-upload')).toHaveCount(0);
  } finally {
    await server.kill();
  }
});

test('while the first chunk goes out over a slow link, the page counts its bytes sent before any row is stored', async ({ page }, testInfo) => {
  // Seen: "0 rows · 0 B sent" until the first 100,000-row chunk was acknowledged, then a jump.
  test.setTimeout(90_000);
  const merchant = createMerchant('Slow link');
  const prefix = `SL${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'slow.csv': bigFile(prefix, 150_000) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['slow.csv']);

  // 1 Mbit/s up: the first chunk's body takes seconds to go out.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 125_000,
  });
  await upload.uploadButton().click();
  const progress = page.getByTestId('upload-progress');
  await expect(progress).toContainText(/^0 of 150,000 rows stored · [1-9][\d.]* (B|KB|MB) sent/, { timeout: 30_000 });
  // The figure climbs as the body goes out, still before the server has stored a row.
  const sent = async () => {
    const [value, unit] = ((await page.getByTestId('bytes-sent').textContent()) ?? '').split(' ');
    return Number.parseFloat(value) * ({ B: 1, KB: 1024, MB: 1024 * 1024 }[unit] ?? NaN);
  };
  const early = await sent();
  await expect.poll(sent, { timeout: 30_000 }).toBeGreaterThan(early);
  await expect(progress).toContainText(/^0 of 150,000 rows stored/);

  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await expect(upload.done()).toHaveText('Staged 150,000 rows from 1 file(s).', { timeout: 60_000 });
  await expect(progress).toContainText(/^150,000 of 150,000 rows stored/);
});

test('an upload chosen while a check runs says it waits for the check, and stages once the check has ended', async ({ page }, testInfo) => {
  // Seen: the page refused the second upload while the check of the first ran (the check it
  // starts by itself), and the user had to notice and choose Upload again.
  test.setTimeout(60_000);
  const merchant = createMerchant('Upload while checking');
  const p = `K${unique()}`;
  await stageCodes(merchant.id, 'a.csv', [`${p}-1`, `${p}-2`, `${p}-1`]);
  const user = createUser('merchant_admin', [merchant]);
  const stagedOf = async (file: string) =>
    (
      await withDb((db) =>
        db.query(`SELECT count(*)::int AS n FROM codes_check_temp WHERE merchant_id = $1 AND source_file = $2`, [
          merchant.id,
          file,
        ]),
      )
    ).rows[0].n;
  // The check waits at its write of the flags while the merchant's staged rows are held.
  const hold = await holdStagingWrites(merchant.id);
  try {
    await openAs(page, user, `/review?merchant=${merchant.id}`);
    await page.getByTestId('run-check').click();
    await expect(page.getByTestId('check-status')).toHaveText(/^Checking/);

    await page.goto('/upload');
    const upload = new UploadPage(page);
    await upload.pick(writeFiles(testInfo.outputPath('files'), { 'b.csv': `code\n${p}-3\n${p}-2\n` }));
    await upload.waitUntilChecked(['b.csv']);
    // Every start the page asks for while the check runs is refused as busy (409).
    let refused = 0;
    page.on('response', (response) => {
      if (response.url().endsWith('/api/start-upload') && response.status() === 409) refused += 1;
    });
    await upload.uploadButton().click();
    await expect(upload.notice()).toHaveText(
      'A duplicate check is running for this merchant. Wait for it to finish. The upload starts by itself when it has ended.',
    );
    // It keeps asking (two more refusals after the first), and nothing of the file lands under
    // the running check.
    await expect.poll(() => refused, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    await expect(upload.notice()).toBeVisible();
    expect(await stagedOf('b.csv')).toBe(0);
  } finally {
    await hold.release();
  }
  const upload = new UploadPage(page);
  await expect(upload.done()).toHaveText('Staged 2 rows from 1 file(s).', { timeout: 20_000 });
  await expect(upload.notice()).toHaveCount(0);
  expect(await stagedOf('b.csv')).toBe(2);
  // The journey goes on: the new rows are checked with the ones before.
  const review = new ReviewSection(page);
  await review.waitForFigures();
  await expect(review.figure('total')).toContainText('5');
  await expect(review.figure('internal-only')).toContainText('2');
  await expect(page.getByTestId('check-refused')).toHaveCount(0);
});
