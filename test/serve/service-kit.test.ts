/**
 * The service kit (src/service) on a toy service, as datagen/trainer/exporter will use it: JSON
 * errors for client mistakes, a 500 that hides the internal message, readiness states, and the
 * shutdown helper's drain order and grace-period timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import {
  createServiceApp,
  createLogger,
  HttpError,
  installGracefulShutdown,
  listen,
  zodBadRequest,
} from '../../src/service/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { metricValue } from './helpers.js';

function toy() {
  // `arrived` resolves once /slow's handler holds its request; `release` lets it answer.
  let arrive!: () => void;
  const hang: { release?: () => void; readonly arrived: Promise<void> } = {
    arrived: new Promise<void>((r) => (arrive = r)),
  };
  const svc = createServiceApp({
    name: 'toy',
    logger: createLogger('toy', 'silent'),
    bodyLimitBytes: 1024,
    routes: (kit) => {
      const Body = z.object({ steps: z.number().int().positive() }).strict();
      kit.route('/jobs/:id', {
        post: [
          ...kit.json,
          (req, res) => {
            const r = Body.safeParse(req.body);
            if (!r.success) throw zodBadRequest(r.error, 'body');
            res.status(201).json({ id: req.params.id, steps: r.data.steps });
          },
        ],
      });
      kit.route('/boom', {
        get: () => {
          throw new Error('secret detail: /etc/key');
        },
      });
      kit.route('/busy', {
        get: () => {
          throw new HttpError(429, 'queue_full', 'busy', { 'Retry-After': '3' });
        },
      });
      kit.route('/slow', {
        get: async (_req, res) => {
          await new Promise<void>((r) => {
            hang.release = r;
            arrive();
          });
          res.json({ done: true });
        },
      });
    },
  });
  return { ...svc, hang };
}

test('kit: 201 happy path, 400 with field names, 413, 415, 405, 404, and a 500 that hides its message', async () => {
  const { app, registry, state } = toy();
  const server = await listen(app, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = (path: string, body: string, type = 'application/json') =>
    fetch(url + path, { method: 'POST', headers: { 'content-type': type }, body });
  const json = async (r: Response) => [r.status, await r.json()] as const;
  try {
    assert.deepEqual(await json(await post('/jobs/7', '{"steps": 3}')), [201, { id: '7', steps: 3 }]);
    assert.deepEqual(await json(await post('/jobs/7', '{"steps": 0, "x": 1}')), [
      400,
      {
        error: { code: 'bad_request', message: 'steps: Too small: expected number to be >0; body: unknown field "x"' },
      },
    ]);
    assert.deepEqual((await json(await post('/jobs/7', '{"steps": ' + '1'.repeat(2000) + '}')))[0], 413);
    assert.deepEqual((await json(await post('/jobs/7', 'steps=3', 'text/plain')))[0], 415);
    assert.deepEqual(await json(await fetch(`${url}/jobs/7`)), [
      405,
      { error: { code: 'method_not_allowed', message: 'GET is not allowed on /jobs/:id; use POST' } },
    ]);
    assert.deepEqual(await json(await fetch(`${url}/nope`)), [
      404,
      { error: { code: 'not_found', message: 'no route GET /nope' } },
    ]);
    const boom = await fetch(`${url}/boom`);
    assert.deepEqual(await json(boom), [
      500,
      { error: { code: 'internal', message: 'internal error; the server log has the details' } },
    ]);
    const busy = await fetch(`${url}/busy`);
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '3');
    // Readiness follows the state; /healthz is always 200.
    assert.equal((await fetch(`${url}/readyz`)).status, 503);
    state.markReady();
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    state.markDraining();
    assert.deepEqual(await json(await fetch(`${url}/readyz`)), [
      503,
      { error: { code: 'draining', message: 'the service is shutting down; retry on another replica' } },
    ]);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const m = await registry.metrics();
    assert.equal(metricValue(m, 'get_http_requests_total{method="POST",route="/jobs/:id",code="201"}'), 1);
    assert.equal(metricValue(m, 'get_http_requests_total{method="GET",route="/boom",code="500"}'), 1);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('shutdown: drain runs after the listener closes, close after the last response; exit 0', async () => {
  const { app, state, logger, hang } = toy();
  const server = await listen(app, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.markReady();
  const order: string[] = [];
  const codes: number[] = [];
  let exited = (_code: number) => {};
  const exit = new Promise<number>((r) => (exited = r));
  const slow = fetch(`${url}/slow`).then((r) => r.json());
  await hang.arrived;
  const sd = installGracefulShutdown({
    server,
    state,
    logger,
    signals: ['SIGUSR2'],
    drain: async () => {
      order.push(`drain (listening: ${server.listening})`);
      hang.release!();
    },
    close: async () => void order.push('close'),
    exit: (c) => {
      codes.push(c);
      exited(c);
    },
  });
  try {
    process.kill(process.pid, 'SIGUSR2');
    assert.deepEqual(await slow, { done: true });
    assert.equal(await exit, 0);
    assert.deepEqual(order, ['drain (listening: false)', 'close']);
    assert.deepEqual(codes, [0]);
    assert.equal(state.phase, 'draining');
  } finally {
    sd.dispose();
  }
});

test('shutdown: open connections are cut at graceMs, not before, and the exit code is 1', async () => {
  const { app, state, logger, hang } = toy();
  const server = await listen(app, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const slow = fetch(`${url}/slow`).then(
    () => 'answered',
    () => 'cut',
  );
  await hang.arrived; // /slow never answers on its own: only the grace timer can end it
  let cuts = 0;
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    cuts++;
    closeAll();
  };
  const clock = new ManualClock();
  const codes: number[] = [];
  const sd = installGracefulShutdown({
    server,
    state,
    logger,
    signals: [],
    graceMs: 150,
    exit: (c) => void codes.push(c),
    clock,
  });
  const done = sd.shutdown('test');
  assert.equal(clock.nextDue()! - clock.now(), 150, 'the grace timer is set for graceMs');
  clock.advance(149);
  assert.equal(cuts, 0, 'at graceMs − 1 the slow request is still allowed to finish');
  clock.advance(1);
  assert.equal(cuts, 1, 'at graceMs open connections are cut');
  assert.equal(await done, 1);
  assert.equal(await slow, 'cut');
  assert.deepEqual(codes, [1]);
  assert.equal(clock.pending(), 0);
});
