/**
 * The object-store layer (issue 3): one interface for local folders and S3, picked by URI scheme.
 * `storeFor('s3://bucket/run1')` or `storeFor('out/run1')`; then `put/get/head/list/delete` with
 * URIs under that root (build them with `joinUri(root, 'shards/0001.bin')`).
 */
import { FileStore } from './file.js';
import { S3Store, type S3StoreOptions } from './s3.js';
import { parseUri } from './uri.js';
import type { ObjectStore } from './types.js';

export { FileStore } from './file.js';
export { S3Store, createS3Client, type S3StoreOptions } from './s3.js';
export { parseUri, joinUri, parentUri, type ParsedUri } from './uri.js';
export { StoreError, type ObjectStore, type ObjectInfo, type PutOptions, type StoreErrorCode } from './types.js';

/**
 * The store rooted at `rootUri`: an {@link S3Store} for s3://, a {@link FileStore} for file:// and
 * plain paths. `s3` options apply to S3 only (defaults from the environment / AWS chain).
 * @throws StoreError 'UnknownScheme' / 'BadUri' naming the URI.
 */
export function storeFor(rootUri: string, opts: { s3?: S3StoreOptions } = {}): ObjectStore {
  return parseUri(rootUri).scheme === 's3' ? new S3Store(rootUri, opts.s3) : new FileStore(rootUri);
}
