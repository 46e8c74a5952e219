/**
 * The object-store contract every stage reads and writes through (issue 3). Objects are addressed
 * by URI: `s3://bucket/prefix/key`, `file:///abs/path` or a plain path. A store is rooted at the URI
 * it was made for (`storeFor(root)`); every URI it is given must lie inside that root.
 */
import { UsageError } from '../util/errors.js';

/** Size of an existing object, in bytes. */
export interface ObjectInfo {
  size: number;
}

/** Options of a single write. */
export interface PutOptions {
  /** Aborts the write; the object is then left as it was (absent or the old bytes). */
  signal?: AbortSignal;
}

/** One storage backend addressed by URI. All methods throw {@link StoreError} for bad input. */
export interface ObjectStore {
  /** The root URI this store was made for (style as given: plain path, file:// or s3://). */
  readonly root: string;
  /** Whole object bytes. @throws StoreError 'NotFound' when absent. */
  get(uri: string): Promise<Uint8Array>;
  /** Writes the whole object atomically: readers see the old object (or none) or all of `bytes`. */
  put(uri: string, bytes: Uint8Array, opts?: PutOptions): Promise<void>;
  /** Size of the object, or null when it does not exist (a missing bucket still throws). */
  head(uri: string): Promise<ObjectInfo | null>;
  /**
   * URIs of all objects whose URI starts with `prefixUri`, sorted; paginates S3 listings. `limit`
   * stops early (an emptiness check lists one).
   */
  list(prefixUri: string, opts?: { limit?: number }): Promise<string[]>;
  /** Removes the object; deleting an absent object is not an error. */
  delete(uri: string): Promise<void>;
}

/** What went wrong, for callers that branch (resume logic, tests); the message is for people. */
export type StoreErrorCode =
  | 'BadUri' // not parseable, or a '.'/'..' segment in an S3 key
  | 'UnknownScheme' // neither file:// nor s3://
  | 'OutsideRoot' // resolves outside the store's root (path traversal)
  | 'NotFound' // object absent (S3 NoSuchKey, ENOENT)
  | 'NoSuchBucket'
  | 'AccessDenied' // 403, bad signature or unknown access key
  | 'Unreachable' // endpoint refused, timed out, or DNS failed (after retries)
  | 'Config' // missing region or credentials
  | 'Aborted'
  | 'Io'; // anything else from the file system or the service

/**
 * One-line, user-fixable storage error naming the URI (a UsageError, so the CLI exits 2).
 * `cause` keeps the SDK / fs error for logs; messages never contain secrets.
 */
export class StoreError extends UsageError {
  constructor(
    readonly code: StoreErrorCode,
    readonly uri: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${uri}: ${message}`, options);
  }
}
