/**
 * Service mode's job API (src/jobs/manager.ts, src/jobs/service.ts) over real HTTP with the fake
 * stage: submit → 202 + Location → succeeded with progress and artifacts; 409 while busy; DELETE stops
 * a job at its safe point (cancelled) and is idempotent; 400 naming unknown or bad fields; 404s;
 * newest-first listing and pruning; failures classified; metrics; SIGTERM drains and exits 0.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listen } from '../../src/service/app.js';
import { createLogger } from '../../src/service/logging.js';
import { createStageService, startStageService, type StageService } from '../../src/jobs/service.js';
import { fakeStage, type FakeSpec } from './fake-stage.js';
import { call, sample, unreachableS3Env, until } from './helpers.js';

const logger = createLogger('test', 'silent');
const dir = mkdtempSync(join(tmpdir(), 'get-jobs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function start(
  o: { concurrency?: number; keepFinished?: number } = {},
): Promise<StageService<FakeSpec> & { url: string; close(): Promise<void> }> {
  const s = createStageService(fakeStage(), { logger, ...o });
  const server: Server = await listen(s.app, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    ...s,
    url,
    close: async () => {
      await s.manager.shutdown(1000);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Polls GET /v1/jobs/{id} until the job leaves `running`. */
const finished = (url: string, id: string) =>
  until(
    async () => {
      const r = await call('GET', `${url}/v1/jobs/${id}`);
      return r.body.job.state === 'running' ? undefined : r.body.job;
    },
    10_000,
    `job ${id} to finish`,
  );

test('POST /v1/jobs → 202 + Location; the job runs to succeeded with progress, artifacts and metrics', async () => {
  const s = await start();
  try {
    const r = await call('POST', `${s.url}/v1/jobs`, { out: 's3://bucket/run1', steps: 4, stepMs: 5 });
    assert.equal(r.status, 202);
    const job = r.body.job;
    assert.match(job.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(r.headers.get('location'), `/v1/jobs/${job.id}`);
    assert.equal(job.kind, 'train');
    assert.equal(job.state, 'running');
    assert.deepEqual(job.spec, {
      out: 's3://bucket/run1',
      steps: 4,
      stepMs: 5,
      fail: 'none',
      failAt: 1,
      safePointMs: 0,
      ignoreSignal: false,
    });
    const done = await finished(s.url, job.id);
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(done.progress, { step: 4, steps: 4, phase: 'counting' });
    assert.deepEqual(done.artifacts, { result: 's3://bucket/run1/result.json' });
    assert.deepEqual(done.summary, { steps: 4, completionIndex: null, seeds: null });
    assert.equal(done.error, undefined);
    assert.equal(done.cancelRequested, false);
    assert.ok(done.createdAt <= done.startedAt && done.startedAt <= done.finishedAt, JSON.stringify(done));
    assert.ok(Date.parse(done.finishedAt) - Date.parse(done.startedAt) >= 4 * 5 - 2, 'four 5 ms steps');

    const text = (await call('GET', `${s.url}/metrics`)).body as string;
    assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'succeeded' }), 1);
    assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'failed_permanent' }), 0);
    assert.equal(sample(text, 'get_job_state', { stage: 'train', state: 'succeeded' }), 1);
    assert.equal(sample(text, 'get_job_state', { stage: 'train', state: 'running' }), 0);
    assert.equal(sample(text, 'get_jobs_running', { stage: 'train' }), 0);
    assert.equal(sample(text, 'get_job_slots', { stage: 'train' }), 1);
    assert.equal(sample(text, 'get_fake_step'), 4);
    assert.ok(sample(text, 'get_job_duration_seconds', { stage: 'train' })! >= 0.018);
  } finally {
    await s.close();
  }
});

test('busy → 409; DELETE → 202 then cancelled at the safe point; DELETE again → 200; /readyz stays 200', async () => {
  const s = await start();
  try {
    const a = (await call('POST', `${s.url}/v1/jobs`, { out: 'run-a', steps: 100_000, stepMs: 5, safePointMs: 50 }))
      .body.job;
    await until(async () =>
      (await call('GET', `${s.url}/v1/jobs/${a.id}`)).body.job.progress.step >= 2 ? true : undefined,
    );
    const busy = await call('POST', `${s.url}/v1/jobs`, { out: 'run-b' });
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, 'busy');
    assert.match(busy.body.error.message, new RegExp(`1 of 1 job slot\\(s\\) in use \\(${a.id}\\)`));
    const list = (await call('GET', `${s.url}/v1/jobs`)).body;
    assert.deepEqual([list.busy, list.running, list.concurrency, list.jobs.length], [true, 1, 1, 1]);
    assert.equal((await call('GET', `${s.url}/readyz`)).status, 200);
    assert.equal(sample((await call('GET', `${s.url}/metrics`)).body, 'get_jobs_running', { stage: 'train' }), 1);

    const del = await call('DELETE', `${s.url}/v1/jobs/${a.id}`);
    assert.equal(del.status, 202);
    assert.equal(del.body.job.state, 'running', 'still stopping: the pretend checkpoint takes 50 ms');
    assert.equal(del.body.job.cancelRequested, true);
    assert.equal((await call('DELETE', `${s.url}/v1/jobs/${a.id}`)).status, 202, 'a second DELETE while stopping');
    const done = await finished(s.url, a.id);
    assert.equal(done.state, 'cancelled');
    assert.equal(done.artifacts.checkpoint, `run-a/ckpt-${done.summary.step}`);
    assert.ok(done.summary.step >= 2);
    assert.equal(done.error, undefined);
    const again = await call('DELETE', `${s.url}/v1/jobs/${a.id}`);
    assert.equal(again.status, 200);
    assert.equal(again.body.job.state, 'cancelled');

    assert.equal((await call('POST', `${s.url}/v1/jobs`, { out: 'run-c', steps: 1 })).status, 202, 'free again');
    const text = (await call('GET', `${s.url}/metrics`)).body as string;
    assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'cancelled' }), 1);
  } finally {
    await s.close();
  }
});

test('bad specs → 400 naming the field (unknown fields too); 404 for unknown ids; 405 and 415', async () => {
  const s = await start();
  try {
    const cases: [unknown, RegExp][] = [
      [{ out: 'r', colour: 'red' }, /^body: unknown field "colour"$/],
      [{ out: 'r', steps: 0 }, /^steps: must be an integer in \[1, 1000000\]$/],
      [{ out: 'r', seeds: { start: 0, end: 'x' } }, /^seeds\.end: must be an integer/],
      [{}, /^out: is required/],
    ];
    for (const [body, re] of cases) {
      const r = await call('POST', `${s.url}/v1/jobs`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'bad_request');
      assert.match(r.body.error.message, re);
    }
    assert.equal(s.manager.list().length, 0, 'no job was created');
    const missing = await call('GET', `${s.url}/v1/jobs/0b7f2c1e-0000-4000-8000-000000000000`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
    assert.match(missing.body.error.message, /no job "0b7f2c1e-0000-4000-8000-000000000000"/);
    assert.equal((await call('DELETE', `${s.url}/v1/jobs/nope`)).status, 404);
    const put = await call('PUT', `${s.url}/v1/jobs`, {});
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'POST, GET, HEAD');
    const text = await fetch(`${s.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'out=r',
    });
    assert.equal(text.status, 415);
  } finally {
    await s.close();
  }
});

test('GET /v1/jobs lists newest first and keeps only the last keepFinished finished jobs', async () => {
  const s = await start({ keepFinished: 2 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = (await call('POST', `${s.url}/v1/jobs`, { out: `run-${i}`, steps: 1, stepMs: 0 })).body.job
        .id as string;
      await finished(s.url, id);
      ids.push(id);
    }
    const list = (await call('GET', `${s.url}/v1/jobs`)).body;
    assert.deepEqual(
      list.jobs.map((j: { id: string }) => j.id),
      [ids[2], ids[1]],
    );
    assert.equal(list.busy, false);
    assert.equal((await call('GET', `${s.url}/v1/jobs/${ids[0]}`)).status, 404, 'pruned');
  } finally {
    await s.close();
  }
});

test('failure classes: usage → permanent, no store → retryable, bug → permanent internal; concurrency 2', async () => {
  Object.assign(process.env, await unreachableS3Env());
  const s = await start({ concurrency: 2 });
  try {
    const submit = async (spec: Record<string, unknown>) =>
      (await call('POST', `${s.url}/v1/jobs`, spec)).body.job.id as string;
    // Two at once fit in two slots.
    const [usage, unreachable] = [
      await submit({ out: 'r', fail: 'usage', failAt: 2 }),
      await submit({ out: 's3://bucket/run', fail: 'store' }),
    ];
    const [u, n] = [await finished(s.url, usage), await finished(s.url, unreachable)];
    assert.equal(u.state, 'failed');
    assert.deepEqual(u.error, {
      code: 'permanent',
      reason: 'usage',
      message: 'teacher r/teacher.onnx: not an EDM denoiser; export it with `get-distill teacher`',
    });
    assert.deepEqual(u.progress, { step: 1, steps: 3, phase: 'counting' }, 'progress up to the failing step');
    assert.equal(n.state, 'failed');
    assert.equal(n.error.code, 'retryable');
    assert.equal(n.error.reason, 'Unreachable');
    assert.match(
      n.error.message,
      /^s3:\/\/bucket\/run\/missing\.bin: cannot reach S3 endpoint http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    );
    const bug = await finished(s.url, await submit({ out: dir, fail: 'bug' }));
    assert.deepEqual(bug.error, {
      code: 'permanent',
      reason: 'internal',
      message:
        'internal error (a bug; the log has the stack): TypeError: Cannot read properties of undefined ' +
        "(reading 'shape')",
    });
    const notFound = await finished(s.url, await submit({ out: dir, fail: 'store' }));
    assert.deepEqual([notFound.error.code, notFound.error.reason], ['permanent', 'NotFound']);
    const text = (await call('GET', `${s.url}/metrics`)).body as string;
    assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'failed_permanent' }), 3);
    assert.equal(sample(text, 'get_jobs_total', { stage: 'train', outcome: 'failed_retryable' }), 1);
    assert.equal(sample(text, 'get_job_slots', { stage: 'train' }), 2);
  } finally {
    await s.close();
  }
});

test('SIGTERM (here SIGUSR2): not ready, running job stopped at its safe point, exit 0', async () => {
  const codes: number[] = [];
  const s = await startStageService(fakeStage(), {
    logger,
    port: 0,
    graceMs: 5000,
    exit: (c) => codes.push(c),
    signals: ['SIGUSR2'],
  });
  const url = `http://127.0.0.1:${s.port}`;
  const id = (await call('POST', `${url}/v1/jobs`, { out: 'run', steps: 100_000, stepMs: 5, safePointMs: 100 })).body
    .job.id as string;
  await until(() => (s.manager.get(id)!.progress.step as number) >= 2 || undefined);
  process.kill(process.pid, 'SIGUSR2');
  await until(() => codes[0], 10_000, 'exit');
  assert.deepEqual(codes, [0]);
  // The exit came after the job reached its safe point (cancelled, not still running or abandoned).
  assert.equal(s.manager.get(id)!.state, 'cancelled');
  assert.equal(s.state.phase, 'draining');
  assert.throws(
    () => s.manager.submit({ out: 'late' }),
    (e: Error & { status?: number }) => e.status === 503,
  );
  s.shutdown.dispose();
});

test('shutdown(graceMs) returns false when a job does not reach its safe point in time', async () => {
  const s = createStageService(fakeStage(), { logger });
  const job = s.manager.submit({ out: 'run', steps: 40, stepMs: 5, ignoreSignal: true });
  assert.equal(job.state, 'running');
  assert.equal(await s.manager.shutdown(50), false);
  assert.equal(s.manager.get(job.id)!.cancelRequested, true);
  // A stage without a safe point runs to its end: it succeeded although a stop was asked for.
  assert.equal((await s.manager.settled(job.id))!.state, 'succeeded');
});
