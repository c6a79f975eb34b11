import { defineConfig } from '@playwright/test';
import { randomBytes } from 'node:crypto';

// One fresh database per run, created by the server itself at start-up and dropped in
// globalTeardown. Set here, before the workers start, so that they all see the same one.
process.env.E2E_DATABASE_URL ??=
  `postgres://postgres@127.0.0.1:5432/code_import_e2e_${randomBytes(6).toString('hex')}`;
const port = process.env.E2E_PORT ?? '3107';
const baseURL = `http://127.0.0.1:${port}`;
const serverBin = process.env.SERVER_BIN;
if (!serverBin) {
  throw new Error('SERVER_BIN must name the built server binary (scripts/test sets it)');
}

export default defineConfig({
  testDir: './tests',
  // Each test makes its own merchants and users, so tests may run side by side.
  fullyParallel: true,
  workers: 2,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  globalTeardown: './support/teardown.ts',
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      // Debian's Chromium; Playwright never downloads a browser here.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: {
    command: serverBin,
    cwd: '..',
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      DATABASE_URL: process.env.E2E_DATABASE_URL,
      APP_ADDR: `127.0.0.1:${port}`,
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
    },
  },
});
