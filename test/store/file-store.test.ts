/**
 * FileStore: round trips (small and multipart-sized), head/list, atomic writes, path traversal,
 * unknown schemes. Runs without the S3 server.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileStore, StoreError, joinUri, parseUri, storeFor } from '../../src/store/index.js';
import { pattern } from './s3-env.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'get-distill-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function isStoreError(code: string, ...patterns: RegExp[]) {
  return (e: unknown) => {
    assert.ok(e instanceof StoreError, String(e));
    assert.equal(e.code, code, e.message);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  };
}

test('plain-path store: round trip small and 12 MiB objects, head, delete', async () => {
  const store = storeFor(join(dir, 'plain'));
  assert.ok(store instanceof FileStore);
  const small = joinUri(store.root, 'a/b/small.bin');
  const big = joinUri(store.root, 'big.bin');
  const dataS = pattern(1000, 2);
  const dataB = pattern(12 * 1024 * 1024 + 3, 9);
  assert.equal(await store.head(small), null);
  await store.put(small, dataS);
  await store.put(big, dataB);
  assert.deepEqual(await store.head(small), { size: 1000 });
  assert.deepEqual(await store.get(small), dataS);
  assert.equal(Buffer.compare(await store.get(big), dataB), 0);
  await store.delete(small);
  await store.delete(small);
  assert.equal(await store.head(small), null);
  await assert.rejects(store.get(small), isStoreError('NotFound', /small\.bin: no such object/));
  assert.equal(await store.head(joinUri(store.root, 'a')), null, 'a folder is not an object');
});

test('file:// store lists in key order, by string prefix, and returns file URLs', async () => {
  const rootUrl = pathToFileURL(join(dir, 'url root')).href; // a space: percent-encoded in URLs
  const store = storeFor(rootUrl);
  const names = ['s/001', 's/002', 's/010', 's2/x', 't'];
  for (const n of names) await store.put(joinUri(rootUrl, n), new TextEncoder().encode(n));
  assert.deepEqual(
    await store.list(joinUri(rootUrl, 's/')),
    ['s/001', 's/002', 's/010'].map((n) => joinUri(rootUrl, n)),
  );
  assert.deepEqual(
    await store.list(joinUri(rootUrl, 's')),
    ['s/001', 's/002', 's/010', 's2/x'].map((n) => joinUri(rootUrl, n)),
  );
  assert.deepEqual(
    await store.list(rootUrl),
    names.map((n) => joinUri(rootUrl, n)),
  );
  assert.deepEqual(await store.list(joinUri(rootUrl, 'none/')), []);
  const listed = await store.list(joinUri(rootUrl, 't'));
  assert.equal(new TextDecoder().decode(await store.get(listed[0]!)), 't');
  assert.equal(parseUri(listed[0]!).scheme, 'file');
});

test('an aborted or failed put leaves the old object and no temporary file', async () => {
  const root = join(dir, 'atomic');
  const store = storeFor(root);
  const uri = joinUri(root, 'x.bin');
  await store.put(uri, pattern(64, 1));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    store.put(uri, pattern(8 * 1024 * 1024, 2), { signal: ac.signal }),
    isStoreError('Aborted', /x\.bin/),
  );
  assert.deepEqual(await store.get(uri), pattern(64, 1));
  // A write that fails at the rename (target is a folder) cleans up its temporary file.
  await mkdir(join(root, 'dir.bin', 'inner'), { recursive: true });
  await assert.rejects(store.put(joinUri(root, 'dir.bin'), pattern(10, 3)), StoreError);
  assert.deepEqual((await readdir(root)).sort(), ['dir.bin', 'x.bin']);
  // In-flight temporaries from another writer are never listed.
  await writeFile(join(root, '.y.bin.123.abcd.get-distill-tmp'), 'partial');
  assert.deepEqual(await store.list(`${root}/`), [join(root, 'x.bin')]);
});

test('path traversal out of the root is rejected, naming the URI', async () => {
  const root = join(dir, 'jail');
  const store = storeFor(root);
  await assert.rejects(
    store.get(`${root}/../outside.bin`),
    isStoreError('OutsideRoot', /outside\.bin/, /outside the store root/),
  );
  await assert.rejects(store.put(`${root}/a/../../x`, Uint8Array.of(1)), isStoreError('OutsideRoot'));
  await assert.rejects(
    store.get(`${pathToFileURL(root).href}/../../etc/passwd`),
    isStoreError('OutsideRoot', /etc\/passwd/),
  );
  await assert.rejects(
    store.get(`${root}-sibling/x`),
    isStoreError('OutsideRoot'),
    'a sibling with the root as string prefix is outside',
  );
  await assert.rejects(store.list('/etc/'), isStoreError('OutsideRoot'));
  assert.throws(() => joinUri(root, 'a/../../x'), isStoreError('OutsideRoot'));
  assert.throws(() => joinUri(root, '/etc/passwd'), isStoreError('BadUri'));
  await assert.rejects(
    store.get(`${root}/a/../inside.bin`),
    isStoreError('NotFound'),
    "'..' that stays inside is fine",
  );
});

test('unknown schemes and malformed URIs are rejected, naming the URI', () => {
  assert.throws(
    () => storeFor('gs://bucket/x'),
    isStoreError('UnknownScheme', /^gs:\/\/bucket\/x: unknown URI scheme "gs:\/\/"/),
  );
  assert.throws(() => storeFor('HTTP://host/x'), isStoreError('UnknownScheme', /"http:\/\/"/));
  assert.throws(() => storeFor('file://remote-host/x'), isStoreError('BadUri', /file:\/\/remote-host\/x/));
  assert.throws(() => storeFor(''), isStoreError('BadUri'));
  assert.throws(() => new FileStore('s3://bucket/x'), isStoreError('UnknownScheme'));
  const store = storeFor(join(dir, 'p'));
  assert.throws(() => (store as FileStore).pathOf('s3://bucket/x'), isStoreError('UnknownScheme'));
  assert.deepEqual(parseUri('s3://my-bucket/a/b'), { scheme: 's3', bucket: 'my-bucket', key: 'a/b' });
  assert.deepEqual(parseUri('s3://my-bucket'), { scheme: 's3', bucket: 'my-bucket', key: '' });
  assert.deepEqual(parseUri('file:///tmp/a%20b/../c'), { scheme: 'file', path: '/tmp/c', style: 'url' });
});

test('list with a limit returns that many keys, also at the file-system root', async () => {
  const root = new FileStore('/');
  const one = await root.list('/', { limit: 1 });
  assert.equal(one.length, 1);
  assert.ok(one[0].startsWith('/') && !one[0].startsWith('//'), one[0]);
});

test('a temporary file left by a killed writer is removed by the next write of that object', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'file-store-sweep-'));
  try {
    const store = new FileStore(dir);
    // PID 2^22 + 1 is above Linux's pid_max ceiling (2^22), so no process has it.
    const stale = `.shard.bin.${2 ** 22 + 1}.0badf00d.get-distill-tmp`;
    await writeFile(join(dir, stale), 'half a shard');
    await writeFile(join(dir, '.other.bin.4194305.0badf00d.get-distill-tmp'), 'another object');
    await store.put(join(dir, 'shard.bin'), Uint8Array.of(1, 2, 3));
    assert.deepEqual((await readdir(dir)).sort(), ['.other.bin.4194305.0badf00d.get-distill-tmp', 'shard.bin']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
