/**
 * Job mode as a process (src/jobs/main.ts → run-job.ts, the way a Kubernetes Job runs a stage image):
 * exit 0 on success; 2 with one stderr line for a UsageError, a bad spec, a bad JOB_COMPLETION_INDEX
 * or a missing object; 75 for an unreachable S3 endpoint and for SIGTERM after the stage's safe point
 * (or after the grace period when the safe point never comes); /metrics, /healthz and /readyz answer
 * while the job runs; the spec merges GET_DISTILL_JOB_SPEC, @file and field flags.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, sample, unreachableS3Env, until } from './helpers.js';
import type { JsonObject } from '../json.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'test/jobs/fixtures/fake-main.ts';
const dir = mkdtempSync(join(tmpdir(), 'get-jobmode-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Child {
  readonly child: ChildProcessWithoutNullStreams;
  /** JSON log lines so far. */
  readonly lines: JsonObject[];
  stderr: string;
  readonly exited: Promise<number | null>;
  /** Resolves with the first log line whose msg is `msg`. */
  waitFor(msg: string): Promise<JsonObject>;
}

/** Starts the fake stage's entry point in job mode on a free port. */
function start(args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--mode', 'job', '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  const c: Child = {
    child,
    lines: [],
    stderr: '',
    // 'close', not 'exit': it comes after stdout and stderr are drained.
    exited: new Promise((resolve) => child.on('close', (code) => resolve(code))),
    waitFor: (msg) => until(() => c.lines.find((l) => l.msg === msg), 20_000, `log line "${msg}"`),
  };
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      c.lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.on('data', (d) => (c.stderr += d));
  return c;
}

/** Asserts the exit code and exactly one stderr line matching `re` (none for exit 0). */
async function exits(c: Child, code: number, re?: RegExp): Promise<void> {
  assert.equal(await c.exited, code, c.stderr);
  if (!re) return assert.equal(c.stderr, '');
  assert.equal(c.stderr.split('\n').length, 2, c.stderr);
  assert.match(c.stderr, re);
}

test('exit codes: success 0; UsageError, bad spec/JOB_COMPLETION_INDEX, no object, bug → 2; no S3 → 75', async () => {
  const specFile = join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify({ out: 's3://bucket/from-file', steps: 50, seeds: { start: 100, end: 199 } }));
  const s3 = await unreachableS3Env();
  const ok = start(['--spec', `@${specFile}`, '--steps', '2'], { JOB_COMPLETION_INDEX: '4' });
  const fromEnv = start([], {
    GET_DISTILL_JOB_SPEC: JSON.stringify({ out: 'run-env', steps: 3 }),
    GET_DISTILL_STEPS: '1',
  });
  const usage = start(['--out', 'run', '--fail', 'usage']);
  const badSpec = start(['--out', 'run', '--steps', 'many']);
  const badIndex = start(['--out', 'run'], { JOB_COMPLETION_INDEX: '-1' });
  const missing = start(['--out', dir, '--fail', 'store']);
  const bug = start(['--out', 'run', '--fail', 'bug', '--fail-at', '2']);
  const unreachable = start(['--out', 's3://bucket/run', '--fail', 'store'], s3);

  await exits(ok, 0);
  const done = ok.lines.find((l) => l.msg === 'job succeeded')!;
  assert.deepEqual(done.artifacts, { result: 's3://bucket/from-file/result.json' });
  assert.deepEqual(
    done.summary,
    { steps: 2, completionIndex: 4, seeds: { start: 100, end: 199 } },
    'flag over file; index passed on',
  );
  assert.equal(ok.lines.at(-1)!.exitCode, 0, JSON.stringify(ok.lines.map((l) => l.msg)));
  await exits(fromEnv, 0);
  assert.equal(
    fromEnv.lines.find((l) => l.msg === 'job succeeded')!.summary.steps,
    1,
    'GET_DISTILL_STEPS over GET_DISTILL_JOB_SPEC',
  );

  await exits(
    usage,
    2,
    /^get-distill-fake: teacher run\/teacher\.onnx: not an EDM denoiser; export it with `get-distill teacher`\n$/,
  );
  assert.equal(usage.lines.find((l) => l.msg.startsWith('job failed'))!.reason, 'usage', 'the JSON log line too');
  await exits(badSpec, 2, /^get-distill-fake: --steps must be an integer in \[1, 1000000\] \(got "many"\)\n$/);
  await exits(badIndex, 2, /^get-distill-fake: JOB_COMPLETION_INDEX must be a non-negative integer \(got "-1"\)/);
  await exits(missing, 2, /^get-distill-fake: .*missing\.bin: no such object\n$/);
  await exits(bug, 2, /^get-distill-fake: internal error \(a bug; the log has the stack\): TypeError: /);
  assert.match(bug.lines.find((l) => l.msg.startsWith('job failed'))!.err.stack, /fake-stage\.ts/);
  await exits(
    unreachable,
    75,
    new RegExp(
      '^get-distill-fake: s3:\\/\\/bucket\\/run\\/missing\\.bin: cannot reach S3 endpoint ' +
        'http:\\/\\/127\\.0\\.0\\.1:\\d+ \\(ECONNREFUSED\\)',
    ),
  );
});

test('SIGTERM mid-run: probes and /metrics answer; the stage reaches its safe point; exit 75', async () => {
  const c = start(['--out', 'run', '--steps', '100000', '--step-ms', '10', '--safe-point-ms', '200']);
  const port = (await c.waitFor('listening')).port as number;
  const url = `http://127.0.0.1:${port}`;
  const step = await until(async () => {
    const v = sample((await call('GET', `${url}/metrics`)).body, 'get_fake_step');
    return v !== undefined && v >= 3 ? v : undefined;
  });
  assert.ok(step >= 3);
  assert.equal((await call('GET', `${url}/healthz`)).status, 200);
  assert.equal((await call('GET', `${url}/readyz`)).status, 200);
  const metrics = (await call('GET', `${url}/metrics`)).body as string;
  assert.equal(sample(metrics, 'get_job_state', { stage: 'train', state: 'running' }), 1);
  assert.equal(sample(metrics, 'get_jobs_running', { stage: 'train' }), 1);
  assert.equal((await call('GET', `${url}/v1/job`)).body.job.state, 'running');

  c.child.kill('SIGTERM');
  await exits(
    c,
    75,
    /^get-distill-fake: SIGTERM: the stage stopped at a safe point; exiting 75 so the retry resumes\n$/,
  );
  // It waited for the pretend checkpoint: the safe point is logged after the signal, and before the exit.
  const msgs = c.lines.map((l) => l.msg);
  assert.ok(msgs.indexOf('safe point reached') > msgs.indexOf('signal: stopping the stage at its next safe point'));
  assert.ok(c.lines.find((l) => l.msg === 'safe point reached')!.step >= 3);
  assert.equal(c.lines.at(-1)!.exitCode, 75);
});

test('SIGTERM, no safe point within GET_DISTILL_SHUTDOWN_GRACE_MS → exit 75; the checkpoint may be older', async () => {
  const c = start(['--out', 'run', '--steps', '100000', '--step-ms', '10', '--ignore-signal', 'true'], {
    GET_DISTILL_SHUTDOWN_GRACE_MS: '300',
  });
  await c.waitFor('job started');
  c.child.kill('SIGTERM');
  // The grace timer, not the stage, ended it: the exit names the grace period and no safe point was logged.
  await exits(
    c,
    75,
    new RegExp(
      '^get-distill-fake: SIGTERM: the stage did not reach its safe point \\(grace period of 300 ms over\\); ' +
        'exiting 75: .*may be older\\n$',
    ),
  );
  assert.equal(
    c.lines.some((l) => l.msg === 'safe point reached'),
    false,
  );
});
