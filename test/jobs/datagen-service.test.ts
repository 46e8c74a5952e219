/**
 * The datagen service (services/datagen/main.ts) against the real S3 gateway (scripts/s3-server.sh):
 * a job over POST /v1/jobs → shards + manifest in S3 and the datagen gauges on /metrics; the same job
 * in job mode (exit 0, byte-identical shards); an Indexed Job of two workers (JOB_COMPLETION_INDEX 0
 * and 1, in parallel) → one merged manifest whose shards equal the single worker's; bad input → 400
 * naming the field (the service stays up) and exit 2 in job mode.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Store, joinUri } from '../../src/store/index.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';
import { call, sample } from './helpers.js';
import { type Service, pollJob, seedTeacherCache, settled, startJob, startService } from './stage-helpers.js';
import type { JsonObject } from '../json.js';

let bucket: string;
let store: S3Store;
let svc: Service;
const PAIRS = 256;
const spec = (out: string, extra: Record<string, unknown> = {}) => ({
  out: `s3://${bucket}/${out}`,
  teacher: 'mixture',
  dataset: 'mnist',
  teacherComponents: 3,
  teacherRank: 8,
  cacheDir: `s3://${bucket}/cache`,
  seeds: { start: 0, end: PAIRS },
  shardSize: 64,
  threads: 1,
  ...extra,
});
const getJson = async (uri: string) => JSON.parse(new TextDecoder().decode(await store.get(uri)));

before(async () => {
  loadS3Env();
  bucket = uniqueBucket('datagen');
  store = new S3Store(`s3://${bucket}`);
  await store.ensureBucket();
  const started = startService('datagen');
  await seedTeacherCache(store, `s3://${bucket}/cache`, 3, 8);
  svc = await started;
});
after(async () => {
  if (svc) assert.equal(await svc.stop(), 0, 'SIGTERM: the idle service drains and exits 0');
  store.client.destroy();
});

test('bad specs and a missing teacher object → 400 naming the field; the service stays up', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ...spec('bad'), seeds: { start: 10, end: 10 } },
      /^seeds\.end: equals seeds\.start 10: the range \[10, 10\) is empty/,
    ],
    [
      { ...spec('bad'), seeds: { start: 20, end: 10 } },
      /^seeds\.end: 10 is below seeds\.start 20: the range is reversed/,
    ],
    [{ ...spec('bad'), colour: 'red' }, /^body: unknown field "colour"/],
    [{ ...spec('bad'), seeds: { start: 0, end: 64, step: 2 } }, /^seeds: unknown field "step"/],
    [{ ...spec('bad'), dataset: undefined }, /^dataset: /],
    [{ ...spec('bad'), teacher: undefined }, /^teacher: /],
    [{ ...spec('bad'), shardSize: 0 }, /^shardSize: /],
    [{ ...spec('bad'), parallelism: 5 }, /^parallelism: 5 exceeds the 4 shards of seeds \[0, 256\) at shardSize 64/],
    [{ ...spec('bad'), seeds: { start: 2147483600, end: 2147483649 } }, /^seeds\.end: /],
    [{ ...spec('bad'), seeds: { start: -1, end: 10 } }, /^seeds\.start: /],
    [{ ...spec('bad'), cacheDir: undefined }, /^cacheDir: is required for the mixture teacher/],
    [{ ...spec('bad'), out: 's3:/no-slashes' }, /^out: /],
  ];
  for (const [body, re] of cases) {
    const r = await call('POST', `${svc.url}/v1/jobs`, body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'bad_request');
    assert.match(r.body.error.message, re);
  }
  // A teacher object that does not exist is found before the job is accepted (preflight).
  const missing = await call(
    'POST',
    `${svc.url}/v1/jobs`,
    spec('bad', { teacher: `s3://${bucket}/nowhere/teacher.onnx` }),
  );
  assert.equal(missing.status, 400, JSON.stringify(missing.body));
  assert.match(
    missing.body.error.message,
    new RegExp(`^teacher: no ONNX teacher network at s3://${bucket}/nowhere/teacher\\.onnx`),
  );
  assert.deepEqual(await store.list(`s3://${bucket}/bad/`), [], 'nothing written');
  assert.equal((await call('GET', `${svc.url}/readyz`)).status, 200);
});

test('service: POST a job → shards + manifest in S3, progress, gauges; job mode gives the same shards', async () => {
  const t0 = performance.now();
  const r = await call('POST', `${svc.url}/v1/jobs`, spec('svc'));
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const url = `${svc.url}${r.headers.get('location')}`;
  const running = await pollJob(url, (j) => (j.progress.pairsDone ?? 0) > 0 || j.state !== 'running');
  const firstPairS = (performance.now() - t0) / 1000;
  const job = await settled(url);
  assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
  console.log(
    `datagen service: first pair after ${firstPairS.toFixed(2)} s, ${PAIRS} pairs in ` +
      `${((performance.now() - t0) / 1000).toFixed(2)} s (${job.summary.pairsPerSecond} pairs/s)`,
  );
  assert.equal(running.progress.pairsTotal, PAIRS);
  assert.deepEqual(job.artifacts, { manifest: `s3://${bucket}/svc/manifest.json` });
  assert.deepEqual(job.progress, { phase: 'done', pairsDone: PAIRS, pairsTotal: PAIRS, shardsDone: 4, shardsTotal: 4 });
  assert.equal(job.summary.generated, PAIRS);
  const manifest = await getJson(job.artifacts.manifest);
  assert.equal(manifest.totalPairs, PAIRS);
  assert.equal(manifest.shards.length, 4);
  assert.equal(manifest.teacher, job.summary.teacher);
  assert.ok(manifest.conditional && manifest.numClasses === 10);
  for (const s of manifest.shards)
    assert.equal((await store.head(joinUri(`s3://${bucket}/svc`, s.file)))?.size, s.bytes);

  const text = (await call('GET', `${svc.url}/metrics`)).body as string;
  assert.equal(sample(text, 'get_datagen_pairs_total'), PAIRS);
  assert.equal(sample(text, 'get_datagen_shards_done'), 4);
  assert.equal(sample(text, 'get_datagen_shards_total'), 4);
  // The gauge is pairs over the sampling time up to the last pair; sampling is part of the job, so the rate
  // is at least the pairs over the job's recorded duration (ISO ms stamps: +1 ms for their truncation) and at
  // least the summary's rate over the whole sampling time (rounded to 0.1).
  const rate = sample(text, 'get_datagen_pairs_per_second')!;
  assert.ok(Number.isFinite(rate) && rate > 0, text);
  const jobSeconds = (Date.parse(job.finishedAt) - Date.parse(job.startedAt) + 1) / 1000;
  assert.ok(rate >= PAIRS / jobSeconds, `${rate} pairs/s, but ${PAIRS} pairs in a job of ${jobSeconds} s`);
  assert.ok(
    rate >= job.summary.pairsPerSecond - 0.05,
    `${rate} pairs/s below the summary's ${job.summary.pairsPerSecond}`,
  );
  assert.equal(sample(text, 'get_jobs_total', { stage: 'datagen', outcome: 'succeeded' }), 1);

  assert.equal(job.summary.teacherReused, false);
  const second = await settled(
    `${svc.url}${(await call('POST', `${svc.url}/v1/jobs`, spec('svc2'))).headers.get('location')}`,
  );
  assert.equal(second.summary.teacherReused, true, 'the next job with the same teacher fields reuses the warm teacher');
  assert.deepEqual((await getJson(`s3://${bucket}/svc2/manifest.json`)).shards, manifest.shards);

  const c = startJob('datagen', spec('job'));
  assert.equal(await c.exited, 0, c.stderr());
  const done = c.lines.find((l) => l.msg === 'job succeeded')!;
  assert.deepEqual(done.artifacts, { manifest: `s3://${bucket}/job/manifest.json` });
  const again = await getJson(`s3://${bucket}/job/manifest.json`);
  assert.deepEqual(again.shards, manifest.shards, 'same shards, same sha256');
});

test("Indexed Job: workers 0 and 1 → the single worker's manifest; JOB_COMPLETION_INDEX 2 of 2 → exit 2", async () => {
  const s2 = spec('indexed', { parallelism: 2 });
  const workers = [0, 1].map((i) => startJob('datagen', s2, { JOB_COMPLETION_INDEX: String(i) }));
  const outside = startJob('datagen', s2, { JOB_COMPLETION_INDEX: '2' });
  assert.deepEqual(await Promise.all(workers.map((w) => w.exited)), [0, 0], workers.map((w) => w.stderr()).join('\n'));
  const noIndex = startJob('datagen', s2, {}); // a non-indexed Job: every pod would make the whole range
  assert.equal(await outside.exited, 2);
  assert.match(
    outside.stderr(),
    new RegExp(
      '^get-distill-datagen: JOB_COMPLETION_INDEX 2 is outside \\[0, 2\\) \\(parallelism 2\\): seeds \\[0, 256\\) ' +
        'are split into 2 parts',
    ),
  );
  assert.equal(await noIndex.exited, 2);
  assert.match(
    noIndex.stderr(),
    /^get-distill-datagen: parallelism 2 needs JOB_COMPLETION_INDEX \(run it as an Indexed Job/,
  );
  const summaries = workers.map((w) => w.lines.find((l) => l.msg === 'job succeeded')!.summary as JsonObject);
  assert.deepEqual(
    summaries.map((s) => [s.seeds, s.pairs, s.generated]),
    [
      [{ start: 0, end: 128 }, 128, 128],
      [{ start: 128, end: 256 }, 128, 128],
    ],
  );
  assert.ok(
    summaries.some((s) => s.merged),
    'the last to finish (or both, when they finish together) merges',
  );
  for (const [i, w] of workers.entries()) {
    const a = w.lines.find((l) => l.msg === 'job succeeded')!.artifacts as Record<string, string>;
    assert.equal(a.part, `s3://${bucket}/indexed/parts/part-${i}-of-2.json`);
    assert.equal(a.manifest, summaries[i].merged ? `s3://${bucket}/indexed/manifest.json` : undefined);
  }
  const merged = await getJson(`s3://${bucket}/indexed/manifest.json`);
  const single = await getJson(`s3://${bucket}/svc/manifest.json`);
  assert.deepEqual(merged.shards, single.shards, 'the same four shards, byte for byte (sha256)');
  const { createdAt: _a, ...m } = merged;
  const { createdAt: _b, ...s } = single;
  assert.deepEqual(m, s, 'the whole manifest apart from createdAt');
  assert.deepEqual(
    (await store.list(`s3://${bucket}/indexed/parts/`)).map((u) => u.split('/').at(-1)),
    ['part-0-of-2.json', 'part-1-of-2.json'],
  );
  assert.deepEqual(await store.list(`s3://${bucket}/indexed/progress`), [], 'the part journals are gone');
});

test('job mode: bad input exits 2 with one line naming the field', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ...spec('jbad'), seeds: { start: 64, end: 0 } },
      /^get-distill-datagen: GET_DISTILL_JOB_SPEC: seeds\.end: 0 is below seeds\.start 64/,
    ],
    [
      { ...spec('jbad'), seeds: { start: 64, end: 64 } },
      /^get-distill-datagen: GET_DISTILL_JOB_SPEC: seeds\.end: equals seeds\.start 64/,
    ],
    [{ ...spec('jbad'), extra: 1 }, /^get-distill-datagen: GET_DISTILL_JOB_SPEC: unknown field "extra"/],
    [{ ...spec('jbad'), dataset: undefined }, /dataset/],
    [
      { ...spec('jbad'), teacher: `s3://${bucket}/nowhere.onnx` },
      new RegExp(`^get-distill-datagen: teacher: s3://${bucket}/nowhere\\.onnx: no such object`),
    ],
  ];
  const children = cases.map(([s]) => startJob('datagen', s));
  for (const [i, c] of children.entries()) {
    assert.equal(await c.exited, 2, c.stderr());
    assert.equal(c.stderr().trim().split('\n').length, 1, c.stderr());
    assert.match(c.stderr(), cases[i][1]);
  }
});
