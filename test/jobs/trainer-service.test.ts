/**
 * The trainer service (services/trainer/main.ts) against the real S3 gateway: a job over POST /v1/jobs
 * → checkpoints in S3 and the train gauges on /metrics; the same job in job mode (exit 0, same loss);
 * SIGTERM during a job-mode run → exit 75 with a checkpoint in S3, and a rerun of the same spec resumes
 * right after it and finishes; DELETE of a running job → cancelled with a checkpoint that exports; bad
 * input → 400 naming the field (the service stays up) or a permanent failure naming it, exit 2 in job mode.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { exportStage } from '../../src/stages/export.js';
import { S3Store } from '../../src/store/index.js';
import { loadS3Env, uniqueBucket } from '../store/s3-env.js';
import { call, sample, until } from './helpers.js';
import { type Service, pollJob, seedPairs, settled, startJob, startService } from './stage-helpers.js';
import type { JsonObject } from '../json.js';

let bucket: string;
let store: S3Store;
let svc: Service;
const spec = (out: string, extra: Record<string, unknown> = {}) => ({
  pairs: `s3://${bucket}/pairs`,
  out: `s3://${bucket}/${out}`,
  preset: 'GET-CPU-XS/8',
  steps: 20,
  batch: 16,
  checkpointEvery: 10,
  threads: 1,
  ...extra,
});
const getJson = async (uri: string) => JSON.parse(new TextDecoder().decode(await store.get(uri)));

before(async () => {
  loadS3Env();
  bucket = uniqueBucket('trainer');
  store = new S3Store(`s3://${bucket}`);
  await store.ensureBucket();
  const started = startService('trainer');
  await seedPairs(store, `s3://${bucket}/pairs`, 256, 64);
  svc = await started;
});
after(async () => {
  if (svc) assert.equal(await svc.stop(), 0);
  store.client.destroy();
});

test('bad specs → 400 naming the field; bad inputs fail permanently naming it; the service stays up', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...spec('bad'), colour: 'red' }, /^body: unknown field "colour"/],
    [{ ...spec('bad'), steps: undefined }, /^steps: /],
    [{ ...spec('bad'), steps: 0 }, /^steps: /],
    [{ ...spec('bad'), batch: 2.5 }, /^batch: must be an integer/],
    [{ ...spec('bad'), preset: 'GET-XXL/1' }, /^preset: /],
    [{ ...spec('bad'), emaDecay: 1 }, /^emaDecay: /],
    [{ ...spec('bad'), pairs: '' }, /^pairs: must not be empty/],
  ];
  for (const [body, re] of cases) {
    const r = await call('POST', `${svc.url}/v1/jobs`, body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error.message, re);
  }
  // A pair folder without a manifest is found before the job is accepted (preflight).
  const noPairs = await call('POST', `${svc.url}/v1/jobs`, spec('bad', { pairs: `s3://${bucket}/no-pairs` }));
  assert.equal(noPairs.status, 400, JSON.stringify(noPairs.body));
  assert.match(
    noPairs.body.error.message,
    new RegExp(`^pairs: no pair dataset at s3://${bucket}/no-pairs \\(nor its manifest\\.json\\)`),
  );
  const failures: [Record<string, unknown>, RegExp][] = [
    [spec('bad', { batch: 512 }), new RegExp(`^batch: 512 exceeds the 256 pairs in s3://${bucket}/pairs`)],
    [spec('bad', { preset: 'GET-CPU-S/4', patchSize: 3 }), /^patchSize: GET-CPU-S\/4 with patch size 3: /],
  ];
  for (const [body, re] of failures) {
    const r = await call('POST', `${svc.url}/v1/jobs`, body);
    assert.equal(r.status, 202);
    const job = await settled(`${svc.url}/v1/jobs/${r.body.job.id}`);
    assert.equal(job.state, 'failed');
    assert.equal(job.error.code, 'permanent');
    assert.match(job.error.message, re);
  }
  assert.deepEqual(await store.list(`s3://${bucket}/bad/`), [], 'nothing written');
});

test('service: POST a job → checkpoints in S3, progress, train gauges; job mode reaches the same loss', async () => {
  const r = await call('POST', `${svc.url}/v1/jobs`, spec('svc'));
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const job = await settled(`${svc.url}/v1/jobs/${r.body.job.id}`);
  assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
  assert.deepEqual(job.artifacts, {
    checkpoints: `s3://${bucket}/svc/checkpoints`,
    latest: `s3://${bucket}/svc/checkpoints/latest.json`,
  });
  assert.equal(job.progress.step, 20);
  assert.equal(job.progress.steps, 20);
  assert.ok(job.progress.loss > 0 && job.progress.loss < 10, String(job.progress.loss));
  assert.deepEqual([job.summary.step, job.summary.resumedFrom, job.summary.firstStep], [20, 0, 1]);
  const latest = await getJson(job.artifacts.latest);
  assert.equal(latest.step, 20);
  assert.equal((await store.head(`s3://${bucket}/svc/checkpoints/${latest.file}`))?.size, latest.bytes);
  assert.equal((await store.list(`s3://${bucket}/svc/checkpoints/checkpoint-`)).length, 2, 'steps 10 and 20');

  const text = (await call('GET', `${svc.url}/metrics`)).body as string;
  assert.equal(sample(text, 'get_train_step'), 20);
  assert.equal(sample(text, 'get_train_loss'), job.summary.loss);
  assert.ok(sample(text, 'get_train_images_per_second')! > 0);
  assert.ok(sample(text, 'get_train_step_seconds')! > 0);
  const age = sample(text, 'get_train_checkpoint_age_seconds')!;
  assert.ok(age >= 0 && age < 30, `checkpoint age ${age}`);
  // Computed at scrape (the service runs out of this process, so its clock cannot be mocked): a later
  // scrape shows an older checkpoint without any new checkpoint. No amount of time is asserted.
  let later = age;
  for (let i = 0; i < 1000 && later <= age; i++) {
    later = sample((await call('GET', `${svc.url}/metrics`)).body, 'get_train_checkpoint_age_seconds')!;
  }
  assert.ok(later > age, `computed at scrape: ${age} s, then ${later} s`);

  const c = startJob('trainer', spec('job'));
  assert.equal(await c.exited, 0, c.stderr());
  const done = c.lines.find((l) => l.msg === 'job succeeded')! as JsonObject;
  assert.equal(done.summary.step, 20);
  assert.ok(
    Math.abs(done.summary.loss - job.summary.loss) <= 1e-4 * Math.abs(job.summary.loss),
    `${done.summary.loss} vs ${job.summary.loss}`,
  );
  assert.equal((await getJson(`s3://${bucket}/job/checkpoints/latest.json`)).step, 20);
});

test('job mode: SIGTERM → checkpoint, exit 75; the rerun resumes after the checkpoint, finishes (exit 0)', async () => {
  const s = spec('preempted', { steps: 150, checkpointEvery: 1000 });
  const c = startJob('trainer', s);
  const port = (await c.waitLine((l) => l.msg === 'listening')).port as number;
  await until(
    async () =>
      (await call('GET', `http://127.0.0.1:${port}/v1/job`)).body.job?.progress.step >= 5 ? true : undefined,
    60_000,
    'step 5',
  );
  c.proc.kill('SIGTERM');
  assert.equal(await c.exited, 75, c.stderr());
  assert.match(
    c.stderr(),
    /^get-distill-trainer: SIGTERM: the stage stopped at a safe point; exiting 75 so the retry resumes\n$/,
  );
  const stopped = (c.lines.find((l) => l.msg === 'job stopped at a safe point') as JsonObject).summary;
  const latest = await getJson(`s3://${bucket}/preempted/checkpoints/latest.json`);
  assert.ok(latest.step >= 5 && latest.step < 150, `checkpoint at step ${latest.step}`);
  assert.equal(stopped.step, latest.step, 'the checkpoint is the step it stopped at');

  const rerun = startJob('trainer', s);
  assert.equal(await rerun.exited, 0, rerun.stderr());
  const done = (rerun.lines.find((l) => l.msg === 'job succeeded') as JsonObject).summary;
  assert.deepEqual([done.resumedFrom, done.firstStep, done.step], [latest.step, latest.step + 1, 150]);
  assert.equal((await getJson(`s3://${bucket}/preempted/checkpoints/latest.json`)).step, 150);
  console.log(
    `SIGTERM at step ${latest.step}: exit 75; rerun resumed at step ${done.firstStep}, finished at ${done.step}`,
  );
});

test('DELETE of a running job → cancelled with a checkpoint at the step it stopped, which exports', async () => {
  const r = await call('POST', `${svc.url}/v1/jobs`, spec('cancelled', { steps: 100_000, checkpointEvery: 100_000 }));
  const url = `${svc.url}/v1/jobs/${r.body.job.id}`;
  await pollJob(url, (j) => j.progress.step >= 3);
  const del = await call('DELETE', url);
  assert.equal(del.status, 202);
  const job = await settled(url);
  assert.equal(job.state, 'cancelled');
  assert.equal(job.cancelRequested, true);
  const latest = await getJson(job.artifacts.latest);
  assert.equal(latest.step, job.summary.step);
  assert.ok(latest.step >= 3 && latest.step < 100_000);
  const exported = await exportStage({ checkpoint: job.artifacts.checkpoints, out: `s3://${bucket}/cancelled/model` });
  assert.equal(exported.card.step, latest.step);
  console.log(`DELETE: cancelled at step ${latest.step}, checkpoint exported (${exported.card.bytes} bytes)`);
  assert.equal((await store.head(exported.modelUri))?.size, exported.card.bytes);
  const text = (await call('GET', `${svc.url}/metrics`)).body as string;
  assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'cancelled' }), 1);
  assert.equal(sample(text, 'get_train_step'), latest.step);
});

test('job mode: bad input exits 2 with one line naming the field', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...spec('jbad'), lr: -1 }, /^get-distill-trainer: GET_DISTILL_JOB_SPEC: lr: /],
    [{ ...spec('jbad'), unknown: true }, /^get-distill-trainer: GET_DISTILL_JOB_SPEC: unknown field "unknown"/],
    [spec('jbad', { pairs: `s3://${bucket}/no-pairs` }), /^get-distill-trainer: pairs: .*no manifest/],
  ];
  const children = cases.map(([s]) => startJob('trainer', s));
  for (const [i, c] of children.entries()) {
    assert.equal(await c.exited, 2, c.stderr());
    assert.equal(c.stderr().trim().split('\n').length, 1, c.stderr());
    assert.match(c.stderr(), cases[i][1]);
  }
});
