// LeaderElector against the in-memory API server's Lease resource with the REAL client-node 1.4.
// Time is a ManualClock shared by all candidates: each `step()` moves it one retry period (plus the
// largest jitter) and waits until every candidate has finished that round, so the tests assert which
// candidate leads after exactly which round, with no wall-clock windows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { LeaderElector, type LeaderElectorOptions } from '../../../src/operator/runtime/leader-election.js';
import { OperatorMetrics } from '../../../src/operator/runtime/metrics.js';
import { ManualClock } from '../../../src/util/clock.js';
import { fakeCluster } from './helpers.js';

const NS = 'distill',
  LEASE = 'get-operator';
const MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
// Test timings: 1 s lease, 500 ms renew deadline, 100 ms retry.
const FAST = { leaseDurationMs: 1000, renewDeadlineMs: 500, retryPeriodMs: 100 };
/** One round for every candidate: candidates retry after 100–120 ms (20 % jitter), the leader renews every 100. */
const STEP_MS = 120;
/** Rounds a candidate needs to see an unchanged Lease for more than its 1 s duration: 9 × 120 = 1080 ms > 1000. */
const EXPIRY_STEPS = 9;

function candidate(
  api: CoordinationV1Api,
  clock: ManualClock,
  identity: string,
  extra: Partial<LeaderElectorOptions> = {},
) {
  const log: string[] = [];
  const el = new LeaderElector({
    api,
    namespace: NS,
    name: LEASE,
    identity,
    ...FAST,
    clock,
    onStartedLeading: (signal) => {
      log.push('started');
      signal.addEventListener('abort', () => log.push('aborted'));
    },
    onStoppedLeading: () => log.push('stopped'),
    ...extra,
  });
  return { el, log };
}

/** Wait until every elector finished its current round and sleeps until the next one. */
const settle = (els: LeaderElector[]) => Promise.all(els.map((e) => e.whenIdle()));

/** Advance `clock` one round `n` times, settling `els` after each. */
async function step(clock: ManualClock, els: LeaderElector[], n = 1): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(STEP_MS);
    await settle(els);
  }
}

const leaseOf = (srv: Awaited<ReturnType<typeof fakeCluster>>['srv']) =>
  srv.getObject({ group: 'coordination.k8s.io', plural: 'leases', namespace: NS, name: LEASE })!;

test('two candidates on one Lease: exactly one leads; stopping it releases and the other takes over', async (t) => {
  const { srv, kc } = await fakeCluster();
  const clock = new ManualClock();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const reg = new Registry();
  const a = candidate(api, clock, 'pod-a', { metrics: new OperatorMetrics(reg) });
  electors.push(a.el);
  const b = candidate(api, clock, 'pod-b');
  electors.push(b.el);
  a.el.start();
  await settle([a.el]);
  assert.equal(a.el.isLeader(), true, 'a creates the Lease in its first round');
  const acquired = clock.now();
  b.el.start();
  await settle([b.el]);
  await step(clock, electors, 4); // b keeps retrying against a valid, renewed lease
  assert.equal(b.el.isLeader(), false);
  assert.deepEqual(b.log, []);
  let lease = leaseOf(srv);
  assert.equal(lease.spec.holderIdentity, 'pod-a');
  assert.equal(lease.spec.leaseDurationSeconds, 1);
  assert.equal(lease.spec.leaseTransitions, 0);
  assert.match(lease.spec.renewTime, MICRO);
  assert.match(lease.spec.acquireTime, MICRO);
  assert.equal(Date.parse(lease.spec.acquireTime), acquired);
  assert.equal(Date.parse(lease.spec.renewTime), acquired + 4 * STEP_MS, 'a renewed in each of the 4 rounds');
  assert.match(await reg.metrics(), /get_operator_is_leader 1/);

  await a.el.stop();
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped']);
  assert.equal(a.el.isLeader(), false);
  assert.match(await reg.metrics(), /get_operator_is_leader 0/);
  lease = leaseOf(srv);
  assert.equal(lease.spec.holderIdentity, '', 'released');
  assert.equal(lease.spec.leaseDurationSeconds, 1);
  await step(clock, [b.el]);
  assert.equal(b.el.isLeader(), true, "b takes the released Lease in its next round, without waiting for a's duration");
  lease = leaseOf(srv);
  assert.equal(lease.spec.holderIdentity, 'pod-b');
  assert.equal(lease.spec.leaseTransitions, 1, 'release keeps the count; the holder change to b adds one');
  assert.deepEqual(b.log, ['started']);
  await b.el.stop();
});

test('a crashed leader (no release) is replaced once its Lease has not changed for leaseDuration', async (t) => {
  const { srv, kc } = await fakeCluster();
  const clock = new ManualClock();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const now = new Date(clock.now());
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
  const b = candidate(api, clock, 'pod-b');
  electors.push(b.el);
  b.el.start();
  await settle([b.el]); // first sight of the Lease's version: b's expiry clock starts now
  await step(clock, [b.el], EXPIRY_STEPS - 1);
  assert.equal(b.el.isLeader(), false, `unchanged for ${(EXPIRY_STEPS - 1) * STEP_MS} ms: still valid`);
  await step(clock, [b.el]);
  assert.equal(b.el.isLeader(), true, `unchanged for ${EXPIRY_STEPS * STEP_MS} ms > 1000: expired, taken over`);
  const lease = leaseOf(srv);
  assert.equal(lease.spec.holderIdentity, 'pod-b');
  assert.equal(lease.spec.leaseTransitions, 5);
  assert.deepEqual(b.log, ['started']);
  await b.el.stop();
});

test("clock skew: a holder an hour behind keeps the Lease; expiry runs on the candidate's clock", async (t) => {
  const { srv, kc } = await fakeCluster();
  const clock = new ManualClock();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const behind = () => new Date(clock.now() - 3_600_000);
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
  // The holder renews once per round, stamping its own (late) clock.
  const renew = async () => {
    const cur = await api.readNamespacedLease({ namespace: NS, name: LEASE });
    assert.equal(cur.spec?.holderIdentity, 'skewed-pod');
    await api.replaceNamespacedLease({
      namespace: NS,
      name: LEASE,
      body: { ...cur, spec: { ...cur.spec, renewTime: behind() } },
    });
  };
  const b = candidate(api, clock, 'pod-b');
  electors.push(b.el);
  b.el.start();
  await settle([b.el]);
  for (let i = 0; i < 2 * EXPIRY_STEPS; i++) {
    await renew();
    await step(clock, [b.el]);
  }
  assert.equal(
    b.el.isLeader(),
    false,
    'renewTime looks an hour old, but the Lease keeps changing: its holder is alive',
  );
  // The renewals stop: b saw the last version in the round just after it, and needs a full lease duration more.
  await step(clock, [b.el], EXPIRY_STEPS - 1);
  assert.equal(b.el.isLeader(), false, 'not before a lease duration without change');
  await step(clock, [b.el]);
  assert.equal(b.el.isLeader(), true, 'takeover once the Lease stayed unchanged for its duration');
  assert.equal(leaseOf(srv).spec.leaseTransitions, 1);
  await b.el.stop();
});

test('two candidates racing for a fresh Lease: optimistic concurrency gives exactly one leader', async (t) => {
  const { srv, kc } = await fakeCluster();
  const clock = new ManualClock();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const cs = ['p0', 'p1', 'p2'].map((id) => candidate(api, clock, id));
  electors.push(...cs.map((c) => c.el));
  for (const c of cs) c.el.start();
  await settle(electors);
  assert.equal(cs.filter((c) => c.el.isLeader()).length, 1, 'one create wins, the others get 409');
  const leader = cs.find((c) => c.el.isLeader())!;
  await step(clock, electors, 3);
  assert.deepEqual(
    cs.filter((c) => c.el.isLeader()),
    [leader],
    'the same single leader after 3 more rounds',
  );
  assert.equal(leaseOf(srv).spec.holderIdentity, leader.el['opts'].identity);
  assert.equal(srv.count('create', 'coordination.k8s.io/leases'), 3);
  await Promise.all(cs.map((c) => c.el.stop()));
});

test('renew failures past the renew deadline end leadership (onStoppedLeading), then it campaigns again', async (t) => {
  const { srv, kc } = await fakeCluster();
  const clock = new ManualClock();
  const electors: LeaderElector[] = [];
  t.after(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    await srv.close();
  });
  const api = kc.makeApiClient(CoordinationV1Api);
  const a = candidate(api, clock, 'pod-a');
  electors.push(a.el);
  a.el.start();
  await settle([a.el]);
  assert.equal(a.el.isLeader(), true);
  const lastRenew = clock.now();
  srv.failNext('update', 'coordination.k8s.io/leases', 500, 8);
  // Renews at +120, +240, +360, +480 ms fail; the deadline (500 ms) has not passed yet.
  await step(clock, [a.el], 4);
  assert.equal(a.el.isLeader(), true, '480 ms without a renew < 500 ms deadline');
  assert.deepEqual(a.log, ['started']);
  // At +600 ms the deadline has passed: leadership ends without another request, then one campaign
  // round fails (5th fault).
  await step(clock, [a.el]);
  assert.equal(a.el.isLeader(), false, '600 ms without a renew ≥ 500 ms deadline');
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped']);
  assert.equal(Date.parse(leaseOf(srv).spec.renewTime), lastRenew, 'no renew reached the server');
  // Faults 6–8 fail the next three rounds; the fourth succeeds (the Lease is still ours) and it leads again.
  await step(clock, [a.el], 3);
  assert.equal(a.el.isLeader(), false);
  await step(clock, [a.el]);
  assert.equal(a.el.isLeader(), true, 're-acquired');
  assert.deepEqual(a.log, ['started', 'aborted', 'stopped', 'started']);
  assert.equal(leaseOf(srv).spec.leaseTransitions, 0, 'same holder: no transition');
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
    clock: new ManualClock(),
    onStartedLeading: async (signal) => {
      await new Promise((r) => signal.addEventListener('abort', r));
      await new Promise((r) => setImmediate(r)); // drain asynchronously: stop() must still wait
      order.push(`drained, holder=${leaseOf(srv).spec.holderIdentity}`);
    },
  });
  electors.push(el);
  el.start();
  await el.whenIdle();
  assert.equal(el.isLeader(), true);
  await el.stop();
  order.push(`released, holder=${JSON.stringify(leaseOf(srv).spec.holderIdentity)}`);
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
