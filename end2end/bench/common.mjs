// What the browser benchmarks share: the server they start, the sign-in, the renderers' memory
// and the scratch database they drop.
import { execFileSync, spawn } from 'node:child_process';
import pg from 'pg';

export const password = 'bench password, not secret';

/** The server's environment for a scratch database `name` on the local PostgreSQL. */
export function serverEnv(name, port) {
  return {
    ...process.env,
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${name}`,
    APP_ADDR: `127.0.0.1:${port}`,
    METRICS_ADDR: `127.0.0.1:${Number(port) + 1}`,
    RUST_LOG: process.env.RUST_LOG ?? 'warn',
  };
}

/** Starts the server (`SERVER_BIN`) with `env` and waits until it answers. */
export async function startServer(env) {
  const child = spawn(process.env.SERVER_BIN, [], { env, cwd: process.env.REPO_ROOT, stdio: 'inherit' });
  const base = `http://${env.APP_ADDR}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return child; } catch {}
    if (i > 300) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the server started by [`startServer`]. */
export async function stopServer(child) {
  if (!child || child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

/** Signs `email` in on `page` and waits for `path`'s page to be ready. */
export async function signIn(page, base, email, path) {
  await page.goto(`${base}${path}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === path.split('?')[0]);
  // The sign-in leads back to the page, not to its query.
  if (path.includes('?')) await page.goto(`${base}${path}`);
  await page.waitForSelector('body[data-hydrated]');
}

/** The resident memory of Chromium's renderer processes (the page and its workers), in bytes. */
export function rendererBytes() {
  let total = 0;
  for (const line of execFileSync('ps', ['-eo', 'rss=,args='], { encoding: 'utf8' }).split('\n')) {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (match && /chrom/.test(match[2]) && match[2].includes('--type=renderer')) total += Number(match[1]) * 1024;
  }
  return total;
}

/** Drops the scratch database `name`. */
export async function dropDatabase(name) {
  const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

/** Headless Chromium as the benchmarks run it. */
export const chromiumOptions = {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
};
