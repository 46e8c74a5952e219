/**
 * Digests and folder creation. Artifacts are written through the object store (src/store), whose
 * FileStore uses makeDirs; nothing else writes files directly.
 */
import { createHash } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Lowercase hex sha256 of bytes or a UTF-8 string. */
export const sha256Hex = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/**
 * Creates `dir` and its missing parents one level at a time. Unlike `mkdir(…, { recursive: true })`,
 * which never returns for a path under /proc on Node 20, every failure surfaces as an error.
 * @throws the fs error of the first level that cannot be created (EACCES, ENOTDIR, ENOENT …).
 */
export async function makeDirs(dir: string): Promise<void> {
  const abs = resolve(dir);
  const missing: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    const st = await stat(p).catch(() => null);
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' });
      break;
    }
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing)
    await mkdir(p).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
}
