import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const PASSWORD = 'correct horse battery staple';

/** A short random suffix, so tests never share names. */
export function unique(): string {
  return randomBytes(4).toString('hex');
}

function server(args: string[], input: string | undefined, database: string): string {
  return execFileSync(process.env.SERVER_BIN!, args, {
    input,
    env: { ...process.env, DATABASE_URL: database, RUST_LOG: 'off' },
    encoding: 'utf8',
  });
}

export interface Merchant {
  id: string;
  name: string;
}

/** Creates a merchant with the server's own `create-merchant` command (in the run's database
 * unless told another). */
export function createMerchant(prefix = 'Merchant', database = process.env.E2E_DATABASE_URL!): Merchant {
  const name = `${prefix} ${unique()}`;
  const out = server(['create-merchant', '--name', name], undefined, database);
  const id = /\(([0-9a-f-]{36})\)/.exec(out)?.[1];
  if (!id) throw new Error(`no merchant id in: ${out}`);
  return { id, name };
}

export interface User {
  email: string;
  password: string;
}

/** Creates an account with `server create-user`, the password on stdin as an operator would. */
export function createUser(
  role: 'ops' | 'merchant_admin',
  merchants: Merchant[] = [],
  database = process.env.E2E_DATABASE_URL!,
): User {
  const email = `${role}-${unique()}@example.com`;
  const args = ['create-user', '--email', email, '--role', role];
  for (const m of merchants) args.push('--merchant', m.id);
  server(args, `${PASSWORD}\n`, database);
  return { email, password: PASSWORD };
}
