/**
 * `get-distill distill --store s3://…` against the real Ceph RADOS Gateway (scripts/s3-server.sh,
 * started by `npm test`): the whole run in S3, a training child killed with SIGKILL and resumed to the
 * same weights as a straight run (with a deleted and a truncated shard healed on the way), and the
 * bad-input contract for S3 (missing bucket, wrong secret, unreachable endpoint, corrupt checkpoint).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { decodeSafetensors } from '../../src/data/safetensors.js';
import { S3Store, joinUri } from '../../src/store/index.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';

const N = 40; // steps before the kill; the runs train 2N
let env: ReturnType<typeof loadS3Env>;
let bucket: string;
let store: S3Store;
const args = (out: string, extra: string[] = []) => [
  'distill',
  '--store',
  out,
  '--pairs',
  '256',
  '--heldout',
  '40',
  '--shard-size',
  '64',
  '--steps',
  String(2 * N),
  '--checkpoint-every',
  String(N),
  '--grid-columns',
  '2',
  '--teacher-components',
  '3',
  '--teacher-rank',
  '8',
  '--cache-dir',
  `s3://${bucket}/cache`,
  '--fid-samples',
  '150',
  ...extra,
];
const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

function cli(argv: string[], envOverride: Record<string, string> = {}): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI, ...argv], {
    encoding: 'utf8',
    timeout: 600_000, // a hang guard, not a time bound
    env: { ...process.env, ...envOverride },
  });
  return { code: r.status, stderr: r.stderr };
}

/** The last stderr line is the one error line; no stack trace anywhere. */
function expectUsage(r: { code: number | null; stderr: string }, pattern: RegExp): string {
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  assert.equal(lines.filter((l) => l.startsWith('get-distill: ')).length, 1, r.stderr);
  assert.match(lines.at(-1)!, pattern);
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace in:\n${r.stderr}`);
  return lines.at(-1)!;
}

const getJson = async (uri: string) => JSON.parse(new TextDecoder().decode(await store.get(uri)));

/** params/ema/adam tensors of a run's latest checkpoint, and its state. */
async function latestCheckpoint(
  run: string,
): Promise<{ state: { step: number }; tensors: Record<string, Float32Array> }> {
  const latest = await getJson(joinUri(run, 'checkpoints/latest.json'));
  const st = decodeSafetensors(await store.get(joinUri(run, 'checkpoints', latest.file)), latest.file);
  const tensors = Object.fromEntries(Object.entries(st.tensors).map(([k, t]) => [k, t.data as Float32Array]));
  return { state: JSON.parse(st.metadata.state!), tensors };
}

before(async () => {
  env = loadS3Env();
  bucket = uniqueBucket('distill');
  store = new S3Store(`s3://${bucket}`);
  await store.ensureBucket();
});
after(() => store.client.destroy());

test(`N=${N} steps + SIGKILL + --resume to 2N = 2N straight, in S3; deleted/truncated shards regenerate`, async (t) => {
  const straight = `s3://${bucket}/straight`;
  const killed = `s3://${bucket}/killed`;
  const r0 = cli(args(straight));
  assert.equal(r0.code, 0, r0.stderr);
  const report0 = await getJson(joinUri(straight, 'report.json'));
  assert.equal(report0.steps, 2 * N);
  for (const key of [
    'options.json',
    'stats.jsonl',
    'samples.png',
    'pairs/manifest.json',
    'heldout/manifest.json',
    'checkpoints/latest.json',
  ]) {
    assert.notEqual(await store.head(joinUri(straight, key)), null, `missing ${key}`);
  }
  for (const key of ['options.json', 'stats.jsonl', 'report.json']) {
    const text = new TextDecoder().decode(await store.get(joinUri(straight, key)));
    assert.ok(!text.includes(env.secretAccessKey) && !text.includes(env.accessKeyId), `${key} holds a credential`);
  }
  assert.ok(!r0.stderr.includes(env.secretAccessKey), 'the secret is never printed');

  // The same run, killed with SIGKILL once checkpoint N is in S3.
  const child = spawn(process.execPath, [...CLI, ...args(killed)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, signal) => res(signal)));
  let seen = -1;
  for (let t = 0; t < 1200 && child.exitCode === null; t++) {
    seen = await getJson(joinUri(killed, 'checkpoints/latest.json')).then(
      (l) => l.step as number,
      () => -1,
    );
    if (seen >= N) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', `the run ended before the kill:\n${stderr}`);
  assert.equal(seen, N, 'the kill must land between checkpoint N and the end (2N)');
  assert.equal(await store.head(joinUri(killed, 'report.json')), null);
  const pending = await store.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  assert.equal((pending.Uploads ?? []).length, 0, 'no multipart upload left behind');

  // Damage the pairs: one shard gone (the manifest names it), one truncated.
  const manifest = await getJson(joinUri(killed, 'pairs/manifest.json'));
  const [gone, cut] = [manifest.shards[1], manifest.shards[2]];
  await store.delete(joinUri(killed, 'pairs', gone.file));
  await store.put(
    joinUri(killed, 'pairs', cut.file),
    (await store.get(joinUri(killed, 'pairs', cut.file))).subarray(0, 1000),
  );

  const r1 = cli(args(killed, ['--resume']));
  assert.equal(r1.code, 0, r1.stderr);
  assert.match(
    r1.stderr,
    new RegExp(`regenerating s3://${bucket}/killed/pairs/${cut.file}: 1000 bytes, the manifest lists ${cut.bytes}`),
  );
  for (const e of [gone, cut])
    assert.equal(
      sha256Hex(await store.get(joinUri(killed, 'pairs', e.file))),
      e.sha256,
      `${e.file} regenerated byte-identically`,
    );
  const report1 = await getJson(joinUri(killed, 'report.json'));
  assert.equal(report1.resumedFromStep, N);
  assert.equal(report1.steps, 2 * N);

  const [a, b] = [await latestCheckpoint(straight), await latestCheckpoint(killed)];
  assert.equal(a.state.step, 2 * N);
  assert.equal(b.state.step, 2 * N);
  let maxDiff = 0;
  for (const [k, t] of Object.entries(a.tensors)) {
    assert.equal(b.tensors[k]?.length, t.length, k);
    for (let i = 0; i < t.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t[i] - b.tensors[k][i]));
  }
  assert.ok(
    Object.keys(a.tensors).some((k) => k.startsWith('adam_v.')),
    'Adam state is compared too',
  );
  assert.ok(maxDiff <= 1e-6, `params, EMA and Adam state differ by ${maxDiff}`);
  t.diagnostic(`max |Δ| over params, EMA and Adam state after kill + resume: ${maxDiff} (killed at step ${seen})`);
  assert.equal(report1.heldoutL1.student, report0.heldoutL1.student);
});

test('a checkpoint replaced by other bytes of the same size: --resume exits 2 naming its s3:// URI', async () => {
  const run = `s3://${bucket}/straight`;
  const latest = await getJson(joinUri(run, 'checkpoints/latest.json'));
  const uri = joinUri(run, 'checkpoints', latest.file);
  const bytes = await store.get(uri);
  const flipped = bytes.slice();
  flipped[flipped.length - 1] ^= 0xff;
  await store.put(uri, flipped);
  const line = expectUsage(
    cli(args(run, ['--resume', '--steps', String(2 * N + 10)])),
    /checkpoint is corrupt or truncated/,
  );
  assert.ok(line.includes(uri), line);
  assert.equal(sha256Hex(await store.get(uri)), sha256Hex(flipped), 'nothing was overwritten');
});

test('a missing bucket, a wrong secret and an unreachable endpoint exit 2 with one line naming it', async () => {
  expectUsage(
    cli(args(`s3://${bucket}-absent/run`)),
    new RegExp(`bucket "${bucket}-absent" does not exist at ${env.endpoint}`),
  );

  const wrong = cli(args(`s3://${bucket}/denied`), { AWS_SECRET_ACCESS_KEY: 'not-the-secret-0123456789' });
  expectUsage(
    wrong,
    /access denied by http:\/\/127\.0\.0\.1:\d+ \(SignatureDoesNotMatch\) on list; check AWS_ACCESS_KEY_ID/,
  );
  assert.ok(!wrong.stderr.includes('not-the-secret'), 'the secret is never printed');

  const port = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
  const down = cli(args(`s3://${bucket}/down`), {
    GET_DISTILL_S3_ENDPOINT: `http://127.0.0.1:${port}`,
    GET_DISTILL_S3_MAX_ATTEMPTS: '2',
  });
  // What bounds the failure is the retry budget, not a duration: exit 2, and the attempt count the SDK
  // reports is exactly GET_DISTILL_S3_MAX_ATTEMPTS.
  expectUsage(
    down,
    new RegExp(`cannot reach S3 endpoint http://127.0.0.1:${port} \\(ECONNREFUSED\\) after 2 attempts`),
  );
});
