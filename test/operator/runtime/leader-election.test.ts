// LeaderElector against the in-memory API server's Lease resource with the REAL client-node 1.4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { LeaderElector, type LeaderElectorOptions } from '../../../src/operator/runtime/leader-election.js';
import { OperatorMetrics } from '../../../src/operator/runtime/metrics.js';
import { fakeCluster, waitFor, sleep } from './helpers.js';

const NS = 'distill',
  LEASE = 'get-operator';
const MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
// Test timings: 1 s lease, 500 ms renew deadline, 100 ms retry.
const FAST = { leaseDurationMs: 1000, renewDeadlineMs: 500, retryPeriodMs: 100 };

function candidate(api: CoordinationV1Api, identity: string, extra: Partial<LeaderElectorOptions> = {}) {
  const log: string[] = [];
  const el = new LeaderElector({
    api,
    namespace: NS,
    name: LEASE,
    identity,
    ...FAST,
    onStartedLeading: (signal) => {
      log.push('started');
      signal.addEventListener('abort', () => log.push('aborted'));
    },
    onStoppedLeading: () => log.push('stopped'),
    ...extra,
  });
  return { el, log };
}

test('two candidates on one Lease: exactly one leads; stopping it releases and the other takes over', async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const reg = new Registry();
  const a = candidate(api, 'pod-a', { metrics: new OperatorMetrics(reg) });
  electors.push(a.el);
  const b = candidate(api, 'pod-b');
  electors.push(b.el);
  a.el.start();
  await waitFor(() => a.el.isLeader(), 'a leads');
  b.el.start();
  await sleep(400); // b keeps retrying against a valid, renewed lease
  assert.equal(b.el.isLeader(), false);
  assert.deepEqual(b.log, []);
  let lease = srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!;
  assert.equal(lease.spec.holderIdentity, 'pod-a');
  assert.equal(lease.spec.leaseDurationSeconds, 1);
  assert.equal(lease.spec.leaseTransitions, 0);
  assert.match(lease.spec.renewTime, MICRO);
  assert.match(lease.spec.acquireTime, MICRO);
  assert.ok(Date.parse(lease.spec.renewTime) > Date.parse(lease.spec.acquireTime), 'a renewed');
  assert.match(await reg.metrics(), /get_operator_is_leader 1/);

  const t0 = Date.now();
  await a.el.stop();
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped']);
  assert.equal(a.el.isLeader(), false);
  assert.match(await reg.metrics(), /get_operator_is_leader 0/);
  lease = srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!;
  assert.ok(lease.spec.holderIdentity === '' || lease.spec.holderIdentity === 'pod-b', 'released (or already taken)');
  await waitFor(() => b.el.isLeader(), 'b takes over', 1000);
  assert.ok(Date.now() - t0 < 1000, 'takeover within the lease duration');
  lease = srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!;
  assert.equal(lease.spec.holderIdentity, 'pod-b');
  assert.equal(lease.spec.leaseTransitions, 1, 'release keeps the count; the holder change to b adds one');
  assert.deepEqual(b.log, ['started']);
  await b.el.stop();
});

test('a crashed leader (no release) is replaced once its Lease has not changed for leaseDuration', async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const now = new Date();
  await api.createNamespacedLease({
    namespace: NS,
    body: {
      metadata: { name: LEASE },
      spec: {
        holderIdentity: 'dead-pod',
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 4,
      },
    },
  });
  const b = candidate(api, 'pod-b');
  electors.push(b.el);
  b.el.start();
  await sleep(600);
  assert.equal(b.el.isLeader(), false, "the dead holder's lease is still valid");
  await waitFor(() => b.el.isLeader(), 'takeover after expiry', 1500);
  assert.ok(Date.now() - now.getTime() >= 1000);
  const lease = srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!;
  assert.equal(lease.spec.leaseTransitions, 5);
  await b.el.stop();
});

test("clock skew: a live holder whose clock is an hour behind keeps the Lease; expiry runs on the candidate's clock", async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  let renewing = true;
  t.after(async () => {
    renewing = false;
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const behind = () => new Date(Date.now() - 3_600_000);
  await api.createNamespacedLease({
    namespace: NS,
    body: {
      metadata: { name: LEASE },
      spec: {
        holderIdentity: 'skewed-pod',
        leaseDurationSeconds: 1,
        acquireTime: behind(),
        renewTime: behind(),
        leaseTransitions: 0,
      },
    },
  });
  // The holder renews every 200 ms, stamping its own (late) clock.
  const renew = (async () => {
    while (renewing) {
      const cur = await api.readNamespacedLease({ namespace: NS, name: LEASE });
      if (cur.spec?.holderIdentity !== 'skewed-pod') return;
      await api
        .replaceNamespacedLease({
          namespace: NS,
          name: LEASE,
          body: { ...cur, spec: { ...cur.spec, renewTime: behind() } },
        })
        .catch(() => {});
      await sleep(200);
    }
  })();
  const b = candidate(api, 'pod-b');
  electors.push(b.el);
  b.el.start();
  await sleep(1500);
  assert.equal(
    b.el.isLeader(),
    false,
    'renewTime looks an hour old, but the Lease keeps changing: its holder is alive',
  );
  renewing = false;
  await renew;
  const stoppedAt = Date.now();
  await waitFor(() => b.el.isLeader(), 'takeover once the renewals stop', 2500);
  // The last renewal came up to 200 ms before `stoppedAt`: a lease duration (1 s) after it is ≥ 800 ms after.
  assert.ok(Date.now() - stoppedAt >= 750, 'not before a lease duration without change');
  await b.el.stop();
});

test('two candidates racing for a fresh Lease: optimistic concurrency gives exactly one leader', async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const cs = ['p0', 'p1', 'p2'].map((id) => candidate(api, id));
  electors.push(...cs.map((c) => c.el));
  for (const c of cs) c.el.start();
  await waitFor(() => cs.some((c) => c.el.isLeader()), 'a leader');
  await sleep(300);
  assert.equal(cs.filter((c) => c.el.isLeader()).length, 1);
  const leader = cs.find((c) => c.el.isLeader())!;
  assert.equal(
    srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!.spec.holderIdentity,
    leader.el['opts'].identity,
  );
  await Promise.all(cs.map((c) => c.el.stop()));
});

test('renew failures beyond the renew deadline end leadership (onStoppedLeading), then it campaigns again', async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const a = candidate(api, 'pod-a');
  electors.push(a.el);
  a.el.start();
  await waitFor(() => a.el.isLeader(), 'a leads');
  srv.failNext('update', 'coordination.k8s.io/leases', 500, 8); // ~8 × 100 ms of failed renews > 500 ms deadline
  await waitFor(() => !a.el.isLeader(), 'leadership lost', 2000);
  // Measured from the last renew that reached the server.
  const lastRenew = Date.parse(
    srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!.spec.renewTime,
  );
  const lostAfter = Date.now() - lastRenew;
  assert.ok(
    lostAfter >= 500 && lostAfter < 1500,
    `lost ${lostAfter} ms after the last renew (deadline 500, retry 100)`,
  );
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped']);
  // The injected faults run out; it holds the Lease still (same identity) and leads again.
  await waitFor(() => a.el.isLeader(), 're-acquired', 2000);
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped', 'started']);
  await a.el.stop();
});

test('stop() waits for the leader work to drain before releasing; invalid durations are rejected', async (t) => {
  const { srv, kc } = await fakeCluster();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const order: string[] = [];
  const el = new LeaderElector({
    api,
    namespace: NS,
    name: LEASE,
    identity: 'x',
    ...FAST,
    onStartedLeading: async (signal) => {
      await new Promise((r) => signal.addEventListener('abort', r));
      await sleep(50);
      order.push(
        `drained, holder=${srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!.spec.holderIdentity}`,
      );
    },
  });
  electors.push(el);
  el.start();
  await waitFor(() => el.isLeader(), 'leads');
  await el.stop();
  order.push(
    `released, holder=${JSON.stringify(srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!.spec.holderIdentity)}`,
  );
  assert.deepEqual(order, ['drained, holder=x', 'released, holder=""']);
  assert.throws(
    () =>
      new LeaderElector({
        api,
        namespace: NS,
        name: LEASE,
        identity: 'y',
        leaseDurationMs: 1000,
        renewDeadlineMs: 1000,
        onStartedLeading() {},
      }),
    /leaseDurationMs > renewDeadlineMs/,
  );
});
