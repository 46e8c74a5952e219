// SupervisedInformer against the in-memory API server with the REAL client-node 1.4 ListWatch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Job,
  type V1OwnerReference,
  type V1Pod,
} from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { FakeApiServer } from '../../k8s/api-server.js';
import {
  SupervisedInformer,
  controllerOwnerKey,
  enqueueHandlers,
  ownerHandlers,
  apiGroup,
} from '../../../src/operator/runtime/informer.js';
import { WorkQueue } from '../../../src/operator/runtime/workqueue.js';
import { OperatorMetrics } from '../../../src/operator/runtime/metrics.js';
import { ManualClock } from '../../../src/util/clock.js';
import { fakeCluster, waitFor } from './helpers.js';

let srv: FakeApiServer, kc: KubeConfig, batch: BatchV1Api, core: CoreV1Api;
before(async () => {
  ({ srv, kc } = await fakeCluster());
  batch = kc.makeApiClient(BatchV1Api);
  core = kc.makeApiClient(CoreV1Api);
});
// Stop every informer before the server goes away, also when a test failed (restart timers keep the process alive).
const informers: Array<SupervisedInformer<KubernetesObject>> = [];
after(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  await srv.close();
});
const track = <T extends SupervisedInformer<KubernetesObject>>(i: T): T => {
  informers.push(i);
  return i;
};

const job = (name: string, labels: Record<string, string> = {}): V1Job => ({
  metadata: { name, labels },
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox' }] } } },
});

/** List requests for Jobs in namespace `ns` (the server is shared by all tests in this file). */
const listsIn = (ns: string) =>
  srv.requests.filter((r) => r.verb === 'list' && r.path.includes(`/namespaces/${ns}/jobs`)).length;

function jobInformer(ns: string, extra: Partial<ConstructorParameters<typeof SupervisedInformer<V1Job>>[0]> = {}) {
  const inf = track(
    new SupervisedInformer<V1Job>({
      kubeConfig: kc,
      path: `/apis/batch/v1/namespaces/${ns}/jobs`,
      list: () => batch.listNamespacedJob({ namespace: ns }),
      resource: 'batch/jobs',
      backoffInitialMs: 20,
      backoffMaxMs: 80,
      ...extra,
    }),
  );
  const events: string[] = [];
  inf.on('add', (o) => events.push(`add ${o.metadata!.name}`));
  inf.on('update', (o, old) =>
    events.push(`update ${o.metadata!.name} ${old.metadata!.resourceVersion}->${o.metadata!.resourceVersion}`),
  );
  inf.on('delete', (o) => events.push(`delete ${o.metadata!.name}`));
  return { inf, events };
}

test('start() resolves after the first list; cache, add/update(old)/delete and label selector', async () => {
  const ns = 'basic';
  await batch.createNamespacedJob({ namespace: ns, body: job('a', { app: 'x' }) });
  await batch.createNamespacedJob({ namespace: ns, body: job('skip', { app: 'y' }) });
  const { inf, events } = jobInformer(ns, {
    labelSelector: 'app=x',
    list: () => batch.listNamespacedJob({ namespace: ns, labelSelector: 'app=x' }),
  });
  await inf.start();
  assert.equal(inf.hasSynced(), true);
  assert.deepEqual(events, ['add a']);
  assert.equal(inf.get('a', ns)?.metadata?.name, 'a');
  assert.equal(inf.get('skip', ns), undefined);
  const w = srv.requests.filter((r) => r.verb === 'watch').at(-1)!;
  assert.equal(w.query.labelSelector, 'app=x');
  const t = Number(w.query.timeoutSeconds);
  assert.ok(t >= 300 && t < 600, `jittered server-side watch timeout, got ${w.query.timeoutSeconds}`);

  const rv0 = inf.get('a', ns)!.metadata!.resourceVersion!;
  const rv1 = srv.setStatus({ group: 'batch', plural: 'jobs', namespace: ns, name: 'a' }, { active: 1 }).metadata
    .resourceVersion;
  await batch.createNamespacedJob({ namespace: ns, body: job('b', { app: 'x' }) });
  await batch.deleteNamespacedJob({ namespace: ns, name: 'a' });
  await waitFor(() => events.length === 4, 'watch events');
  assert.deepEqual(events.slice(1), [`update a ${rv0}->${rv1}`, 'add b', 'delete a']);
  assert.deepEqual(
    inf.list(ns).map((o) => o.metadata!.name),
    ['b'],
  );
  await inf.stop();
  await waitFor(() => srv.openWatches === 0, 'watch closed after stop');
});

test('a non-410 watch error restarts the informer with backoff; events keep flowing; restarts counted', async () => {
  const ns = 'restart';
  const metrics = new OperatorMetrics(new Registry());
  const errs: string[] = [];
  const { inf, events } = jobInformer(ns, {
    metrics,
    log: {
      info() {},
      debug() {},
      error() {},
      warn: (o: { err?: { statusCode?: number } }) => errs.push(String(o.err?.statusCode ?? o.err)),
    },
  });
  await inf.start();
  srv.failNext('watch', 'batch/jobs', 500, 2);
  srv.closeWatches(); // the informer rewatches, gets 500 (client-node stops), we restart: 500 again, restart again
  await waitFor(() => inf.restarts === 2 && srv.openWatches === 1, 'two restarts and a live watch');
  assert.deepEqual(errs, ['500', '500']);
  await batch.createNamespacedJob({ namespace: ns, body: job('after') });
  await waitFor(() => events.includes('add after'), 'event after restart');
  const text = await metrics.registry.metrics();
  assert.match(text, /get_operator_informer_restarts_total\{resource="batch\/jobs"\} 2/);
  await inf.stop();
});

test('a failing first list is retried with growing backoff (20, 40 ms) before start() resolves', async () => {
  const ns = 'listfail';
  await batch.createNamespacedJob({ namespace: ns, body: job('pre') });
  srv.failNext('list', 'batch/jobs', 503, 2);
  const clock = new ManualClock();
  const { inf, events } = jobInformer(ns, { clock });
  let synced = false;
  const started = inf.start().then(() => (synced = true));
  // Two periodic timers (resync, idle watchdog) run all along; a third pending timer is the restart backoff.
  for (const [i, backoff] of [20, 40].entries()) {
    await clock.whenPending(3);
    assert.equal(inf.restarts, i + 1);
    assert.equal(clock.nextDue()! - clock.now(), backoff, `restart ${i + 1} after ${backoff} ms`);
    clock.advance(backoff - 1);
    assert.equal(listsIn(ns), i + 1, `no relist before ${backoff} ms`);
    assert.equal(synced, false);
    clock.advance(1);
  }
  await started;
  assert.equal(listsIn(ns), 3);
  assert.equal(inf.restarts, 2);
  assert.deepEqual(events, ['add pre']);
  await inf.stop();
});

test('410 Gone after compaction goes through the relist path, not a restart', async () => {
  const ns = 'gone';
  const { inf, events } = jobInformer(ns);
  await inf.start();
  await batch.createNamespacedJob({ namespace: ns, body: job('x') });
  await waitFor(() => events.length === 1, 'add x');
  srv.compact();
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'bump' } } });
  srv.compact();
  const lists = srv.count('list', 'batch/jobs');
  srv.closeWatches();
  await waitFor(() => srv.count('list', 'batch/jobs') === lists + 1 && srv.openWatches === 1, 'relist');
  await batch.createNamespacedJob({ namespace: ns, body: job('y') });
  await waitFor(() => events.includes('add y'), 'event after relist');
  assert.equal(inf.restarts, 0);
  await inf.stop();
});

test('resync re-delivers every cached object to update handlers with old === new', async () => {
  const ns = 'resync';
  await batch.createNamespacedJob({ namespace: ns, body: job('r1') });
  await batch.createNamespacedJob({ namespace: ns, body: job('r2') });
  const clock = new ManualClock();
  const inf = track(
    new SupervisedInformer<V1Job>({
      kubeConfig: kc,
      path: `/apis/batch/v1/namespaces/${ns}/jobs`,
      list: () => batch.listNamespacedJob({ namespace: ns }),
      resyncMs: 60,
      clock,
    }),
  );
  const seen: string[] = [];
  inf.on('update', (o, old) => {
    assert.equal(o, old);
    seen.push(o.metadata!.name!);
  });
  await inf.start();
  assert.deepEqual(seen, []);
  clock.advance(59);
  assert.deepEqual(seen, [], 'not before the resync period');
  clock.advance(1);
  assert.deepEqual([...seen].sort(), ['r1', 'r2'], 'first resync round');
  clock.advance(60);
  assert.deepEqual([...seen].sort(), ['r1', 'r1', 'r2', 'r2'], 'second resync round');
  await inf.stop();
  assert.equal(clock.pending(), 0, 'stop() cleared the resync and watchdog timers');
  clock.advance(600);
  assert.equal(seen.length, 4, 'no resync after stop');
});

test('idle watchdog restarts a watch that delivered nothing for idleTimeoutMs', async () => {
  const ns = 'idle';
  const clock = new ManualClock();
  const { inf } = jobInformer(ns, { watchTimeoutSeconds: 0, idleTimeoutMs: 100, backoffInitialMs: 10, clock });
  await inf.start();
  await waitFor(() => srv.openWatches === 1, 'watching');
  const w0 = srv.count('watch', 'batch/jobs');
  // The watchdog checks every 25 ms: idle for 100 ms is not over the limit, 125 ms is.
  clock.advance(100);
  assert.equal(inf.restarts, 0, 'idle for exactly idleTimeoutMs: no restart yet');
  clock.advance(25);
  assert.equal(inf.restarts, 1, 'idle for over idleTimeoutMs: restart scheduled');
  clock.advance(10); // the restart backoff
  await waitFor(() => srv.count('watch', 'batch/jobs') > w0, 'rewatch after the idle restart');
  const last = srv.requests.filter((r) => r.verb === 'watch').at(-1)!;
  assert.equal(last.query.timeoutSeconds, undefined);
  assert.notEqual(last.query.resourceVersion, '', 'rewatch resumes from the last resourceVersion');
  await inf.stop();
  await waitFor(() => srv.openWatches === 0, 'closed');
});

test('controllerOwnerKey / ownerHandlers map a child event to its controlling owner key', async () => {
  const owner = { apiVersion: 'distill.getdistill.dev/v1alpha1', kind: 'DistillationRun' };
  const ref = (o: object) => ({
    apiVersion: 'distill.getdistill.dev/v1beta1',
    kind: 'DistillationRun',
    name: 'run-1',
    uid: 'u',
    ...o,
  });
  const pod = (refs: object[]): V1Pod => ({
    metadata: { name: 'p', namespace: 'ns', ownerReferences: refs as V1OwnerReference[] },
  });
  assert.equal(
    controllerOwnerKey(pod([ref({ controller: true })]), owner),
    'ns/run-1',
    'any version of the same group',
  );
  assert.equal(controllerOwnerKey(pod([ref({})]), owner), undefined, 'not the controller');
  assert.equal(
    controllerOwnerKey(pod([ref({ controller: true, apiVersion: 'other.dev/v1alpha1' })]), owner),
    undefined,
    'other group',
  );
  assert.equal(
    controllerOwnerKey(pod([ref({ controller: true, kind: 'GenerationEndpoint' })]), owner),
    undefined,
    'other kind',
  );
  assert.equal(controllerOwnerKey(pod([]), owner), undefined);
  assert.equal(apiGroup('v1'), '');
  assert.equal(apiGroup('batch/v1'), 'batch');

  // Live: a Job informer feeding a queue with its owner's key, and one with its own key.
  const ns = 'owners';
  const q = new WorkQueue();
  const inf = track(
    new SupervisedInformer<V1Job>({
      kubeConfig: kc,
      path: `/apis/batch/v1/namespaces/${ns}/jobs`,
      list: () => batch.listNamespacedJob({ namespace: ns }),
    }),
  );
  inf.addHandlers(ownerHandlers(q, owner));
  const own = new WorkQueue();
  inf.addHandlers(enqueueHandlers(own));
  await inf.start();
  await batch.createNamespacedJob({
    namespace: ns,
    body: {
      ...job('child'),
      metadata: { name: 'child', ownerReferences: [ref({ controller: true, name: 'run-7' }) as V1OwnerReference] },
    },
  });
  await batch.createNamespacedJob({ namespace: ns, body: job('orphan') });
  await waitFor(() => own.len() === 2, 'two own keys');
  assert.equal(q.len(), 1);
  assert.equal(await q.get(), 'owners/run-7');
  assert.deepEqual([await own.get(), await own.get()], ['owners/child', 'owners/orphan']);
  await inf.stop();
  q.shutDown();
  own.shutDown();
});
