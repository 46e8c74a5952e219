/**
 * Every route's happy path against a real server (Express on 127.0.0.1:0, onnxruntime in worker
 * threads) and a tiny exported GET (GET-CPU-XS/8, 32×32×1, 16 tokens × 32): health, server and model
 * metadata, OIP inference equal to a direct OrtSession run, OpenAI generations (seed + i, labels,
 * byte-identical PNGs per seed and label), the PNG route with upscaling, an unconditional model, and
 * the metrics a known sequence of requests must produce.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { toUint8 } from '../../src/data/png.js';
import { noiseForSeed } from '../../src/data/seeds.js';
import { z0ForSeed } from '../../src/get/sampler.js';
import { OrtSession } from '../../src/graph/session.js';
import { sha256Hex } from '../../src/util/fsutil.js';
import { Rng } from '../../src/util/rng.js';
import { getJson, metricValue, modelPath, postJson, startServer, type TestServer } from './helpers.js';

const N = 16; // tokens of GET-CPU-XS/8 at 32×32 (patch 8)
const D = 32;
const PIXELS = 32 * 32;

let cond: TestServer;
let uncond: TestServer;
let direct: OrtSession; // the same model.onnx in this thread, for reference outputs

before(async () => {
  [cond, uncond] = await Promise.all([startServer(), startServer({ model: modelPath('unconditional') })]);
  direct = await OrtSession.create(readFileSync(modelPath('conditional')));
});

after(async () => {
  await Promise.all([cond.close(), uncond.close(), direct.release()]);
});

/** Reference image of (seed, label) computed here from the seed contract, float32 [1,1,32,32]. */
async function referenceImage(seed: number, label: number): Promise<Float32Array> {
  const out = await direct.run({
    noise: {
      dtype: 'float32',
      dims: [1, 1, 32, 32],
      data: Float32Array.from(noiseForSeed(seed, { channels: 1, height: 32, width: 32 })),
    },
    class_labels: { dtype: 'int64', dims: [1], data: BigInt64Array.of(BigInt(label)) },
    z0: { dtype: 'float32', dims: [1, N, D], data: z0ForSeed(seed, N * D) },
  });
  return out.image.data as Float32Array;
}

/** Grey values of a decoded PNG (one byte per pixel). */
function greyPixels(png: Buffer): { width: number; height: number; grey: number[] } {
  const d = PNG.sync.read(png);
  return {
    width: d.width,
    height: d.height,
    grey: Array.from({ length: d.width * d.height }, (_, i) => d.data[i * 4]),
  };
}

test('health, readiness and server metadata', async () => {
  assert.deepEqual((await getJson(`${cond.url}/v2/health/live`)).body, { live: true });
  const ready = await getJson(`${cond.url}/v2/health/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body, { ready: true });
  assert.equal((await getJson(`${cond.url}/healthz`)).status, 200);
  assert.deepEqual((await getJson(`${cond.url}/readyz`)).body, { ready: true });
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.deepEqual((await getJson(`${cond.url}/v2`)).body, {
    name: 'get-distill',
    version: pkg.version,
    extensions: [],
  });
});

test('model metadata: FP32/INT64 datatypes, -1 for batch, version = sha256 prefix; /versions/{v}, /ready', async () => {
  const version = sha256Hex(readFileSync(modelPath('conditional'))).slice(0, 12);
  const { status, body } = await getJson(`${cond.url}/v2/models/get`);
  assert.equal(status, 200);
  assert.equal(body.name, 'get');
  assert.deepEqual(body.versions, [version]);
  assert.equal(body.platform, 'onnxruntime');
  assert.deepEqual(body.inputs, [
    { name: 'noise', datatype: 'FP32', shape: [-1, 1, 32, 32] },
    { name: 'class_labels', datatype: 'INT64', shape: [-1] },
    { name: 'z0', datatype: 'FP32', shape: [-1, N, D] },
  ]);
  assert.deepEqual(body.outputs, [
    { name: 'image', datatype: 'FP32', shape: [-1, 1, 32, 32] },
    { name: 'residual2', datatype: 'FP32', shape: [-1] },
  ]);
  assert.equal(body.parameters.num_classes, 10);
  assert.equal(body.parameters.step, 1234);
  assert.equal(body.parameters.iterations, 6);
  assert.deepEqual((await getJson(`${cond.url}/v2/models/get/versions/${version}`)).body, body);
  assert.deepEqual((await getJson(`${cond.url}/v2/models/get/ready`)).body, { name: 'get', ready: true });
  assert.deepEqual((await getJson(`${cond.url}/v2/models/get/versions/${version}/ready`)).body, {
    name: 'get',
    ready: true,
  });
});

test('infer [3,1,32,32] + labels + z0 [3,16,32] → image [3,1,32,32], residual2 [3] = a direct OrtSession', async () => {
  const rng = new Rng(42);
  const noise = rng.fillNormal(new Float32Array(3 * PIXELS));
  const z0 = rng.fillNormal(new Float32Array(3 * N * D));
  const labels = [7, 0, 3];
  // z0 nested [3][16][32] (OIP allows flat or nested data), the others flat.
  const nested = Array.from({ length: 3 }, (_, b) =>
    Array.from({ length: N }, (_, t) => Array.from(z0.subarray((b * N + t) * D, (b * N + t + 1) * D))),
  );
  const { status, body } = await postJson(`${cond.url}/v2/models/get/infer`, {
    id: 'req-1',
    inputs: [
      { name: 'noise', shape: [3, 1, 32, 32], datatype: 'FP32', data: Array.from(noise) },
      { name: 'class_labels', shape: [3], datatype: 'INT64', data: labels },
      { name: 'z0', shape: [3, N, D], datatype: 'FP32', data: nested },
    ],
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.model_name, 'get');
  assert.equal(body.id, 'req-1');
  assert.equal(body.model_version, sha256Hex(readFileSync(modelPath('conditional'))).slice(0, 12));
  const [image, residual2] = body.outputs;
  assert.deepEqual([image.name, image.datatype, image.shape], ['image', 'FP32', [3, 1, 32, 32]]);
  assert.deepEqual([residual2.name, residual2.datatype, residual2.shape], ['residual2', 'FP32', [3]]);
  const ref = await direct.run({
    noise: { dtype: 'float32', dims: [3, 1, 32, 32], data: noise },
    class_labels: { dtype: 'int64', dims: [3], data: BigInt64Array.from(labels, BigInt) },
    z0: { dtype: 'float32', dims: [3, N, D], data: z0 },
  });
  assert.deepEqual(Float32Array.from(image.data as number[]), ref.image.data);
  assert.deepEqual(Float32Array.from(residual2.data as number[]), ref.residual2.data);
  assert.ok(
    (ref.image.data as Float32Array).some((v) => Math.abs(v) > 0.05),
    'the decoder is not zero: images carry signal',
  );

  // Only the requested outputs come back.
  const only = await postJson(`${cond.url}/v2/models/get/infer`, {
    inputs: [
      { name: 'noise', shape: [1, 1, 32, 32], datatype: 'FP32', data: Array.from(noise.subarray(0, PIXELS)) },
      { name: 'class_labels', shape: [1], datatype: 'INT64', data: [7] },
      { name: 'z0', shape: [1, N, D], datatype: 'FP32', data: Array.from(z0.subarray(0, N * D)) },
    ],
    outputs: [{ name: 'residual2' }],
  });
  assert.deepEqual(
    only.body.outputs.map((o: { name: string }) => o.name),
    ['residual2'],
  );
  assert.equal(only.body.outputs[0].data[0], (ref.residual2.data as Float32Array)[0]);
  assert.equal(only.body.id, undefined);
});

test('POST /v1/images/generations: image i has seed + i and its label; PNG = toUint8(reference image)', async () => {
  const { status, body } = await postJson(`${cond.url}/v1/images/generations`, {
    n: 3,
    seed: 40,
    class_label: [1, 2, 3],
    prompt: 'ignored',
  });
  assert.equal(status, 200, JSON.stringify(body));
  assert.ok(Number.isInteger(body.created) && Math.abs(body.created - Date.now() / 1000) < 60);
  assert.deepEqual(
    body.data.map((d: { seed: number; class_label: number }) => [d.seed, d.class_label]),
    [
      [40, 1],
      [41, 2],
      [42, 3],
    ],
  );
  for (let i = 0; i < 3; i++) {
    const png = greyPixels(Buffer.from(body.data[i].b64_json, 'base64'));
    assert.deepEqual([png.width, png.height], [32, 32]);
    assert.deepEqual(png.grey, Array.from(toUint8(await referenceImage(40 + i, 1 + i))), `image ${i}`);
  }
});

test('same seed, label → byte-identical PNG (alone or in a batch); another seed or label → another PNG', async () => {
  const gen = async (body: object) =>
    (await postJson(`${cond.url}/v1/images/generations`, body)).body.data as {
      b64_json: string;
      seed: number;
      class_label: number;
    }[];
  const [a] = await gen({ seed: 41, class_label: 2 });
  const [b] = await gen({ seed: 41, class_label: 2 });
  assert.equal(a.b64_json, b.b64_json);
  // Seed 41 with label 2 was image 1 of the n = 3 batch in the previous test's request shape.
  const batch = await gen({ n: 3, seed: 40, class_label: [1, 2, 3] });
  assert.equal(batch[1].b64_json, a.b64_json);
  const [otherSeed] = await gen({ seed: 43, class_label: 2 });
  const [otherLabel] = await gen({ seed: 41, class_label: 5 });
  assert.notEqual(otherSeed.b64_json, a.b64_json);
  assert.notEqual(otherLabel.b64_json, a.b64_json);
  // One integer label applies to all n images; a missing seed is drawn at random within [0, 2^31 − n].
  const same = await gen({ n: 2, class_label: 9 });
  assert.deepEqual(
    same.map((d) => d.class_label),
    [9, 9],
  );
  assert.equal(same[1].seed, same[0].seed + 1);
  assert.ok(Number.isInteger(same[0].seed) && same[0].seed >= 0 && same[0].seed < 2 ** 31 - 1);
});

test('GET /v1/images/generations → image/png, equal to the POST image, upscaled by nearest neighbour', async () => {
  const res = await fetch(`${cond.url}/v1/images/generations?seed=41&class_label=2`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-seed'), '41');
  assert.equal(res.headers.get('x-class-label'), '2');
  const png = Buffer.from(await res.arrayBuffer());
  const [posted] = (await postJson(`${cond.url}/v1/images/generations`, { seed: 41, class_label: 2 })).body.data;
  assert.equal(png.toString('base64'), posted.b64_json);

  const big = greyPixels(
    Buffer.from(await (await fetch(`${cond.url}/v1/images/generations?seed=41&class_label=2&scale=4`)).arrayBuffer()),
  );
  const small = greyPixels(png);
  assert.deepEqual([big.width, big.height], [128, 128]);
  for (let y = 0; y < 128; y++)
    for (let x = 0; x < 128; x++) assert.equal(big.grey[y * 128 + x], small.grey[(y >> 2) * 32 + (x >> 2)]);
});

test('unconditional model: inputs noise and z0 only; generations without class_label', async () => {
  const meta = (await getJson(`${uncond.url}/v2/models/get`)).body;
  assert.deepEqual(
    meta.inputs.map((i: { name: string }) => i.name),
    ['noise', 'z0'],
  );
  assert.equal(meta.parameters.num_classes, 0);
  const { status, body } = await postJson(`${uncond.url}/v1/images/generations`, { n: 2, seed: 5 });
  assert.equal(status, 200);
  assert.deepEqual(
    body.data.map((d: { seed: number; class_label: null }) => [d.seed, d.class_label]),
    [
      [5, null],
      [6, null],
    ],
  );
  assert.notEqual(body.data[0].b64_json, body.data[1].b64_json);
  const res = await fetch(`${uncond.url}/v1/images/generations?seed=5`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-class-label'), null);
  assert.equal(Buffer.from(await res.arrayBuffer()).toString('base64'), body.data[0].b64_json);
});

test('/metrics after a known sequence: images, batches, queue depth, load time, HTTP counts per route', async () => {
  const s = await startServer({ maxQueueDelayMs: 0 });
  try {
    assert.equal((await postJson(`${s.url}/v1/images/generations`, { n: 2, seed: 1, class_label: 0 })).status, 200);
    assert.equal((await postJson(`${s.url}/v1/images/generations`, { n: 3, seed: 9, class_label: 1 })).status, 200);
    assert.equal((await fetch(`${s.url}/v1/images/generations?seed=3&class_label=4`)).status, 200);
    assert.equal((await postJson(`${s.url}/v1/images/generations`, { n: 0 })).status, 400);
    assert.equal((await getJson(`${s.url}/no/such/route`)).status, 404);
    assert.equal((await getJson(`${s.url}/v2/models/get`)).status, 200);
    const res = await fetch(`${s.url}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const m = await res.text();
    assert.equal(metricValue(m, 'get_images_generated_total'), 6);
    assert.equal(metricValue(m, 'get_batch_size_sum'), 6);
    assert.equal(metricValue(m, 'get_batch_size_count'), 3); // sequential requests: one run each
    assert.equal(metricValue(m, 'get_inference_duration_seconds_count'), 3);
    const inferSeconds = metricValue(m, 'get_inference_duration_seconds_sum')!;
    assert.ok(inferSeconds > 0 && inferSeconds < 5, `inference seconds ${inferSeconds}`);
    assert.equal(metricValue(m, 'get_queue_depth'), 0);
    const load = metricValue(m, 'get_model_load_seconds')!;
    assert.ok(load > 0 && load < 30, `load seconds ${load}`);
    assert.match(m, /^get_model_info\{name="get",version="[0-9a-f]{12}",preset="GET-CPU-XS\/8"\} 1$/m);
    assert.equal(metricValue(m, 'get_http_requests_total{method="POST",route="/v1/images/generations",code="200"}'), 2);
    assert.equal(metricValue(m, 'get_http_requests_total{method="POST",route="/v1/images/generations",code="400"}'), 1);
    assert.equal(metricValue(m, 'get_http_requests_total{method="GET",route="/v1/images/generations",code="200"}'), 1);
    assert.equal(metricValue(m, 'get_http_requests_total{method="GET",route="<unmatched>",code="404"}'), 1);
    assert.equal(
      metricValue(m, 'get_http_requests_total{method="GET",route="/v2/models/:name{/versions/:version}",code="200"}'),
      1,
    );
    assert.equal(
      metricValue(
        m,
        'get_http_request_duration_seconds_count{method="POST",route="/v1/images/generations",code="200"}',
      ),
      2,
    );
    assert.ok(!m.includes('/no/such/route'), 'raw paths never become labels');
    // prom-client's default process metrics.
    assert.ok(metricValue(m, 'process_cpu_user_seconds_total')! > 0);
    assert.match(m, /^nodejs_eventloop_lag_seconds \d/m);
  } finally {
    await s.close();
  }
});
