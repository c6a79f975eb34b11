import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';

test('rejected rows downloaded, fixed and uploaded stage exactly the fixed rows', async ({ page }, testInfo) => {
  const merchant = createMerchant('Rejects');
  const p = `R${unique()}`;
  const lines = [
    'Code;Points;sku_name',
    `${p}-1;5;ok`,
    `${p}-2;many;"Fish; chips"`, // not a number
    `${p}-3;"unclosed;1`, // malformed: the quote never closes
    `${p}-4;6;ok`,
    `=SUM(${p});x;@me`, // not a number, and cells a spreadsheet would run
  ];
  const paths = writeFiles(testInfo.outputPath('files'), { 'orders.csv': lines.join('\r\n') + '\r\n' });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['orders.csv']);
  await expect(upload.file('orders.csv').getByTestId('rows-rejected')).toHaveText('3');

  const downloading = page.waitForEvent('download');
  await upload.downloadRejects('orders.csv').click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('orders.rejected.csv');
  const rejected = readFileSync(await download.path(), 'utf8');
  expect(rejected).toBe(
    '\ufeffCode;Points;sku_name;error_line;error_reason\n' +
      `${p}-2;many;"Fish; chips";3;"points ""many"" is not a number"\n` +
      `${p}-3;"unclosed;1;4;a quote opens a field on this line and is never closed\n` +
      `'=SUM(${p});x;'@me;6;"points ""x"" is not a number"\n`,
  );

  // Staged first: the rows that were fine.
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 2 rows from 1 file(s).', { timeout: 20_000 });

  // The user fixes the three rows where they stand and uploads that file as it is.
  const fixed = rejected.replace(`${p}-2;many;`, `${p}-2;7;`).replace(`${p}-3;"unclosed;1;`, `${p}-3;1;unclosed;`).replace(';x;', ';8;');
  const fixedPaths = writeFiles(testInfo.outputPath('fixed'), { 'orders.rejected.csv': fixed });
  await page.reload();
  await page.waitForSelector('body[data-hydrated]');
  await upload.pick(fixedPaths);
  await upload.waitUntilChecked(['orders.rejected.csv']);
  const again = upload.file('orders.rejected.csv');
  await expect(again.getByTestId('file-status')).toHaveText('Valid');
  await expect(again).toContainText('ignored: error_line, error_reason');
  await expect(again.getByTestId('rows-staged')).toHaveText('3');
  await expect(again.getByTestId('rows-rejected')).toHaveText('0');
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 3 rows from 1 file(s).', { timeout: 20_000 });

  const staged = await withDb((db) =>
    db.query(
      `SELECT code, points::text, sku_name, source_file FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number`,
      [merchant.id],
    ),
  );
  expect(staged.rows).toEqual([
    { code: `${p}-1`, points: '5', sku_name: 'ok', source_file: 'orders.csv' },
    { code: `${p}-4`, points: '6', sku_name: 'ok', source_file: 'orders.csv' },
    { code: `${p}-2`, points: '7', sku_name: 'Fish; chips', source_file: 'orders.rejected.csv' },
    { code: `${p}-3`, points: '1', sku_name: 'unclosed', source_file: 'orders.rejected.csv' },
    // The `'` before a formula character is the report's and comes off again.
    { code: `=SUM(${p})`, points: '8', sku_name: '@me', source_file: 'orders.rejected.csv' },
  ]);
});
