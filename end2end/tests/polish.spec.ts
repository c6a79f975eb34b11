import { expect, test } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { expectAccessible } from '../support/a11y';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { expectVisibleFocus } from '../support/keyboard';

test('admin: each change confirms what it did, a later change clears an earlier error, and no one can disable themselves', async ({ page }) => {
  const ops = createUser('ops');
  const merchant = createMerchant('Admin');
  const other = createUser('merchant_admin', [merchant]);
  await openAs(page, ops, '/admin');
  const outcome = page.getByTestId('admin-outcome');
  const name = `Shop ${unique()}`;

  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Create merchant' }).click();
  await expect(outcome).toHaveText(`Created merchant ${name}.`);
  await expect(outcome).toHaveAttribute('role', 'status');

  // The same name again is refused; the error replaces the confirmation.
  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Create merchant' }).click();
  await expect(outcome).toHaveAttribute('role', 'alert');
  await expect(outcome).not.toHaveText(`Created merchant ${name}.`);
  await expectAccessible(page, 'the admin page with an error');

  // The next change clears the error and says what it did.
  const row = page.locator(`[data-testid="user-row"][data-email="${other.email}"]`);
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(outcome).toHaveText(`${other.email} is disabled: their sessions have ended.`);
  await expect(row.getByTestId('user-status')).toContainText('Disabled');
  await row.getByRole('button', { name: 'Enable' }).click();
  await expect(outcome).toHaveText(`${other.email} is enabled again.`);

  // One's own row offers no Disable.
  const mine = page.locator(`[data-testid="user-row"][data-email="${ops.email}"]`);
  await expect(mine.getByTestId('user-status')).toHaveText('Active (you)');
  await expect(mine.getByRole('button')).toHaveCount(0);
});

test('with 63 files the totals and Upload stay in view while the list scrolls, and come first for the keyboard', async ({ page }, testInfo) => {
  test.setTimeout(90_000);
  const merchant = createMerchant('Many');
  const p = `MF${unique()}`;
  const files: Record<string, string> = {};
  for (let i = 1; i <= 63; i++) files[`NBD_${String(i).padStart(2, '0')}.csv`] = `code\n${p}-${i}-a\n${p}-${i}-b\n`;
  const paths = writeFiles(testInfo.outputPath('files'), files);
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(Object.keys(files));
  await expect(page.getByTestId('batch-totals')).toHaveText('63 file(s) to upload, 0 excluded: 126 rows to stage, 0 skipped, 0 rejected.');

  // Scrolled to the last file, the summary and Upload are still on screen.
  await upload.file('NBD_63.csv').scrollIntoViewIfNeeded();
  await expect(upload.uploadButton()).toBeInViewport();
  await expect(page.getByTestId('batch-totals')).toBeInViewport();
  await expect(upload.file('NBD_01.csv')).not.toBeInViewport();

  // From "Choose files", Upload comes before the 63 Remove buttons.
  await page.getByTestId('pick-files').focus();
  let presses = 0;
  while (!(await upload.uploadButton().evaluate((el) => el === document.activeElement)) && presses < 10) {
    await page.keyboard.press('Tab');
    presses += 1;
  }
  expect(presses, 'Tab presses from Choose files to Upload').toBeLessThan(10);
  await expectVisibleFocus(page, 'Upload');
  await expect(upload.file('NBD_07.csv').getByRole('button', { name: 'Remove NBD_07.csv' })).toBeVisible();
});

test('the page has a favicon, and the review of a merchant with nothing staged leads to the upload', async ({ page, request }) => {
  const merchant = createMerchant('Empty');
  await openAs(page, createUser('merchant_admin', [merchant]), `/review?merchant=${merchant.id}`);
  const icon = page.locator('link[rel="icon"]');
  const href = await icon.getAttribute('href');
  expect(href).toBeTruthy();
  const answer = await request.get(href!);
  expect(answer.status()).toBe(200);
  expect(answer.headers()['content-type']).toContain('image/svg+xml');

  const empty = page.getByTestId('batch-empty');
  await expect(empty).toHaveText('Nothing is staged for this merchant — Upload files');
  await empty.getByRole('link', { name: 'Upload files' }).click();
  await expect(page).toHaveURL(new RegExp(`/upload\\?merchant=${merchant.id}$`));
  await new AppShell(page).waitForHydration();
  await expect(page.getByTestId('merchant')).toHaveValue(merchant.id);
});
