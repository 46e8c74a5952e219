/**
 * Every client mistake gets a 4xx with `{ "error": { "code", "message" } }` naming the field, and the
 * service stays up: malformed JSON, wrong types and missing or unknown fields, n out of range, class
 * labels out of range or given to an unconditional model, unknown model or version, OIP tensors of the
 * wrong name/shape/datatype/length, a body over the limit, a wrong content type, a wrong method, an
 * unknown route; 503 before the model is ready. None of them may produce a 5xx.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getJson, modelPath, postJson, startServer, type TestServer } from './helpers.js';
import type { Json } from '../json.js';

let cond: TestServer;
let uncond: TestServer;

before(async () => {
  [cond, uncond] = await Promise.all([startServer(), startServer({ model: modelPath('unconditional') })]);
});

after(async () => {
  await Promise.all([cond.close(), uncond.close()]);
});

/** Asserts an error response: status, code, and a message matching `re`. */
function expectError(r: { status: number; body: Json }, status: number, code: string, re: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal(r.body.error.code, code);
  assert.match(r.body.error.message, re);
}

/** A valid OIP request for batch `b` with every tensor overridable. */
function inferBody(b = 1, over: Record<string, object> = {}): { inputs: object[] } {
  return {
    inputs: [
      { name: 'noise', shape: [b, 1, 32, 32], datatype: 'FP32', data: new Array(b * 1024).fill(0.1), ...over.noise },
      { name: 'class_labels', shape: [b], datatype: 'INT64', data: new Array(b).fill(1), ...over.class_labels },
      { name: 'z0', shape: [b, 16, 32], datatype: 'FP32', data: new Array(b * 512).fill(0), ...over.z0 },
    ],
  };
}

test('POST /v1/images/generations: each bad body → 400 naming the field', async () => {
  const gen = (body: unknown) => postJson(`${cond.url}/v1/images/generations`, body);
  const cases: [unknown, RegExp][] = [
    [{ n: 'two', class_label: 1 }, /^n: must be an integer in \[1, 16\]$/],
    [{ n: 0, class_label: 1 }, /^n: must be an integer in \[1, 16\]$/],
    [{ n: -3, class_label: 1 }, /^n: must be an integer in \[1, 16\]$/],
    [{ n: 17, class_label: 1 }, /^n: must be an integer in \[1, 16\]$/],
    [{ n: 1.5, class_label: 1 }, /^n: must be an integer/],
    [{ seed: -1, class_label: 1 }, /^seed: must be an integer in \[0, 2147483647\]$/],
    [{ seed: 'x', class_label: 1 }, /^seed: must be an integer/],
    [{ seed: 2 ** 31 - 2, n: 3, class_label: 1 }, /^seed: seed \+ n − 1 = 2147483648 must be below 2\^31/],
    [{ class_label: 1, colour: 'red' }, /^body: unknown field "colour"$/],
    [{ class_label: 1, response_format: 'url' }, /^response_format: only "b64_json" is supported/],
    [{ class_label: 1, size: '64x64' }, /^size: this model makes 32x32 images/],
    [{}, /^class_label: is required: this model is class-conditional/],
    [{ class_label: 10 }, /^class_label: 10 is outside \[0, 10\)$/],
    [{ class_label: -1 }, /^class_label: -1 is outside \[0, 10\)$/],
    [{ class_label: 2.5 }, /^class_label: must be an integer class label, got 2\.5$/],
    [{ class_label: '3' }, /^class_label: must be an integer class label, got "3"$/],
    [{ n: 2, class_label: [1, 12] }, /^class_label\[1\]: 12 is outside \[0, 10\)$/],
    [{ n: 3, class_label: [1, 2] }, /^class_label: has 2 labels for n = 3 images/],
    [[1, 2], /^body: /],
  ];
  for (const [body, re] of cases) expectError(await gen(body), 400, 'bad_request', re);
  expectError(await gen('{"n": 1,'), 400, 'invalid_json', /^body: not valid JSON/);
  expectError(await gen('42'), 400, 'invalid_json', /^body: not valid JSON/); // only objects and arrays
  expectError(
    await postJson(`${uncond.url}/v1/images/generations`, { class_label: 3 }),
    400,
    'bad_request',
    /^class_label: this model is unconditional/,
  );
  expectError(
    await gen({ model: 'dall-e-3', class_label: 1 }),
    404,
    'not_found',
    /unknown model "dall-e-3"; this server serves "get"/,
  );
});

test('GET /v1/images/generations: bad query → 400 naming the parameter', async () => {
  const png = (q: string) => getJson(`${cond.url}/v1/images/generations?${q}`);
  expectError(
    await png('seed=1&class_label=1&scale=0'),
    400,
    'bad_request',
    /^scale: must be an integer in \[1, 16\]$/,
  );
  expectError(
    await png('seed=1&class_label=1&scale=17'),
    400,
    'bad_request',
    /^scale: must be an integer in \[1, 16\]$/,
  );
  expectError(await png('seed=abc&class_label=1'), 400, 'bad_request', /^seed: must be an integer$/);
  expectError(
    await png('seed=-4&class_label=1'),
    400,
    'bad_request',
    /^seed: must be an integer in \[0, 2147483647\]$/,
  );
  expectError(await png('seed=1&seed=2&class_label=1'), 400, 'bad_request', /^seed: must be given once/);
  expectError(await png('seed=1&class_label=10'), 400, 'bad_request', /^class_label: 10 is outside \[0, 10\)$/);
  expectError(await png('seed=1'), 400, 'bad_request', /^class_label: is required/);
  expectError(await png('seed=1&class_label=1&size=big'), 400, 'bad_request', /^query: unknown field "size"$/);
  expectError(await png('seed=1&class_label=1&model=other'), 404, 'not_found', /unknown model "other"/);
});

test('OIP infer: wrong name, datatype, shape, length, batch, label, output → 400 naming the tensor field', async () => {
  const infer = (body: unknown) => postJson(`${cond.url}/v2/models/get/infer`, body);
  const cases: [unknown, RegExp][] = [
    [{}, /^inputs: is required \(array\)$/],
    [{ inputs: [] }, /^inputs: needs at least one input tensor$/],
    [{ inputs: [{ name: 'noise', shape: [1], data: [1] }] }, /^inputs\[0\]\.datatype: is required \(string\)$/],
    [{ inputs: [{ name: 'noise', shape: [1.5], datatype: 'FP32', data: [1] }] }, /^inputs\[0\]\.shape\[0\]: /],
    [{ ...inferBody(), extra: 1 }, /^body: unknown field "extra"$/],
    [inferBody(1, { noise: { datatype: 'FP64' } }), /^inputs\[0\]\.datatype: noise must be FP32, got "FP64"$/],
    [inferBody(1, { class_labels: { datatype: 'INT32' } }), /^inputs\[1\]\.datatype: class_labels must be INT64/],
    [
      inferBody(1, { noise: { shape: [1, 3, 32, 32] } }),
      /^inputs\[0\]\.shape: noise must have shape \[-1, 1, 32, 32\] \(-1 = the batch\), got \[1, 3, 32, 32\]$/,
    ],
    [inferBody(1, { noise: { shape: [1, 1, 32] } }), /^inputs\[0\]\.shape: noise must have shape/],
    [inferBody(1, { noise: { shape: [0, 1, 32, 32], data: [] } }), /^inputs\[0\]\.shape: /],
    [
      inferBody(1, { noise: { data: new Array(1000).fill(0) } }),
      /^inputs\[0\]\.data: holds 1000 values; shape \[1, 1, 32, 32\] needs 1024$/,
    ],
    [inferBody(1, { noise: { data: [[1, 2], [3]] } }), /^inputs\[0\]\.data: must be 1 entries long .* got 2$/],
    [
      inferBody(1, { noise: { data: [0, 'a', ...new Array(1022).fill(0)] } }),
      /^inputs\[0\]\.data\[1\]: must be a number, got "a"$/,
    ],
    [
      inferBody(1, { noise: { data: [0, 0, null, ...new Array(1021).fill(0)] } }),
      /^inputs\[0\]\.data\[2\]: must be a number, got null$/,
    ],
    [
      inferBody(1, { noise: { data: [1e39, ...new Array(1023).fill(0)] } }),
      /^inputs\[0\]\.data\[0\]: must be a finite FP32 value, got 1e\+39$/,
    ],
    [
      inferBody(1, { z0: { shape: [2, 16, 32], data: new Array(1024).fill(0) } }),
      /^inputs\[2\]\.shape: batch 2 of z0 differs from batch 1 of noise$/,
    ],
    [inferBody(1, { class_labels: { data: [10] } }), /^inputs\[1\]\.data\[0\]: class label 10 is outside \[0, 10\)$/],
    [inferBody(1, { class_labels: { data: [1.5] } }), /^inputs\[1\]\.data\[0\]: must be an integer, got 1\.5$/],
    [
      { inputs: [...inferBody().inputs, { name: 'temperature', shape: [1], datatype: 'FP32', data: [1] }] },
      /^inputs\[3\]\.name: unknown input "temperature"; model get takes noise, class_labels, z0$/,
    ],
    [{ inputs: [...inferBody().inputs, inferBody().inputs[0]] }, /^inputs\[3\]\.name: input "noise" is given twice$/],
    [{ inputs: inferBody().inputs.slice(0, 2) }, /^inputs: missing "z0"; model get takes noise, class_labels, z0$/],
    [
      { ...inferBody(), outputs: [{ name: 'latents' }] },
      /^outputs\[0\]\.name: unknown output "latents"; model get has image, residual2$/,
    ],
    [inferBody(33), /^inputs\[0\]\.shape: batch 33 exceeds the max batch size 32; split the request$/],
  ];
  for (const [body, re] of cases) expectError(await infer(body), 400, 'bad_request', re);
  expectError(await infer('{"inputs": ['), 400, 'invalid_json', /^body: not valid JSON/);
  const infinite = JSON.stringify(inferBody()).replace('"data":[0.1', '"data":[1e999');
  expectError(
    await infer(infinite),
    400,
    'bad_request',
    /^inputs\[0\]\.data\[0\]: must be a finite FP32 value, got Infinity$/,
  );
  const empty = await fetch(`${cond.url}/v2/models/get/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
  });
  expectError({ status: empty.status, body: await empty.json() }, 400, 'bad_request', /^(body|inputs): is required/);
  const uncondInfer = await postJson(`${uncond.url}/v2/models/get/infer`, inferBody());
  expectError(
    uncondInfer,
    400,
    'bad_request',
    /^inputs\[1\]\.name: unknown input "class_labels"; model get takes noise, z0$/,
  );
});

test('unknown model or version → 404 on every model route', async () => {
  expectError(
    await getJson(`${cond.url}/v2/models/other`),
    404,
    'not_found',
    /^unknown model "other"; this server serves "get"$/,
  );
  expectError(await getJson(`${cond.url}/v2/models/other/ready`), 404, 'not_found', /unknown model "other"/);
  expectError(
    await postJson(`${cond.url}/v2/models/other/infer`, inferBody()),
    404,
    'not_found',
    /unknown model "other"/,
  );
  expectError(
    await getJson(`${cond.url}/v2/models/get/versions/000000000000`),
    404,
    'not_found',
    /model get has no version "000000000000"; the served version is "[0-9a-f]{12}"$/,
  );
  expectError(
    await postJson(`${cond.url}/v2/models/get/versions/1/infer`, inferBody()),
    404,
    'not_found',
    /no version "1"/,
  );
});

test('body over limit → 413; wrong content type → 415; wrong method → 405, Allow; unknown route → 404', async () => {
  const huge = JSON.stringify({ class_label: 1, prompt: 'x'.repeat(9 * 1024 * 1024) });
  expectError(
    await postJson(`${cond.url}/v1/images/generations`, huge),
    413,
    'payload_too_large',
    /^body: \d+ bytes exceed the limit of 8388608 bytes/,
  );
  const text = await fetch(`${cond.url}/v2/models/get/infer`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: '{}',
  });
  expectError(
    { status: text.status, body: await text.json() },
    415,
    'unsupported_media_type',
    /^Content-Type must be application\/json, got "text\/plain"$/,
  );
  const form = await fetch(`${cond.url}/v1/images/generations`, {
    method: 'POST',
    body: new URLSearchParams({ n: '1' }),
  });
  expectError(
    { status: form.status, body: await form.json() },
    415,
    'unsupported_media_type',
    /got "application\/x-www-form-urlencoded/,
  );
  const del = await fetch(`${cond.url}/v2/models/get`, { method: 'DELETE' });
  expectError(
    { status: del.status, body: await del.json() },
    405,
    'method_not_allowed',
    /^DELETE is not allowed on \/v2\/models\/:name\{\/versions\/:version\}; use GET, HEAD$/,
  );
  assert.equal(del.headers.get('allow'), 'GET, HEAD');
  const put = await fetch(`${cond.url}/v1/images/generations`, { method: 'PUT' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get('allow'), 'POST, GET, HEAD');
  expectError(await getJson(`${cond.url}/v3/models`), 404, 'not_found', /^no route GET \/v3\/models$/);
});

test('model not ready yet: live 200, ready 503, model routes 503 not_ready; unknown names still 404', async () => {
  const s = await startServer({}, { start: false });
  try {
    assert.equal((await getJson(`${s.url}/v2/health/live`)).status, 200);
    expectError(await getJson(`${s.url}/v2/health/ready`), 503, 'not_ready', /^not ready: loading the model$/);
    expectError(await getJson(`${s.url}/readyz`), 503, 'not_ready', /loading the model/);
    expectError(await getJson(`${s.url}/v2/models/get/ready`), 503, 'not_ready', /loading the model/);
    expectError(await postJson(`${s.url}/v2/models/get/infer`, inferBody()), 503, 'not_ready', /loading the model/);
    expectError(
      await postJson(`${s.url}/v1/images/generations`, { class_label: 1 }),
      503,
      'not_ready',
      /loading the model/,
    );
    expectError(await getJson(`${s.url}/v2/models/other`), 404, 'not_found', /unknown model/);
    await s.service.start();
    assert.equal((await getJson(`${s.url}/v2/health/ready`)).status, 200);
  } finally {
    await s.close();
  }
});

test('after all of the above the service still answers, and no client mistake was counted as a 5xx', async () => {
  const ok = await postJson(`${cond.url}/v1/images/generations`, { seed: 1, class_label: 1 });
  assert.equal(ok.status, 200);
  const m = await (await fetch(`${cond.url}/metrics`)).text();
  assert.ok(!/^get_http_requests_total\{[^}]*code="5\d\d"\}/m.test(m), 'a 5xx was served');
  assert.match(
    m,
    new RegExp(
      '^get_http_requests_total\\{method="POST",' +
        'route="\\/v2\\/models\\/:name\\{\\/versions\\/:version\\}\\/infer",code="400"\\} \\d+$',
      'm',
    ),
  );
});
