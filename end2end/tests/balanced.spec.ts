import { expect, test } from '@playwright/test';
import { openAs } from '../pages/LoginPage';
import { UploadPage } from '../pages/UploadPage';
import { createMerchant, createUser, unique } from '../support/accounts';
import { bigFile, writeFiles } from '../support/csv';
import { withDb } from '../support/db';
import { HaProxy } from '../support/haproxy';
import { freePort, ServerProcess } from '../support/server';

test('an upload through HAProxy spreads over three servers and completes when one is killed', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const servers = [];
  for (let i = 0; i < 3; i++) servers.push(new ServerProcess(await freePort()));
  for (const server of servers) await server.start();
  const proxy = await HaProxy.start(servers.map((s) => `127.0.0.1:${s.port}`));
  try {
    const merchant = createMerchant('Balanced');
    const prefix = `H${unique()}`;
    const rows = 600_000;
    const paths = writeFiles(testInfo.outputPath('files'), { 'balanced.csv': bigFile(prefix, rows) });
    const servedBy: string[] = [];
    page.on('response', (r) => {
      if (/\/chunks\/\d+$/.test(r.url()) && r.status() === 200) servedBy.push(r.headers()['x-served-by'] ?? '');
    });
    await openAs(page, createUser('merchant_admin', [merchant]), `${proxy.url}/upload`);
    const upload = new UploadPage(page);
    await upload.pick(paths);
    await upload.waitUntilChecked(['balanced.csv']);
    await expect(upload.file('balanced.csv').getByTestId('rows-staged')).toHaveText('600,000');
    const secondChunk = page.waitForResponse((r) => /\/chunks\/1$/.test(r.url()) && r.status() === 200);

    await upload.uploadButton().click();
    await secondChunk;
    // The server that stored the last chunk dies; the others take the rest.
    const victim = servedBy[servedBy.length - 1];
    await servers[Number(victim.replace('s', '')) - 1].kill();

    await expect(upload.done()).toHaveText('Staged 600,000 rows from 1 file(s).', { timeout: 90_000 });
    expect(new Set(servedBy).size).toBeGreaterThanOrEqual(2);
    const counts = await withDb((db) =>
      db.query(
        `SELECT count(*)::int AS rows, count(DISTINCT code)::int AS codes, max(row_number)::int AS last
         FROM codes_check_temp WHERE merchant_id = $1`,
        [merchant.id],
      ),
    );
    expect(counts.rows[0]).toEqual({ rows, codes: rows, last: rows });
  } finally {
    await proxy.stop();
    for (const server of servers) await server.kill();
  }
});
