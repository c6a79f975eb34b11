import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';

test('the page lists the accepted columns, and its template uploaded back unchanged stages its rows', async ({ page }, testInfo) => {
  const merchant = createMerchant('Template');
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);

  const rules = upload.columnRules();
  await expect(rules).toHaveCount(8);
  await expect(rules.first()).toHaveText(/^code — required: .*, e\.g\. \S+/);
  for (const column of ['merchant_id', 'serial', 'sku', 'points', 'sku_name', 'batch_code', 'price']) {
    await expect(upload.columnRule(column)).toContainText(`${column} — optional:`);
  }
  await expect(upload.columnRule('points')).toContainText('number');
  await expect(upload.columnRule('merchant_id')).toContainText('UUID');

  const downloading = page.waitForEvent('download');
  await upload.downloadTemplate().click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('code-import-template.csv');
  const template = readFileSync(await download.path(), 'utf8');
  const [header, ...rows] = template.trimEnd().split('\n');
  expect(header).toBe('code,serial,sku,points,sku_name,batch_code,price');

  const paths = writeFiles(testInfo.outputPath('files'), { 'code-import-template.csv': template });
  await upload.pick(paths);
  await upload.waitUntilChecked(['code-import-template.csv']);
  const file = upload.file('code-import-template.csv');
  await expect(file.getByTestId('file-status')).toHaveText('Valid');
  await expect(file.getByTestId('rows-staged')).toHaveText(String(rows.length));
  await expect(file.getByTestId('rows-rejected')).toHaveText('0');
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText(`Staged ${rows.length} rows from 1 file(s).`, { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query(
      `SELECT concat_ws(',', code, serial, sku, points, sku_name, batch_code, price) AS line
       FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number`,
      [merchant.id],
    ),
  );
  expect(staged.rows.map((r) => r.line)).toEqual(rows);
});

test('a file with only a header or only rejected rows says it has nothing to stage, and is not sent', async ({ page }, testInfo) => {
  const merchant = createMerchant('Nothing');
  const p = `N${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), {
    'a_header_only.csv': 'code,points\n',
    'b_all_rejected.csv': `code,points\n${p}-1,many\n${p}-2,few\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a_header_only.csv', 'b_all_rejected.csv']);
  await expect(upload.file('a_header_only.csv').getByTestId('file-status')).toHaveText(
    'Nothing to stage: the file has a header and no rows',
  );
  await expect(upload.file('b_all_rejected.csv').getByTestId('file-status')).toHaveText('Nothing to stage: every row is rejected');
  await expect(page.getByTestId('batch-totals')).toHaveText('0 file(s) to upload, 2 excluded: 0 rows to stage, 0 skipped, 0 rejected.');
  await expect(upload.uploadButton()).toBeDisabled();
});
