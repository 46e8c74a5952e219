/**
 * Dynamic batching through HTTP with real onnxruntime runs: concurrent requests merge into one run
 * (and get the same images as alone), a full queue answers 429 with Retry-After, a request past its
 * deadline answers 504 and is never run, and the event loop stays free while a long run is in flight
 * (onnxruntime-node 1.30 blocks the thread that calls `run`, so the sessions live in worker threads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveConfig } from '../../src/get/config.js';
import { readModelInfo } from '../../src/get/export.js';
import { OrtSession } from '../../src/graph/session.js';
import { mergeSamples, samplesFromSeeds } from '../../src/get/seeded.js';
import { getJson, metricValue, modelBytes, postJson, startServer, writeTemp, type TestServer } from './helpers.js';

const metrics = async (s: TestServer) => (await fetch(`${s.url}/metrics`)).text();

/** Polls until get_queue_depth reaches `depth` (the requests are really waiting). */
async function waitForDepth(s: TestServer, depth: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (metricValue(await metrics(s), 'get_queue_depth') === depth) return;
    await sleep(10);
  }
  assert.fail(`queue depth never reached ${depth}`);
}

test('6 concurrent requests of 2 images merge into one run of 12, each with the images it gets alone', async () => {
  const s = await startServer({ maxQueueDelayMs: 300 });
  try {
    const bodies = Array.from({ length: 6 }, (_, i) => ({ n: 2, seed: 100 * i, class_label: i }));
    const results = await Promise.all(bodies.map((b) => postJson(`${s.url}/v1/images/generations`, b)));
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
    );
    const m = await metrics(s);
    assert.equal(metricValue(m, 'get_batch_size_count'), 1, 'one onnxruntime run');
    assert.equal(metricValue(m, 'get_batch_size_sum'), 12);
    assert.equal(metricValue(m, 'get_batch_size_bucket{le="8"}'), 0, 'the run held more than 8 images');
    assert.equal(metricValue(m, 'get_images_generated_total'), 12);
    // Each request got its own images: the last one alone gives the same PNGs.
    const alone = await postJson(`${s.url}/v1/images/generations`, bodies[5]);
    assert.deepEqual(
      alone.body.data,
      results[5].body.data.map((d: object) => d),
    );
    assert.deepEqual(
      results[5].body.data.map((d: { seed: number }) => d.seed),
      [500, 501],
    );
  } finally {
    await s.close();
  }
});

test('queue full → 429 queue_full with Retry-After; the queued requests still complete', async () => {
  const s = await startServer({ maxQueueSize: 2, maxQueueDelayMs: 60_000 });
  try {
    const queued = [
      postJson(`${s.url}/v1/images/generations`, { seed: 1, class_label: 1 }),
      postJson(`${s.url}/v1/images/generations`, { seed: 2, class_label: 2 }),
    ];
    await waitForDepth(s, 2);
    const refused = await postJson(`${s.url}/v1/images/generations`, { seed: 3, class_label: 3 });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'queue_full');
    assert.match(refused.body.error.message, /the queue holds 2 requests/);
    assert.match(refused.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    const infer = await postJson(`${s.url}/v2/models/get/infer`, {
      inputs: [
        { name: 'noise', shape: [1, 1, 32, 32], datatype: 'FP32', data: new Array(1024).fill(0) },
        { name: 'class_labels', shape: [1], datatype: 'INT64', data: [0] },
        { name: 'z0', shape: [1, 16, 32], datatype: 'FP32', data: new Array(512).fill(0) },
      ],
    });
    assert.equal(infer.status, 429, 'OIP shares the queue');
    await s.service.drain(); // runs the queue at once instead of waiting 60 s for a fuller batch
    assert.deepEqual(
      (await Promise.all(queued)).map((r) => r.status),
      [200, 200],
    );
  } finally {
    await s.close();
  }
});

test('past requestTimeoutMs → 504 deadline_exceeded, and the request leaves the queue unrun', async () => {
  const s = await startServer({ requestTimeoutMs: 150, maxQueueDelayMs: 60_000 });
  try {
    const t = performance.now();
    const r = await postJson(`${s.url}/v1/images/generations`, { n: 4, seed: 1, class_label: 1 });
    const ms = performance.now() - t;
    assert.equal(r.status, 504);
    assert.equal(r.body.error.code, 'deadline_exceeded');
    assert.match(r.body.error.message, /no result within 150 ms \(waited in the queue\)/);
    assert.ok(ms >= 140 && ms < 2000, `answered after ${ms} ms`);
    const m = await metrics(s);
    assert.equal(metricValue(m, 'get_queue_depth'), 0);
    assert.equal(metricValue(m, 'get_batch_size_count'), 0, 'never run');
    assert.equal(metricValue(m, 'get_images_generated_total'), 0);
    assert.equal(metricValue(m, 'get_http_requests_total{method="POST",route="/v1/images/generations",code="504"}'), 1);
  } finally {
    await s.close();
  }
});

test('event loop: a main-thread run blocks timers for its whole length; the service answers probes during a long run', async (t) => {
  // GET-CPU-S/4 (64 tokens × 64) at batch 128: a few hundred ms per run on 2 cores.
  const cfg = resolveConfig('GET-CPU-S/4', { numClasses: 10 });
  const bytes = modelBytes(cfg);
  const info = readModelInfo(bytes, 'test');
  const feeds = () => mergeSamples(info, [samplesFromSeeds(info, 0, 128, new Array(128).fill(1))]);

  // 1. onnxruntime-node 1.30 on the main thread: a 5 ms interval timer cannot fire during the run.
  const session = await OrtSession.create(bytes);
  await session.run(feeds());
  let ticks = 0;
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  await sleep(20);
  const input = feeds();
  const before = ticks;
  const t0 = performance.now();
  await session.run(input);
  const runMs = performance.now() - t0;
  const ticksDuringRun = ticks - before;
  await sleep(20);
  clearInterval(timer);
  await session.release();
  assert.ok(runMs > 100, `run took ${runMs} ms`);
  // Free, the timer would fire ~runMs / 5 times; blocked, at most once (onnxruntime defers the call by one setImmediate).
  assert.ok(
    ticksDuringRun <= 2,
    `the timer fired ${ticksDuringRun} times during a ${runMs.toFixed(0)} ms main-thread run: run no longer blocks?`,
  );

  // 2. The service: the same run happens in a worker; readiness probes keep answering in a few ms.
  const s = await startServer({
    model: writeTemp(bytes),
    maxBatchSize: 128,
    maxImagesPerRequest: 128,
    maxQueueDelayMs: 0,
  });
  try {
    await postJson(`${s.url}/v1/images/generations`, { n: 128, seed: 0, class_label: 1 }); // warm the routes
    let done = false;
    const latencies: number[] = [];
    const g0 = performance.now();
    const gen = postJson(`${s.url}/v1/images/generations`, { n: 128, seed: 128, class_label: 2 }).finally(
      () => (done = true),
    );
    while (!done) {
      const t = performance.now();
      assert.equal((await getJson(`${s.url}/v2/health/ready`)).status, 200);
      latencies.push(performance.now() - t);
      await sleep(5);
    }
    assert.equal((await gen).status, 200);
    const genMs = performance.now() - g0;
    latencies.sort((a, b) => a - b);
    const max = latencies.at(-1)!;
    const p50 = latencies[latencies.length >> 1];
    t.diagnostic(
      `main-thread run ${runMs.toFixed(0)} ms: the 5 ms timer fired ${ticksDuringRun} times, longest gap ${maxGap.toFixed(0)} ms; service: ${latencies.length} probes during a ${genMs.toFixed(0)} ms request, p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
    );
    // Blocked, probes would wait out whole runs (p50 ≈ half a run, max ≈ a run); free, they take a few ms.
    assert.ok(
      latencies.length >= 8,
      `only ${latencies.length} probes answered during a ${genMs.toFixed(0)} ms request`,
    );
    assert.ok(p50 < 25, `probe latency p50 ${p50.toFixed(1)} ms`);
    assert.ok(max < 0.75 * genMs, `probe latency max ${max.toFixed(1)} ms during a ${genMs.toFixed(0)} ms request`);
  } finally {
    await s.close();
  }
});
