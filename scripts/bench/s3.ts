/**
 * Section `s3`: upload and download throughput of one shard-sized object through the object-store
 * layer (src/store), local folder (file://) beside the local Ceph RADOS Gateway (scripts/s3-server.sh)
 * in the same run: S3 as a single PutObject and as a multipart upload (8 MiB parts, 4 in flight).
 *
 * The object is one default pair shard: 2048 pairs × (noise + image, float32 1×32×32, + an int64
 * label) = 16,793,600 bytes of deterministic pseudo-random content. MB/s counts MB = 10^6 bytes.
 * Each store gets one untimed warm-up round trip, whose download is compared byte for byte with what
 * was uploaded; then uploads to distinct keys and downloads of them are timed (5 each, 2 with
 * --quick; 4× as many for file://, whose rounds take milliseconds).
 *
 * The gateway is started when it is not serving and stopped again at the end only in that case.
 * @throws Error with a one-line reason when the gateway cannot be started or a round trip corrupts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { ObjectStore, S3StoreOptions } from '../../src/store/index.js';
import { type BenchContext, type Row, best, fmt, median, timeRuns } from './util.js';

const run = promisify(execFile);
const SERVER = fileURLToPath(new URL('../s3-server.sh', import.meta.url));
const MiB = 1024 * 1024;
/** One default pair shard: 2048 × (noise + image, float32 [1,32,32] each, + int64 label), bytes. */
const SHARD_BYTES = 2048 * (2 * 1024 * 4 + 8);
const PART_BYTES = 8 * MiB;
const QUEUE = 4;

/** One store configuration under test. */
interface Target {
  readonly name: string;
  readonly what: string;
  readonly store: ObjectStore;
  readonly root: string;
  /** Timed repetitions per direction. */
  readonly reps: number;
}

/** Throughput of one direction: best and median MB/s (MB = 10^6 bytes). */
interface Rate {
  best: number;
  median: number;
}

/** `n` bytes of xorshift32 output (deterministic in `seed`), so a corrupted round trip cannot pass by luck. */
function shardBytes(n: number, seed = 0x9e3779b9): Uint8Array {
  const bytes = new Uint8Array(n);
  const words = new Uint32Array(bytes.buffer, 0, n >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return bytes;
}

/** Throws naming the first differing byte when `got` is not `want`. */
function assertSame(got: Uint8Array, want: Uint8Array, uri: string): void {
  const g = Buffer.from(got.buffer, got.byteOffset, got.byteLength);
  if (g.equals(want)) return;
  let i = 0;
  while (i < Math.min(g.length, want.length) && g[i] === want[i]) i++;
  throw new Error(
    `round trip through ${uri} corrupted the object: ${fmt(g.length)} bytes back for ${fmt(want.length)} ` +
      `sent, first difference at byte ${fmt(i)}`,
  );
}

/** Whether the local gateway answers now (`s3-server.sh status` exits 0). */
async function gatewayUp(): Promise<boolean> {
  try {
    await run('bash', [SERVER, 'status'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts (or reuses) the gateway and loads its env lines (keys, region, endpoint) into process.env.
 * @throws Error with the script's one-line reason (e.g. missing packages without root for apt).
 */
async function startGateway(): Promise<void> {
  let stdout: string;
  try {
    ({ stdout } = await run('bash', [SERVER, 'start'], { timeout: 300_000 }));
  } catch (e) {
    const err = e as Error & { stderr?: string; killed?: boolean };
    const reason = err.killed
      ? 'timed out after 300 s'
      : (/^s3-server: (.*)$/m.exec(err.stderr ?? '')?.[1] ?? err.message.split('\n')[0]);
    throw new Error(`cannot start the local S3 gateway (bash scripts/s3-server.sh start): ${reason}`, { cause: e });
  }
  let n = 0;
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) {
      process.env[m[1]!] = m[2]!;
      n++;
    }
  }
  if (!process.env.GET_DISTILL_S3_ENDPOINT || n === 0)
    throw new Error('scripts/s3-server.sh start printed no GET_DISTILL_S3_ENDPOINT line; check its env file');
}

/** Warm-up round trip (verified), then `t.reps` timed uploads and downloads of distinct keys. */
async function measure(t: Target, data: Uint8Array, ctx: BenchContext): Promise<{ up: Rate; down: Rate }> {
  const uri = (i: number): string => `${t.root}/shard-${String(i).padStart(4, '0')}.bin`;
  let k = 0;
  const upMs = await timeRuns(() => t.store.put(uri(k++), data), 1, t.reps);
  assertSame(await t.store.get(uri(0)), data, uri(0)); // also the download warm-up
  k = 1;
  const downMs = await timeRuns(
    async () => {
      const got = await t.store.get(uri(k++));
      if (got.byteLength !== data.byteLength)
        throw new Error(`${uri(k - 1)}: ${fmt(got.byteLength)} bytes back, expected ${fmt(data.byteLength)}`);
    },
    0,
    t.reps,
  );
  const rate = (ms: number[]): Rate => ({
    best: data.byteLength / 1e3 / best(ms),
    median: data.byteLength / 1e3 / median(ms),
  });
  const r = { up: rate(upMs), down: rate(downMs) };
  ctx.log(
    `${t.name}: upload ${fmt(r.up.best, 1)} MB/s best, ${fmt(r.up.median, 1)} median; download ` +
      `${fmt(r.down.best, 1)} best, ${fmt(r.down.median, 1)} median`,
  );
  return r;
}

/** Deletes every object under `root` (best effort: cleanup must not hide the measurement's error). */
async function clear(store: ObjectStore, root: string, ctx: BenchContext): Promise<void> {
  try {
    for (const u of await store.list(`${root}/`)) await store.delete(u);
  } catch (e) {
    ctx.log(`warning: could not delete the objects under ${root}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Runs the section. */
export async function runS3(ctx: BenchContext): Promise<Row[]> {
  const reps = ctx.quick ? 2 : 5;
  // file:// rounds take milliseconds and their downloads alternate between ~3 and ~15 ms (fresh
  // 16.8 MB buffers fault their pages in), so they get more repetitions for a steadier median.
  const fileReps = 4 * reps;
  const wasUp = await gatewayUp();
  const t0 = performance.now();
  await startGateway();
  const startedS = (performance.now() - t0) / 1000;
  ctx.log(
    wasUp
      ? `gateway already serving at ${process.env.GET_DISTILL_S3_ENDPOINT}`
      : `started the gateway at ${process.env.GET_DISTILL_S3_ENDPOINT} in ${fmt(startedS, 1)} s`,
  );
  // Set before the SDK loads: it warns once per process about Node 20 support otherwise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const { FileStore, S3Store } = await import('../../src/store/index.js');
  const dir = await mkdtemp(join(tmpdir(), 'get-distill-bench-s3-'));
  const bucket = `bench-s3-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const s3 = (o: S3StoreOptions) =>
    new S3Store(`s3://${bucket}`, { partSizeBytes: PART_BYTES, queueSize: QUEUE, ...o });
  const single = s3({ multipartThresholdBytes: SHARD_BYTES + 1 });
  const multi = s3({ multipartThresholdBytes: 5 * MiB });
  const fileRoot = pathToFileURL(dir).href;
  const targets: Target[] = [
    {
      name: 'file',
      what: 'file:// (FileStore: temp file, fsync, rename)',
      store: new FileStore(fileRoot),
      root: `${fileRoot}/shards`,
      reps: fileReps,
    },
    { name: 's3 single', what: 'S3 single PutObject / GetObject', store: single, root: `s3://${bucket}/single`, reps },
    {
      name: 's3 multipart',
      what: `S3 multipart (${PART_BYTES / MiB} MiB parts, ${QUEUE} in flight) / GetObject`,
      store: multi,
      root: `s3://${bucket}/multipart`,
      reps,
    },
  ];
  const data = shardBytes(SHARD_BYTES);
  const results: { t: Target; up: Rate; down: Rate }[] = [];
  try {
    await single.ensureBucket();
    for (const t of targets) {
      try {
        results.push({ t, ...(await measure(t, data, ctx)) });
      } finally {
        await clear(t.store, t.root, ctx);
      }
    }
  } finally {
    single.client.destroy();
    multi.client.destroy();
    await rm(dir, { recursive: true, force: true });
    if (!wasUp) {
      await run('bash', [SERVER, 'stop'], { timeout: 60_000 }).catch((e: Error) =>
        ctx.log(`warning: s3-server.sh stop failed: ${e.message.split('\n')[0]}`),
      );
      ctx.log('stopped the gateway (this section started it)');
    }
  }
  const file = results[0]!;
  const size = `${fmt(SHARD_BYTES / 1e6, 1)} MB object (one 2048-pair shard)`;
  const rows: Row[] = [];
  for (const { t, up, down } of results) {
    for (const [way, r, f] of [
      ['upload', up, file.up],
      ['download', down, file.down],
    ] as const) {
      const vsFile =
        t === file.t ? '' : `; S3/file ${fmt(r.best / f.best, 2)}× best, ${fmt(r.median / f.median, 2)}× median`;
      rows.push({
        section: 's3',
        what: `${t.what} ${way}, ${size}`,
        value: `${fmt(r.best, 1)} MB/s`,
        note: `best of ${t.reps} after 1 warm-up, median ${fmt(r.median, 1)} MB/s (MB = 10^6 bytes)${vsFile}`,
      });
    }
  }
  rows.push({
    section: 's3',
    what: 'Local Ceph RADOS Gateway (scripts/s3-server.sh)',
    value: wasUp ? 'reused' : `started in ${fmt(startedS, 1)} s`,
    note:
      `${process.env.GET_DISTILL_S3_ENDPOINT}, memstore OSD on this machine (loopback, no network); round trip ` +
      `verified byte for byte once per store`,
  });
  return rows;
}
