/**
 * Local-folder object store (the embedded default). Objects are files under the root folder; a
 * write goes to a hidden temporary file in the same folder, is fsynced, then renamed over the
 * target, so readers see the old object (or none) or the whole new one.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeDirs } from '../util/fsutil.js';
import { parseUri } from './uri.js';
import { StoreError, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

/** Suffix of in-flight temporary files; list() hides them. */
const TMP_SUFFIX = '.get-distill-tmp';

export class FileStore implements ObjectStore {
  /** Absolute, normalized root folder. */
  readonly rootPath: string;
  private readonly style: 'path' | 'url';

  /**
   * @param root plain path or file:// URL of the root folder (need not exist yet).
   * @throws StoreError 'UnknownScheme' when `root` is not a file location.
   */
  constructor(readonly root: string) {
    const p = parseUri(root);
    if (p.scheme !== 'file')
      throw new StoreError('UnknownScheme', root, 'not a file location; use storeFor() for s3:// URIs');
    this.rootPath = p.path;
    this.style = p.style;
  }

  /**
   * Absolute path of `uri`, which must lie inside the root.
   * @throws StoreError 'OutsideRoot' for a path that escapes the root (e.g. with '..').
   */
  pathOf(uri: string): string {
    const p = parseUri(uri);
    if (p.scheme !== 'file')
      throw new StoreError('UnknownScheme', uri, `not a file location; this store is rooted at ${this.root}`);
    if (!this.inside(p.path)) {
      throw new StoreError(
        'OutsideRoot',
        uri,
        `resolves to ${p.path}, outside the store root ${this.rootPath}; remove the '..' segments`,
      );
    }
    return p.path;
  }

  async get(uri: string): Promise<Uint8Array> {
    const path = this.pathOf(uri);
    try {
      const buf = await readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw fsError(uri, e, 'read');
    }
  }

  async put(uri: string, bytes: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const path = this.pathOf(uri);
    if (path === this.rootPath)
      throw new StoreError('BadUri', uri, 'is the store root itself; name an object under it');
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`);
    try {
      opts.signal?.throwIfAborted();
      await makeDirs(dirname(path));
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(bytes, { signal: opts.signal });
        await fh.sync();
      } finally {
        await fh.close();
      }
      opts.signal?.throwIfAborted();
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw fsError(uri, e, 'write');
    }
    await sweepStaleTemporaries(path);
  }

  async head(uri: string): Promise<ObjectInfo | null> {
    const path = this.pathOf(uri);
    try {
      const st = await stat(path);
      return st.isFile() ? { size: st.size } : null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return null;
      throw fsError(uri, e, 'stat');
    }
  }

  /**
   * Files whose path starts with the prefix (a trailing '/' limits it to that folder), sorted. With
   * `limit`, the walk stops after that many (then not necessarily the first in order).
   */
  async list(prefixUri: string, opts: { limit?: number } = {}): Promise<string[]> {
    let prefix = this.pathOf(prefixUri);
    const folder = /[\\/]$/.test(prefixUri) || prefix === this.rootPath;
    if (folder && !prefix.endsWith(sep)) prefix += sep;
    const start = !prefix.endsWith(sep) ? dirname(prefix) : prefix.length > 1 ? prefix.slice(0, -1) : prefix;
    const limit = opts.limit ?? Infinity;
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw fsError(prefixUri, e, 'list');
      }
      for (const ent of entries) {
        if (found.length >= limit) return;
        const p = join(dir, ent.name);
        if (ent.isDirectory()) {
          if (p.startsWith(prefix) || prefix.startsWith(p + sep)) await walk(p);
        } else if (ent.isFile() && p.startsWith(prefix) && !ent.name.endsWith(TMP_SUFFIX)) {
          found.push(p);
        }
      }
    };
    await walk(start);
    found.sort();
    return found.map((p) => (this.style === 'url' ? pathToFileURL(p).href : p));
  }

  async delete(uri: string): Promise<void> {
    const path = this.pathOf(uri);
    try {
      await unlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(uri, e, 'delete');
    }
  }

  private inside(path: string): boolean {
    const root = this.rootPath.endsWith(sep) ? this.rootPath : this.rootPath + sep;
    return path === this.rootPath || path.startsWith(root);
  }
}

/**
 * Removes temporary files of earlier writes of `path` whose writer process is gone (a SIGKILL between
 * open and rename leaves one behind). Best effort: errors are ignored.
 */
async function sweepStaleTemporaries(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TMP_SUFFIX)) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    await unlink(join(dirname(path), name)).catch(() => undefined);
  }
}

/** True when a process with this PID exists (EPERM: it exists but is not ours). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Maps an fs error to a one-line StoreError naming the URI. */
function fsError(uri: string, e: unknown, op: string): StoreError {
  const err = e as NodeJS.ErrnoException;
  if (err instanceof StoreError) return err;
  if (err?.name === 'AbortError')
    return new StoreError('Aborted', uri, `${op} aborted; nothing was written`, { cause: e });
  switch (err?.code) {
    case 'ENOENT':
      return new StoreError('NotFound', uri, 'no such object', { cause: e });
    case 'EACCES':
    case 'EPERM':
      return new StoreError(
        'AccessDenied',
        uri,
        `permission denied (${op}); fix the folder's permissions or pick another --store`,
        { cause: e },
      );
    case 'EISDIR':
      return new StoreError('Io', uri, 'is a folder, not an object', { cause: e });
    default:
      return new StoreError('Io', uri, `${op} failed: ${err?.message ?? String(e)}`, { cause: e });
  }
}
