import { Client } from 'pg';

/** Drops the run's database, and those tests made beside it (`sideDatabase`), once every test
 * has finished. */
export default async function teardown(): Promise<void> {
  const url = new URL(process.env.E2E_DATABASE_URL!);
  const name = url.pathname.slice(1);
  if (!/^code_import_e2e_[0-9a-f]+$/.test(name)) return;
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const side = await admin.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${name}\\_%`]);
    for (const database of [name, ...side.rows.map((r) => r.datname as string)]) {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}
