/**
 * Parsing and joining of object URIs: `s3://bucket/key`, `file:///abs/path`, or a plain path
 * (relative paths resolve against the working directory).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StoreError } from './types.js';

/** A parsed object URI. For `file`, `path` is absolute and normalized (no '.'/'..'). */
export type ParsedUri =
  { scheme: 'file'; path: string; style: 'path' | 'url' } | { scheme: 's3'; bucket: string; key: string };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// `s3:/bucket/x`, `s3:bucket/x`, `file:/x`: a scheme without '//' is a typo, not a relative path.
const SCHEME_TYPO = /^([A-Za-z][A-Za-z0-9+.-]+):(?!\/\/)/;
// S3 bucket naming rules (3–63 chars, lowercase letters, digits, '.', '-'; starts/ends alphanumeric).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Splits a URI into scheme and location.
 * @throws StoreError 'UnknownScheme' for any scheme other than file/s3, 'BadUri' for a malformed
 *   file URL, an invalid bucket name, or a '.'/'..' segment in an S3 key (S3 would store it
 *   literally, while HTTP clients may collapse it, so it can never be what was meant).
 */
export function parseUri(uri: string): ParsedUri {
  if (uri.includes('\0')) throw new StoreError('BadUri', JSON.stringify(uri), 'URI contains a NUL byte');
  const m = SCHEME.exec(uri);
  if (!m) {
    if (uri === '') throw new StoreError('BadUri', '""', 'empty URI; give a path, file:///… or s3://bucket/prefix');
    const typo = SCHEME_TYPO.exec(uri);
    if (typo)
      throw new StoreError(
        'BadUri',
        uri,
        `has the scheme "${typo[1]}:" but no '//'; write ${typo[1]}://…, or ./${uri} for a local folder`,
      );
    return { scheme: 'file', path: resolve(uri), style: 'path' };
  }
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'file') {
    let path: string;
    try {
      path = fileURLToPath(uri); // normalizes dot segments, decodes %XX
      if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1); // same as resolve() for plain paths
    } catch (e) {
      throw new StoreError('BadUri', uri, `not a valid file URL (${(e as Error).message}); use file:///absolute/path`, {
        cause: e,
      });
    }
    return { scheme: 'file', path, style: 'url' };
  }
  if (scheme === 's3') {
    const rest = uri.slice(m[0].length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? '' : rest.slice(slash + 1);
    if (
      !BUCKET.test(bucket) ||
      bucket.includes('..') ||
      /^\d+\.\d+\.\d+\.\d+$/.test(bucket) ||
      bucket.startsWith('xn--') ||
      bucket.endsWith('-s3alias')
    ) {
      throw new StoreError(
        'BadUri',
        uri,
        `"${bucket}" is not a valid S3 bucket name (3–63 lowercase ` +
          `letters, digits, '.', '-'; not an IP address, no '..')`,
      );
    }
    const segments = key.split('/');
    if (segments.some((s) => s === '.' || s === '..')) {
      throw new StoreError('BadUri', uri, "S3 keys may not contain '.' or '..' segments; name the object directly");
    }
    if (segments.slice(0, -1).some((s) => s === ''))
      throw new StoreError('BadUri', uri, "S3 keys may not contain empty segments ('//'); remove the extra '/'");
    if (Buffer.byteLength(key) > 960)
      throw new StoreError(
        'BadUri',
        uri,
        `the key is ${Buffer.byteLength(key)} bytes; S3 allows ` +
          `1,024 and a run adds up to 64 below it: use a shorter prefix`,
      );
    return { scheme: 's3', bucket, key };
  }
  throw new StoreError(
    'UnknownScheme',
    uri,
    `unknown URI scheme "${scheme}://"; use s3://bucket/prefix, file:///path or a plain path`,
  );
}

/**
 * Appends relative key segments to a URI: joinUri('s3://b/run1', 'shards/0001.bin') →
 * 's3://b/run1/shards/0001.bin'. Works for plain paths and file:// URLs the same way.
 * @throws StoreError 'BadUri' for an absolute part or a '..' segment (a key must stay under its base).
 */
export function joinUri(base: string, ...parts: string[]): string {
  let out = base;
  for (const part of parts) {
    if (part === '') continue;
    if (part.startsWith('/') || isAbsolute(part) || SCHEME.test(part)) {
      throw new StoreError('BadUri', `${base} + ${part}`, 'expected a relative key, got an absolute path or URI');
    }
    if (part.split('/').some((s) => s === '..')) {
      throw new StoreError('OutsideRoot', `${base} + ${part}`, "a key may not contain '..'; it would escape its base");
    }
    out = out.endsWith('/') ? out + part : `${out}/${part}`;
  }
  return out;
}

/**
 * The folder (prefix) URI holding an object URI: parentUri('s3://b/run1/model.onnx') →
 * 's3://b/run1', parentUri('/data/t.onnx') → '/data'. Used to root a store at a single object.
 * @throws StoreError 'BadUri' when the URI has no parent (a bucket or file-system root).
 */
export function parentUri(uri: string): string {
  const p = parseUri(uri);
  if (p.scheme === 'file') {
    if (p.path === '/') throw new StoreError('BadUri', uri, 'names the file-system root, not an object');
    return p.style === 'url' ? pathToFileURL(dirname(p.path)).href : dirname(uri.replace(/\/+$/, ''));
  }
  const key = p.key.replace(/\/+$/, '');
  if (key === '') throw new StoreError('BadUri', uri, 'names a bucket, not an object');
  const cut = key.lastIndexOf('/');
  return `s3://${p.bucket}${cut < 0 ? '' : `/${key.slice(0, cut)}`}`;
}
