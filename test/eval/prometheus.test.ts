/**
 * The eval job's metrics (src/eval/metrics.ts, pushed and served by the service kit as the eval CLI wires
 * them: src/cli/eval-metrics.ts) against a real Pushgateway 1.5 and Prometheus 2.42
 * (scripts/prom-server.sh, started by `npm test`): pushed values come back through Prometheus' query
 * API with the exact value and labels; /metrics is served while running; a dead gateway never fails
 * the eval and is logged once; credentials never reach logs or labels; progress pushes are rate-limited.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino, type Logger } from 'pino';
import { createEvalMetrics, serveEvalMetrics } from '../../src/cli/eval-metrics.js';
import { MAX_LABEL_LENGTH, safeLabel } from '../../src/eval/metrics.js';
import { parsePushgatewayUrl, pushgatewayFromEnv } from '../../src/service/pushgateway.js';
import { UsageError } from '../../src/util/errors.js';

/** The env written by `scripts/prom-server.sh start` (unless already in process.env); null when absent. */
function loadPromEnv(): { pushgateway: string; prometheus: string } | null {
  if (!process.env.GET_DISTILL_PUSHGATEWAY_URL || !process.env.GET_DISTILL_PROMETHEUS_URL) {
    try {
      const text = readFileSync(`${process.env.GET_DISTILL_PROM_DIR || '/tmp/get-distill-prom'}/env`, 'utf8');
      for (const line of text.split('\n')) {
        const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
        if (m) process.env[m[1]!] ??= m[2]!;
      }
    } catch {
      return null;
    }
  }
  const pushgateway = process.env.GET_DISTILL_PUSHGATEWAY_URL;
  const prometheus = process.env.GET_DISTILL_PROMETHEUS_URL;
  return pushgateway && prometheus ? { pushgateway, prometheus } : null;
}
const env = loadPromEnv();
const skipReal = env ? false : "no Prometheus/Pushgateway env: run 'bash scripts/prom-server.sh start' (npm test does)";

/** A logger whose JSON lines land in `lines` (and `text`, to grep for secrets). */
function memoryLogger(): { logger: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void raw.push(s) });
  return {
    logger,
    get lines() {
      return raw.map((s) => JSON.parse(s) as Record<string, unknown>);
    },
    text: () => raw.join(''),
  };
}

const runId = (tag: string) => `t-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nothing listens on (bound, then released). */
async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('labels and URLs', () => {
  test('safeLabel strips userinfo, query and fragment from URIs and caps the length', () => {
    assert.equal(
      safeLabel('s3://AKIAEXAMPLE:wJalr/SECRET@bucket/runs/m1/model.onnx?X-Amz-Signature=dead#x'),
      's3://bucket/runs/m1/model.onnx',
    );
    assert.equal(safeLabel('https://user:pw@hf.example/m.onnx?token=abc'), 'https://hf.example/m.onnx');
    assert.equal(safeLabel('https://a@b@host/x'), 'https://host/x');
    assert.equal(safeLabel('https://host:8443/models/m@v2.onnx'), 'https://host:8443/models/m@v2.onnx');
    assert.equal(safeLabel('s3://bucket/models/m@v2.onnx'), 's3://bucket/models/m@v2.onnx');
    assert.equal(safeLabel('runs/a?b/model.onnx'), 'runs/a?b/model.onnx'); // a plain path keeps its characters
    assert.equal(safeLabel('mnist:test'), 'mnist:test');
    assert.equal(safeLabel('a\nb\tc'), 'a b c');
    const long = `s3://bucket/${'x'.repeat(300)}`;
    const cut = safeLabel(long);
    assert.equal(cut.length, MAX_LABEL_LENGTH);
    assert.match(cut, /^s3:\/\/bucket\/x+…[0-9a-f]{8}$/);
    assert.notEqual(safeLabel(`${long}y`), cut, 'two long values that share a prefix stay distinct');
  });

  test('parsePushgatewayUrl accepts http(s), rejects the rest with a UsageError that hides credentials', () => {
    assert.deepEqual(parsePushgatewayUrl('https://u:p%40ss@gw.example:9091/base'), {
      url: 'https://u:p%40ss@gw.example:9091/base',
      display: 'https://gw.example:9091/base',
    });
    assert.throws(
      () => parsePushgatewayUrl('ftp://u:hunter2@gw:21'),
      (e: Error) =>
        e instanceof UsageError && /uses ftp; .*http or https/.test(e.message) && !e.message.includes('hunter2'),
    );
    assert.throws(
      () => parsePushgatewayUrl('127.0.0.1:9091'),
      (e: Error) =>
        e instanceof UsageError &&
        /GET_DISTILL_PUSHGATEWAY_URL: "127\.0\.0\.1:9091" is not a URL; expected e\.g\./.test(e.message),
    );
    // An unescaped '/' in the password makes it unparsable; the message still hides it.
    assert.throws(
      () => parsePushgatewayUrl('http://u:hunt/er2@gw:9091'),
      (e: Error) => e instanceof UsageError && e.message.includes('"http://gw:9091"') && !e.message.includes('hunt'),
    );
    assert.throws(() => parsePushgatewayUrl('http://gw:9091/?a=1'), /has a query or fragment/);
    assert.throws(
      () => createEvalMetrics({ model: 'm', pushgateway: 'file:///tmp/x', logger: memoryLogger().logger }),
      /pushgateway: "file:\/\/\/tmp\/x" uses file/,
    );
    assert.equal(pushgatewayFromEnv({ GET_DISTILL_PUSHGATEWAY_URL: '  ' }), undefined);
    assert.equal(pushgatewayFromEnv({ GET_DISTILL_PUSHGATEWAY_URL: 'http://gw:9091' }), 'http://gw:9091');
    // Env var picked up when the option is absent, and its name in the error.
    assert.throws(
      () =>
        createEvalMetrics({
          model: 'm',
          env: { GET_DISTILL_PUSHGATEWAY_URL: 'gopher://x' },
          logger: memoryLogger().logger,
        }),
      /^UsageError: GET_DISTILL_PUSHGATEWAY_URL: /,
    );
  });
});

describe('pushes without a gateway', () => {
  test('a push to a refused port resolves false, the eval goes on, one warning: the URL, no credentials', async () => {
    const port = await refusedPort();
    const log = memoryLogger();
    const m = createEvalMetrics({
      model: 'm',
      runId: 'refused',
      pushgateway: `http://pushuser:hunter2@127.0.0.1:${port}`,
      logger: log.logger,
    });
    assert.equal(await m.start(), false);
    m.progress('sample', 10, 100); // a new phase: pushes (and fails) at once
    assert.equal(await m.push(), false); // shares that push
    assert.equal(await m.succeed({ scores: { fid: 1, inceptionScore: null, precision: null, recall: null } }), false);
    await m.close();
    assert.equal(m.pushes, 0);
    assert.equal(m.pushFailures, 3);
    const warns = log.lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 1, 'warned once');
    assert.equal(warns[0]!.pushgateway, `http://127.0.0.1:${port}/`);
    assert.match(String(warns[0]!.error), /ECONNREFUSED/);
    assert.equal(log.lines.filter((l) => l.level === 20).length, 2, 'later failures at debug level');
    assert.ok(!/hunter2|pushuser/.test(log.text()), 'no credentials in the logs');
  });

  test("progress pushes: one per interval, a trailing one with the last count, a new phase's at once", async () => {
    const got: { t: number; body: string }[] = [];
    const gw = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method === 'PUT' && req.url === '/metrics/job/get_eval/instance/rl')
          got.push({ t: performance.now(), body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r));
    const interval = 300;
    const m = createEvalMetrics({
      model: 'm',
      runId: 'rl',
      pushgateway: `http://127.0.0.1:${(gw.address() as AddressInfo).port}`,
      minPushIntervalMs: interval,
      logger: memoryLogger().logger,
    });
    try {
      const t0 = performance.now();
      for (let i = 1; i <= 20; i++) {
        m.progress('sample', i * 10, 200); // 20 batches, 50 ms apart: ~1 s
        await sleep(50);
      }
      await sleep(interval + 150); // the trailing push
      const n = got.length;
      assert.ok(
        n >= 3 && n <= 6,
        `20 progress reports over ${Math.round(performance.now() - t0)} ms → ${n} pushes, expected 3…6`,
      );
      for (let i = 1; i < n; i++)
        assert.ok(
          got[i]!.t - got[i - 1]!.t >= interval - 40,
          `pushes ${i - 1} and ${i} only ${Math.round(got[i]!.t - got[i - 1]!.t)} ms apart`,
        );
      assert.match(
        got[0]!.body,
        /^get_eval_samples_done\{model="m",phase="sample"\} 10$/m,
        'the first report of a phase pushes at once',
      );
      assert.match(
        got[n - 1]!.body,
        /^get_eval_samples_done\{model="m",phase="sample"\} 200$/m,
        'the last count arrives',
      );
      assert.doesNotMatch(got[0]!.body, /process_cpu|nodejs_/, 'process metrics are not pushed');
      const t1 = performance.now();
      m.progress('reference', 1, 10);
      await m.push(); // shares the phase-change push already queued
      assert.equal(got.length, n + 1);
      assert.ok(got[n]!.t - t1 < 100, 'a phase change is not delayed by the rate limit');
      assert.match(got[n]!.body, /^get_eval_samples_done\{model="m",phase="reference"\} 1$/m);
    } finally {
      await m.close();
      await new Promise<void>((r) => gw.close(() => r()));
    }
  });
  test('userinfo in the gateway URL is sent as basic auth', async () => {
    const auth: (string | undefined)[] = [];
    const gw = createServer((req, res) => {
      auth.push(req.headers.authorization);
      req.resume().on('end', () => res.writeHead(200).end());
    });
    await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r));
    const m = createEvalMetrics({
      model: 'm',
      runId: 'auth',
      pushgateway: `http://push%20user:p%40ss@127.0.0.1:${(gw.address() as AddressInfo).port}`,
      logger: memoryLogger().logger,
    });
    try {
      assert.equal(await m.start(), true);
      assert.deepEqual(auth, [`Basic ${Buffer.from('push user:p@ss').toString('base64')}`]);
      assert.equal(m.pushTarget, `http://127.0.0.1:${(gw.address() as AddressInfo).port}/`);
    } finally {
      await m.close();
      await new Promise<void>((r) => gw.close(() => r()));
    }
  });
});

describe('real Pushgateway and Prometheus', { skip: skipReal }, () => {
  const pushed: string[] = [];
  after(async () => {
    for (const id of pushed)
      await fetch(`${env!.pushgateway}/metrics/job/get_eval/instance/${id}`, { method: 'DELETE' });
  });

  /** Polls Prometheus' instant query API until the query returns a series (Prometheus scrapes every 1 s). */
  async function queryUntil(
    q: string,
    timeoutMs = 20_000,
  ): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const t0 = Date.now();
    for (;;) {
      const r = await fetch(`${env!.prometheus}/api/v1/query?query=${encodeURIComponent(q)}`);
      assert.equal(r.status, 200, `Prometheus answered ${r.status} to ${q}`);
      const j = (await r.json()) as {
        status: string;
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      assert.equal(j.status, 'success');
      if (j.data.result.length > 0) return j.data.result;
      if (Date.now() - t0 > timeoutMs) assert.fail(`${q}: no series after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  test('results pushed with URL credentials: exact values, clean labels in PromQL; /metrics meanwhile', async () => {
    const id = runId('fid');
    pushed.push(id);
    const log = memoryLogger();
    const gw = new URL(env!.pushgateway);
    gw.username = 'pushuser';
    gw.password = 'hunter2';
    const model = 's3://AKIAEXAMPLE:wJalrSECRETKEY@bucket/runs/m1/model.onnx?X-Amz-Signature=deadbeef';
    const m = createEvalMetrics({
      model,
      reference: 'mnist:test',
      features: 'mnist',
      runId: id,
      pushgateway: gw.href,
      logger: log.logger,
    });
    const server = await serveEvalMetrics(m, 0, undefined, log.logger);
    try {
      const base = server.url;
      assert.equal(await m.start(), true);
      m.progress('sample', 384, 1000);
      const health = await fetch(`${base}/healthz`);
      assert.deepEqual(await health.json(), { status: 'ok', service: 'eval' });
      const text = await (await fetch(`${base}/metrics`)).text();
      const lbl = 'model="s3://bucket/runs/m1/model.onnx"';
      assert.match(text, new RegExp(`^get_eval_samples_done\\{${lbl},phase="sample"\\} 384$`, 'm'));
      assert.match(text, new RegExp(`^get_eval_samples_total\\{${lbl},phase="sample"\\} 1000$`, 'm'));
      assert.match(text, new RegExp(`^get_eval_state\\{${lbl},state="running"\\} 1$`, 'm'));
      assert.match(text, new RegExp(`^get_eval_state\\{${lbl},state="succeeded"\\} 0$`, 'm'));
      assert.match(text, /^get_eval_duration_seconds\{.*\} \d/m);
      assert.match(text, /^process_cpu_user_seconds_total /m, 'process metrics beside the eval gauges');
      assert.ok(!/SECRET|deadbeef|AKIA/.test(text), 'no secrets in /metrics');

      const fid = 12.345678901234567;
      assert.equal(
        await m.succeed({
          scores: { fid, inceptionScore: { mean: 9.25, std: 0.125 }, precision: 0.75, recall: 0.5 },
          samplesPerSecond: 1234.5,
        }),
        true,
      );
      const [series, ...rest] = await queryUntil(`get_eval_fid{instance="${id}"}`);
      assert.equal(rest.length, 0);
      assert.deepEqual(series!.metric, {
        __name__: 'get_eval_fid',
        job: 'get_eval',
        instance: id,
        model: 's3://bucket/runs/m1/model.onnx',
        reference: 'mnist:test',
        features: 'mnist',
      });
      assert.equal(series!.value[1], '12.345678901234567');
      assert.equal(Number(series!.value[1]), fid);
      const state = await queryUntil(`get_eval_state{instance="${id}",state="succeeded"} == 1`);
      assert.equal(state.length, 1);
      const is = await queryUntil(`get_eval_inception_score_std{instance="${id}"}`);
      assert.equal(is[0]!.value[1], '0.125');
      const all = await (
        await fetch(`${env!.prometheus}/api/v1/query?query=${encodeURIComponent(`{instance="${id}"}`)}`)
      ).text();
      assert.ok(!/SECRET|deadbeef|AKIA|hunter2|pushuser/.test(all), 'no secrets in any stored series');
      assert.ok(!/hunter2|pushuser|SECRET|deadbeef/.test(log.text()), 'no secrets in the logs');
      assert.equal(m.pushFailures, 0);
    } finally {
      await m.close();
      await server.close();
    }
  });
});
