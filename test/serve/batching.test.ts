/**
 * Dynamic batching through HTTP with real onnxruntime runs: concurrent requests merge into one run
 * (and get the same images as alone), a full queue answers 429 with Retry-After, a request past its
 * deadline answers 504 and is never run, and health probes are answered while a batch is in flight.
 * Every step waits for an explicit signal (queue depth, a batch held in flight by the test), never for
 * a duration, and nothing asserts how long our code or onnxruntime takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveConfig } from '../../src/get/config.js';
import type { BatchRunner } from '../../src/serve/batcher.js';
import { getJson, metricValue, modelBytes, postJson, startServer, writeTemp, type TestServer } from './helpers.js';

const metrics = async (s: TestServer) => (await fetch(`${s.url}/metrics`)).text();

/** Polls until get_queue_depth reaches `depth` (the requests are really waiting); fails after ~10 s. */
async function waitForDepth(s: TestServer, depth: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (metricValue(await metrics(s), 'get_queue_depth') === depth) return;
    await sleep(10);
  }
  assert.fail(`queue depth never reached ${depth}`);
}

test('6 concurrent requests of 2 images merge into one run of 12, each with the images it gets alone', async () => {
  // A full batch (12 images) runs at once; short of it, requests wait a minute: the merge cannot depend
  // on how fast the 6 requests arrive.
  const s = await startServer({ maxBatchSize: 12, maxImagesPerRequest: 12, maxQueueDelayMs: 60_000 });
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
    const aloneP = postJson(`${s.url}/v1/images/generations`, bodies[5]);
    await waitForDepth(s, 1);
    await s.service.drain(); // runs the lone request now instead of after the minute
    const alone = await aloneP;
    assert.equal(alone.status, 200);
    assert.equal(metricValue(await metrics(s), 'get_batch_size_count'), 2, 'a second run, of its own');
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
  // The batch would wait a minute for more images: only the 150 ms deadline can answer this request.
  const s = await startServer({ requestTimeoutMs: 150, maxQueueDelayMs: 60_000 });
  try {
    const r = await postJson(`${s.url}/v1/images/generations`, { n: 4, seed: 1, class_label: 1 });
    assert.equal(r.status, 504);
    assert.equal(r.body.error.code, 'deadline_exceeded');
    assert.match(r.body.error.message, /no result within 150 ms \(waited in the queue\)/);
    const m = await metrics(s);
    assert.equal(metricValue(m, 'get_queue_depth'), 0);
    assert.equal(metricValue(m, 'get_batch_size_count'), 0, 'never run');
    assert.equal(metricValue(m, 'get_images_generated_total'), 0);
    assert.equal(metricValue(m, 'get_http_requests_total{method="POST",route="/v1/images/generations",code="504"}'), 1);
  } finally {
    await s.close();
  }
});

test('health probes are answered while a batch is in flight, and the batch then completes', async () => {
  // GET-CPU-S/4 at batch 128: a real run of a few hundred ms in the session worker.
  const bytes = modelBytes(resolveConfig('GET-CPU-S/4', { numClasses: 10 }));
  const s = await startServer({
    model: writeTemp(bytes),
    maxBatchSize: 128,
    maxImagesPerRequest: 128,
    maxQueueDelayMs: 0,
  });
  try {
    // Hold the batch in flight until the test lets it go: the real run starts in the worker at once, but
    // the batcher only gets its result after the probes were answered. The order is set by signals.
    const batcher = s.service.engine!.batcher;
    const runner = batcher as unknown as { run: BatchRunner<unknown, unknown> };
    const realRun = runner.run;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let inFlight!: () => void;
    const started = new Promise<void>((r) => (inFlight = r));
    runner.run = async (items) => {
      const out = realRun(items);
      inFlight();
      await released;
      return out;
    };
    const order: string[] = [];
    const gen = postJson(`${s.url}/v1/images/generations`, { n: 128, seed: 128, class_label: 2 }).then((r) => {
      order.push('generated');
      return r;
    });
    await started;
    assert.equal(batcher.running, 1, 'the batch is in flight');
    for (const path of ['/v2/health/ready', '/v2/health/live', '/v2/health/ready']) {
      assert.equal((await getJson(`${s.url}${path}`)).status, 200, path);
      order.push(path);
    }
    assert.equal(batcher.running, 1, 'still in flight after the probes');
    assert.equal(metricValue(await metrics(s), 'get_batch_size_count'), 0, 'no run finished yet');
    release();
    const r = await gen;
    assert.equal(r.status, 200);
    assert.equal(r.body.data.length, 128);
    assert.deepEqual(order, ['/v2/health/ready', '/v2/health/live', '/v2/health/ready', 'generated']);
    assert.equal(metricValue(await metrics(s), 'get_batch_size_sum'), 128);
  } finally {
    await s.close();
  }
});
