import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { codesOfJob, withDb } from '../support/db';
import { expectVisibleFocus, tabTo } from '../support/keyboard';

test('with the keyboard alone: choose files, upload, filter the review, insert, open the job from the history and roll it back, the focus always visible', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const merchant = createMerchant('Keys');
  const p = `KB${unique()}`;
  await withDb((db) => db.query('INSERT INTO codes (merchant_id, code) VALUES ($1, $2)', [merchant.id, `${p}-1`]));
  const paths = writeFiles(testInfo.outputPath('files'), {
    'a.csv': `code\n${p}-1\n${p}-2\n${p}-3\n${p}-3\n`,
    'b.csv': `code\n${p}-4\n${p}-2\n`,
  });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await expect(page.getByTestId('pick-files')).toBeEnabled();

  // Choose files: the transparent input behind "Choose files" shows its focus on its label.
  await tabTo(page, page.getByTestId('pick-files'));
  const chooser = page.waitForEvent('filechooser');
  await page.keyboard.press('Enter');
  await (await chooser).setFiles(paths);
  await upload.waitUntilChecked(['a.csv', 'b.csv']);

  // Start the upload.
  await tabTo(page, upload.uploadButton());
  await page.keyboard.press('Enter');
  await expect(upload.done()).toHaveText('Staged 6 rows from 2 file(s).', { timeout: 20_000 });

  // Filter the review: internal duplicates only.
  await new ReviewSection(page).waitForFigures();
  const filter = page.getByTestId('status-filter');
  await tabTo(page, filter);
  for (let i = 0; i < 5 && (await filter.inputValue()) !== 'internal'; i++) await page.keyboard.press('ArrowDown');
  await expect(filter).toHaveValue('internal');
  await expectVisibleFocus(page, 'the review filter');
  await expect(page.getByTestId('preview-row')).toHaveCount(2);
  for (const status of await page.getByTestId('preview-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status')))) {
    expect(status).toBe('INTERNAL_DUPLICATE');
  }

  // Insert (its card is above the rows): prepare it, type YES, press Enter.
  await tabTo(page, page.getByTestId('run-preflight'), 'Shift+Tab');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 3 clean codes.');
  await tabTo(page, page.getByTestId('insert-confirmation'));
  await page.keyboard.type('YES');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  const job = page.url().split('/').pop()!;
  await expect(page.getByTestId('job-status')).toHaveText('completed', { timeout: 30_000 });

  // Open the job from the history.
  await tabTo(page, page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/jobs$/);
  const link = page.locator(`[data-testid="job-row"][data-job-id="${job}"]`).getByRole('link');
  await expect(link).toBeVisible();
  await tabTo(page, link);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(new RegExp(`/jobs/${job}$`));

  // Roll it back: type DELETE, then the button.
  await tabTo(page, page.getByTestId('rollback-confirmation'));
  await page.keyboard.type('DELETE');
  await tabTo(page, page.getByTestId('rollback'));
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('job-status')).toHaveText('rolled_back');
  expect(await codesOfJob(job)).toBe(0);
});
