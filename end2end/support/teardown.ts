import { Client } from 'pg';

/** Drops the run's database once every test has finished. */
export default async function teardown(): Promise<void> {
  const url = new URL(process.env.E2E_DATABASE_URL!);
  const name = url.pathname.slice(1);
  if (!/^code_import_e2e_[0-9a-f]+$/.test(name)) return;
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
