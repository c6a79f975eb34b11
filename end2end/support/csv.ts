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
