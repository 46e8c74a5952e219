/**
 * The exporter service (services/exporter/main.ts) against the real S3 gateway: a job over POST
 * /v1/jobs → model.onnx + model.json in S3 and get_export_duration_seconds on /metrics; the same
 * checkpoint (named by its object URI) in job mode → exit 0 and the same model bytes; a missing
 * checkpoint → a permanent failure naming `checkpoint` (exit 2 in job mode); bad specs → 400.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PairStream } from '../../src/data/pair-stream.js';
import { resolveConfig } from '../../src/get/config.js';
import { datasetDigest } from '../../src/stages/datagen.js';
import { streamSource, trainStage } from '../../src/stages/train.js';
import { S3Store } from '../../src/store/index.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';
import { call, sample } from './helpers.js';
import { type Service, seedPairs, settled, startJob, startService } from './stage-helpers.js';

let bucket: string;
let store: S3Store;
let svc: Service;
let run: string;
const STEPS = 4;
const getJson = async (uri: string) => JSON.parse(new TextDecoder().decode(await store.get(uri)));

before(async () => {
  loadS3Env();
  bucket = uniqueBucket('exporter');
  store = new S3Store(`s3://${bucket}`);
  run = `s3://${bucket}/run`;
  await store.ensureBucket();
  const started = startService('exporter');
  // A real checkpoint: 4 steps of GET-CPU-XS/8 on 128 pairs, in-process.
  await seedPairs(store, `${run}/pairs`, 128, 64);
  const stream = await PairStream.open(store, `${run}/pairs`, { batchSize: 16, seed: 0, dropLast: true });
  await trainStage(streamSource(stream), {
    config: resolveConfig('GET-CPU-XS/8', { numClasses: 10 }),
    steps: STEPS,
    batch: 16,
    iterations: 2,
    optimizer: REFERENCE_ADAMW,
    ema: { kind: 'constant', decay: 0.9 },
    seed: 0,
    store,
    checkpointDir: `${run}/checkpoints`,
    checkpointEvery: STEPS,
    keep: 1,
    resume: false,
    dataManifestSha256: datasetDigest(stream.manifest),
    threads: 1,
  });
  svc = await started;
});
after(async () => {
  if (svc) assert.equal(await svc.stop(), 0);
  store.client.destroy();
});

test('service: POST a job → model.onnx + model.json in S3, export gauge; job mode → exit 0, same model', async () => {
  const r = await call('POST', `${svc.url}/v1/jobs`, { checkpoint: `${run}/checkpoints`, out: `${run}/svc` });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const job = await settled(`${svc.url}/v1/jobs/${r.body.job.id}`);
  assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
  assert.deepEqual(job.artifacts, { model: `${run}/svc/model.onnx`, card: `${run}/svc/model.json` });
  const card = await getJson(job.artifacts.card);
  assert.equal(card.step, STEPS);
  assert.equal(card.iterations, 2);
  assert.equal(card.preset, 'GET-CPU-XS/8');
  const onnx = await store.get(job.artifacts.model);
  assert.equal(sha256Hex(onnx), card.sha256);
  assert.equal(onnx.length, card.bytes);
  assert.deepEqual(job.summary, { step: STEPS, sha256: card.sha256, bytes: card.bytes, seconds: job.summary.seconds });
  const seconds = sample((await call('GET', `${svc.url}/metrics`)).body, 'get_export_duration_seconds')!;
  assert.ok(
    seconds > 0 && seconds < 60 && Math.abs(seconds - job.summary.seconds) < 0.01,
    `${seconds} vs ${job.summary.seconds}`,
  );

  const latest = await getJson(`${run}/checkpoints/latest.json`);
  const c = startJob('exporter', { checkpoint: `${run}/checkpoints/${latest.file}`, out: `${run}/job` });
  assert.equal(await c.exited, 0, c.stderr());
  assert.equal(
    (await getJson(`${run}/job/model.json`)).sha256,
    card.sha256,
    'the same checkpoint exports the same bytes',
  );
});

test('bad input, a missing checkpoint included: 400 naming the field; job mode exits 2', async () => {
  for (const [body, re] of [
    [{ checkpoint: `${run}/checkpoints`, out: `${run}/x`, format: 'onnx' }, /^body: unknown field "format"/],
    [{ out: `${run}/x` }, /^checkpoint: /],
    [{ checkpoint: `${run}/checkpoints`, out: 'ftp://host/x' }, /^out: /],
  ] as const) {
    const r = await call('POST', `${svc.url}/v1/jobs`, body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error.message, re);
  }
  const r = await call('POST', `${svc.url}/v1/jobs`, { checkpoint: `${run}/nothing`, out: `${run}/x` });
  assert.equal(r.status, 400, JSON.stringify(r.body)); // found before the job is accepted (preflight)
  assert.match(
    r.body.error.message,
    new RegExp(`^checkpoint: no checkpoint at ${run}/nothing \\(nor its latest\\.json\\)`),
  );
  const c = startJob('exporter', { checkpoint: `${run}/nothing`, out: `${run}/x` });
  assert.equal(await c.exited, 2);
  assert.match(
    c.stderr(),
    new RegExp(`^get-distill-exporter: checkpoint: ${run}/nothing: no checkpoint there[^\\n]*\\n$`),
  );
  assert.deepEqual(await store.list(`${run}/x`), [], 'nothing written');
});
