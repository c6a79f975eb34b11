// The browser leg of the benchmark: one generated file of ROWS rows through the real page in
// headless Chromium — WASM validation rate, then end-to-end upload rate. Prints figures; run
// by scripts/bench --browser against a release build. Not a test: it asserts only the counts.
// Variants, validated in the same run on pages of their own: the same rows with an accent in
// every name (`Gift cärd`), in UTF-8 and in Windows-1252 (chosen on the page, then decoded while
// validated), and under a header that needs a mapping; and the plain rows checked by one worker
// (`?workers=1`) and on the page's own thread (`?workers=0`), against the page's default (a
// worker per core). `--rounds N` (3): each variant N times, interleaved; the ratios compare best
// times.
// `--link MBIT --latency MS`: the upload runs over Chromium's network emulation (DevTools
// `Network.emulateNetworkConditions`, both directions at MBIT Mbit/s, MS ms added per request);
// either alone leaves the other unlimited. The bytes on the wire are the chunk bodies the server received.
// `--shaper kernel` (as root): the rate is the kernel's instead (`tbf` on both ends of a veth
// pair, Chromium in a network namespace of its own, the server on the pair's other address),
// and only the latency is Chromium's: a second opinion on the emulation, from a real queue.
// `--only-plain`: the plain files validated once and uploaded, no variants (for a full batch).
// `--threads`: after each validation and the upload, Chromium's cores by thread (process type
// and thread name, from /proc), the busiest first.
// The renderers' memory (resident, all of Chromium's renderer processes: the tab and its
// workers) is sampled every half second; its peak is printed.
// The upload's peer, in the same run: `server bench-stage` stages the same files through the
// server's chunk path (no browser, no HTTP); the ratio of the rates is printed, with the CPU
// seconds the server, Chromium and PostgreSQL spent during the browser's upload.
import { chromium } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chromiumOptions, dropDatabase, password, rendererBytes, serverEnv, signIn, startServer, stopServer } from './common.mjs';

const rows = Number(process.env.ROWS ?? 1_000_000);
// Split over several files, as real batches are (the page sends two files at a time).
const fileCount = Number(process.env.FILES ?? 4);
const server = process.env.SERVER_BIN;
const port = process.env.PORT ?? '3191';
const databaseName = `code_import_bench_browser_${process.pid}`;
const env = serverEnv(databaseName, port);
const database = env.DATABASE_URL;
const metricsAddr = env.METRICS_ADDR;
const option = (name) => {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = Number(process.argv[at + 1]);
  if (!(value >= 0)) throw new Error(`${name} takes a number`);
  return value;
};
const linkMbit = option('--link');
const latencyMs = option('--latency');
const shaperAt = process.argv.indexOf('--shaper');
const shaper = shaperAt < 0 ? 'chromium' : process.argv[shaperAt + 1];
if (!['chromium', 'kernel'].includes(shaper)) throw new Error('--shaper is chromium or kernel');
const link = shaper === 'kernel' && linkMbit !== undefined ? kernelLink(linkMbit) : null;
if (link) Object.assign(env, { APP_ADDR: `${link.serverAddress}:${port}`, APP_ORIGIN: `http://${link.serverAddress}:${port}` });
const base = `http://${env.APP_ADDR}`;
const onlyPlain = process.argv.includes('--only-plain');
// `--workers N`: the page that validates the plain files and uploads them asks for N workers.
const uploadQuery = option('--workers') === undefined ? '' : `?workers=${option('--workers')}`;

/** A link of `mbit` Mbit/s each way, shaped by the kernel: a network namespace for Chromium,
 * joined to this one by a veth pair with `tbf` on both ends. Returns the server's address on
 * it, a Chromium that runs in the namespace, and what removes them. */
function kernelLink(mbit) {
  const name = `cibench${process.pid % 100000}`;
  const [outside, inside] = [`${name}h`, `${name}n`];
  const run = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    try { run('ip', 'netns', 'delete', name); } catch {}
  };
  // Up to 2 ms of the link's bytes at once, and a queue of at most 50 ms: a line, not a burst.
  const tbf = ['root', 'tbf', 'rate', `${mbit}mbit`, 'burst', `${Math.max(16, Math.ceil(mbit / 4))}kb`, 'latency', '50ms'];
  try {
    run('ip', 'netns', 'add', name);
    run('ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
    run('ip', 'link', 'set', inside, 'netns', name);
    run('ip', 'addr', 'add', '10.231.0.1/30', 'dev', outside);
    run('ip', 'link', 'set', outside, 'up');
    run('ip', '-n', name, 'addr', 'add', '10.231.0.2/30', 'dev', inside);
    run('ip', '-n', name, 'link', 'set', inside, 'up');
    run('ip', '-n', name, 'link', 'set', 'lo', 'up');
    run('tc', 'qdisc', 'add', 'dev', outside, ...tbf);
    run('ip', 'netns', 'exec', name, 'tc', 'qdisc', 'add', 'dev', inside, ...tbf);
  } catch (error) {
    remove();
    throw new Error(`--shaper kernel needs root, ip and tc: ${error.message}`);
  }
  const chromiumPath = join(mkdtempSync(join(tmpdir(), 'bench-link-')), 'chromium');
  writeFileSync(chromiumPath, `#!/bin/sh\nexec ip netns exec ${name} ${chromiumOptions.executablePath} "$@"\n`, { mode: 0o755 });
  process.on('exit', remove);
  return { serverAddress: '10.231.0.1', chromiumPath, remove };
}

/** A process's or thread's name and CPU seconds so far, from its `/proc/…/stat`; null if gone. */
function cpuOf(statPath) {
  let stat;
  try { stat = readFileSync(statPath, 'utf8'); } catch { return null; }
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // utime and stime, in clock ticks (100 a second on Linux).
  return { name: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(fields[11]) + Number(fields[12])) / 100 };
}
/** CPU seconds used so far by the processes of each kind: the server, Chromium, PostgreSQL. */
function cpuSeconds() {
  const totals = { server: 0, chromium: 0, postgres: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cpu = cpuOf(`/proc/${pid}/stat`);
    if (!cpu) continue;
    const { name, seconds } = cpu;
    const kind = Number(pid) === child?.pid ? 'server' : /chrom/.test(name) ? 'chromium' : name === 'postgres' ? 'postgres' : null;
    if (kind) totals[kind] += seconds;
  }
  return totals;
}
/** CPU seconds used so far by each of Chromium's threads, summed by process type and thread
 * name (`renderer: DedicatedWorker thread`, `browser: ThreadPoolForeg`, …): where its cores go. */
function chromiumThreadSeconds() {
  const totals = {};
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmdline;
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (!/chrom/.test(cmdline.split('\0')[0])) continue;
    const type = /--type=([a-z-]+)/.exec(cmdline)?.[1] ?? 'browser';
    let tasks;
    try { tasks = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tasks) {
      const cpu = cpuOf(`/proc/${pid}/task/${tid}/stat`);
      if (!cpu) continue;
      const key = `${type}: ${cpu.name.replace(/[0-9]+$/, '')}`;
      totals[key] = (totals[key] ?? 0) + cpu.seconds;
    }
  }
  return totals;
}
/** The threads that used at least 2 % of `seconds` between two readings, busiest first. */
function busiestThreads(before, after, seconds) {
  return Object.entries(after)
    .map(([key, s]) => [key, (s - (before[key] ?? 0)) / seconds])
    .filter(([, cores]) => cores >= 0.02)
    .sort((a, b) => b[1] - a[1])
    .map(([key, cores]) => `${key} ${cores.toFixed(2)}`)
    .join('; ');
}
const showThreads = process.argv.includes('--threads');
let peakRenderer = 0;
const sampler = setInterval(() => { peakRenderer = Math.max(peakRenderer, rendererBytes()); }, 500);

const run = (args, input) => execFileSync(server, args, { env, input, encoding: 'utf8' });
const merchantOut = run(['create-merchant', '--name', 'Bench']);
const merchant = /\(([0-9a-f-]{36})\)/.exec(merchantOut)[1];
run(['create-user', '--email', 'bench@example.com', '--role', 'merchant_admin', '--merchant', merchant], `${password}\n`);

const dir = mkdtempSync(join(tmpdir(), 'code-import-bench-'));
let bytes = 0;
// Codes as the merchants' are, as the server's benchmark draws them: random, 10 to 16 characters
// of Crockford's base32 — each row's from its number alone, so every variant has the same codes.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function code(i) {
  let state = Math.imul(i, 0x9e3779b1) ^ 0x5eed;
  const next = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const length = 10 + (next() % 7);
  let text = '';
  for (let word = next(), bits = 32; text.length < length; word >>>= 5, bits -= 5) {
    if (bits < 5) [word, bits] = [next(), 32];
    text += ALPHABET[word & 31];
  }
  return text;
}

/** The batch's files, named `<tag>_NN.csv`, each row's name `name(i)`, written as `encode` says. */
function files(tag, name, encode, header = 'code,serial,sku,points,sku_name,batch_code,price') {
  const paths = [];
  for (let f = 0; f < fileCount; f++) {
    const lines = [header];
    for (let i = f + 1; i <= rows; i += fileCount) {
      lines.push(`${code(i)},S${i},SKU-${i % 50},${i % 500},${name(i)},B1,${i % 90}.50`);
    }
    const data = encode(lines.join('\n') + '\n');
    const path = join(dir, `${tag}_${String(f + 1).padStart(2, '0')}.csv`);
    writeFileSync(path, data);
    paths.push(path);
    if (tag === 'bench') bytes += data.length;
  }
  return paths;
}
const paths = files('bench', (i) => `Gift card ${i % 50}`, (t) => Buffer.from(t, 'utf8'));
// The plain file's names with one letter accented: as many characters, so the Windows-1252 file
// has as many bytes as the plain one (the UTF-8 one one more a row).
const accented = (i) => `Gift cärd ${i % 50}`;
const utf8Paths = onlyPlain ? [] : files('utf8', accented, (t) => Buffer.from(t, 'utf8'));
const latinPaths = onlyPlain ? [] : files('latin', accented, (t) => Buffer.from(t, 'latin1'));
// The plain rows under a header in the merchant's own words: one mapping for the four files.
const mappedPaths = onlyPlain ? [] : files('mapped', (i) => `Gift card ${i % 50}`, (t) => Buffer.from(t, 'utf8'),
  'Voucher Code,Serial No,Product SKU,Loyalty Points,Product Name,Batch,Amount');

let child;
try {
  child = await startServer(env);
  const browser = await chromium.launch(link ? { ...chromiumOptions, executablePath: link.chromiumPath } : chromiumOptions);
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, base, 'bench@example.com', `/upload${uploadQuery}`);
  await page.waitForSelector('[data-testid=pick-files]:not([disabled])');

  /** Until the page's workers have loaded (they start as the page opens, before a file is
   * chosen, as a user meets them): as many as `?workers=` asks, else one per core, at most 4. */
  async function workersLoaded(on, query) {
    const asked = /workers=(\d+)/.exec(query)?.[1];
    await on.waitForFunction((asked) => {
      const want = Math.min(asked === undefined ? navigator.hardwareConcurrency : Number(asked), 4);
      return Number(document.body.dataset.workersReady ?? 0) >= want;
    }, asked, { timeout: 60_000 });
  }
  await workersLoaded(page, uploadQuery);
  /** Seconds until every file listed on `on` is checked, and then every status. */
  const checked = async (on, started) => {
    await on.waitForFunction((count) => {
      const all = [...document.querySelectorAll('[data-testid=file-row] [data-testid=file-status]')];
      return all.length === count && all.every((s) => !s.textContent.startsWith('Checking'));
    }, fileCount, { timeout: 600_000, polling: 20 });
    const seconds = (performance.now() - started) / 1000;
    return [seconds, await on.locator('[data-testid=file-row] [data-testid=file-status]').allTextContents()];
  };
  /** A page of its own, signed in (the same session), with the upload form ready. */
  const another = async (query = '') => {
    const other = await context.newPage();
    await other.goto(`${base}/upload${query}`);
    await other.waitForSelector('body[data-hydrated]');
    await other.waitForSelector('[data-testid=pick-files]:not([disabled])');
    await workersLoaded(other, query);
    return other;
  };

  /** Seconds to validate `paths` on `on` (all of them Valid, else the run stops). */
  // Chromium's CPU seconds per second of each validation, by variant: how many cores it kept busy.
  const busyCores = {};
  const validate = async (on, paths, what) => {
    const cpuBefore = cpuSeconds().chromium;
    const threadsBefore = showThreads ? chromiumThreadSeconds() : null;
    const started = performance.now();
    await on.getByTestId('pick-files').setInputFiles(paths);
    const [seconds, statuses] = await checked(on, started);
    (busyCores[what] ??= []).push((cpuSeconds().chromium - cpuBefore) / seconds);
    if (showThreads) console.log(`  ${what}, ${seconds.toFixed(2)} s, Chromium's cores by thread: ${busiestThreads(threadsBefore, chromiumThreadSeconds(), seconds)}`);
    if (statuses.some((s) => s !== 'Valid')) throw new Error(`${what}: ${statuses}`);
    return seconds;
  };
  const forgetMappings = async () => {
    const db = new pg.Client({ connectionString: database });
    await db.connect();
    await db.query('DELETE FROM column_mappings');
    await db.end();
  };
  /** `run` on a page of its own, closed after. */
  const onItsOwnPage = async (run, query) => {
    const other = await another(query);
    try {
      return await run(other);
    } finally {
      await other.close();
    }
  };
  const variants = {
    plain: (on) => validate(on, paths, 'validation'),
    'one worker': (on) => validate(on, paths, 'one worker'),
    'on the page': (on) => validate(on, paths, 'on the page'),
    accented: (on) => validate(on, utf8Paths, 'accented UTF-8'),
    // Not UTF-8: each file waits for its encoding; the time runs from the choices to the end.
    cp1252: async (on) => {
      await on.getByTestId('pick-files').setInputFiles(latinPaths);
      const [, asking] = await checked(on, performance.now());
      if (asking.some((s) => s !== 'Excluded')) throw new Error(`Windows-1252 before the choice: ${asking}`);
      const selects = on.getByLabel('Encoding');
      const started = performance.now();
      for (let i = 0; i < fileCount; i++) await selects.nth(i).selectOption({ label: 'Windows-1252' });
      const [seconds, statuses] = await checked(on, started);
      if (statuses.some((s) => s !== 'Valid')) throw new Error(`Windows-1252: ${statuses}`);
      return seconds;
    },
    // Header in other words: mapped on the page, then validated with the mapping.
    mapped: async (on) => {
      // As a first batch of that layout: the mapping an earlier round saved is forgotten.
      await forgetMappings();
      await on.getByTestId('pick-files').setInputFiles(mappedPaths);
      await checked(on, performance.now());
      const started = performance.now();
      await on.getByTestId('apply-mapping').click();
      const [seconds, statuses] = await checked(on, started);
      if (statuses.some((s) => s !== 'Valid')) throw new Error(`mapped: ${statuses}`);
      return seconds;
    },
  };
  // Each variant `rounds` times, interleaved, each on a fresh page (the first plain run on the
  // page that uploads after): a variant's best time against the plain file's best, so that a
  // pause of the machine in one run does not decide a ratio.
  const queries = { 'one worker': '?workers=1', 'on the page': '?workers=0' };
  const rounds = onlyPlain ? 1 : option('--rounds') ?? 3;
  const times = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(variants)) {
      if (onlyPlain && name !== 'plain') continue;
      times[name].push(round === 0 && name === 'plain' ? await run(page) : await onItsOwnPage(run, queries[name]));
    }
  }
  const best = (name) => (times[name].length ? Math.min(...times[name]) : NaN);
  const validateSeconds = best('plain');
  const utf8Seconds = best('accented');
  const latinSeconds = best('cp1252');
  const mappedSeconds = best('mapped');
  const oneWorkerSeconds = best('one worker');
  const onPageSeconds = best('on the page');
  let started;

  if (linkMbit !== undefined || latencyMs !== undefined) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const bytesPerSecond = linkMbit === undefined || link ? -1 : (linkMbit * 1e6) / 8;
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: latencyMs ?? 0,
      downloadThroughput: bytesPerSecond,
      uploadThroughput: bytesPerSecond,
    });
  }
  started = performance.now();
  const cpuBefore = cpuSeconds();
  const threadsBefore = showThreads ? chromiumThreadSeconds() : null;
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.getByTestId('upload-done').waitFor({ timeout: 600_000 });
  const uploadSeconds = (performance.now() - started) / 1000;
  if (showThreads) console.log(`  upload, ${uploadSeconds.toFixed(2)} s, Chromium's cores by thread: ${busiestThreads(threadsBefore, chromiumThreadSeconds(), uploadSeconds)}`);
  const cpuAfter = cpuSeconds();
  // What each kind of process spent of the machine's cores during the upload (PostgreSQL's
  // counts only processes that ended or still run: a backend that exited mid-upload is missed).
  const uploadCpu = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, Number((cpuAfter[k] - cpuBefore[k]).toFixed(2))]));
  clearInterval(sampler);
  peakRenderer = Math.max(peakRenderer, rendererBytes());
  // The chunk bodies the server received (resent ones too), from its own counter.
  const metrics = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  const wireBytes = Number(/^upload_bytes_received_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  // How long the server spent storing chunks (each request's own time, summed over requests).
  const chunkSeconds = Number(/^upload_chunk_seconds_sum ([0-9.e+-]+)/m.exec(metrics)?.[1] ?? NaN);
  const chunkCount = Number(/^upload_chunk_seconds_count (\d+)/m.exec(metrics)?.[1] ?? NaN);
  await browser.close();
  // The peer: the server's own staging of the same files (through the chunk path, without a
  // browser or HTTP), in the same run, on the same database.
  const serverStaging = JSON.parse(run(['bench-stage', '--json', ...paths]).trim().split('\n').pop());

  const db = new pg.Client({ connectionString: database });
  await db.connect();
  const staged = Number((await db.query('SELECT count(*) FROM codes_check_temp')).rows[0].count);
  await db.end();
  const json = process.argv.includes('--json');
  const report = (step, seconds) =>
    Number.isNaN(seconds) ? undefined : json
      ? console.log(JSON.stringify({ step, rows, seconds: Number(seconds.toFixed(3)), floor_seconds: null, peak_rss_mb: null }))
      : console.log(`${step.padEnd(28)} ${String(rows).padStart(10)} rows ${seconds.toFixed(2).padStart(8)} s ${Math.round(rows / seconds).toLocaleString('en').padStart(12)} rows/s`);
  if (!json) {
    console.log(`browser leg: ${fileCount} files, ${(bytes / 1048576).toFixed(0)} MiB, headless Chromium`);
    console.log(`validation, best of ${rounds} interleaved rounds; each round's seconds:`);
    for (const [name, list] of Object.entries(times)) console.log(`  ${name.padEnd(9)} ${list.map((t) => t.toFixed(2)).join('  ')}`);
  }
  report('browser validate (WASM)', validateSeconds);
  report('browser validate, one worker', oneWorkerSeconds);
  report('browser validate, on the page', onPageSeconds);
  report('browser validate, accented', utf8Seconds);
  report('browser validate, cp1252', latinSeconds);
  report('browser validate, mapped', mappedSeconds);
  if (!json && !onlyPlain) {
    console.log(`Windows-1252 rate / plain UTF-8 rate: ${(validateSeconds / latinSeconds).toFixed(2)}; / the same text in UTF-8: ${(utf8Seconds / latinSeconds).toFixed(2)}`);
    console.log(`mapped rate / plain UTF-8 rate: ${(validateSeconds / mappedSeconds).toFixed(2)}`);
    console.log(`workers' rate / one worker's: ${(oneWorkerSeconds / validateSeconds).toFixed(2)}; / on the page's thread: ${(onPageSeconds / validateSeconds).toFixed(2)}`);
    const cores = (what) => (busyCores[what] ?? []).map((c) => c.toFixed(2)).join('  ');
    console.log(`Chromium's busy cores while validating (CPU s per s, each round): workers ${cores('validation')}; one worker ${cores('one worker')}; on the page ${cores('on the page')} (of ${cpus().length})`);
  }
  report('browser upload (end to end)', uploadSeconds);
  report('server staging (same files)', serverStaging.seconds);
  if (json) {
    console.log(JSON.stringify({ step: 'browser upload / server staging', rate_ratio: Number((serverStaging.seconds / uploadSeconds).toFixed(3)), cpu_seconds: uploadCpu, chunks: chunkCount, chunk_seconds: Number(chunkSeconds.toFixed(3)) }));
  } else {
    console.log(`browser upload rate / server staging rate: ${(serverStaging.seconds / uploadSeconds).toFixed(2)}`);
    console.log(`  CPU during the upload (s): ${Object.entries(uploadCpu).map(([k, v]) => `${k} ${v}`).join(', ')}; wall ${uploadSeconds.toFixed(2)} s × ${cpus().length} cores`);
    console.log(`  the server stored ${chunkCount} chunks in ${chunkSeconds.toFixed(2)} s of request time (${(chunkSeconds / uploadSeconds).toFixed(2)} chunks' worth at once on average)`);
  }
  if (json) console.log(JSON.stringify({ step: 'browser memory', peak_renderer_mb: Math.round(peakRenderer / 1048576) }));
  else console.log(`renderers' peak resident memory (the page and its workers): ${(peakRenderer / 1048576).toFixed(0)} MiB`);
  const rate = linkMbit === undefined ? 'unlimited' : `${linkMbit} Mbit/s (${link ? "the kernel's tbf" : "Chromium's emulation"})`;
  // What the CSV files alone would take on the link: their bits at its rate, plus one latency.
  const rawSeconds = linkMbit === undefined ? null : (bytes * 8) / (linkMbit * 1e6) + (latencyMs ?? 0) / 1000;
  const network = {
    step: 'browser network',
    link_mbit: linkMbit ?? null,
    shaper: linkMbit === undefined ? null : shaper,
    latency_ms: latencyMs ?? 0,
    csv_bytes: bytes,
    wire_bytes: wireBytes,
    wire_ratio: Number((wireBytes / bytes).toFixed(3)),
    upload_seconds: Number(uploadSeconds.toFixed(3)),
    raw_csv_seconds: rawSeconds === null ? null : Number(rawSeconds.toFixed(3)),
  };
  if (json) console.log(JSON.stringify(network));
  else {
    console.log(`network: ${rate}, ${latencyMs ?? 0} ms latency`);
    console.log(`  CSV ${bytes.toLocaleString('en')} bytes, on the wire ${wireBytes.toLocaleString('en')} bytes: ${network.wire_ratio}× the CSV`);
    if (rawSeconds !== null) {
      console.log(`  upload ${uploadSeconds.toFixed(2)} s; the raw CSV alone on this link ${rawSeconds.toFixed(2)} s: ${(uploadSeconds / rawSeconds).toFixed(2)}×`);
    }
  }
  if (staged !== rows) {
    console.error(`staged ${staged} rows, expected ${rows}`);
    process.exitCode = 1;
  }
} finally {
  clearInterval(sampler);
  await stopServer(child);
  await dropDatabase(databaseName);
  link?.remove();
}
