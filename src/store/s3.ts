/**
 * S3 object store (@aws-sdk/client-s3; multipart uploads through @aws-sdk/lib-storage above a
 * threshold). Works against AWS and S3-compatible servers (Ceph RADOS Gateway in tests).
 *
 * Configuration: the standard AWS chain for credentials and region (env vars, shared config and
 * credentials files, AWS_PROFILE, …), plus GET_DISTILL_S3_ENDPOINT (e.g. http://127.0.0.1:7480)
 * and GET_DISTILL_S3_FORCE_PATH_STYLE (default true when an endpoint is set). Transient failures
 * are retried by the SDK's standard retry strategy (GET_DISTILL_S3_MAX_ATTEMPTS, default 4).
 */
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parseUri } from './uri.js';
import { S3_CHECKSUM_ENV, S3_CHECKSUM_MODES, type S3ChecksumMode } from '../spec/names.js';
import { StoreError, type ObjectInfo, type ObjectStore, type PutOptions } from './types.js';

const MiB = 1024 * 1024;

/** Options of {@link S3Store}; every field falls back to the environment / AWS chain. */
export interface S3StoreOptions {
  /** S3-compatible endpoint URL; default GET_DISTILL_S3_ENDPOINT, else AWS. */
  endpoint?: string;
  /** Path-style addressing (http://host/bucket/key); default GET_DISTILL_S3_FORCE_PATH_STYLE, else true iff endpoint is set. */
  forcePathStyle?: boolean;
  /** Default: the AWS chain (AWS_REGION, profile). */
  region?: string;
  /** Default: the AWS credential chain. Tests pass explicit (e.g. wrong) keys. */
  credentials?: S3ClientConfig['credentials'];
  /** Attempts per request including the first (SDK standard retry, exponential backoff with jitter). Default 4. */
  maxAttempts?: number;
  /** TCP connect timeout per attempt, ms. Default 3000 (an unreachable endpoint fails in seconds). */
  connectionTimeoutMs?: number;
  /** Whole-request limit per attempt (until the answer's headers), ms. Default 300000. */
  requestTimeoutMs?: number;
  /**
   * Socket inactivity limit per attempt, ms. Default 20000: an endpoint that accepts connections but
   * never answers then fails after maxAttempts × 20 s instead of hanging.
   */
  socketTimeoutMs?: number;
  /**
   * Objects of at least this many bytes are uploaded in parts. Default 32 MiB, so a default 2,048-pair
   * shard (16.8 MB) goes in one PUT with Content-MD5: against the local gateway a single PUT of that
   * size ran at 198 MB/s, a multipart one at 147 MB/s (docs/benchmarks.md). S3 minimum part: 5 MiB.
   */
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads, bytes (≥ 5 MiB). Default 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded concurrently. Default 4. */
  queueSize?: number;
}

/**
 * Resolved endpoint settings (from options, then env), also used to name the endpoint in errors.
 * @throws StoreError 'Config' naming the variable: an endpoint that is not an http(s) URL, a path-style
 *   flag that is not true/false.
 */
function endpointSettings(opts: S3StoreOptions): { endpoint?: string; forcePathStyle: boolean } {
  const endpoint = opts.endpoint ?? (process.env.GET_DISTILL_S3_ENDPOINT || undefined);
  if (endpoint !== undefined) {
    let ok: boolean;
    try {
      ok = ['http:', 'https:'].includes(new URL(endpoint).protocol);
    } catch {
      ok = false;
    }
    if (!ok)
      throw new StoreError(
        'Config',
        'GET_DISTILL_S3_ENDPOINT',
        `${JSON.stringify(endpoint)} is not an http(s) URL; write it like http://127.0.0.1:7480`,
      );
  }
  const envPath = process.env.GET_DISTILL_S3_FORCE_PATH_STYLE;
  if (envPath && !/^(1|0|true|false|yes|no)$/i.test(envPath)) {
    throw new StoreError(
      'Config',
      'GET_DISTILL_S3_FORCE_PATH_STYLE',
      `must be true or false, got ${JSON.stringify(envPath)}`,
    );
  }
  const forcePathStyle = opts.forcePathStyle ?? (envPath ? /^(1|true|yes)$/i.test(envPath) : endpoint !== undefined);
  return { endpoint, forcePathStyle };
}

/**
 * The checksum mode the standard variable `name` asks for (case-insensitive), else WHEN_REQUIRED.
 * @throws StoreError 'Config' naming the variable for another value.
 */
function checksumMode(name: string): S3ChecksumMode {
  const raw = process.env[name]?.trim();
  if (!raw) return 'WHEN_REQUIRED';
  const mode = S3_CHECKSUM_MODES.find((m) => m === raw.toUpperCase());
  if (!mode)
    throw new StoreError('Config', name, `must be ${S3_CHECKSUM_MODES.join(' or ')}, got ${JSON.stringify(raw)}`);
  return mode;
}

/**
 * An S3Client configured as the store uses it (endpoint, path style, retry, timeouts, and checksum
 * headers only when an operation requires them, since S3-compatible servers such as Ceph Pacific
 * reject the SDK's default CRC32 trailers — unless AWS_REQUEST_CHECKSUM_CALCULATION /
 * AWS_RESPONSE_CHECKSUM_VALIDATION say WHEN_SUPPORTED, e.g. for AWS S3).
 * @throws StoreError 'Config' for a non-integer maxAttempts or an unknown checksum mode.
 */
export function createS3Client(opts: S3StoreOptions = {}): S3Client {
  const { endpoint, forcePathStyle } = endpointSettings(opts);
  const raw = process.env.GET_DISTILL_S3_MAX_ATTEMPTS;
  const maxAttempts = opts.maxAttempts ?? (raw ? (/^\d+$/.test(raw.trim()) ? Number(raw) : NaN) : 4);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new StoreError(
      'Config',
      'GET_DISTILL_S3_MAX_ATTEMPTS',
      `must be an integer ≥ 1, got ${JSON.stringify(opts.maxAttempts ?? raw)}`,
    );
  }
  // The SDK warns on Node 20 that its releases after January 2027 need Node 22; ours is pinned (package.json).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    ...(endpoint !== undefined && { endpoint }),
    ...(opts.region !== undefined && { region: opts.region }),
    ...(opts.credentials !== undefined && { credentials: opts.credentials }),
    forcePathStyle,
    maxAttempts,
    retryMode: 'standard',
    requestChecksumCalculation: checksumMode(S3_CHECKSUM_ENV.request),
    responseChecksumValidation: checksumMode(S3_CHECKSUM_ENV.response),
    requestHandler: {
      connectionTimeout: opts.connectionTimeoutMs ?? 3000,
      requestTimeout: opts.requestTimeoutMs ?? 300_000,
      throwOnRequestTimeout: true,
      socketTimeout: opts.socketTimeoutMs ?? 20_000,
    },
  });
}

export class S3Store implements ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of the root ('' for a whole bucket). */
  readonly rootKey: string;
  /** The endpoint as named in error messages. */
  readonly endpointName: string;
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly knownBuckets = new Set<string>();

  /**
   * @param root s3://bucket[/prefix] this store is rooted at.
   * @throws StoreError 'BadUri' / 'UnknownScheme' for a bad root, 'Config' for bad options.
   */
  constructor(
    readonly root: string,
    opts: S3StoreOptions = {},
  ) {
    const p = parseUri(root);
    if (p.scheme !== 's3')
      throw new StoreError('UnknownScheme', root, 'not an s3:// URI; use storeFor() for local paths');
    this.bucket = p.bucket;
    this.rootKey = p.key;
    this.client = createS3Client(opts);
    const { endpoint } = endpointSettings(opts);
    this.endpointName =
      endpoint ??
      `AWS S3${(opts.region ?? process.env.AWS_REGION) ? ` (${opts.region ?? process.env.AWS_REGION})` : ''}`;
    this.threshold = opts.multipartThresholdBytes ?? 32 * MiB;
    this.partSize = opts.partSizeBytes ?? 8 * MiB;
    this.queueSize = opts.queueSize ?? 4;
    if (this.partSize < 5 * MiB)
      throw new StoreError('Config', root, `part size ${this.partSize} B is below the S3 minimum of 5 MiB`);
  }

  /**
   * Bucket and key of `uri`, which must lie under the root.
   * @throws StoreError 'OutsideRoot' for another bucket or a key outside the root prefix.
   */
  locate(uri: string): { bucket: string; key: string } {
    const p = parseUri(uri);
    if (p.scheme !== 's3')
      throw new StoreError('UnknownScheme', uri, `not an s3:// URI; this store is rooted at ${this.root}`);
    const r = this.rootKey;
    const inside =
      p.bucket === this.bucket && (r === '' || p.key === r || p.key.startsWith(r.endsWith('/') ? r : `${r}/`));
    if (!inside) throw new StoreError('OutsideRoot', uri, `is outside the store root ${this.root}`);
    return { bucket: p.bucket, key: p.key };
  }

  async get(uri: string): Promise<Uint8Array> {
    const { bucket, key } = this.locate(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!out.Body) throw new StoreError('Io', uri, `${this.endpointName} returned no body`);
      return await out.Body.transformToByteArray();
    } catch (e) {
      throw this.error(uri, e, 'get');
    }
  }

  /**
   * Below the threshold: one PutObject with Content-MD5 (the server rejects a corrupted body).
   * Above: a multipart upload, which S3 makes visible only on completion; on failure or abort the
   * upload is aborted so no parts linger, and on success the size is checked with HeadObject
   * (Ceph returns an empty ETag from CompleteMultipartUpload, so the ETag cannot be used).
   */
  async put(uri: string, bytes: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const { bucket, key } = this.locate(uri);
    if (key === '' || key.endsWith('/')) throw new StoreError('BadUri', uri, 'names a prefix, not an object');
    if (opts.signal?.aborted)
      throw new StoreError('Aborted', uri, 'write aborted before it started; nothing was written');
    if (bytes.byteLength < this.threshold) {
      try {
        const md5 = createHash('md5').update(bytes).digest('base64');
        await this.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ContentMD5: md5,
          }),
          { abortSignal: opts.signal },
        );
      } catch (e) {
        throw this.error(uri, e, 'put');
      }
      return;
    }
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: bytes, ContentLength: bytes.byteLength },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await upload.done();
    } catch (e) {
      await this.abortPendingUploads(bucket, key).catch(() => undefined);
      throw this.error(uri, e, 'put');
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    const info = await this.head(uri);
    if (info?.size !== bytes.byteLength) {
      throw new StoreError(
        'Io',
        uri,
        `multipart upload finished but the object has ${info?.size ?? 'no'} bytes, expected ${bytes.byteLength}`,
      );
    }
  }

  async head(uri: string): Promise<ObjectInfo | null> {
    const { bucket, key } = this.locate(uri);
    if (key === '' || key.endsWith('/')) {
      await this.checkBucket(uri, bucket);
      return null; // a bucket or a prefix, never an object
    }
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: out.ContentLength ?? 0 };
    } catch (e) {
      if (status(e) !== 404) throw this.error(uri, e, 'head');
    }
    // HEAD answers carry no error code: a 404 is a missing key or a missing bucket.
    await this.checkBucket(uri, bucket);
    return null;
  }

  /**
   * Every object URI under the prefix, in key order, following continuation tokens (1,000 keys a page).
   * The server's pagination is not trusted: a page that says it is truncated but gives no token, or a
   * token seen before, is an error naming the endpoint and the prefix — never a silent subset, never a
   * request loop (the SDK's paginator would stop early on the first and loop forever on the second).
   * @throws StoreError ('Io' for a broken pagination).
   */
  async list(prefixUri: string, opts: { limit?: number } = {}): Promise<string[]> {
    const { bucket, key } = this.locate(prefixUri);
    const limit = opts.limit ?? Infinity;
    const out: string[] = [];
    const at = this.endpointName;
    try {
      const pageSize = Number.isFinite(limit) ? Math.max(1, Math.min(1000, limit)) : undefined;
      const seen = new Set<string>();
      let token: string | undefined;
      for (let page = 1; ; page++) {
        const r = await this.client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: key,
            ...(token !== undefined && { ContinuationToken: token }),
            ...(pageSize && { MaxKeys: pageSize }),
          }),
        );
        for (const o of r.Contents ?? [])
          if (o.Key !== undefined && out.length < limit) out.push(`s3://${bucket}/${o.Key}`);
        if (out.length >= limit || !r.IsTruncated) break;
        const next = r.NextContinuationToken;
        if (!next)
          throw new StoreError(
            'Io',
            prefixUri,
            `${at} answered listing page ${page} as truncated (IsTruncated) without a continuation token ` +
              `after ${out.length} keys; refusing an incomplete listing: check the S3 server`,
          );
        if (seen.has(next))
          throw new StoreError(
            'Io',
            prefixUri,
            `${at} repeated a continuation token on listing page ${page + 1} (${out.length} keys so far); ` +
              'stopping instead of listing in a loop: check the S3 server',
          );
        seen.add(next);
        token = next;
      }
    } catch (e) {
      throw this.error(prefixUri, e, 'list');
    }
    return out;
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = this.locate(uri);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (e) {
      throw this.error(uri, e, 'delete');
    }
  }

  /** Creates the root's bucket if it does not exist (tests, first runs). @throws StoreError. */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      const name = (e as Error).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists')
        throw this.error(`s3://${this.bucket}`, e, 'create bucket');
    }
    this.knownBuckets.add(this.bucket);
  }

  /** Aborts unfinished multipart uploads of exactly this key (left by a failed or aborted put). */
  async abortPendingUploads(bucket: string, key: string): Promise<number> {
    const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    const mine = (res.Uploads ?? []).filter((u) => u.Key === key && u.UploadId);
    for (const u of mine)
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }));
    return mine.length;
  }

  private async checkBucket(uri: string, bucket: string): Promise<void> {
    if (this.knownBuckets.has(bucket)) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
      this.knownBuckets.add(bucket);
    } catch (e) {
      throw this.error(uri, status(e) === 404 ? Object.assign(e as Error, { name: 'NoSuchBucket' }) : e, 'head');
    }
  }

  /** Maps an SDK error to a one-line StoreError naming the URI, the endpoint and the fix. */
  private error(uri: string, e: unknown, op: string): StoreError {
    if (e instanceof StoreError) return e;
    const err = e as Error & { code?: string; $metadata?: { attempts?: number; httpStatusCode?: number } };
    const name = err?.name ?? '';
    const code = err?.code ?? (err?.cause as { code?: string } | undefined)?.code ?? '';
    const attempts = err?.$metadata?.attempts;
    const tries = attempts ? ` after ${attempts} attempt${attempts > 1 ? 's' : ''}` : '';
    const at = this.endpointName;
    const opts = { cause: e };
    if (name === 'NoSuchKey' || (op === 'get' && status(e) === 404 && name !== 'NoSuchBucket')) {
      return new StoreError('NotFound', uri, `no such object at ${at}`, opts);
    }
    if (name === 'NoSuchBucket') {
      return new StoreError(
        'NoSuchBucket',
        uri,
        `bucket "${this.bucket}" does not exist at ${at}; create it or fix the s3:// URI`,
        opts,
      );
    }
    if (
      status(e) === 403 ||
      ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name)
    ) {
      const why = name && name !== 'Unknown' ? name : 'HTTP 403, no error code: a HEAD answer has no body';
      return new StoreError(
        'AccessDenied',
        uri,
        `access denied by ${at} (${why}) on ${op}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ` +
          `AWS_PROFILE and the bucket policy`,
        opts,
      );
    }
    if (name === 'AbortError')
      return new StoreError('Aborted', uri, `${op} aborted; the object was left as it was`, opts);
    const net = [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EPIPE',
    ];
    if (net.includes(code) || name === 'TimeoutError' || name === 'RequestTimeout') {
      return new StoreError(
        'Unreachable',
        uri,
        `cannot reach S3 endpoint ${at} (${code || name})${tries}; start the server or fix GET_DISTILL_S3_ENDPOINT`,
        opts,
      );
    }
    if (name === 'CredentialsProviderError' || /credential/i.test(err?.message ?? '')) {
      return new StoreError(
        'Config',
        uri,
        'no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE',
        opts,
      );
    }
    if (/region is missing/i.test(err?.message ?? '')) {
      return new StoreError(
        'Config',
        uri,
        'no AWS region configured; set AWS_REGION (any value for an S3-compatible endpoint)',
        opts,
      );
    }
    // Throttling and 5xx answers were already retried by the SDK: say how often, and what to do.
    const http = status(e);
    const busy =
      http === 429 || (http !== undefined && http >= 500)
        ? '; the server is overloaded or failing: retry later, or raise GET_DISTILL_S3_MAX_ATTEMPTS'
        : '';
    const msg = (err?.message ?? String(e)).replace(/\s+/g, ' ').trim().replace(/\.$/, '');
    // A HEAD answer has no body, so the SDK only knows the status ('Unknown' / 'UnknownError').
    const what =
      name === 'Unknown' && http !== undefined
        ? `HTTP ${http}, no error code`
        : `${name}${http !== undefined ? ` (${http})` : ''}${code ? ` ${code}` : ''}: ${msg}`;
    return new StoreError(
      'Io',
      uri,
      `${op} failed at ${at}${attempts && attempts > 1 ? tries : ''}: ${what}${busy}`,
      opts,
    );
  }
}

/** HTTP status of an SDK error, if it got an answer. */
function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}
