import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';

/** `text` in Windows-1252 (every character here is in its Latin-1 range). */
const windows1252 = (text: string) => Buffer.from(text, 'latin1');

/** `text` in UTF-16, little- or big-endian, with a BOM. */
function utf16(text: string, bigEndian: boolean): Buffer {
  const le = Buffer.from('\ufeff' + text, 'utf16le');
  return bigEndian ? le.swap16() : le;
}

test('a Windows-1252 file asks for its encoding, previews it, and stages é as é', async ({ page }, testInfo) => {
  const merchant = createMerchant('Latin');
  const p = `W${unique()}`;
  const text = `code,sku_name\r\n${p}-1,Café crème\r\n${p}-2,Crêpe brûlée\r\n`;
  const paths = writeFiles(testInfo.outputPath('files'), { 'latin.csv': windows1252(text) });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['latin.csv']);

  const file = upload.file('latin.csv');
  const encoding = upload.encodingOf('latin.csv');
  await expect(file.getByTestId('file-status')).toHaveText('Excluded');
  await expect(encoding.preview).toContainText(`${p}-1,Caf\ufffd cr\ufffdme`);
  await expect(upload.uploadButton()).toBeDisabled();

  await encoding.select.selectOption({ label: 'Windows-1252' });
  await upload.waitUntilChecked(['latin.csv']);
  await expect(file.getByTestId('file-status')).toHaveText('Valid');
  await expect(encoding.preview).toContainText(`${p}-1,Café crème`);
  await expect(file.getByTestId('read-as')).toHaveText('Windows-1252');
  await expect(file.getByTestId('rows-staged')).toHaveText('2');

  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 2 rows from 1 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query('SELECT code, sku_name FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number', [merchant.id]),
  );
  expect(staged.rows).toEqual([
    { code: `${p}-1`, sku_name: 'Café crème' },
    { code: `${p}-2`, sku_name: 'Crêpe brûlée' },
  ]);
  // The choice is part of the file's report, which the job's source files carry.
  const report = await withDb((db) =>
    db.query(
      `SELECT f.report->>'encoding' AS encoding FROM upload_files f JOIN uploads u ON u.id = f.upload_id
       WHERE u.merchant_id = $1`,
      [merchant.id],
    ),
  );
  expect(report.rows).toEqual([{ encoding: 'Windows1252' }]);
});

test('UTF-16 files with a BOM and a file opening with sep=; are read without asking', async ({ page }, testInfo) => {
  const merchant = createMerchant('Sixteen');
  const p = `U${unique()}`;
  const paths = writeFiles(testInfo.outputPath('files'), {
    'a_le.csv': utf16(`code\tsku_name\r\n${p}-1\tNoël\r\n`, false),
    'b_be.csv': utf16(`code,sku_name\n${p}-2,Größe\n`, true),
    'c_sep.csv': `sep=;\r\ncode;sku_name;points\r\n${p}-3;Fish, chips;7\r\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a_le.csv', 'b_be.csv', 'c_sep.csv']);
  for (const name of ['a_le.csv', 'b_be.csv', 'c_sep.csv']) {
    await expect(upload.file(name).getByTestId('file-status')).toHaveText('Valid');
    await expect(upload.file(name).getByTestId('data-lines')).toHaveText('1');
  }
  await expect(upload.file('a_le.csv').getByTestId('read-as')).toHaveText('UTF-16LE');
  await expect(upload.file('b_be.csv').getByTestId('read-as')).toHaveText('UTF-16BE');
  await expect(upload.file('c_sep.csv').getByTestId('read-as')).toHaveText('UTF-8, sep= line');
  await expect(upload.file('c_sep.csv')).toContainText('code, sku_name, points');

  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 3 rows from 3 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query(
      'SELECT code, sku_name, points, source_line::int AS line FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number',
      [merchant.id],
    ),
  );
  expect(staged.rows).toEqual([
    { code: `${p}-1`, sku_name: 'Noël', points: null, line: 2 },
    { code: `${p}-2`, sku_name: 'Größe', points: null, line: 2 },
    { code: `${p}-3`, sku_name: 'Fish, chips', points: '7', line: 3 },
  ]);
});
