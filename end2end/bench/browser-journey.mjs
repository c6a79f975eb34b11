// The whole journey through the real page in headless Chromium, on the server benchmark's
// generated batch (random codes, four layouts, ~2 % internal and ~28 % database duplicates,
// against the merchant's existing codes): check the files, upload them, the duplicate check,
// the pre-flight, the insert after YES, verify, the rollback after DELETE — each step timed
// from the page, from the action that starts it to the page showing its end. Prints figures;
// run by `scripts/bench --browser-journey` against a release build. Not a test: it asserts only
// that every count the page shows is the generator's.
// SCALE (0.1; 1.0 = 63 files, 15.5 M rows) and SCHEMA (`original`: the original system's
// tables adopted by the migrations, as on a user's database; or `app`) choose the batch.
import { chromium } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chromiumOptions, dropDatabase, password, rendererBytes, serverEnv, signIn, startServer, stopServer } from './common.mjs';

const scale = process.env.SCALE ?? '0.1';
const schema = process.env.SCHEMA ?? 'original';
const json = process.argv.includes('--json');
const port = process.env.PORT ?? '3195';
const base = `http://127.0.0.1:${port}`;
const databaseName = `code_import_bench_journey_${process.pid}`;
const env = serverEnv(databaseName, port);
const run = (args, input) => execFileSync(process.env.SERVER_BIN, args, { env, input, encoding: 'utf8' });

const dir = mkdtempSync(join(tmpdir(), 'code-import-journey-'));
let child;
const problems = [];
/** Notes a count the page showed that is not the generator's. */
const expectCount = (what, shown, want) => {
  if (shown !== want) problems.push(`${what}: the page showed ${shown}, the generator made ${want}`);
};
/** The number in a text the page shows ("10,929,662 codes" → 10929662). */
const count = (text) => Number(/[\d,]+/.exec(text ?? '')?.[0].replaceAll(',', '') ?? NaN);

try {
  if (!json) console.error(`generating the batch at scale ${scale} (${schema} schema) …`);
  const batch = JSON.parse(run(['bench-batch', '--scale', scale, '--schema', schema, '--dir', dir]).trim().split('\n').pop());
  const { truth } = batch;
  run(['create-user', '--email', 'bench@example.com', '--role', 'merchant_admin', '--merchant', batch.merchant], `${password}\n`);
  child = await startServer(env);
  const browser = await chromium.launch(chromiumOptions);
  const page = await browser.newPage();
  page.setDefaultTimeout(3_600_000);
  let peakRenderer = 0;
  const sampler = setInterval(() => { peakRenderer = Math.max(peakRenderer, rendererBytes()); }, 500);
  await signIn(page, base, 'bench@example.com', '/upload');
  await page.waitForSelector('[data-testid=pick-files]:not([disabled])');
  await page.waitForFunction(() => Number(document.body.dataset.workersReady ?? 0) >= Math.min(navigator.hardwareConcurrency, 4));

  const steps = [];
  /** Times `action` (which starts the step) until `done` resolves (the page shows its end). */
  const step = async (name, rows, action, done) => {
    const started = performance.now();
    await action();
    const result = await done();
    steps.push({ step: name, rows, seconds: (performance.now() - started) / 1000 });
    return result;
  };

  await step('validate (in the page)', truth.staged,
    () => page.getByTestId('pick-files').setInputFiles(batch.files),
    () => page.waitForFunction((files) => {
      const all = [...document.querySelectorAll('[data-testid=file-row] [data-testid=file-status]')];
      return all.length === files && all.every((s) => !s.textContent.startsWith('Checking'));
    }, batch.files.length, { polling: 50 }));
  const statuses = await page.locator('[data-testid=file-row] [data-testid=file-status]').allTextContents();
  if (statuses.some((s) => !s.startsWith('Valid'))) throw new Error(`files not valid: ${statuses.join(' | ')}`);

  const staged = await step('upload', truth.staged,
    () => page.getByRole('button', { name: 'Upload', exact: true }).click(),
    () => page.getByTestId('upload-done').textContent());
  expectCount('rows staged', count(staged), truth.staged);

  // The check starts by itself when the upload ends.
  await step('check duplicates', truth.staged, () => {},
    () => page.getByText(/^Checked at/).waitFor());
  const figure = async (name) => count(await page.getByTestId(`figure-${name}`).locator('.figure-count').textContent());
  expectCount('staged rows', await figure('total'), truth.staged);
  expectCount('clean', await figure('clean'), truth.clean);
  expectCount('internal duplicates only', await figure('internal-only'), truth.internal - truth.both);
  expectCount('database duplicates only', await figure('database-only'), truth.database - truth.both);
  expectCount('both', await figure('both'), truth.both);

  const ready = await step('pre-flight', truth.staged,
    () => page.getByTestId('run-preflight').click(),
    () => page.getByTestId('preflight-ready').textContent());
  expectCount('ready to insert', count(ready), truth.clean);

  await page.getByTestId('insert-confirmation').fill('YES');
  await step('insert (with its pre-flight)', truth.clean,
    () => page.getByTestId('insert').click(),
    () => page.getByTestId('job-status').filter({ hasText: /^completed$/ }).waitFor());
  const job = page.url().split('/').pop();
  expectCount('codes inserted', count(await page.getByTestId('job-inserted').textContent()), truth.clean);

  const verified = await step('verify', truth.clean,
    () => page.getByTestId('verify').click(),
    () => page.getByTestId('verification').textContent());
  if (!verified.includes('they match')) problems.push(`verify: ${verified}`);

  await page.getByTestId('rollback-confirmation').fill('DELETE');
  await step('rollback', truth.clean,
    () => page.getByTestId('rollback').click(),
    () => page.getByTestId('job-status').filter({ hasText: /^rolled_back$/ }).waitFor());
  expectCount('codes rolled back', count(await page.getByTestId('rollback-done').textContent()), truth.clean);
  clearInterval(sampler);
  await browser.close();

  // The database agrees with the page: production as it was before the batch.
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  const left = await db.query('SELECT count(*)::bigint AS n, count(*) FILTER (WHERE import_job_id = $1)::bigint AS job FROM codes', [job]);
  await db.end();
  expectCount('codes in production after the rollback', Number(left.rows[0].n), truth.existing);
  expectCount("the job's codes left after the rollback", Number(left.rows[0].job), 0);

  const journey = steps.filter((s) => ['upload', 'check duplicates', 'pre-flight', 'insert (with its pre-flight)'].includes(s.step))
    .reduce((sum, s) => sum + s.seconds, 0);
  if (json) {
    for (const s of steps) console.log(JSON.stringify({ ...s, seconds: Number(s.seconds.toFixed(3)) }));
    console.log(JSON.stringify({ step: 'journey', seconds: Number(journey.toFixed(3)) }));
    console.log(JSON.stringify({ step: 'browser memory', peak_renderer_mb: Math.round(peakRenderer / 1048576) }));
    console.log(JSON.stringify({ counts_match: problems.length === 0 }));
  } else {
    console.log(`the journey through the page: ${batch.files.length} files, ${truth.staged.toLocaleString('en')} staged rows ` +
      `against ${truth.existing.toLocaleString('en')} existing codes (scale ${scale}, ${schema} schema), headless Chromium`);
    for (const s of steps) {
      console.log(`${s.step.padEnd(30)} ${s.rows.toLocaleString('en').padStart(12)} rows ${s.seconds.toFixed(2).padStart(9)} s ${Math.round(s.rows / s.seconds).toLocaleString('en').padStart(12)} rows/s`);
    }
    console.log(`${'journey (upload → insert)'.padEnd(30)} ${''.padStart(17)} ${journey.toFixed(2).padStart(9)} s`);
    console.log(`renderers' peak resident memory (the page and its workers): ${(peakRenderer / 1048576).toFixed(0)} MiB`);
    console.log(problems.length === 0 ? 'every count the page showed is the generator\'s' : '');
  }
  for (const problem of problems) console.error(`COUNT MISMATCH: ${problem}`);
  if (problems.length) process.exitCode = 1;
} finally {
  await stopServer(child);
  rmSync(dir, { recursive: true, force: true });
  if (process.env.BENCH_KEEP_DB) console.error(`kept database ${databaseName}`);
  else await dropDatabase(databaseName);
}
