/**
 * The tfjs training engine against the ort engine (each is the other's gradient oracle, DESIGN.md
 * "Engines"): one step's loss and flat gradient; 50-step runs from the same initialisation and data;
 * a run checkpointed by one engine resumed on the other (trainStage, and the CLI's --resume); and the
 * --engine / --tfjs-backend and job spec contracts (exit 2 / 400 naming the field). tfjs runs on the
 * wasm backend here (one backend per process: the backend-choice checks come first, before wasm is
 * loaded). A tiny GET keeps it fast: D 32, 2 heads, 16×16 images with patch 4 (16 tokens), batch 4, K 3.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { numTokens, resolveConfig } from '../../src/get/config.js';
import { createStageService } from '../../src/jobs/service.js';
import { resolveEngine, trainJob, TrainSpecSchema } from '../../src/jobs/stages/train.js';
import { createLogger } from '../../src/service/logging.js';
import { trainStage, trainZ0, type BatchSource, type TrainOptions } from '../../src/stages/train.js';
import { storeFor } from '../../src/store/index.js';
import { createTrainingEngine, type TrainBatch, type TrainingEngineKind } from '../../src/train/engine.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { initParams } from '../../src/train/params.js';
import { UsageError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { call } from '../jobs/helpers.js';

const cfg = resolveConfig('GET-CPU-XS/8', { imageSize: 16, patchSize: 4, numHeads: 2, numClasses: 10 });
const B = 4;
const K = 3;
const P = cfg.channels * cfg.imageSize ** 2;
const ROOT = join(import.meta.dirname, '..', '..');
const root = mkdtempSync(join(tmpdir(), 'get-tfjs-engine-'));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * A learnable pair task: the target image is a fixed pattern inside each 4×4 patch, a per-class level
 * and a little of the noise, so the loss falls by more than half within 50 steps. Batch `step` is a
 * pure function of the step, like the PairStream adapter.
 */
const source: BatchSource = {
  async batch(step) {
    const r = new Rng(5000 + step);
    const noise = r.fillNormal(new Float32Array(B * P));
    const labels = Int32Array.from({ length: B }, () => r.int(10));
    const image = new Float32Array(B * P);
    for (let i = 0; i < image.length; i++) {
      const px = i % P;
      const [row, col] = [Math.floor(px / cfg.imageSize) % 4, px % 4];
      image[i] = 0.6 * Math.sin(1 + 4 * row + col) + (labels[Math.floor(i / P)] - 4.5) / 20 - 0.1 * noise[i];
    }
    return { noise, image, labels };
  },
};

function options(
  dir: string,
  steps: number,
  engine: TrainingEngineKind,
  resume = false,
  losses?: Map<number, number>,
): TrainOptions {
  return {
    config: cfg,
    steps,
    batch: B,
    iterations: K,
    optimizer: { ...REFERENCE_ADAMW, lr: 2e-3 },
    ema: { kind: 'halflife', halflifeImages: 100, rampupRatio: 0.05 },
    seed: 11,
    store: storeFor(dir),
    checkpointDir: dir,
    checkpointEvery: 10,
    keep: 2,
    resume,
    dataManifestSha256: 'test',
    threads: 1,
    engine,
    tfjsBackend: 'wasm',
    onStep: (s) => losses?.set(s.step, s.loss),
  };
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    // A hang guard only, far above a loaded machine's run time: nothing here bounds how long a run takes.
    timeout: 600_000,
  });

// --- (d) the option contracts: before anything loads wasm (one tfjs backend per process) ---

test('CLI: bad --engine/--tfjs-backend → 2 naming the flag; --tfjs-backend node → 2 naming tfjs-node, no files', () => {
  const out = join(root, 'cli');
  for (const [args, re] of [
    [['--engine', 'torch'], /--engine must be one of ort, tfjs, got "torch"/],
    [['--tfjs-backend', 'tpu'], /--tfjs-backend must be one of auto, node-gpu, node, wasm, cpu, got "tpu"/],
    [
      ['--engine', 'tfjs', '--tfjs-backend', 'node'],
      /^get-distill: --tfjs-backend node: .*needs @tensorflow\/tfjs-node, which is not installed/m,
    ],
  ] as const) {
    const r = cli(['distill', '--out', out, ...args]);
    assert.equal(r.status, 2, `exit ${r.status}; stderr: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.ok(!/^\s+at /m.test(r.stderr), `stack trace in:\n${r.stderr}`);
  }
  assert.equal(existsSync(out), false, 'nothing written');
  const help = cli(['distill', '--help']).stdout.replace(/\s+/g, ' '); // commander wraps lines
  assert.match(
    help,
    new RegExp(
      '--engine <name> training engine \\(ort\\|tfjs\\): ort = onnxruntime CPU\\/CUDA, the fast default; tfjs = ' +
        'TensorFlow\\.js',
    ),
  );
  assert.match(help, /--tfjs-backend <name> .*wasm = @tensorflow\/tfjs-backend-wasm \(installed here; slow\)/);
});

test('job spec: engine, tfjsBackend validated; spec > GET_DISTILL_ENGINE / GET_DISTILL_TFJS_BACKEND > ort/auto', () => {
  const base = { pairs: '/p', out: '/o', steps: 1 };
  const bad = TrainSpecSchema.safeParse({ ...base, engine: 'torch' });
  assert.equal(bad.success, false);
  assert.deepEqual(
    bad.error!.issues.map((i) => [i.path.join('.'), i.message]),
    [['engine', 'must be one of ort, tfjs']],
  );
  assert.equal(
    TrainSpecSchema.safeParse({ ...base, tfjsBackend: 'tpu' }).error!.issues[0].path.join('.'),
    'tfjsBackend',
  );
  assert.deepEqual(resolveEngine({}, {}), { engine: 'ort', tfjsBackend: 'auto' });
  assert.deepEqual(resolveEngine({}, { GET_DISTILL_ENGINE: 'tfjs', GET_DISTILL_TFJS_BACKEND: 'node-gpu' }), {
    engine: 'tfjs',
    tfjsBackend: 'node-gpu',
  });
  assert.deepEqual(
    resolveEngine(
      { engine: 'ort', tfjsBackend: 'cpu' },
      { GET_DISTILL_ENGINE: 'tfjs', GET_DISTILL_TFJS_BACKEND: 'node-gpu' },
    ),
    { engine: 'ort', tfjsBackend: 'cpu' },
  );
  assert.throws(
    () => resolveEngine({}, { GET_DISTILL_ENGINE: 'torch' }),
    (e: Error) => e instanceof UsageError && /^GET_DISTILL_ENGINE=torch is not one of ort, tfjs/.test(e.message),
  );
  // Job mode: the config kit maps the variables onto the fields (the trainer-gpu image sets them).
  const job = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'services/trainer/main.ts', '--mode', 'job', '--port', '0'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 300_000, // a hang guard, not a time bound
      env: { ...process.env, GET_DISTILL_JOB_SPEC: JSON.stringify(base), GET_DISTILL_ENGINE: 'torch' },
    },
  );
  assert.equal(job.status, 2, job.stderr);
  assert.match(job.stderr, /GET_DISTILL_ENGINE.*must be one of ort, tfjs/);
});

test('trainer service: bad engine/tfjsBackend → 400 naming the field; uninstalled backend → 400, package', async () => {
  const pairs = join(root, 'pairs');
  mkdirSync(pairs, { recursive: true });
  writeFileSync(join(pairs, 'manifest.json'), '{}'); // preflight only checks that the pair folder exists
  const svc = createStageService(trainJob, { logger: createLogger('trainer', 'silent') });
  const server: Server = await new Promise((res) => {
    const s = svc.app.listen(0, '127.0.0.1', () => res(s));
  });
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/jobs`;
    const spec = { pairs, out: join(root, 'svc-out'), preset: 'GET-CPU-XS/8', steps: 1 };
    for (const [body, re] of [
      [{ ...spec, engine: 'torch' }, /^engine: must be one of ort, tfjs/],
      [{ ...spec, engine: 'tfjs', tfjsBackend: 'tpu' }, /^tfjsBackend: must be one of auto, node-gpu, node, wasm, cpu/],
      [
        { ...spec, engine: 'tfjs', tfjsBackend: 'node' },
        /^tfjsBackend: tfjs backend 'node' needs @tensorflow\/tfjs-node, which is not installed/,
      ],
      [
        { ...spec, engine: 'ort', tfjsBackend: 'wasm' },
        /^tfjsBackend: applies to engine tfjs only \(this job's engine is ort\)/,
      ],
      [
        { ...spec, engine: 'tfjs', threads: 2 },
        /^threads: sets onnxruntime's threads \(engine ort\); the tfjs engine does not use it/,
      ],
    ] as const) {
      const r = await call('POST', url, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.message, re);
    }
    assert.equal(existsSync(spec.out), false, 'nothing written');
  } finally {
    await new Promise((res) => server.close(res));
  }
});

test('a trainer service whose default tfjs backend is missing refuses to start (exit 2 naming the variable)', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'services/trainer/main.ts', '--mode', 'service', '--port', '0'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 300_000, // a hang guard, not a time bound
      env: { ...process.env, GET_DISTILL_ENGINE: 'tfjs', GET_DISTILL_TFJS_BACKEND: 'node-gpu' },
    },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      "GET_DISTILL_TFJS_BACKEND=node-gpu \\(this server's default\\): tfjs backend 'node-gpu' needs " +
        '@tensorflow\\/tfjs-node-gpu',
    ),
  );
});

test('CLI: options the engine would ignore are refused (--threads: tfjs, --tfjs-backend: ort), dry run too', () => {
  for (const [args, re] of [
    [
      ['--engine', 'tfjs', '--threads', '3'],
      /--threads sets onnxruntime's threads \(--engine ort\); the tfjs engine does not use it/,
    ],
    [['--tfjs-backend', 'wasm'], /--tfjs-backend applies to --engine tfjs only \(the engine is ort\)/],
    [
      ['--engine', 'tfjs', '--tfjs-backend', 'node', '--dry-run'],
      /needs @tensorflow\/tfjs-node, which is not installed/,
    ],
  ] as const) {
    const r = cli(['distill', '--out', join(root, 'combo'), ...args]);
    assert.equal(r.status, 2, `exit ${r.status}; stderr: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('the training loop yields every step: a timer (a signal, a probe) runs while tfjs trains', async () => {
  const dir = join(root, 'yield');
  let stop = false;
  let timer: NodeJS.Timeout | undefined;
  // Armed once training runs (setup does real I/O, which would let it fire early): it fires at the
  // next turn of the event loop, which a loop of synchronous steps never gives.
  const onStep = (st: { step: number }) => {
    if (st.step === 1)
      timer = setTimeout(() => {
        stop = true;
      }, 0);
  };
  const r = await trainStage(source, {
    ...options(dir, 10, 'tfjs'),
    checkpointEvery: 100,
    onStep,
    shouldStop: () => stop,
  });
  clearTimeout(timer);
  assert.equal(r.interrupted, true, 'the timer never ran during training');
  assert.ok(r.step <= 2, `stopped at step ${r.step}: the timer ran right after the step that armed it`);
});

// --- (a)–(c) the engines against each other, tfjs on wasm ---

let ortLosses: Map<number, number>;
let tfjsLosses: Map<number, number>;

test("one step: tfjs loss, per-iteration L1 and flat gradient = the ort engine's (rel. error ≤ 1e-4)", async (t) => {
  const ort = await createTrainingEngine('ort', cfg, B, K, { threads: 1 });
  const tfjs = await createTrainingEngine('tfjs', cfg, B, K, { tfjsBackend: 'wasm', log: () => {} });
  try {
    assert.match(ort.describe, /^ort \(onnxruntime, providers cpu\)$/);
    assert.equal(tfjs.describe, 'tfjs (backend wasm, @tensorflow/tfjs-backend-wasm)');
    assert.deepEqual(tfjs.specs, ort.specs);
    assert.equal(tfjs.flopsPerStep, ort.flopsPerStep);
    assert.ok(ort.flopsPerStep > 0);
    // Every parameter gets a gradient: the zero-initialised decoder would block them all at init.
    const params = initParams(ort.specs, 3);
    const rng = new Rng(4);
    for (let i = 0; i < params.size; i++) params.flat[i] += 0.02 * rng.normal();
    const data: TrainBatch = await source.batch(0, B);
    const z0 = trainZ0(11, 0, new Float32Array(B * numTokens(cfg) * cfg.hiddenSize));
    const gOrt = new Float32Array(params.size);
    const gTfjs = new Float32Array(params.size).fill(Number.NaN);
    const a = await ort.step(params, data, z0, gOrt);
    const b = await tfjs.step(params, data, z0, gTfjs);
    assert.ok(relDiff(a.loss, b.loss) <= 1e-4, `loss ort ${a.loss} tfjs ${b.loss}`);
    assert.equal(b.l1.length, K);
    a.l1.forEach((v, k) => assert.ok(relDiff(v, b.l1[k]) <= 1e-4, `l1_${k + 1}: ${v} vs ${b.l1[k]}`));
    // Per parameter: max |Δg| relative to that parameter's largest |g| (elementwise ratios are
    // meaningless where a gradient entry is ~0).
    let worst = 0;
    let worstName = '';
    for (const s of ort.specs) {
      const { offset, size } = params.offsets.get(s.name)!;
      let scale = 0;
      let diff = 0;
      for (let i = offset; i < offset + size; i++) {
        scale = Math.max(scale, Math.abs(gOrt[i]));
        diff = Math.max(diff, Math.abs(gOrt[i] - gTfjs[i]));
      }
      assert.ok(scale > 0, `${s.name}: zero gradient`);
      if (diff / scale > worst) [worst, worstName] = [diff / scale, s.name];
    }
    t.diagnostic(
      `loss ort ${a.loss.toFixed(6)} tfjs ${b.loss.toFixed(6)} (rel ` +
        `${relDiff(a.loss, b.loss).toExponential(2)}); worst gradient rel error ${worst.toExponential(2)} ` +
        `(${worstName}), ${ort.specs.length} params, ${params.size} values`,
    );
    assert.ok(worst <= 1e-4, `worst gradient relative error ${worst} in ${worstName}`);
  } finally {
    await ort.close();
    await tfjs.close();
  }
});

test('50 steps per engine, same initialisation and data: final losses within 2% (asserted: 0.1%)', async (t) => {
  ortLosses = new Map();
  tfjsLosses = new Map();
  const a = await trainStage(source, options(join(root, 'ort50'), 50, 'ort', false, ortLosses));
  const b = await trainStage(source, options(join(root, 'tfjs50'), 50, 'tfjs', false, tfjsLosses));
  assert.match(b.engine, /^tfjs \(backend wasm/);
  const first = ortLosses.get(1)!;
  const last = (m: Map<number, number>) => m.get(50)!;
  t.diagnostic(
    `loss step 1: ort ${first.toFixed(5)} tfjs ${tfjsLosses.get(1)!.toFixed(5)}; step 50: ort ` +
      `${last(ortLosses).toFixed(5)} tfjs ${last(tfjsLosses).toFixed(5)} (rel ` +
      `${relDiff(last(ortLosses), last(tfjsLosses)).toExponential(2)}); ` +
      `${((a.trainSeconds / 50) * 1000).toFixed(0)} vs ${((b.trainSeconds / 50) * 1000).toFixed(0)} ms/step`,
  );
  assert.ok(last(ortLosses) < 0.5 * first, `training should more than halve the loss: ${first} → ${last(ortLosses)}`);
  // The issue's bar is 2%; float32 rounding alone keeps the two within ~1e-6 here, so a much tighter
  // bound is asserted: a real divergence between the engines cannot hide under it.
  assert.ok(relDiff(last(ortLosses), last(tfjsLosses)) <= 1e-3);
  for (let s = 1; s <= 50; s++)
    assert.ok(
      relDiff(ortLosses.get(s)!, tfjsLosses.get(s)!) <= 1e-3,
      `step ${s}: ${ortLosses.get(s)} vs ${tfjsLosses.get(s)}`,
    );
});

for (const [from, to] of [
  ['ort', 'tfjs'],
  ['tfjs', 'ort'],
] as const) {
  test(`checkpointed by ${from} at step 20, resumed on ${to} to step 30: uninterrupted ort curve (2%)`, async (t) => {
    assert.ok(ortLosses, 'needs the 50-step runs');
    const dir = join(root, `${from}-then-${to}`);
    const losses = new Map<number, number>();
    const first = await trainStage(source, options(dir, 20, from, false, losses));
    assert.equal(first.step, 20);
    const resumed = await trainStage(source, options(dir, 30, to, true, losses));
    assert.equal(resumed.resumedFrom, 20);
    assert.equal(resumed.step, 30);
    assert.match(resumed.engine, new RegExp(`^${to} `));
    const rows: string[] = [];
    for (let s = 21; s <= 30; s++) {
      const d = relDiff(losses.get(s)!, ortLosses.get(s)!);
      rows.push(`${s}: ${losses.get(s)!.toFixed(5)}/${ortLosses.get(s)!.toFixed(5)}`);
      assert.ok(d <= 1e-3, `step ${s}: resumed ${losses.get(s)} vs straight ort ${ortLosses.get(s)}`);
    }
    t.diagnostic(`resumed/straight ort loss ${rows.join(', ')}`);
  });
}

test('CLI: a smoke run trained on tfjs (wasm) resumes with --resume --engine ort (GET-CPU-XS/8, 4 + 4 steps)', () => {
  const out = join(root, 'cli-switch');
  const small = [
    '--pairs',
    '64',
    '--heldout',
    '16',
    '--shard-size',
    '32',
    '--fid-samples',
    '0',
    '--teacher-components',
    '3',
    '--teacher-rank',
    '8',
    '--cache-dir',
    join(root, 'cache'),
    '--batch',
    '8',
    '--checkpoint-every',
    '2',
    '--preset',
    'GET-CPU-XS/8',
  ];
  const first = cli(['distill', '--out', out, ...small, '--steps', '4', '--engine', 'tfjs', '--tfjs-backend', 'wasm']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /training engine: tfjs \(backend wasm, @tensorflow\/tfjs-backend-wasm\)/);
  // Options not given again (the preset among them) come from options.json; the engine may change.
  const second = cli(['distill', '--out', out, '--resume', '--steps', '8', '--engine', 'ort']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /training engine: ort \(onnxruntime/);
  assert.equal(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).step, 8);
  assert.equal(JSON.parse(readFileSync(join(out, 'options.json'), 'utf8')).engine, 'ort');
});
