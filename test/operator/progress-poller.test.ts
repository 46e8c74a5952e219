// ProgressPoller: the trainer-progress probe off the reconcile's path. Time is node:test's mock timers;
// probe answers are promises the test resolves, so every assertion follows an explicit event.
import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ProgressPoller, TRAIN_POLL_MS } from '../../src/operator/controllers/progress.js';

type Answer = Record<string, number> | undefined;

/** A probe whose answers the test gives, one call at a time. */
function scriptedProbe() {
  const calls: { pod: V1Pod; answer: (a: Answer) => void }[] = [];
  const probe = (pod: V1Pod) => new Promise<Answer>((answer) => calls.push({ pod, answer }));
  return { calls, probe };
}

const pod = (ip: string): V1Pod => ({
  metadata: { name: 'r-train-x', uid: 'u1' },
  status: { phase: 'Running', podIP: ip },
});
/** Lets the poller's continuation after a probe answer run (microtasks and one macrotask turn). */
const settle = () => new Promise<void>((r) => setImmediate(r));

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

test('probes at once, caches the answer, enqueues only on step or loss change; polls every TRAIN_POLL_MS', async () => {
  const { calls, probe } = scriptedProbe();
  const changed: string[] = [];
  const poller = new ProgressPoller({ probe, onChange: (k) => changed.push(k) });
  poller.watch('ns/r', pod('10.0.0.1'));
  assert.equal(calls.length, 1, 'the first probe starts with watch()');
  assert.equal(poller.latest('ns/r'), undefined);
  calls[0].answer({ step: 317, steps: 600, loss: 0.0456 });
  await settle();
  assert.deepEqual(poller.latest('ns/r'), { step: 317, steps: 600, loss: 0.0456 });
  assert.deepEqual(changed, ['ns/r']);

  poller.watch('ns/r', pod('10.0.0.1')); // the same pod again (every reconcile names it): no extra probe
  mock.timers.tick(TRAIN_POLL_MS - 1);
  assert.equal(calls.length, 1);
  mock.timers.tick(1);
  assert.equal(calls.length, 2);
  calls[1].answer({ step: 317, steps: 600, loss: 0.0456 });
  await settle();
  mock.timers.tick(TRAIN_POLL_MS);
  assert.equal(calls.length, 3);
  calls[2].answer({ step: 330, steps: 600, loss: 0.0441 });
  await settle();
  assert.deepEqual(changed, ['ns/r', 'ns/r'], 'the unchanged second answer enqueued nothing');
  assert.equal(poller.latest('ns/r')?.step, 330);
  poller.stop();
});

test('a pod that did not answer is asked again; one without a step changes nothing', async () => {
  const { calls, probe } = scriptedProbe();
  const changed: string[] = [];
  const poller = new ProgressPoller({ probe, onChange: (k) => changed.push(k), intervalMs: 1000 });
  poller.watch('ns/r', pod('10.0.0.1'));
  calls[0].answer(undefined);
  await settle();
  mock.timers.tick(1000);
  calls[1].answer({ steps: 600 });
  await settle();
  mock.timers.tick(1000);
  calls[2].answer({ step: 5, steps: 600 });
  await settle();
  assert.deepEqual(changed, ['ns/r']);
  assert.deepEqual(poller.latest('ns/r'), { step: 5, steps: 600 });
  poller.stop();
});

test('a new pod (or IP) replaces the old one at once; an answer for a forgotten run is dropped', async () => {
  const { calls, probe } = scriptedProbe();
  const changed: string[] = [];
  const poller = new ProgressPoller({ probe, onChange: (k) => changed.push(k) });
  poller.watch('ns/r', pod('10.0.0.1'));
  poller.watch('ns/r', pod('10.0.0.2'));
  assert.deepEqual(
    calls.map((c) => c.pod.status?.podIP),
    ['10.0.0.1', '10.0.0.2'],
  );
  calls[0].answer({ step: 1 }); // the replaced pod's late answer
  calls[1].answer({ step: 2 });
  await settle();
  assert.deepEqual(changed, ['ns/r']);
  assert.equal(poller.latest('ns/r')?.step, 2);

  poller.forget('ns/r');
  assert.equal(poller.latest('ns/r'), undefined);
  mock.timers.tick(TRAIN_POLL_MS);
  assert.equal(calls.length, 2, 'a forgotten run is not probed again');

  poller.watch('ns/s', pod('10.0.0.3'));
  poller.stop();
  calls[2].answer({ step: 9 });
  await settle();
  assert.deepEqual(changed, ['ns/r']);
  assert.equal(poller.latest('ns/s'), undefined);
});
