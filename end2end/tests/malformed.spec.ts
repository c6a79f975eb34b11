import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { withDb } from '../support/db';

test('an unterminated quote at line 5 is reported at line 5 and the rows after it are staged', async ({ page }, testInfo) => {
  const merchant = createMerchant('Quote');
  const p = `Q${unique()}`;
  const lines = [
    'code,sku_name,points',
    `${p}-2,"Café, crème",1`,
    `${p}-3,Plain,2`,
    `${p}-4,"Say ""hi""",3`,
    `${p}-5,"Big sale, 10 % off,4`, // the quote never closes
    `${p}-6,Plain,5`,
    `${p}-7,"Two`,
    `lines",6`, // a quoted field over two lines: one row
    `${p}-9,Plain,7`,
    `,Blank code,8`,
    `${p}-11,12" screen,9`, // a quote inside an unquoted field
    `${p}-12,Plain,10`,
  ];
  const paths = writeFiles(testInfo.outputPath('files'), { 'quote.csv': lines.join('\n') + '\n' });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['quote.csv']);

  const file = upload.file('quote.csv');
  await expect(page.getByText(/^quote\.csv:5: .*quote/)).toBeVisible();
  await expect(page.getByText(/^quote\.csv:11: .*quote/)).toBeVisible();
  await expect(file.getByTestId('data-lines')).toHaveText('11');
  await expect(file.getByTestId('rows-staged')).toHaveText('7');
  await expect(file.getByTestId('rows-skipped')).toHaveText('1');
  await expect(file.getByTestId('rows-rejected')).toHaveText('2');
  // 11 lines = 7 staged + 1 skipped + 2 rejected + 1 line inside a quoted field.
  await expect(file).toContainText('1 line inside quoted fields');

  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 7 rows from 1 file(s).', { timeout: 20_000 });
  const staged = await withDb((db) =>
    db.query(
      'SELECT code, sku_name, source_line::int AS line FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number',
      [merchant.id],
    ),
  );
  expect(staged.rows).toEqual([
    { code: `${p}-2`, sku_name: 'Café, crème', line: 2 },
    { code: `${p}-3`, sku_name: 'Plain', line: 3 },
    { code: `${p}-4`, sku_name: 'Say "hi"', line: 4 },
    { code: `${p}-6`, sku_name: 'Plain', line: 6 },
    { code: `${p}-7`, sku_name: 'Two\nlines', line: 7 },
    { code: `${p}-9`, sku_name: 'Plain', line: 9 },
    { code: `${p}-12`, sku_name: 'Plain', line: 12 },
  ]);
});

test('a chunk the server fails with 500 shows its message at once, without retries, and the other files finish', async ({ page }, testInfo) => {
  const merchant = createMerchant('Boom');
  const p = `B${unique()}`;
  const trigger = `ci_boom_${unique().toLowerCase()}`;
  // A fault of the server's own, on real parts: the database refuses this file's rows.
  await withDb((db) =>
    db.query(`
      CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.code LIKE '${p}-BOOM%' THEN RAISE EXCEPTION 'sabotaged by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER ${trigger} BEFORE INSERT ON codes_check_temp FOR EACH ROW EXECUTE FUNCTION ${trigger}();`),
  );
  try {
    const paths = writeFiles(testInfo.outputPath('files'), {
      'a_good.csv': `code\n${p}-1\n${p}-2\n${p}-3\n`,
      'b_boom.csv': `code\n${p}-BOOM-1\n${p}-BOOM-2\n`,
      'c_good.csv': `code\n${p}-4\n`,
    });
    await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['a_good.csv', 'b_boom.csv', 'c_good.csv']);
    let boomPosts = 0;
    page.on('request', (r) => {
      if (/\/files\/1\/chunks\//.test(r.url())) boomPosts++;
    });

    await upload.uploadButton().click();

    const alert = page.getByRole('alert');
    await expect(alert).toContainText('b_boom.csv stopped: The server could not complete the request', { timeout: 10_000 });
    await expect(alert).toContainText('4 of 6 rows are staged and kept');
    await expect(page.getByText(/Connection problem|retry \d+ of/)).toHaveCount(0);
    expect(boomPosts).toBe(1);
    await expect(upload.file('a_good.csv').getByTestId('file-status')).toHaveText('Staged');
    await expect(upload.file('c_good.csv').getByTestId('file-status')).toHaveText('Staged');
    await expect(upload.file('b_boom.csv').getByTestId('file-status')).toContainText('Stopped: The server could not');
    const staged = await withDb((db) =>
      db.query('SELECT code FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number', [merchant.id]),
    );
    expect(staged.rows.map((r) => r.code)).toEqual([`${p}-1`, `${p}-2`, `${p}-3`, `${p}-4`]);
  } finally {
    await withDb((db) => db.query(`DROP TRIGGER ${trigger} ON codes_check_temp; DROP FUNCTION ${trigger}();`));
  }
});
