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

/** A lock on `codes` that nothing else gets past (an insert's pre-flight waits for it), held on
 * a connection of its own until `release`. */
export async function holdCodes(database = process.env.E2E_DATABASE_URL!): Promise<{ release(): Promise<void> }> {
  const db = new Client({ connectionString: database });
  await db.connect();
  await db.query('BEGIN');
  await db.query('LOCK TABLE codes IN ACCESS EXCLUSIVE MODE');
  return {
    async release() {
      await db.query('ROLLBACK');
      await db.end();
    },
  };
}

/** A completed job of `merchantId` that inserted `codes` (stamped with its id), as an insert
 * leaves it; returns the job's id. */
export async function completedJob(merchantId: string, codes: string[]): Promise<string> {
  return withDb(async (db) => {
    const job = await db.query(
      `INSERT INTO codes_import_jobs (id, merchant_id, status, total_codes_to_insert, codes_inserted,
                                      validation_passed, completed_at, source_info)
       VALUES (gen_random_uuid(), $1, 'completed', $2, $2, true, now(), '{"files": [{"name": "staged.csv"}]}')
       RETURNING id`,
      [merchantId, codes.length],
    );
    const id: string = job.rows[0].id;
    await db.query(
      `INSERT INTO codes (merchant_id, code, import_job_id, source) SELECT $1, c, $2, 'code-import' FROM unnest($3::text[]) AS c`,
      [merchantId, id, codes],
    );
    return id;
  });
}

/** How many codes of job `jobId` production holds. */
export async function codesOfJob(jobId: string, database = process.env.E2E_DATABASE_URL!): Promise<number> {
  const result = await withDb(
    (db) => db.query('SELECT count(*)::int AS n FROM codes WHERE import_job_id = $1', [jobId]),
    database,
  );
  return result.rows[0].n;
}
