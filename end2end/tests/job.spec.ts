import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { JobPage } from '../pages/JobPage';
import { ReviewSection } from '../pages/ReviewSection';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { writeFiles } from '../support/csv';
import { codesOfJob, completedJob, holdCodes, sideDatabase, withDb } from '../support/db';
import { freePort, ServerProcess } from '../support/server';
import { expectAccessible } from '../support/a11y';

test('while the insert runs, the job page shows the expected count, the phase and a ticking time, and offers no verify', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  // A database of its own: the lock on `codes` that holds the insert up would hold up the
  // tests running beside this one.
  const database = sideDatabase('running');
  const server = new ServerProcess(await freePort(), database);
  await server.start();
  let lock: { release(): Promise<void> } | undefined;
  try {
    const merchant = createMerchant('Running', database);
    const p = `R${unique()}`;
    const paths = writeFiles(testInfo.outputPath('files'), { 'codes.csv': `code\n${p}-1\n${p}-2\n${p}-3\n${p}-4\n` });
    await openAs(page, createUser('merchant_admin', [merchant], database), `${server.url}/upload`);
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['codes.csv']);
    await upload.uploadButton().click();
    await expect(upload.done()).toHaveText('Staged 4 rows from 1 file(s).', { timeout: 20_000 });
    await new ReviewSection(page).waitForFigures();
    await page.getByTestId('run-preflight').click();
    await expect(page.getByTestId('preflight-ready')).toHaveText('Ready to insert 4 clean codes.');
    await page.getByTestId('insert-confirmation').fill('YES');

    // The insert's pre-flight reads `codes`: it waits for this lock, so the job stays running.
    lock = await holdCodes(database);
    await page.getByTestId('insert').click();
    await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    const jobId = page.url().split('/').pop()!;
    const job = new JobPage(page);
    await expect(job.status()).toHaveText('validating');
    await expect(job.expected()).toHaveText('4');
    await expect(job.phase()).toHaveText('Pre-flight: re-checking database duplicates and fields');
    await expect(job.progress()).toContainText('Step 1 of 2: the pre-flight re-checks 4 codes against production');
    await expect(job.elapsed()).toHaveText(/^\d+ s$/);
    const shown = await job.elapsed().innerText();
    await expect(job.elapsed()).not.toHaveText(shown);
    await expect(job.verifyButton()).toHaveCount(0);
    await expectAccessible(page, 'a running insert');

    await lock.release();
    lock = undefined;
    await expect(job.status()).toHaveText('completed', { timeout: 30_000 });
    await expect(job.inserted()).toHaveText('4');
    await expect(job.phase()).toHaveCount(0);
    await job.verify();
    await expect(job.verification()).toHaveText('Recorded 4 · found in production 4 · they match.');
    expect(await codesOfJob(jobId, database)).toBe(4);
  } finally {
    await lock?.release();
    await server.kill();
  }
});

test('after a rollback the page says how many codes it deleted and verify finds none, as expected', async ({ page }) => {
  const merchant = createMerchant('Rollback');
  const p = `B${unique()}`;
  const jobId = await completedJob(merchant.id, [1, 2, 3, 4].map((n) => `${p}-${n}`));
  await openAs(page, createUser('merchant_admin', [merchant]), `/jobs/${jobId}`);
  const job = new JobPage(page);
  await expect(job.claimed()).toHaveText('0 claimed of 4 codes: a rollback deletes every code this job inserted, in one transaction.');

  await job.rollBack();
  await expect(job.status()).toHaveText('rolled_back');
  await expect(job.rolledBack()).toHaveText('Rolled back: 4 codes deleted.');
  await expect(job.rollbackButton()).toHaveCount(0);
  await job.verify();
  await expect(job.verification()).toHaveText('Rolled back: 0 codes remain, as expected.');
  await expect(job.verification()).toHaveClass('success');
  expect(await codesOfJob(jobId)).toBe(0);

  // Reopened, the record still says it.
  await job.open(jobId);
  await expect(job.rolledBack()).toHaveText('Rolled back: 4 codes deleted.');
});

test('a job with claimed codes says how many before anything is typed, and offers no rollback', async ({ page }) => {
  const merchant = createMerchant('Claimed');
  const p = `K${unique()}`;
  const jobId = await completedJob(merchant.id, [1, 2, 3, 4, 5].map((n) => `${p}-${n}`));
  await withDb((db) =>
    db.query('UPDATE codes SET claimed = true WHERE id IN (SELECT id FROM codes WHERE import_job_id = $1 ORDER BY code LIMIT 3)', [jobId]),
  );
  await openAs(page, createUser('merchant_admin', [merchant]), `/jobs/${jobId}`);
  const job = new JobPage(page);

  await expect(job.claimed()).toContainText('3 claimed of 5 codes by customers: a rollback would be refused');
  await expectAccessible(page, 'a completed job with claimed codes');
  await expect(job.confirmation()).toHaveCount(0);
  await expect(job.rollbackButton()).toHaveCount(0);
  await expect(job.status()).toHaveText('completed');
  expect(await codesOfJob(jobId)).toBe(5);
});
