/**
 * The bench's writers (scripts/bench): `--only <section> --write` replaces one section in a
 * docs/benchmarks.md without touching the others, and the parallel section's cost model is consistent
 * arithmetic. No timing here: the bench itself is not run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  commShare,
  computeSeconds,
  costModelMarkdown,
  requiredBandwidth,
  ringBytes,
  slowestSufficient,
} from '../../scripts/bench/cost-model.js';
import type { MachineInfo } from '../../scripts/bench/machine.js';
import { benchmarksMarkdown, replaceSection, type SectionRun } from '../../scripts/bench/report.js';
import type { Row } from '../../scripts/bench/util.js';

const machine = (date: string): MachineInfo => ({
  cpu: 'Test CPU',
  cores: 2,
  simd: 'avx2',
  memoryGiB: 8,
  node: 'v20.0.0',
  onnxruntime: '1.0.0',
  date,
  loadAtStart: 0.25,
});
const row = (section: string, what: string, value: string): Row => ({ section, what, value, note: 'n | m' });
const run = (date: string): SectionRun => ({
  machine: machine(date),
  quick: false,
  seconds: 61,
  otherLoad: 0.01,
  loadAtEnd: 0.5,
});

function fullDoc(): string {
  return benchmarksMarkdown(
    machine('2026-01-01T00:00:00.000Z'),
    [row('matmul', 'a', '1'), row('parallel', 'p1', 'old'), row('parallel', 'p2', 'old'), row('jobs', 'j', '2')],
    { quick: false, seconds: 100, loadAtEnd: 1, sectionLoad: { matmul: 0 }, blocks: { parallel: 'OLD BLOCK' } },
  );
}

const resultLines = (doc: string): string[] => doc.split('\n').filter((l) => /^\| (matmul|parallel|jobs) \|/.test(l));

test('--write replaces the section rows in place, its block, and records its run once', () => {
  const once = replaceSection(fullDoc(), 'parallel', [row('parallel', 'p3', 'new')], 'NEW BLOCK', run('2026-02-02'));
  assert.deepEqual(
    resultLines(once).map((l) => l.split(' | ').slice(0, 3).join(' | ')),
    ['| matmul | a | 1', '| parallel | p3 | new', '| jobs | j | 2'],
    'old rows gone, new ones where they stood, other sections untouched',
  );
  assert.ok(once.includes('n \\| m'), 'cells are escaped as in a full run');
  assert.ok(once.includes('NEW BLOCK') && !once.includes('OLD BLOCK'));
  assert.ok(once.indexOf('NEW BLOCK') < once.indexOf('## How to read it'));
  const rerun = once.split('\n').filter((l) => l.startsWith('| Re-run: parallel |'));
  assert.equal(rerun.length, 1);
  assert.match(
    rerun[0],
    /2026-02-02, full, 61 s: Test CPU \(avx2\), 2 cores.*0\.01 cores busy; load average 0\.25 before, 0\.50 after/,
  );
  assert.ok(!rerun[0].includes('another CPU'), 'the same CPU as the full run');
  const elsewhere = replaceSection(fullDoc(), 'parallel', [], undefined, {
    ...run('2026-02-02'),
    machine: { ...machine('2026-02-02'), cpu: 'Other CPU' },
  });
  assert.match(elsewhere, /measured alone \(`--only parallel --write`\), on another CPU than the rows above on /);
  assert.ok(!elsewhere.includes('<!-- bench:parallel -->'), 'no block: the old one is removed');
  // The Re-run line sits in the Machine table, before the Results heading.
  assert.ok(once.indexOf('| Re-run: parallel |') < once.indexOf('## Results'));

  const twice = replaceSection(once, 'parallel', [row('parallel', 'p4', 'newer')], 'NEWER BLOCK', run('2026-03-03'));
  assert.equal(twice.split('\n').filter((l) => l.startsWith('| Re-run: parallel |')).length, 1, 'replaced, not added');
  assert.ok(twice.includes('2026-03-03') && !twice.includes('2026-02-02'));
  assert.equal(twice.split('<!-- bench:parallel -->').length, 2, 'one block');
  assert.ok(twice.includes('NEWER BLOCK') && !twice.includes('NEW BLOCK\n'));
  // Everything but the section, its block and its Re-run line is as the full run wrote it.
  const strip = (d: string) =>
    d
      .split('\n')
      .filter((l) => !/^\| (parallel|Re-run: parallel) \|/.test(l) && !/BLOCK/.test(l))
      .join('\n');
  assert.equal(strip(twice), strip(fullDoc()));
});

test('--write adds a section that the file does not have yet at the end of the results', () => {
  const doc = benchmarksMarkdown(machine('2026-01-01'), [row('matmul', 'a', '1')], {
    quick: false,
    seconds: 1,
    loadAtEnd: 0,
    sectionLoad: {},
  });
  const out = replaceSection(doc, 'parallel', [row('parallel', 'p', 'v')], 'BLOCK', run('2026-02-02'));
  assert.deepEqual(
    resultLines(out).map((l) => l.split(' | ')[0]),
    ['| matmul', '| parallel'],
  );
  assert.ok(out.indexOf('<!-- bench:parallel -->') > out.indexOf('| parallel |'));
  assert.ok(out.indexOf('<!-- /bench:parallel -->') < out.indexOf('## How to read it'));
  assert.throws(() => replaceSection('# nothing', 'parallel', [], undefined, run('x')), /no table/);
});

test('cost model: the required bandwidth gives exactly the allowed share; the table says so', () => {
  const G = 248e6;
  const F = 62e12;
  assert.equal(ringBytes(G, 8), 1.75 * G);
  assert.equal(ringBytes(G, 2), G, 'at 2 ranks bus bandwidth = algorithm bandwidth');
  const t = computeSeconds(F, 8, 100e12);
  assert.ok(Math.abs(t - 0.0775) < 1e-12);
  const need = requiredBandwidth(G, 8, t, 0.1);
  assert.ok(Math.abs(commShare(G, 8, t, need) - 0.1) < 1e-12);
  assert.ok(commShare(G, 8, t, 2 * need) < 0.1);
  assert.equal(slowestSufficient(20), 'PCIe 4.0 x16: 25, 200 Gb/s InfiniBand/Ethernet: 25');
  assert.equal(slowestSufficient(1000), null);
  const md = costModelMarkdown({
    model: 'M',
    gradBytes: G,
    stepFlop: F,
    flopNote: 'x',
    batch: 128,
    ranks: 8,
    share: 0.1,
    rates: [50e12, 100e12],
    loopback: { cma: 1 },
  });
  assert.match(md, /\| 100 TFLOP\/s \| 77\.5 ms \| 50\.4 GB\/s \| NVLink 2 \(V100\): 150 \| 85% \|/);
  assert.match(md, /below every link listed/);
});
