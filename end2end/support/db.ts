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
  return holdLock('LOCK TABLE codes IN ACCESS EXCLUSIVE MODE', database);
}

/** Locks on the merchant's staged rows that let reads through and no write of them (its check
 * waits at its write of the flags), held on a connection of its own until `release`. Only the
 * merchant's rows: a lock on the table stopped every upload and check of the tests beside it. */
export async function holdStagingWrites(
  merchantId: string,
  database = process.env.E2E_DATABASE_URL!,
): Promise<{ release(): Promise<void> }> {
  return holdLock('SELECT FROM codes_check_temp WHERE merchant_id = $1 FOR UPDATE', database, [merchantId]);
}

async function holdLock(lock: string, database: string, params: string[] = []): Promise<{ release(): Promise<void> }> {
  const db = new Client({ connectionString: database });
  await db.connect();
  await db.query('BEGIN');
  await db.query(lock, params);
  return {
    async release() {
      await db.query('ROLLBACK');
      await db.end();
    },
  };
}

/** A completed job of `merchantId` that inserted `codes` (stamped with its id), as an insert
 * leaves it, from one file that staged them and `duplicates` more rows; returns the job's id. */
export async function completedJob(merchantId: string, codes: string[], duplicates = 0): Promise<string> {
  return withDb(async (db) => {
    const files = [{ name: 'staged.csv', size: 2048, rows_staged: codes.length + duplicates }];
    const job = await db.query(
      `INSERT INTO codes_import_jobs (id, merchant_id, status, total_codes_to_insert, codes_inserted,
                                      validation_passed, completed_at, source_info)
       VALUES (gen_random_uuid(), $1, 'completed', $2, $2, true, now(), $3)
       RETURNING id`,
      [merchantId, codes.length, { files }],
    );
    const id: string = job.rows[0].id;
    await db.query(
      `INSERT INTO codes (merchant_id, code, import_job_id, source) SELECT $1, c, $2, 'code-import' FROM unnest($3::text[]) AS c`,
      [merchantId, id, codes],
    );
    return id;
  });
}

/** Stages `codes` for `merchantId` as a completed upload of one file named `file` (the n-th code
 * on line n + 1), in a batch of its own, as an upload through the app leaves them. */
export async function stageCodes(merchantId: string, file: string, codes: string[]): Promise<void> {
  await withDb(async (db) => {
    await db.query('BEGIN');
    const batch = await db.query(`INSERT INTO staging_batches (id, merchant_id) VALUES (gen_random_uuid(), $1) RETURNING id`, [
      merchantId,
    ]);
    const upload = await db.query(
      `INSERT INTO uploads (id, merchant_id, status, row_base, total_rows, batch_id, finished_at)
       VALUES (gen_random_uuid(), $1, 'completed', 0, $2, $3, now()) RETURNING id`,
      [merchantId, codes.length, batch.rows[0].id],
    );
    const uploadId: string = upload.rows[0].id;
    await db.query(
      `INSERT INTO upload_files (upload_id, file_index, name, size, checksum, rows_expected, row_offset, rows_received)
       VALUES ($1, 0, $2, $3, 'seeded', $4, 0, $4)`,
      [uploadId, file, codes.join('\n').length, codes.length],
    );
    await db.query(
      `INSERT INTO codes_check_temp (merchant_id, row_number, code, upload_id, source_file, source_line)
       SELECT $1, n, c, $2, $3, n + 1 FROM unnest($4::text[]) WITH ORDINALITY AS t(c, n)`,
      [merchantId, uploadId, file, codes],
    );
    await db.query('COMMIT');
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
