/**
 * S3Store against a real Ceph RADOS Gateway on 127.0.0.1 (scripts/s3-server.sh): round trips
 * (single and multipart), head/list with pagination past 1,000 keys, atomic multipart writes,
 * SigV4 rejection of a wrong secret, missing bucket, unreachable endpoint, bad URIs.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { S3Store, StoreError, joinUri, storeFor } from '../../src/store/index.js';
import { loadS3Env, pattern, uniqueBucket } from './s3-env.js';

const MiB = 1024 * 1024;
let env: ReturnType<typeof loadS3Env>;
let root: string;
let store: S3Store;

/** Asserts `p` rejects with a StoreError of `code` whose message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, code: string, ...patterns: RegExp[]): Promise<StoreError> {
  const e = await p.then(
    () => assert.fail('expected a StoreError'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreError, `expected StoreError, got ${(e as Error)?.stack}`);
  assert.equal(e.code, code, e.message);
  for (const re of patterns) assert.match(e.message, re);
  assert.ok(!e.message.includes(env.secretAccessKey), 'secret must not appear in messages');
  return e;
}

before(async () => {
  env = loadS3Env();
  root = `s3://${uniqueBucket('store')}/run1`;
  // Small parts so a 12 MiB object takes the multipart path (3 parts of 5 MiB, 5 MiB, 2 MiB).
  store = new S3Store(root, { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB });
  await store.ensureBucket();
});

test('storeFor picks S3 for s3:// URIs', () => {
  assert.ok(storeFor(root) instanceof S3Store);
});

test('small object: put, head, get round trip, delete', async () => {
  const uri = joinUri(root, 'small/a.bin');
  const data = pattern(1000, 7);
  assert.equal(await store.head(uri), null);
  await store.put(uri, data);
  assert.deepEqual(await store.head(uri), { size: 1000 });
  assert.deepEqual(await store.get(uri), data);
  await store.put(uri, new Uint8Array(0)); // overwrite with an empty object
  assert.deepEqual(await store.head(uri), { size: 0 });
  await store.delete(uri);
  assert.equal(await store.head(uri), null);
  await store.delete(uri); // deleting an absent object is fine
  await rejectsWith(store.get(uri), 'NotFound', /small\/a\.bin/, /no such object/);
});

test('multipart-sized object round trips byte-exact and leaves no pending upload', async () => {
  const uri = joinUri(root, 'big/b.bin');
  const data = pattern(12 * MiB + 3, 11);
  const t0 = performance.now();
  await store.put(uri, data);
  const t1 = performance.now();
  assert.deepEqual(await store.head(uri), { size: data.byteLength });
  const back = await store.get(uri);
  const t2 = performance.now();
  assert.equal(Buffer.compare(back, data), 0);
  const pending = await store.client.send(
    new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: 'run1/big/' }),
  );
  assert.equal(pending.Uploads?.length ?? 0, 0);
  console.log(`# 12 MiB multipart put ${(t1 - t0).toFixed(0)} ms, get ${(t2 - t1).toFixed(0)} ms`);
});

test('an aborted multipart put leaves the old object (or none) and no parts', async () => {
  const uri = joinUri(root, 'atomic/c.bin');
  const old = pattern(100, 3);
  await store.put(uri, old);
  // Abort right after part 1 is stored, so the server really holds a partial upload.
  const ac = new AbortController();
  const writer = new S3Store(root, { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB, queueSize: 1 });
  writer.client.middlewareStack.add(
    (next, ctx) => async (args) => {
      const out = await next(args);
      if (ctx.commandName === 'UploadPartCommand') ac.abort();
      return out;
    },
    { step: 'initialize' },
  );
  await rejectsWith(writer.put(uri, pattern(12 * MiB, 5), { signal: ac.signal }), 'Aborted', /atomic\/c\.bin/);
  assert.deepEqual(await store.get(uri), old);
  // Same for a key that did not exist: absent, not partial.
  const fresh = joinUri(root, 'atomic/d.bin');
  const ac2 = new AbortController();
  const writer2 = new S3Store(root, { multipartThresholdBytes: 5 * MiB, partSizeBytes: 5 * MiB, queueSize: 1 });
  writer2.client.middlewareStack.add(
    (next, ctx) => async (args) => {
      const out = await next(args);
      if (ctx.commandName === 'UploadPartCommand') ac2.abort();
      return out;
    },
    { step: 'initialize' },
  );
  await rejectsWith(writer2.put(fresh, pattern(12 * MiB, 6), { signal: ac2.signal }), 'Aborted');
  assert.equal(await store.head(fresh), null);
  // lib-storage finishes its in-flight part in the background; allow it a moment, then no upload may remain.
  let uploads = -1;
  for (let i = 0; i < 20 && uploads !== 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    const res = await store.client.send(
      new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: 'run1/atomic/' }),
    );
    uploads = res.Uploads?.length ?? 0;
  }
  assert.equal(uploads, 0, 'aborted uploads must not leave parts behind');
  // An already-aborted signal writes nothing at all.
  await rejectsWith(store.put(joinUri(root, 'atomic/e.bin'), old, { signal: AbortSignal.abort() }), 'Aborted');
  assert.equal(await store.head(joinUri(root, 'atomic/e.bin')), null);
});

test('list paginates past 1,000 keys and respects the prefix', async () => {
  const n = 1100;
  const keys = Array.from({ length: n }, (_, i) => joinUri(root, `many/k${String(i).padStart(5, '0')}`));
  const t0 = performance.now();
  for (let i = 0; i < n; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k, j) => store.put(k, Uint8Array.of((i + j) & 0xff))));
  }
  await store.put(joinUri(root, 'many-other/x'), Uint8Array.of(1)); // shares the string prefix "many"
  const t1 = performance.now();
  const listed = await store.list(joinUri(root, 'many/'));
  const t2 = performance.now();
  assert.equal(listed.length, n);
  assert.deepEqual(listed, keys); // zero-padded names: key order = insertion order
  assert.equal((await store.list(joinUri(root, 'many'))).length, n + 1);
  assert.deepEqual(await store.list(joinUri(root, 'nothing-here/')), []);
  assert.deepEqual(await store.get(keys[1099]!), Uint8Array.of(1099 & 0xff));
  console.log(`# ${n} tiny puts ${(t1 - t0).toFixed(0)} ms, list ${(t2 - t1).toFixed(0)} ms`);
});

test('a wrong secret is rejected by the gateway (SigV4) with a clear access-denied error', async () => {
  const bad = new S3Store(root, { credentials: { accessKeyId: env.accessKeyId, secretAccessKey: 'not-the-secret' } });
  const uri = joinUri(root, 'denied/x.bin');
  await rejectsWith(
    bad.put(uri, Uint8Array.of(1)),
    'AccessDenied',
    /access denied/,
    /SignatureDoesNotMatch/,
    /denied\/x\.bin/,
    /127\.0\.0\.1/,
  );
  await rejectsWith(bad.get(uri), 'AccessDenied', /access denied/);
  await rejectsWith(bad.head(uri), 'AccessDenied', /access denied/); // HEAD: no error body, status 403
  await rejectsWith(bad.list(joinUri(root, 'denied/')), 'AccessDenied');
  const unknown = new S3Store(root, { credentials: { accessKeyId: 'NOSUCHACCESSKEY00000', secretAccessKey: 'x' } });
  await rejectsWith(unknown.get(uri), 'AccessDenied', /InvalidAccessKeyId/);
  assert.equal(await store.head(uri), null, 'nothing was written');
});

test('a missing bucket is named in the error of every operation', async () => {
  const missing = `s3://${uniqueBucket('absent')}/p`;
  const s = new S3Store(missing);
  const uri = joinUri(missing, 'x.bin');
  const bucketRe = new RegExp(`bucket "${s.bucket}" does not exist`);
  await rejectsWith(s.get(uri), 'NoSuchBucket', bucketRe);
  await rejectsWith(s.put(uri, Uint8Array.of(1)), 'NoSuchBucket', bucketRe);
  await rejectsWith(s.head(uri), 'NoSuchBucket', bucketRe);
  await rejectsWith(s.list(missing), 'NoSuchBucket', bucketRe);
  await rejectsWith(s.delete(uri), 'NoSuchBucket', bucketRe);
});

test('an unreachable endpoint fails fast, after retries, naming the endpoint', async () => {
  const port = await new Promise<number>((res) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const s = new S3Store(root, { endpoint, maxAttempts: 3 });
  const e = await rejectsWith(
    s.get(joinUri(root, 'x.bin')),
    'Unreachable',
    new RegExp(`cannot reach S3 endpoint ${endpoint}`),
    /ECONNREFUSED/,
    /after 3 attempts/,
  );
  // The bound that matters is the attempt count in the message, not a duration.
  assert.ok(!e.message.includes('\n'));
});

test('an endpoint that accepts connections but never answers fails after the socket timeout, naming it', async () => {
  const silent = createServer(() => undefined).listen(0, '127.0.0.1');
  await new Promise((r) => silent.once('listening', r));
  const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  try {
    const s = new S3Store(root, { endpoint, maxAttempts: 2, socketTimeoutMs: 500 });
    await rejectsWith(
      s.list(joinUri(root, 'x/')),
      'Unreachable',
      new RegExp(`cannot reach S3 endpoint ${endpoint} \\(TimeoutError\\) after 2 attempts`),
    );
  } finally {
    silent.close();
  }
});

test('bad endpoint settings are Config errors naming the variable', () => {
  const saved = { ...process.env };
  try {
    for (const [k, v, re] of [
      [
        'GET_DISTILL_S3_ENDPOINT',
        '127.0.0.1:7480',
        /GET_DISTILL_S3_ENDPOINT: "127.0.0.1:7480" is not an http\(s\) URL/,
      ],
      [
        'GET_DISTILL_S3_FORCE_PATH_STYLE',
        'maybe',
        /GET_DISTILL_S3_FORCE_PATH_STYLE: must be true or false, got "maybe"/,
      ],
      ['GET_DISTILL_S3_MAX_ATTEMPTS', 'abc', /GET_DISTILL_S3_MAX_ATTEMPTS: must be an integer ≥ 1, got "abc"/],
    ] as const) {
      process.env[k] = v;
      assert.throws(
        () => new S3Store(root),
        (e: unknown) => e instanceof StoreError && e.code === 'Config' && re.test(e.message),
        k,
      );
      process.env[k] = saved[k];
      if (saved[k] === undefined) delete process.env[k];
    }
  } finally {
    Object.assign(process.env, saved);
  }
});

test('URIs outside the root, with dot segments or unknown schemes are rejected', async () => {
  await rejectsWith(store.get('s3://other-bucket/run1/x'), 'OutsideRoot', /outside the store root/);
  await rejectsWith(store.get(root.replace('run1', 'run10') + '/x'), 'OutsideRoot');
  await rejectsWith(store.get(`${root}/../run2/x`), 'BadUri', /'\.\.'/);
  await rejectsWith(store.put(`${root}/`, Uint8Array.of(1)), 'BadUri', /prefix, not an object/);
  await rejectsWith(
    Promise.resolve().then(() => storeFor('gs://bucket/x')),
    'UnknownScheme',
    /gs:\/\//,
  );
  await rejectsWith(
    Promise.resolve().then(() => storeFor('s3://Bad_Bucket/x')),
    'BadUri',
    /not a valid S3 bucket name/,
  );
  assert.throws(
    () => joinUri(root, '../escape'),
    (e: unknown) => e instanceof StoreError && e.code === 'OutsideRoot',
  );
});
