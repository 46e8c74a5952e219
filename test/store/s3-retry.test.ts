/**
 * S3Store retries and credential chain, with the real SDK client against the real Ceph RADOS Gateway
 * (scripts/s3-server.sh). Proves:
 *  1. transient failures (503 SlowDown, a socket reset without an answer) are retried by the SDK's
 *     standard strategy with backoff and then succeed: put/get/head/list each send exactly K+1
 *     requests (the same invocation, `amz-sdk-request: attempt=n`), and the bytes round trip;
 *  2. more failures than attempts end in one exactly-`maxAttempts`-request StoreError, one line,
 *     naming the URI, the endpoint, the attempt count and the server's error;
 *  3. the standard AWS chain works: a shared credentials/config profile (AWS_PROFILE) round trips,
 *     a profile with a wrong secret is access-denied, and no credentials at all (or no region) is a
 *     'Config' error naming the fix, within seconds. These run in child processes because the SDK caches
 *     credential providers and parsed profile files per process.
 * Faults come from a small HTTP proxy in front of the gateway that forwards requests verbatim
 * (SigV4 signs the Host header, so the original Host value is kept).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Store, StoreError, joinUri } from '../../src/store/index.js';
import { loadS3Env, pattern, uniqueBucket } from './s3-env.js';

/**
 * A fault the proxy injects into one request instead of forwarding it. The `list-…` ones answer a
 * ListObjectsV2 request with a page of one key whose pagination is broken, as field reports saw from
 * S3-compatible servers: truncated without a continuation token, or always the same token.
 */
type Fault = 'slowdown' | 'reset' | 'list-truncated-no-token' | 'list-same-token';

/** A ListObjectsV2 page of one key under `prefix`, truncated, with `token` (or none). */
function brokenListPage(bucket: string, prefix: string, n: number, token?: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Name>${bucket}</Name><Prefix>${prefix}</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>` +
    '<IsTruncated>true</IsTruncated>' +
    `<Contents><Key>${prefix}key-${n}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>` +
    '<ETag>"0"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>' +
    (token ? `<NextContinuationToken>${token}</NextContinuationToken>` : '') +
    '</ListBucketResult>'
  );
}

const SLOWDOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request ' +
  'rate.</Message></Error>';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']);

/** One request as the proxy saw it. */
interface Seen {
  method: string;
  path: string;
  /** `amz-sdk-request` header, e.g. 'attempt=2; max=4'. */
  attempt: string;
  /** `amz-sdk-invocation-id`: the same for every retry of one operation. */
  invocation: string;
  /** What the proxy did: forwarded (upstream status) or the injected fault. */
  outcome: number | Fault;
  at: number;
}

/** HTTP proxy on 127.0.0.1:0 forwarding to the gateway; `failNext` queues faults for the next requests. */
class FaultProxy {
  readonly seen: Seen[] = [];
  private faults: Fault[] = [];
  private server!: Server;
  url = '';

  constructor(private readonly upstream: URL) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  /** The next `faults.length` requests get these faults, in order; later ones are forwarded. */
  failNext(...faults: Fault[]): void {
    this.faults.push(...faults);
  }

  /** Faults queued but not yet used. */
  get pending(): number {
    return this.faults.length;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const fault = this.faults.shift();
    this.seen.push({
      method: req.method!,
      path: req.url!,
      attempt: String(req.headers['amz-sdk-request'] ?? ''),
      invocation: String(req.headers['amz-sdk-invocation-id'] ?? ''),
      outcome: fault ?? 0,
      at: performance.now(),
    });
    if (fault === 'reset') {
      req.socket.destroy(); // no status line at all: the client sees ECONNRESET / socket hang up
      return;
    }
    if (fault === 'list-truncated-no-token' || fault === 'list-same-token') {
      const url = new URL(req.url!, 'http://x');
      const bucket = url.pathname.split('/')[1] ?? '';
      const xml = brokenListPage(
        bucket,
        url.searchParams.get('prefix') ?? '',
        this.seen.length,
        fault === 'list-same-token' ? 'the-same-token' : undefined,
      );
      res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
      return;
    }
    if (fault === 'slowdown') {
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOWDOWN_XML) });
      res.end(SLOWDOWN_XML);
      return;
    }
    // Forward verbatim: rawHeaders keeps the Host value the request was signed with.
    const up = httpRequest(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers: req.rawHeaders,
        agent: false,
      },
      (ur) => {
        this.seen.at(-1)!.outcome = ur.statusCode!;
        const headers: [string, string][] = [];
        for (let i = 0; i < ur.rawHeaders.length; i += 2) {
          if (!HOP_BY_HOP.has(ur.rawHeaders[i]!.toLowerCase()))
            headers.push([ur.rawHeaders[i]!, ur.rawHeaders[i + 1]!]);
        }
        res.writeHead(ur.statusCode!, ur.statusMessage, headers.flat());
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    up.end(body);
  }
}

let env: ReturnType<typeof loadS3Env>;
let root: string;
let direct: S3Store;
let tmp: string;
const proxies: FaultProxy[] = [];

before(async () => {
  env = loadS3Env();
  root = `s3://${uniqueBucket('retry')}/run1`;
  direct = new S3Store(root);
  await direct.ensureBucket();
  tmp = mkdtempSync(join(tmpdir(), 'get-distill-s3-retry-'));
});

after(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh proxy and a store that talks to the gateway only through it. */
async function viaProxy(
  maxAttempts: number,
): Promise<{ proxy: FaultProxy; store: S3Store; meta: Map<string, { attempts?: number; totalRetryDelay?: number }> }> {
  const proxy = await new FaultProxy(new URL(env.endpoint)).start();
  proxies.push(proxy);
  const store = new S3Store(root, { endpoint: proxy.url, maxAttempts });
  // Records the SDK's own account of each command (attempts, summed backoff), read after retries.
  const meta = new Map<string, { attempts?: number; totalRetryDelay?: number }>();
  store.client.middlewareStack.add(
    (next, ctx) => async (args) => {
      const out = await next(args);
      meta.set(
        ctx.commandName ?? '',
        (out.output as { $metadata: { attempts?: number; totalRetryDelay?: number } }).$metadata,
      );
      return out;
    },
    { step: 'initialize' },
  );
  return { proxy, store, meta };
}

/** Asserts the proxy saw `n` requests of one operation, all one SDK invocation numbered attempt=1..n. */
function assertRetries(
  proxy: FaultProxy,
  n: number,
  method: string,
  maxAttempts: number,
  finalOutcome: number | Fault,
): void {
  assert.equal(proxy.seen.length, n, JSON.stringify(proxy.seen));
  assert.deepEqual(
    proxy.seen.map((s) => s.method),
    Array(n).fill(method),
  );
  assert.deepEqual(
    proxy.seen.map((s) => s.attempt),
    Array.from({ length: n }, (_, i) => `attempt=${i + 1}; max=${maxAttempts}`),
  );
  assert.equal(new Set(proxy.seen.map((s) => s.path)).size, 1, 'every retry is the same request');
  assert.equal(new Set(proxy.seen.map((s) => s.invocation)).size, 1, 'every retry is the same invocation');
  assert.equal(proxy.seen.at(-1)!.outcome, finalOutcome);
}

/**
 * Runs put/get/head/list concurrently, each through its own proxy that fails the first requests
 * with `faults`; checks each took exactly faults.length + 1 requests and returned the real data.
 * @returns the SDK's summed backoff per operation, ms.
 */
async function retriedOps(tag: string, faults: Fault[], maxBackoffMs: number): Promise<number[]> {
  const k = faults.length;
  const seeded = joinUri(root, `${tag}/seeded.bin`);
  const seededData = pattern(4096, 21);
  await direct.put(seeded, seededData);
  const [p, g, h, l] = await Promise.all([viaProxy(4), viaProxy(4), viaProxy(4), viaProxy(4)]);
  for (const x of [p, g, h, l]) x.proxy.failNext(...faults);
  const putUri = joinUri(root, `${tag}/put.bin`);
  const putData = pattern(3000, 22);
  const [, got, info, listed] = await Promise.all([
    p.store.put(putUri, putData),
    g.store.get(seeded),
    h.store.head(seeded),
    l.store.list(joinUri(root, `${tag}/seeded`)),
  ]);
  assertRetries(p.proxy, k + 1, 'PUT', 4, 200);
  assertRetries(g.proxy, k + 1, 'GET', 4, 200);
  assertRetries(h.proxy, k + 1, 'HEAD', 4, 200);
  assertRetries(l.proxy, k + 1, 'GET', 4, 200);
  assert.match(l.proxy.seen[0]!.path, /list-type=2/);
  assert.deepEqual(await direct.get(putUri), putData, 'the retried put stored the exact bytes');
  assert.deepEqual(got, seededData);
  assert.deepEqual(info, { size: 4096 });
  assert.deepEqual(listed, [seeded]);
  const delays: number[] = [];
  for (const [x, cmd] of [
    [p, 'PutObjectCommand'],
    [g, 'GetObjectCommand'],
    [h, 'HeadObjectCommand'],
    [l, 'ListObjectsV2Command'],
  ] as const) {
    const m = x.meta.get(cmd);
    assert.equal(m?.attempts, k + 1, `${cmd} attempts`);
    // Backoff is exponential with full jitter: < base·(1 + 2 + … + 2^(k-1)).
    assert.ok(m.totalRetryDelay! >= 0 && m.totalRetryDelay! < maxBackoffMs, `${cmd} backoff ${m.totalRetryDelay} ms`);
    // The proxy saw the requests at least that far apart in total.
    const seen = x.proxy.seen;
    assert.ok(
      seen.at(-1)!.at - seen[0]!.at >= m.totalRetryDelay! - 5,
      `${cmd}: requests closer than the SDK's backoff`,
    );
    delays.push(m.totalRetryDelay!);
  }
  return delays;
}

test('503 SlowDown twice, then success: put/get/head/list each retried with backoff (3 requests)', async () => {
  // Throttling errors back off from a 1 s base: retry i waits rand·1000·2^i ms, so < 3000 ms for two.
  const delays = await retriedOps('slowdown', ['slowdown', 'slowdown'], 3000);
  // Four independent draws of two uniform delays: all zero would mean no backoff at all.
  assert.ok(
    delays.some((d) => d > 0),
    `backoff ${delays}`,
  );
  console.log(`# SlowDown backoff (put, get, head, list): ${delays.join(', ')} ms`);
});

test('socket reset without an answer twice, then success: put/get/head/list each retried (3 requests)', async () => {
  // Transient errors back off from a 50 ms base: < 50 + 100 ms for two retries.
  const delays = await retriedOps('reset', ['reset', 'reset'], 150);
  console.log(`# reset backoff (put, get, head, list): ${delays.join(', ')} ms`);
  // The fault really is a connection reset: exhausting the attempts with it says so.
  const { proxy, store } = await viaProxy(2);
  proxy.failNext('reset', 'reset', 'reset');
  const uri = joinUri(root, 'reset/seeded.bin');
  const e = await store.get(uri).then(
    () => assert.fail('expected a StoreError'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof StoreError, String(e));
  assert.equal(e.code, 'Unreachable', e.message);
  assert.equal(
    e.message,
    `${uri}: cannot reach S3 endpoint ${proxy.url} (ECONNRESET) after 2 attempts; ` +
      `start the server or fix GET_DISTILL_S3_ENDPOINT`,
  );
  assert.equal(proxy.seen.length, 2);
});

test('a reset then a SlowDown, then success: mixed transient faults are retried too', async () => {
  // First retry from the 50 ms transient base (< 50 ms), the second from the 1 s throttling base (< 2000 ms).
  await retriedOps('mixed', ['reset', 'slowdown'], 2050);
});

test('more failures than attempts: 10 × SlowDown, maxAttempts 3 → one StoreError after exactly 3 calls', async () => {
  const seeded = joinUri(root, 'exhaust/seeded.bin');
  await direct.put(seeded, pattern(10, 3));
  const ops = ['put', 'get', 'head', 'list'] as const;
  const runs = await Promise.all(ops.map(() => viaProxy(3)));
  for (const r of runs) r.proxy.failNext(...Array<Fault>(10).fill('slowdown'));
  const putUri = joinUri(root, 'exhaust/put.bin');
  const calls = [
    runs[0]!.store.put(putUri, pattern(10, 4)),
    runs[1]!.store.get(seeded),
    runs[2]!.store.head(seeded),
    runs[3]!.store.list(joinUri(root, 'exhaust/')),
  ];
  const errors = await Promise.all(
    calls.map((c) =>
      c.then(
        () => assert.fail('expected a StoreError'),
        (e: unknown) => e,
      ),
    ),
  );
  for (const [i, e] of errors.entries()) {
    const { proxy } = runs[i]!;
    assert.ok(e instanceof StoreError, `${ops[i]}: expected StoreError, got ${(e as Error)?.stack}`);
    assert.equal(e.code, 'Io', e.message);
    const uri = i === 0 ? putUri : i === 3 ? joinUri(root, 'exhaust/') : seeded;
    assert.ok(e.message.startsWith(`${uri}: ${ops[i]} failed at ${proxy.url} after 3 attempts: `), e.message);
    // HEAD answers have no body, so only the status is known there.
    assert.match(
      e.message,
      i === 2
        ? /after 3 attempts: HTTP 503, no error code; /
        : /after 3 attempts: SlowDown \(503\): Please reduce your request rate; /,
    );
    assert.ok(
      e.message.endsWith('; the server is overloaded or failing: retry later, or raise GET_DISTILL_S3_MAX_ATTEMPTS'),
      e.message,
    );
    assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
    assert.ok(!e.message.includes(env.secretAccessKey));
    assert.equal(proxy.seen.length, 3, `${ops[i]}: ${JSON.stringify(proxy.seen)}`);
    assert.deepEqual(
      proxy.seen.map((s) => s.attempt),
      ['attempt=1; max=3', 'attempt=2; max=3', 'attempt=3; max=3'],
    );
    assert.equal(proxy.pending, 7, 'no request after the last attempt');
  }
  assert.equal(await direct.head(putUri), null, 'the failed put wrote nothing');
  for (const e of errors) console.log(`# ${(e as Error).message}`);
});

// ---- The standard AWS chain, in child processes ----

const STORE_INDEX = fileURLToPath(new URL('../../src/store/index.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The child: one S3Store from the ambient chain, put + get; prints the outcome as JSON. */
const CHILD = `
import { S3Store, StoreError, joinUri } from ${JSON.stringify(STORE_INDEX)};
const [root, key, seed] = process.argv.slice(2);
const data = Uint8Array.from({ length: 777 }, (_, i) => (i * 31 + Number(seed)) & 255);
const t0 = performance.now();
try {
  const store = new S3Store(root);
  const uri = joinUri(root, key);
  await store.put(uri, data);
  const back = await store.get(uri);
  const region = await store.client.config.region();
  const same = Buffer.compare(back, data) === 0;
  console.log(JSON.stringify({ ok: true, same, size: back.length, region, ms: performance.now() - t0 }));
} catch (e) {
  const { code, message } = e;
  const ms = performance.now() - t0;
  const storeError = e instanceof StoreError;
  console.log(JSON.stringify({ ok: false, storeError, code, message, cause: e.cause?.name, ms }));
}
`;

interface ChildResult {
  ok: boolean;
  same?: boolean;
  size?: number;
  region?: string;
  storeError?: boolean;
  code?: string;
  message?: string;
  cause?: string;
  ms: number;
}

/** Runs the child with only `awsEnv` as its AWS_* settings (everything else AWS_* removed). */
function runChild(awsEnv: Record<string, string>, key: string, seed: number): Promise<ChildResult> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('AWS_')) childEnv[k] = v;
  Object.assign(childEnv, awsEnv, {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const script = join(tmp, 'child.mts');
  writeFileSync(script, CHILD);
  return new Promise((resolve, reject) => {
    const cp = spawn(process.execPath, ['--import', 'tsx', script, root, key, String(seed)], {
      cwd: REPO_ROOT,
      env: childEnv,
    });
    let out = '';
    let err = '';
    cp.stdout.on('data', (d: Buffer) => (out += d));
    cp.stderr.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => cp.kill(), 15_000);
    cp.on('close', (rc) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as ChildResult);
      } catch {
        reject(new Error(`child exited ${rc} without a result; stdout: ${out} stderr: ${err}`));
      }
    });
  });
}

test('a truncated listing without a continuation token: an error naming endpoint and prefix, no subset', async () => {
  const { proxy, store } = await viaProxy(3);
  proxy.failNext('list-truncated-no-token');
  const prefix = joinUri(root, 'paged/');
  await assert.rejects(store.list(prefix), (e: unknown) => {
    assert.ok(e instanceof StoreError, String(e));
    assert.equal(e.code, 'Io');
    assert.ok(e.message.startsWith(`${prefix}: `), e.message);
    assert.match(
      e.message,
      new RegExp(
        `${proxy.url.replace(/[.]/g, '[.]')}.*truncated \\(IsTruncated\\) without a continuation token after 1 keys`,
      ),
    );
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  assert.equal(proxy.seen.length, 1, 'one request, no retry of a well-formed 200');
});

test('a continuation token that repeats: an error after 2 requests, not a request storm', async () => {
  const { proxy, store } = await viaProxy(3);
  proxy.failNext(...Array<Fault>(10).fill('list-same-token'));
  const prefix = joinUri(root, 'looping/');
  await assert.rejects(store.list(prefix), (e: unknown) => {
    assert.ok(e instanceof StoreError, String(e));
    assert.equal(e.code, 'Io');
    assert.ok(e.message.startsWith(`${prefix}: `), e.message);
    assert.match(e.message, /repeated a continuation token on listing page 3 \(2 keys so far\)/);
    return true;
  });
  // Page 1 gave the token, page 2 gave it again: two requests, eight canned answers left unused.
  assert.equal(proxy.seen.length, 2);
  assert.equal(proxy.pending, 8);
});

test('AWS chain: AWS_PROFILE from shared files works, wrong secret denied, no credentials/region: Config', async () => {
  const creds = join(tmp, 'credentials');
  const config = join(tmp, 'config');
  const empty = join(tmp, 'empty');
  writeFileSync(
    creds,
    `[get-distill-test]\naws_access_key_id = ${env.accessKeyId}\naws_secret_access_key = ${env.secretAccessKey}\n\n` +
      `[get-distill-wrong]\naws_access_key_id = ${env.accessKeyId}\naws_secret_access_key = not-the-secret\n`,
    { mode: 0o600 },
  );
  // A region that appears nowhere else, so the child can only have it from this file.
  writeFileSync(
    config,
    '[profile get-distill-test]\nregion = eu-west-3\n\n[profile get-distill-wrong]\nregion = eu-west-3\n',
  );
  writeFileSync(empty, '');
  const files = { AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: config };
  const [good, wrong, none, noRegion] = await Promise.all([
    runChild({ ...files, AWS_PROFILE: 'get-distill-test' }, 'chain/good.bin', 1),
    runChild({ ...files, AWS_PROFILE: 'get-distill-wrong' }, 'chain/wrong.bin', 2),
    // A region, so that credentials are the only thing missing.
    runChild(
      { AWS_SHARED_CREDENTIALS_FILE: empty, AWS_CONFIG_FILE: empty, AWS_REGION: 'us-east-1' },
      'chain/none.bin',
      3,
    ),
    // The profile's keys, but a config file without its region.
    runChild(
      { AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: empty, AWS_PROFILE: 'get-distill-test' },
      'chain/noregion.bin',
      4,
    ),
  ]);

  assert.deepEqual(
    { ok: good.ok, same: good.same, size: good.size, region: good.region },
    { ok: true, same: true, size: 777, region: 'eu-west-3' },
    JSON.stringify(good),
  );
  // The child really wrote to the gateway: read it back here with the env keys.
  assert.deepEqual(
    await direct.get(joinUri(root, 'chain/good.bin')),
    Uint8Array.from({ length: 777 }, (_, i) => (i * 31 + 1) & 255),
  );

  assert.equal(wrong.ok, false);
  assert.equal(wrong.storeError, true);
  assert.equal(wrong.code, 'AccessDenied', wrong.message);
  assert.match(
    wrong.message!,
    /chain\/wrong\.bin: access denied by http:\/\/127\.0\.0\.1:\d+ \(SignatureDoesNotMatch\) on put/,
  );
  assert.match(wrong.message!, /AWS_PROFILE/);
  assert.ok(!wrong.message!.includes('not-the-secret') && !wrong.message!.includes(env.secretAccessKey));
  assert.equal(await direct.head(joinUri(root, 'chain/wrong.bin')), null);

  assert.equal(none.ok, false);
  assert.equal(none.storeError, true);
  assert.equal(none.code, 'Config', none.message);
  assert.match(
    none.message!,
    /chain\/none\.bin: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/,
  );
  assert.equal(none.cause, 'CredentialsProviderError');

  assert.equal(noRegion.ok, false);
  assert.equal(noRegion.code, 'Config', noRegion.message);
  assert.match(noRegion.message!, /chain\/noregion\.bin: no AWS region configured; set AWS_REGION/);
  console.log(
    `# chain: profile round trip ${good.ms.toFixed(0)} ms, wrong secret ${wrong.ms.toFixed(0)} ms, no ` +
      `credentials ${none.ms.toFixed(0)} ms`,
  );
});
