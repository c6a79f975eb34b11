import { expect, test } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { expectAccessible } from '../support/a11y';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { completedJob, withDb } from '../support/db';
import { expectFitsPhone, linesOfText, PHONE } from '../support/layout';

test.use({ viewport: PHONE });

test('on a phone every page of the journey fits the screen, Sign out stays on it, and codes stay whole', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  // Long names everywhere a page shows them: the merchant, the file, the user's email.
  const merchant = createMerchant('Northern Beverage Distribution Company');
  const p = `PH${unique()}`.toUpperCase();
  const code = (n: number) => `${p}${String(n).padStart(8, '0')}`;
  await withDb((db) => db.query('INSERT INTO codes (merchant_id, code) VALUES ($1, $2)', [merchant.id, code(1)]));
  const rows = Array.from({ length: 30 }, (_, i) => `${code(i + 1)},SKU-${i},${i * 10},BATCH-2026-11-${i},${i}.50`);
  const paths = writeFiles(testInfo.outputPath('files'), {
    'NBD_promotional_codes_november_2026_batch_01.csv': `code,sku,points,batch_code,price\n${rows.join('\n')}\n${code(2)},SKU,ten,B,1\n`,
  });
  const admin = createUser('merchant_admin', [merchant]);

  await page.goto('/login');
  await new AppShell(page).waitForHydration();
  const { scrollWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth }));
  expect(scrollWidth, 'the sign-in page').toBeLessThanOrEqual(PHONE.width);

  await openAs(page, admin, '/');
  await expectFitsPhone(page, 'the home page');

  await page.goto('/upload');
  await new AppShell(page).waitForHydration();
  await expectFitsPhone(page, 'the upload page');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['NBD_promotional_codes_november_2026_batch_01.csv']);
  await expectFitsPhone(page, 'the upload page with a validated file');
  // The files table scrolls in its own box.
  const box = page.getByRole('region', { name: 'Files' });
  expect(await box.evaluate((el) => el.scrollWidth > el.clientWidth), 'the files table is wider than its box').toBe(true);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 30 rows from 1 file(s).', { timeout: 20_000 });
  // The check starts from this page: let it start before leaving.
  await new ReviewSection(page).waitForFigures();

  await page.goto(`/review?merchant=${merchant.id}`);
  await new AppShell(page).waitForHydration();
  await new ReviewSection(page).waitForFigures();
  await expect(page.getByTestId('preview-row').first()).toBeVisible();
  await expectFitsPhone(page, 'the review with figures and rows');
  const lines = await linesOfText(page, '[data-testid="preview-row"] td.mono');
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.every((n) => n === 1), `lines per code and source: ${lines}`).toBe(true);

  const job = await completedJob(merchant.id, [`${p}-JOB-1`, `${p}-JOB-2`]);
  await page.goto('/jobs');
  await new AppShell(page).waitForHydration();
  await expect(page.locator(`[data-testid="job-row"][data-job-id="${job}"]`)).toBeVisible();
  await expectFitsPhone(page, 'the job history');
  await page.goto(`/jobs/${job}`);
  await new AppShell(page).waitForHydration();
  await expect(page.getByTestId('job-status')).toHaveText('completed');
  await expectFitsPhone(page, 'a job');

  await page.goto('/no-such-page');
  await new AppShell(page).waitForHydration();
  await expectFitsPhone(page, 'the page-not-found page');
  await expectAccessible(page, 'the page-not-found page');

  // Sign out works from the phone's top bar.
  await page.goto('/');
  await new AppShell(page).waitForHydration();
  await new AppShell(page).signOut().click();
  await expect(page).toHaveURL(/\/login$/);
});

test('on a phone the admin page fits the screen', async ({ page }) => {
  createMerchant('A merchant with a rather long name for a phone');
  createUser('merchant_admin', [createMerchant('Another merchant')]);
  await openAs(page, createUser('ops'), '/admin');
  await expect(page.getByTestId('users-table')).toBeVisible();
  await expectFitsPhone(page, 'the admin page');
});
