/**
 * `get-distill eval` end to end: a split against itself (FID 0, precision = recall = 1), MNIST train vs
 * test (FID small), a student model.onnx with its report and the FID read back through the real
 * Prometheus of `npm test` (pushed via the real Pushgateway), a saved .npz reference reused, and the
 * bad-input contract (exit 2, one line naming the problem).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { exportModel } from '../../src/get/export.js';
import { paramSpecs } from '../../src/get/model.js';
import { Graph } from '../../src/graph/ir.js';
import * as op from '../../src/graph/ops.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { encodeFidStats } from '../../src/eval/npz.js';
import { initParams } from '../../src/train/params.js';

const root = mkdtempSync(join(tmpdir(), 'get-eval-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));

function cli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'eval', ...args], {
    encoding: 'utf8',
    timeout: 600_000, // a hang guard, not a time bound
    env,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const noPush = { ...process.env, GET_DISTILL_PUSHGATEWAY_URL: '' };
const field = (stdout: string, name: string) => Number(new RegExp(`^${name}\\s+(-?[0-9.e+-]+)`, 'm').exec(stdout)?.[1]);

test('a split against itself: FID 0, precision and recall 1', () => {
  const out = join(root, 'self.json');
  const r = cli(
    [
      '--model',
      'mnist:test',
      '--reference',
      'mnist:test',
      '--samples',
      '1000',
      '--reference-samples',
      '1000',
      '--out',
      out,
    ],
    noPush,
  );
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(out, 'utf8'));
  assert.ok(Math.abs(rep.scores.fid) < 1e-6, `FID ${rep.scores.fid}`);
  assert.equal(rep.scores.precision, 1);
  assert.equal(rep.scores.recall, 1);
  assert.equal(rep.features.id, 'mnist');
  assert.equal(rep.features.dim, 128);
  assert.equal(rep.scores.inceptionScore.splits, 10);
  assert.ok(
    rep.scores.inceptionScore.mean > 9 && rep.scores.inceptionScore.mean <= 10,
    `IS ${rep.scores.inceptionScore.mean}`,
  );
});

const npz = join(root, 'mnist-test.npz');

test('MNIST train vs test: small FID; the reference saved as .npz gives the same FID when reused', () => {
  const r = cli(['--model', 'mnist:train', '--samples', '10000', '--save-reference', npz], noPush);
  assert.equal(r.code, 0, r.stderr);
  const fid = field(r.stdout, 'FID');
  process.stdout.write(`# MNIST train (10,000) vs test (10,000), embedded features: FID ${fid}\n`);
  // 60,000 vs 10,000 gives 3.06: the 10k-vs-10k estimate carries finite-sample bias.
  assert.ok(fid > 0 && fid < 10, `FID ${fid}`);
  const again = cli(['--model', 'mnist:train', '--samples', '10000', '--reference', npz], noPush);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(Math.abs(field(again.stdout, 'FID') - fid) < 1e-4);
  assert.match(again.stdout, /precision\s+n\/a/);
});

test('a student model.onnx: report, and the FID read back through Prometheus', async (t) => {
  const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
  const params = initParams(paramSpecs(cfg), 0);
  const { onnx } = exportModel(cfg, (n) => params.view(n), {
    iterations: 2,
    step: 0,
    dataManifestSha256: '0'.repeat(64),
  });
  const model = join(root, 'model.onnx');
  writeFileSync(model, onnx);
  const out = join(root, 'student.json');
  const r = cli(['--model', model, '--samples', '300', '--reference', npz, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(rep.model.kind, 'student');
  assert.equal(rep.model.details.nfe, 1);
  assert.ok(rep.scores.fid > 50, `an untrained student is far from MNIST: FID ${rep.scores.fid}`);
  const prom = process.env.GET_DISTILL_PROMETHEUS_URL;
  if (!prom || !process.env.GET_DISTILL_PUSHGATEWAY_URL)
    return t.skip('no Prometheus/Pushgateway env (npm test starts them)');
  const query = `get_eval_fid{model="${model}"}`;
  let value: number | null = null;
  for (let i = 0; i < 40 && value === null; i++) {
    const res = (await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(query)}`)).json()) as {
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    const hit = res.data.result[0];
    if (hit) {
      value = Number(hit.value[1]);
      assert.equal(hit.metric.reference, npz);
      assert.equal(hit.metric.features, 'mnist');
    } else await new Promise((ok) => setTimeout(ok, 500));
  }
  assert.ok(value !== null, `${query} never appeared in Prometheus`);
  assert.ok(
    Math.abs(value - rep.scores.fid) <= 1e-9 * Math.max(1, rep.scores.fid),
    `Prometheus ${value} vs report ${rep.scores.fid}`,
  );
});

test('the embedded teacher through its Heun sampler: seeded, so two runs give the same FID', () => {
  const args = [
    '--model',
    'teacher',
    '--teacher-components',
    '3',
    '--teacher-rank',
    '8',
    '--cache-dir',
    join(root, 'cache'),
    '--sampler-steps',
    '4',
    '--samples',
    '300',
    '--reference',
    npz,
  ];
  const out = join(root, 'teacher.json');
  const r = cli([...args, '--out', out], noPush);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(rep.model.kind, 'teacher');
  assert.match(rep.model.id, /^teacher:mixture-K3-r8-/);
  assert.equal(rep.model.details.nfe, 7); // 2 · 4 − 1
  assert.ok(rep.scores.fid > 0 && Number.isFinite(rep.scores.fid));
  const again = cli(args, noPush); // the fit is cached now; the samples are a function of the seeds
  assert.equal(again.code, 0, again.stderr);
  assert.equal(field(again.stdout, 'FID'), Number(rep.scores.fid.toFixed(4)));
});

function expectUsage(args: string[], pattern: RegExp): void {
  const r = cli(args, noPush);
  assert.equal(r.code, 2, `exit ${r.code}: ${r.stderr}`);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('samples') && !l.startsWith('reference') && !l.includes('|'));
  assert.match(lines.join('\n'), pattern);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
}

test('bad input: exit 2 with one line naming the problem', () => {
  const wrongDim = join(root, 'dim3.npz');
  writeFileSync(
    wrongDim,
    encodeFidStats({ mu: new Float64Array(3), sigma: new Float64Array([1, 0, 0, 0, 1, 0, 0, 0, 1]) }),
  );
  expectUsage(
    ['--model', 'mnist:train', '--samples', '200', '--reference', wrongDim],
    /dimension 3, the features of mnist have 128/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--samples', '100', '--reference', 'mnist:test', '--reference-samples', '500'],
    /--samples 100: 100 samples of dimension 128 give a singular covariance/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--samples', '200', '--features', 'nope.onnx', '--layer', 'x'],
    /--features nope.onnx: no such file/,
  );
  expectUsage(['--model', 'mnist:train', '--samples', '200', '--features', join(root, 'model.onnx')], /give --layer/);
  expectUsage(
    ['--model', 'mnist:train', '--samples', '200', '--features', join(root, 'model.onnx'), '--layer', 'no_such_layer'],
    /no layer named 'no_such_layer'/,
  );
  expectUsage(['--model', 'mnist:val'], /--model mnist:val: unknown dataset split; use mnist:train, mnist:test/);
  expectUsage(['--model', 'mnist:train', '--samples', '70000'], /--samples 70000: mnist:train holds 60000 images/);
  expectUsage(
    ['--model', 'mnist:train', '--samples', '200', '--reference-samples', '20000'],
    /--reference-samples 20000: mnist:test holds 10000 images/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--input-range', '1,0'],
    /--input-range must be two numbers lo,hi with lo < hi/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--pushgateway', 'ftp://x?token=SECRET'],
    /--pushgateway \(or GET_DISTILL_PUSHGATEWAY_URL\): "ftp:\/\/x" uses ftp/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--samples', '300', '--splits', '200'],
    /--splits 200 needs at least 400 samples/,
  );
  expectUsage(['--model', 'mnist:train', '--samples', '300', '--out', root], /--out .* is a folder/);
  expectUsage(
    ['--model', 'mnist:train', '--samples', '300', '--out', `${root}/reports/`],
    /--out .*reports\/ names a folder; give a file or object name/,
  );
  expectUsage(
    ['--model', 'mnist:train', '--input-range', '0,1'],
    /--input-range apply to an ONNX network given by URI/,
  );
  expectUsage(['--samples', '10'], /required option '--model <spec>' not specified/);
});

test('NaN features from a network given by URI: exit 2 naming the sample and feature', () => {
  // features = sqrt(x − 2): NaN for every pixel of an image in [0, 1].
  const g = new Graph('nan_net');
  const x = g.input('image', 'float32', ['B', 1, 32, 32]);
  const flat = op.reshape(x, ['B', 1024]);
  const feats = op.sqrt(op.sub(flat, op.scalar(flat, 2)));
  const net = join(root, 'nan.onnx');
  writeFileSync(net, toOnnx(g, { outputs: { feats } }));
  expectUsage(
    [
      '--model',
      'mnist:train',
      '--samples',
      '1100',
      '--features',
      net,
      '--layer',
      'feats',
      '--reference',
      'mnist:test',
      '--reference-samples',
      '1100',
    ],
    /sample 0, feature 0 is NaN/,
  );
});
