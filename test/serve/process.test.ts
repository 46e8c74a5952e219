/**
 * services/inference/main.ts as a process: graceful SIGTERM (queued requests finish with 200, new
 * connections are refused while they do, exit 0), and one-line exit-2 errors for bad configuration
 * and bad models; --dry-run shows flags over environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolveConfig } from '../../src/get/config.js';
import { metricValue, modelBytes, modelPath, postJson, writeTemp } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'services/inference/main.ts';

function start(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
}

/** Runs to exit; returns the code and both streams. */
function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = start(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Resolves with each JSON log line's fields as they arrive; `waitFor(msg)` waits for one. */
function logs(child: ChildProcessWithoutNullStreams) {
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  const waiters: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  child.stdout.on('data', (d) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.filter((x) => x.msg === line.msg)) w.resolve(line);
    }
  });
  return {
    lines,
    waitFor: (msg: string) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const seen = lines.find((l) => l.msg === msg);
        if (seen) resolve(seen);
        else waiters.push({ msg, resolve });
      }),
  };
}

/** Whether a TCP connection to the port is refused. */
const refused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });

test('SIGTERM: queued requests complete with 200, new connections are refused meanwhile, exit 0', async () => {
  // GET-CPU-S/4: 3 × 32 images stay queued (96 < max batch 128, delay 60 s) until SIGTERM flushes them
  // into one run of a few hundred ms, long enough to probe the closed listener meanwhile.
  const model = writeTemp(modelBytes(resolveConfig('GET-CPU-S/4', { numClasses: 10 })));
  const child = start([
    '--model',
    model,
    '--port',
    '0',
    '--max-queue-delay-ms',
    '60000',
    '--max-batch-size',
    '128',
    '--max-images-per-request',
    '32',
  ]);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const log = logs(child);
  const port = (await log.waitFor('listening')).port as number;
  await log.waitFor('ready');
  const url = `http://127.0.0.1:${port}`;

  const queued = [0, 1, 2].map((i) =>
    postJson(`${url}/v1/images/generations`, { n: 32, seed: 1000 * i, class_label: i }),
  );
  let depth: number | undefined;
  for (let i = 0; i < 200 && depth !== 3; i++) {
    depth = metricValue(await (await fetch(`${url}/metrics`)).text(), 'get_queue_depth');
    await sleep(10);
  }
  assert.equal(depth, 3, 'the three requests wait in the queue');
  child.kill('SIGTERM');
  let settled = 0;
  for (const q of queued) void q.finally(() => settled++);
  // Poll until the listener is gone; it must close before the queued work is done.
  let refusedWhileDraining = false;
  for (let i = 0; i < 400 && child.exitCode === null; i++) {
    if (await refused(port)) {
      refusedWhileDraining = child.exitCode === null && settled < 3;
      break;
    }
    await sleep(2);
  }
  const results = await Promise.all(queued);
  assert.deepEqual(
    results.map((r) => r.status),
    [200, 200, 200],
  );
  assert.deepEqual(
    results.map((r) => r.body.data.length),
    [32, 32, 32],
  );
  assert.ok(refusedWhileDraining, 'a new connection was refused while queued requests were still running');
  assert.equal(await exited, 0);
  const shutdown = log.lines.find((l) => l.msg === 'shut down');
  assert.equal(shutdown?.code, 0);
  assert.ok(log.lines.findIndex((l) => String(l.msg).startsWith('shutting down')) < log.lines.indexOf(shutdown!));
});

test('bad config or model → exit 2, one line on stderr; --help exits 0; --dry-run resolves env and flags', async () => {
  const junk = writeTemp(new Uint8Array([1, 2, 3, 4]), 'junk.onnx');
  const [badPort, missing, notOnnx, tooMany, help, dry] = await Promise.all([
    run(['--model', modelPath('conditional'), '--port', 'abc']),
    run(['--model', '/nonexistent/dir/model.onnx', '--port', '0']),
    run(['--model', junk, '--port', '0']),
    run(['--model', modelPath('conditional'), '--port', '0', '--sessions', '64']),
    run(['--help']),
    run(['--dry-run', '--max-batch-size', '8', '--max-images-per-request', '8'], {
      GET_DISTILL_MODEL: 's3://bucket/run/model.onnx',
      GET_DISTILL_PORT: '9001',
    }),
  ]);
  const oneLine = (r: { code: number | null; stderr: string }, re: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  oneLine(badPort, /^get-distill-inference: --port must be an integer in \[0, 65535\] \(got "abc"\)\n$/);
  oneLine(missing, /^get-distill-inference: \/nonexistent\/dir\/model\.onnx: .*\n$/);
  oneLine(notOnnx, /^get-distill-inference: .*junk\.onnx: not an ONNX model/);
  oneLine(tooMany, /^get-distill-inference: --sessions 64 exceeds the \d+ usable CPU cores/);
  assert.equal(help.code, 0);
  assert.match(
    help.stdout,
    /--max-batch-size <n>\s+most images in one onnxruntime run \(default:\s+32;\s+env\s+GET_DISTILL_MAX_BATCH_SIZE\)/,
  );
  assert.equal(dry.code, 0, dry.stderr);
  const cfg = JSON.parse(dry.stdout);
  assert.equal(cfg.model, 's3://bucket/run/model.onnx');
  assert.equal(cfg.port, 9001);
  assert.equal(cfg.maxBatchSize, 8);
  assert.equal(cfg.maxQueueDelayMs, 5);
});
