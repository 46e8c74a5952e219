// runController + OperatorMetrics: result handling, per-key serialization, stop, metrics text, and
// an end-to-end informer → queue → reconcile loop against the in-memory API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchV1Api, PatchStrategy, setHeaderOptions, type V1Job } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { runController } from '../../../src/operator/runtime/controller.js';
import { WorkQueue } from '../../../src/operator/runtime/workqueue.js';
import { OperatorMetrics } from '../../../src/operator/runtime/metrics.js';
import { SupervisedInformer, enqueueHandlers } from '../../../src/operator/runtime/informer.js';
import { splitKey, objectKey } from '../../../src/operator/runtime/keys.js';
import { ManualClock } from '../../../src/util/clock.js';
import { fakeCluster, waitFor } from './helpers.js';

/** The value of one sample line in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('success / error (rate-limited retry) / requeueAfter outcomes and the metric series they produce', async (t) => {
  const reg = new Registry();
  const metrics = new OperatorMetrics(reg);
  const clock = new ManualClock();
  const queue = new WorkQueue({ metrics: metrics.queueMetrics('run'), clock });
  const calls: string[] = [];
  const seen = new Map<string, number>();
  const ctl = runController({
    name: 'run',
    queue,
    metrics,
    workers: 2,
    log: pino({ level: 'silent' }),
    reconcile: async (key) => {
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      calls.push(`${key}#${n}`);
      if (key === 'ns/b' && n <= 2) throw new Error('transient');
      if (key === 'ns/c' && n === 1) return { requeueAfterMs: 20 };
    },
  });
  t.after(() => ctl.stop());
  for (const k of ['ns/a', 'ns/b', 'ns/c']) queue.add(k);
  await queue.whenIdle();
  assert.deepEqual([...calls].sort(), ['ns/a#1', 'ns/b#1', 'ns/c#1']);
  // b failed: retried after the limiter's 5 ms, then 10 ms; c asked to be looked at again after 20 ms.
  assert.equal(clock.pending(), 2);
  clock.advance(5);
  await queue.whenIdle();
  assert.deepEqual(calls.slice(3), ['ns/b#2']);
  clock.advance(10);
  await queue.whenIdle();
  assert.deepEqual(calls.slice(4), ['ns/b#3']);
  clock.advance(5);
  await queue.whenIdle();
  assert.deepEqual(calls.slice(5), ['ns/c#2']);
  assert.equal(clock.pending(), 0, 'nothing more is scheduled: every key settled');
  assert.equal(calls.length, 6, calls.join(','));
  assert.equal(queue.numRequeues('ns/b'), 0, 'success forgets the backoff');
  const text = await reg.metrics();
  const c = 'controller="run"';
  assert.equal(sample(text, `get_operator_reconcile_total{${c},result="success"}`), 3);
  assert.equal(sample(text, `get_operator_reconcile_total{${c},result="error"}`), 2);
  assert.equal(sample(text, `get_operator_reconcile_total{${c},result="requeue"}`), 1);
  assert.equal(sample(text, `get_operator_reconcile_errors_total{${c}}`), 2);
  assert.equal(sample(text, `get_operator_workqueue_retries_total{${c}}`), 2);
  assert.equal(sample(text, `get_operator_workqueue_adds_total{${c}}`), 6, '3 initial + 2 retries + 1 requeueAfter');
  assert.equal(sample(text, `get_operator_workqueue_depth{${c}}`), 0);
  assert.equal(sample(text, `get_operator_reconcile_duration_seconds_count{${c}}`), 6);
  assert.equal(sample(text, 'get_operator_is_leader'), 0);
  assert.match(text, /# TYPE get_operator_reconcile_duration_seconds histogram/);
  assert.match(text, /# TYPE get_operator_informer_restarts_total counter/);
});

test('per-key serialization with 4 workers: one key never runs concurrently; distinct keys do', async (t) => {
  const queue = new WorkQueue();
  let active = 0,
    maxSame = 0,
    maxAll = 0;
  const activeByKey = new Map<string, number>();
  const runs: string[] = [];
  // Each reconcile holds until the test releases it, so overlap is decided by the test, not by timing.
  const gates: Array<() => void> = [];
  const releaseAll = () => {
    for (const g of gates.splice(0)) g();
  };
  const ctl = runController({
    name: 'ser',
    queue,
    workers: 4,
    reconcile: async (key) => {
      activeByKey.set(key, (activeByKey.get(key) ?? 0) + 1);
      active++;
      maxSame = Math.max(maxSame, activeByKey.get(key)!);
      maxAll = Math.max(maxAll, active);
      runs.push(key);
      await new Promise<void>((r) => gates.push(r));
      activeByKey.set(key, activeByKey.get(key)! - 1);
      active--;
    },
  });
  t.after(() => ctl.stop());
  queue.add('ns/hot');
  queue.add('ns/x');
  queue.add('ns/y');
  await waitFor(() => runs.length === 3, 'three keys running');
  for (let i = 0; i < 5; i++) queue.add('ns/hot'); // while it runs: dirty, re-queued once
  assert.equal(queue.len(), 0, 'hot is held back while processing, though a worker is free');
  releaseAll();
  await waitFor(() => runs.length === 4, 'hot again');
  assert.equal(active, 1);
  releaseAll();
  await queue.whenIdle();
  assert.deepEqual([...runs].sort(), ['ns/hot', 'ns/hot', 'ns/x', 'ns/y']);
  assert.equal(maxSame, 1);
  assert.equal(maxAll, 3);
});

test('stop() aborts the in-flight reconcile signal and waits for the workers', async () => {
  const queue = new WorkQueue();
  let aborted = false,
    finished = false;
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const ctl = runController({
    name: 'stop',
    queue,
    workers: 1,
    reconcile: async (_key, signal) => {
      started();
      await new Promise((r) => signal.addEventListener('abort', r));
      aborted = true;
      await new Promise((r) => setImmediate(r)); // still busy after the abort: stop() must wait
      finished = true;
      throw new Error('aborted'); // an error after stop is not re-queued: the queue is shut down
    },
  });
  queue.add('ns/long');
  await running;
  await ctl.stop();
  assert.equal(aborted, true);
  assert.equal(finished, true);
  assert.equal(queue.len(), 0);
  assert.equal(await queue.get(), undefined);
  assert.throws(
    () => runController({ name: 'bad', queue: new WorkQueue(), workers: 0, reconcile: async () => {} }),
    /positive integer/,
  );
});

test('end to end: informer events → queue → reconcile labels each Job via a merge patch', async (t) => {
  const { srv, kc } = await fakeCluster();
  const batch = kc.makeApiClient(BatchV1Api);
  const ns = 'e2e';
  const queue = new WorkQueue();
  const inf = new SupervisedInformer<V1Job>({
    kubeConfig: kc,
    path: `/apis/batch/v1/namespaces/${ns}/jobs`,
    list: () => batch.listNamespacedJob({ namespace: ns }),
  });
  inf.addHandlers(enqueueHandlers(queue));
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const ctl = runController({
    name: 'jobs',
    queue,
    reconcile: async (key) => {
      const { namespace, name } = splitKey(key);
      const j = inf.get(name, namespace);
      if (!j || j.metadata?.labels?.reconciled === 'yes') return; // level-triggered: compare state
      await batch.patchNamespacedJob({ namespace, name, body: { metadata: { labels: { reconciled: 'yes' } } } }, merge);
    },
  });
  t.after(async () => {
    await ctl.stop();
    await inf.stop();
    await srv.close();
  });
  const body = (name: string): V1Job => ({
    metadata: { name },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'm', image: 'i' }] } } },
  });
  await batch.createNamespacedJob({ namespace: ns, body: body('j1') });
  await inf.start();
  await batch.createNamespacedJob({ namespace: ns, body: body('j2') });
  const labelled = () =>
    srv
      .listObjects({ group: 'batch', plural: 'jobs', namespace: ns })
      .filter((o) => o.metadata.labels?.reconciled === 'yes').length;
  await waitFor(() => labelled() === 2, 'both jobs reconciled');
  // The informer has delivered the update events of our own patches (its cache holds the patched versions),
  // and the queue has processed every key they added: any further write would have happened by now.
  const rvOf = (name: string) =>
    srv.getObject({ group: 'batch', plural: 'jobs', namespace: ns, name })!.metadata.resourceVersion;
  await waitFor(
    () => ['j1', 'j2'].every((n) => inf.get(n, ns)?.metadata?.resourceVersion === rvOf(n)),
    'the informer caught up with the patches',
  );
  await queue.whenIdle();
  assert.equal(srv.count('patch', 'batch/jobs'), 2, 'the update events of our own patches do not cause more writes');
  assert.equal(objectKey(inf.get('j1', ns)!), 'e2e/j1');
  assert.deepEqual(splitKey('cluster-obj'), { namespace: '', name: 'cluster-obj' });
  assert.throws(() => splitKey('a/b/c'), /not a "namespace\/name"/);
});
