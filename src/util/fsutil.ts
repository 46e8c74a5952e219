/**
 * Atomic file writes and digests. A write goes to a temporary file in the same folder, is fsynced,
 * then renamed over the target, so a reader (or a resumed job) sees the old file or the whole new
 * one, never a partial one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Writes `data` to `path` atomically (creating the folder). @throws the fs error; the temporary file is removed. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

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
  for (const p of missing) await mkdir(p).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
}
