import { Client } from 'pg';
import { randomBytes } from 'node:crypto';

/** A connection to the database the server under test uses (or to `database`). */
export async function withDb<T>(work: (db: Client) => Promise<T>, database = process.env.E2E_DATABASE_URL!): Promise<T> {
  const db = new Client({ connectionString: database });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

/** The URL of a database of its own for a test that does what would disturb the tests running
 * beside it (a server started on it creates it; teardown drops it with the run's database). */
export function sideDatabase(tag: string): string {
  const url = new URL(process.env.E2E_DATABASE_URL!);
  url.pathname = `${url.pathname}_${tag}_${randomBytes(4).toString('hex')}`;
  return url.toString();
}
