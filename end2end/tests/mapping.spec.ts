import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';

const header = 'Voucher Code, Product SKU, Loyalty Points, Batch';

test('files headed "Voucher Code, Product SKU, Loyalty Points, Batch" are mapped by the suggestions in one decision, and the next upload of that layout is mapped without asking', async ({ page }, testInfo) => {
  const merchant = createMerchant('Mapping');
  const p = `M${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), {
    'a_vouchers.csv': `${header}\n${p}-1, SKU-A, 100, B1\n${p}-2, SKU-B, 250, B1\n`,
    'b_vouchers.csv': `${header}\n${p}-3, SKU-C, 50, B2\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a_vouchers.csv', 'b_vouchers.csv']);

  // One group for both files, each column's choice labelled by its header, suggestions filled in.
  await expect(page.getByTestId('mapping-group')).toHaveCount(1);
  const mapping = upload.mappingGroup('a_vouchers.csv');
  await expect(mapping.group).toContainText('a_vouchers.csv, b_vouchers.csv (2 files)');
  const expected: [string, string][] = [
    ['Voucher Code', 'code'],
    ['Product SKU', 'sku'],
    ['Loyalty Points', 'points'],
    ['Batch', 'batch_code'],
  ];
  for (const [column, field] of expected) {
    await expect(mapping.choice(column)).toHaveValue(field);
    await expect(mapping.choice(column).locator('option', { hasText: 'sku_name' })).toHaveCount(1);
  }
  await expect(mapping.preview.locator('thead')).toHaveText('codeskupointsbatch_code');
  await expect(mapping.preview.locator('tbody tr').first()).toHaveText(`${p}-1SKU-A100B1`);
  await mapping.apply.click();

  await upload.waitUntilChecked(['a_vouchers.csv', 'b_vouchers.csv']);
  for (const name of ['a_vouchers.csv', 'b_vouchers.csv']) {
    await expect(upload.file(name).getByTestId('file-status')).toHaveText('Valid');
  }
  await expect(upload.file('a_vouchers.csv').getByTestId('rows-staged')).toHaveText('2');
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 3 rows from 2 file(s).', { timeout: 20_000 });

  const rows = async () =>
    (
      await withDb((db) =>
        db.query(
          `SELECT code, sku, points::text, batch_code, source_file FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number`,
          [merchant.id],
        ),
      )
    ).rows;
  expect(await rows()).toEqual([
    { code: `${p}-1`, sku: 'SKU-A', points: '100', batch_code: 'B1', source_file: 'a_vouchers.csv' },
    { code: `${p}-2`, sku: 'SKU-B', points: '250', batch_code: 'B1', source_file: 'a_vouchers.csv' },
    { code: `${p}-3`, sku: 'SKU-C', points: '50', batch_code: 'B2', source_file: 'b_vouchers.csv' },
  ]);
  // The mapping used is in each file's report (and so in the job's source files).
  const reports = await withDb((db) =>
    db.query(
      `SELECT f.report->'mapping'->'fields' AS fields FROM upload_files f JOIN uploads u ON u.id = f.upload_id
       WHERE u.merchant_id = $1 ORDER BY f.name`,
      [merchant.id],
    ),
  );
  expect(reports.rows.map((r) => r.fields)).toEqual([
    ['Code', 'Sku', 'Points', 'BatchCode'],
    ['Code', 'Sku', 'Points', 'BatchCode'],
  ]);

  // The next upload with that layout: mapped as last time, without a decision.
  const later = writeFiles(testInfo.outputPath('later'), { 'c_vouchers.csv': `${header}\n${p}-4, SKU-D, 75, B3\n` });
  await page.reload();
  await page.waitForSelector('body[data-hydrated]');
  await upload.pick(later);
  await upload.waitUntilChecked(['c_vouchers.csv']);
  await expect(upload.file('c_vouchers.csv').getByTestId('file-status')).toHaveText('Valid');
  await expect(upload.mappingGroup('c_vouchers.csv').asLastTime).toContainText('Mapped as last time');
  await expect(upload.mappingGroup('c_vouchers.csv').apply).toBeHidden();
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 1 rows from 1 file(s).', { timeout: 20_000 });
  expect((await rows()).at(-1)).toEqual({ code: `${p}-4`, sku: 'SKU-D', points: '75', batch_code: 'B3', source_file: 'c_vouchers.csv' });
});

test('a file with a code column beside columns Code Import does not know waits for its mapping, and then stages the columns it maps', async ({ page }, testInfo) => {
  const merchant = createMerchant('Mapping extra');
  const p = `X${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), {
    'extra.csv': `code,Product SKU,Colour\n${p}-1,SKU-A,red\n${p}-2,SKU-B,blue\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['extra.csv']);

  // Not staged without its SKUs: the page asks first.
  await expect(upload.file('extra.csv').getByTestId('file-status')).toHaveText('Columns to map (below)');
  await expect(page.getByTestId('batch-totals')).toHaveText(
    '0 file(s) to upload, 1 excluded: 0 rows to stage, 0 skipped, 0 rejected.',
  );
  const mapping = upload.mappingGroup('extra.csv');
  await expect(mapping.choice('code')).toHaveValue('code');
  await expect(mapping.choice('Product SKU')).toHaveValue('sku');
  await expect(mapping.choice('Colour')).toHaveValue('');
  await mapping.apply.click();

  await upload.waitUntilChecked(['extra.csv']);
  await expect(upload.file('extra.csv').getByTestId('file-status')).toHaveText('Valid');
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 2 rows from 1 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query('SELECT code, sku FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number', [merchant.id]),
  );
  expect(staged.rows).toEqual([
    { code: `${p}-1`, sku: 'SKU-A' },
    { code: `${p}-2`, sku: 'SKU-B' },
  ]);
});
