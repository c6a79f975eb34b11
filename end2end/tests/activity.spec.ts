import { expect, test, type Page } from '@playwright/test';
import { AppShell } from '../pages/AppShell';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { expectAccessible } from '../support/a11y';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { completedJob, holdCodes, sideDatabase } from '../support/db';
import { freePort, ServerProcess } from '../support/server';

/** Records, in the page, every notification it shows and every time it asks for permission (the
 * browser's own Notification still does the work); `tabHidden` puts the tab out of view, as when
 * the user looks at another one (a headless page is always in view). */
async function recordNotifications(page: Page): Promise<void> {
  await page.addInitScript(() => {
    let hidden = false;
    (window as any).__setTabHidden = (value: boolean) => {
      hidden = value;
    };
    Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible'), configurable: true });
    Object.defineProperty(document, 'hidden', { get: () => hidden, configurable: true });
    const Real = window.Notification;
    const seen = { shown: [] as { title: string; body?: string }[], asked: 0 };
    (window as any).__notifications = seen;
    class Recorded extends Real {
      constructor(title: string, options?: NotificationOptions) {
        super(title, options);
        seen.shown.push({ title, body: options?.body });
      }
      static requestPermission(...args: any[]) {
        seen.asked += 1;
        return (Real.requestPermission as any).apply(Real, args);
      }
    }
    (window as any).Notification = Recorded;
  });
}

const tabHidden = (page: Page, hidden: boolean) => page.evaluate((h) => (window as any).__setTabHidden(h), hidden);

const notifications = (page: Page) => page.evaluate(() => (window as any).__notifications as { shown: { title: string; body?: string }[]; asked: number });

test('every page has a title of its own', async ({ page }) => {
  const merchant = createMerchant('Titles');
  const job = await completedJob(merchant.id, [`TT${unique()}-1`]);
  await page.goto('/login');
  await expect(page).toHaveTitle('Sign in · Code Import');
  await openAs(page, createUser('ops'), '/');
  await expect(page).toHaveTitle('Code Import');
  for (const [path, title] of [
    ['/upload', 'Upload · Code Import'],
    [`/review?merchant=${merchant.id}`, 'Review · Code Import'],
    ['/jobs', 'Jobs · Code Import'],
    [`/jobs/${job}`, `Job ${job.slice(0, 8)} · Code Import`],
    ['/admin', 'Admin · Code Import'],
    ['/no-such-page', 'Page not found · Code Import'],
  ]) {
    await page.goto(path);
    await new AppShell(page).waitForHydration();
    await expect(page, path).toHaveTitle(title);
  }
  // Moving in the page (no reload) changes the title too.
  await page.goto('/');
  await new AppShell(page).waitForHydration();
  await new AppShell(page).nav('Jobs').click();
  await expect(page).toHaveTitle('Jobs · Code Import');
});

test('permission to notify is asked on the user\'s click on Upload, not on opening the page', async ({ page }, testInfo) => {
  await recordNotifications(page);
  const merchant = createMerchant('Ask');
  const paths = writeFiles(testInfo.outputPath('files'), { 'a.csv': `code\nAK${unique()}-1\n` });
  await openAs(page, createUser('merchant_admin', [merchant]), '/upload');
  const upload = new UploadPage(page);
  await upload.pick(paths);
  await upload.waitUntilChecked(['a.csv']);
  expect((await notifications(page)).asked).toBe(0);
  await upload.uploadButton().click();
  await expect(upload.done()).toBeVisible({ timeout: 20_000 });
  expect((await notifications(page)).asked).toBe(1);
});

test('the title shows an upload, a check and an insert while they run, and a notification says when each has finished unless the tab is in view', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  // A database of its own: the lock on `codes` that holds the check and the insert up would
  // hold up the tests running beside this one.
  const database = sideDatabase('activity');
  const server = new ServerProcess(await freePort(), database);
  await server.start();
  let lock: { release(): Promise<void> } | undefined;
  try {
    await page.context().grantPermissions(['notifications'], { origin: server.url });
    await recordNotifications(page);
    const merchant = createMerchant('Activity', database);
    const p = `AC${unique()}`;
    const paths = writeFiles(testInfo.outputPath('files'), { 'codes.csv': `code\n${p}-1\n${p}-2\n${p}-2\n` });
    await openAs(page, createUser('merchant_admin', [merchant], database), `${server.url}/upload`);
    await expect(page).toHaveTitle('Upload · Code Import');
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['codes.csv']);

    // The chunk is held back a moment (a slow network), and the check waits for the lock.
    await page.route('**/api/uploads/**', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      await route.continue();
    });
    lock = await holdCodes(database);
    // The user looks at another tab while the upload runs.
    await tabHidden(page, true);
    await upload.uploadButton().click();
    await expect(page).toHaveTitle(/^Uploading \d+% · Upload · Code Import$/);
    await expectAccessible(page, 'an upload under way');
    await expect(upload.done()).toHaveText('Staged 3 rows from 1 file(s).', { timeout: 20_000 });
    await expect(page).toHaveTitle(/^Checking duplicates.* · Upload · Code Import$/, { timeout: 20_000 });
    expect((await notifications(page)).shown).toEqual([
      { title: 'Upload finished', body: 'Staged 3 rows from 1 file(s). The duplicate check has started.' },
    ]);

    // Back on the tab, the user watches the check end: the page says it, no notification does.
    await tabHidden(page, false);
    await lock.release();
    lock = undefined;
    await expect(page.getByTestId('check-status')).toHaveText(/Checked at/, { timeout: 30_000 });
    await expect(page).toHaveTitle('Upload · Code Import');
    await expect(page.getByTestId('figure-total')).toContainText('3');
    expect((await notifications(page)).shown).toHaveLength(1);

    // Elsewhere again for the insert.
    await tabHidden(page, true);

    await page.getByTestId('run-preflight').click();
    await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 2 clean codes.');
    await page.getByTestId('insert-confirmation').fill('YES');
    lock = await holdCodes(database);
    await page.getByTestId('insert').click();
    await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    const job = page.url().split('/').pop()!;
    await expect(page).toHaveTitle(`Insert 1 of 2: pre-flight · Job ${job.slice(0, 8)} · Code Import`);
    await lock.release();
    lock = undefined;
    await expect(page.getByTestId('job-status')).toHaveText('completed', { timeout: 30_000 });
    await expect(page).toHaveTitle(`Job ${job.slice(0, 8)} · Code Import`);
    await expect.poll(async () => (await notifications(page)).shown.at(-1)).toEqual({
      title: 'Insert finished',
      body: '2 codes inserted. Verify or roll back on the job\'s page.',
    });
  } finally {
    await lock?.release();
    await server.kill();
  }
});
