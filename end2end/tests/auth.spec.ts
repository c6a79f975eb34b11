import { expect, test } from '@playwright/test';
import { randomUUID } from 'node:crypto';
import { AppShell } from '../pages/AppShell';
import { JobsPage } from '../pages/JobsPage';
import { LoginPage, openAs } from '../pages/LoginPage';
import { createMerchant, createUser, PASSWORD, unique } from '../support/accounts';
import { bigFile, writeFiles } from '../support/csv';
import { withDb } from '../support/db';
import { UploadPage } from '../pages/UploadPage';
import { expectAccessible } from '../support/a11y';

async function insertJob(merchantId: string): Promise<string> {
  const id = randomUUID();
  await withDb((db) =>
    db.query(
      `INSERT INTO codes_import_jobs (id, merchant_id, status, codes_inserted) VALUES ($1, $2, 'completed', 42)`,
      [id, merchantId],
    ),
  );
  return id;
}

test('a visitor is sent to sign in and comes back to the page they asked for', async ({ page }) => {
  const merchant = createMerchant();
  const admin = createUser('merchant_admin', [merchant]);

  await page.goto('/jobs');

  await expect(page).toHaveURL(/\/login\?next=\/jobs$/);
  await new LoginPage(page).signIn(admin);
  await expect(page).toHaveURL(/\/jobs$/);
  await expect(new JobsPage(page).heading()).toBeVisible();
});

test('a wrong password gets a clear message and no session', async ({ page }) => {
  const admin = createUser('merchant_admin', [createMerchant()]);
  const login = new LoginPage(page);
  await page.goto('/login');

  await login.fill({ email: admin.email, password: 'not my password' });

  await expect(login.error()).toHaveText('The email or password is incorrect.');
  await expectAccessible(page, 'the sign-in page with an error');
  await expect(page).toHaveURL(/\/login/);
  await page.goto('/jobs');
  await expect(login.heading()).toBeVisible();
});

test('a merchant admin sees only their own merchant', async ({ page }) => {
  const mine = createMerchant('Mine');
  const theirs = createMerchant('Theirs');
  const myJob = await insertJob(mine.id);
  const theirJob = await insertJob(theirs.id);
  const admin = createUser('merchant_admin', [mine]);

  await openAs(page, admin, '/jobs');

  const shell = new AppShell(page);
  await expect(shell.userEmail()).toHaveText(admin.email);
  await expect(shell.userMerchants()).toHaveText(mine.name);
  const jobs = new JobsPage(page);
  await expect(jobs.row(myJob)).toContainText(mine.name);
  await expect(jobs.row(theirJob)).toHaveCount(0);
  await expect(page.getByText(theirs.name)).toHaveCount(0);
  await expect(shell.nav('Admin')).toHaveCount(0);
});

test('signing out returns to sign in and the back button shows no data', async ({ page }) => {
  const merchant = createMerchant('Private');
  const jobId = await insertJob(merchant.id);
  await openAs(page, createUser('merchant_admin', [merchant]), '/jobs');
  const jobs = new JobsPage(page);
  await expect(jobs.row(jobId)).toBeVisible();

  await new AppShell(page).signOut().click();

  const login = new LoginPage(page);
  await expect(page).toHaveURL(/\/login$/);
  await expect(login.heading()).toBeVisible();
  await page.goBack();
  await expect(login.heading()).toBeVisible();
  await expect(jobs.row(jobId)).toHaveCount(0);
  await expect(page.getByText(merchant.name)).toHaveCount(0);
});

test('ops create a merchant and its admin, who then signs in to it', async ({ page, browser }) => {
  await openAs(page, createUser('ops'), '/admin');
  const name = `Shop ${unique()}`;
  const email = `admin-${unique()}@example.com`;

  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Create merchant' }).click();
  await expect(page.getByTestId('merchants-table')).toContainText(name);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Role', { exact: true }).selectOption('merchant_admin');
  await page.getByLabel('Merchant', { exact: true }).selectOption({ label: name });
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.locator(`[data-testid="user-row"][data-email="${email}"]`)).toContainText(name);
  await expectAccessible(page, 'the admin page with a new merchant and user');

  const other = await browser.newPage();
  await openAs(other, { email, password: PASSWORD }, '/jobs');
  await expect(new AppShell(other).userMerchants()).toHaveText(name);
  await other.close();
});

test('a session that ends while a page is open sends the user to sign in on the next request', async ({ page }) => {
  const admin = createUser('merchant_admin', [createMerchant()]);
  await openAs(page, admin, '/jobs');

  // Only this user's sessions: other tests run alongside.
  await withDb((db) =>
    db.query(
      `DELETE FROM sessions s USING users u
       WHERE u.email = $1 AND s.data -> 'data' ->> 'user_id' = u.id::text`,
      [admin.email],
    ),
  );
  await new JobsPage(page).refresh().click();

  const login = new LoginPage(page);
  await expect(page).toHaveURL(/\/login\?next=\/jobs$/);
  await login.signIn(admin);
  await expect(page).toHaveURL(/\/jobs$/);
});

test('a session that ends during an upload sends the user to sign in, and the upload resumes after', async ({ page }, testInfo) => {
  test.setTimeout(90_000);
  const admin = createUser('merchant_admin', [createMerchant('Expired')]);
  // Six chunks: the page has two of them under way at once, so chunks are still to be sent
  // when the session ends after the first is stored.
  const paths = writeFiles(testInfo.outputPath('files'), { 'expired.csv': bigFile(`E${unique()}`, 600_000) });
  await openAs(page, admin, '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['expired.csv']);
  const firstChunk = page.waitForResponse((r) => /\/chunks\/0$/.test(r.url()) && r.status() === 200);
  await upload.uploadButton().click();
  await firstChunk;

  await withDb((db) =>
    db.query(
      `DELETE FROM sessions s USING users u
       WHERE u.email = $1 AND s.data -> 'data' ->> 'user_id' = u.id::text`,
      [admin.email],
    ),
  );

  await expect(page).toHaveURL(/\/login\?next=\/upload$/, { timeout: 20_000 });
  await new LoginPage(page).signIn(admin);
  await expect(page).toHaveURL(/\/upload$/);
  await expect(page.getByTestId('unfinished-upload')).toContainText('rows are staged from expired.csv');
  await upload.pick(paths);
  await upload.waitUntilChecked(['expired.csv']);
  await upload.uploadButton().click();
  await expect(upload.done()).toHaveText('Staged 600,000 rows from 1 file(s).', { timeout: 60_000 });
});
