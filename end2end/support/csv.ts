import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Writes `files` (name → content; a name may go through sub-folders) into `dir` and returns their paths in name order. */
export function writeFiles(dir: string, files: Record<string, string | Buffer>): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.keys(files)
    .sort()
    .map((name) => {
      const path = join(dir, name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, files[name]);
      return path;
    });
}

/** A comma file of `rows` codes `<prefix>-<n>` with a few columns. */
export function bigFile(prefix: string, rows: number): string {
  const lines = ['code,sku,points,batch_code'];
  for (let i = 1; i <= rows; i++) lines.push(`${prefix}-${i},SKU${i % 7},${i % 500},B${i % 3}`);
  return lines.join('\n') + '\n';
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A comma file of `rows` codes drawn as merchants' are (random, 10–16 characters of
 * Crockford's base32, from a fixed seed), with quoted product names holding commas, `""` and
 * letters beyond ASCII. */
export function realisticFile(rows: number, seed = 1): string {
  let state = seed >>> 0 || 1;
  const next = () => {
    // xorshift32: deterministic, and enough to scatter codes over the key range.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const lines = ['code,sku_name,points,batch_code'];
  for (let i = 1; i <= rows; i++) {
    let code = '';
    for (let n = 10 + (next() % 7); n > 0; n--) code += CROCKFORD[next() % 32];
    const name = i % 3 === 0 ? `"Gift card, ${i % 50} €"` : i % 3 === 1 ? `"Crème ""brûlée"" ${i % 9}"` : `Voucher ${i % 11}`;
    lines.push(`${code},${name},${i % 500},B${i % 3}`);
  }
  return lines.join('\n') + '\n';
}
