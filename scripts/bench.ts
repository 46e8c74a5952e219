/**
 * `npm run bench`: the project's benchmarks (not tests), measured in one run and written with the
 * machine description to docs/benchmarks.md.
 *
 *   matmul   float32 MatMul roofline in onnxruntime via the graph IR (GFLOP/s)
 *   train    training-step throughput: GET-CPU-S/4 full step and one GET-T block, as % of the roofline
 *   tfjs     the GET-CPU-S/4 training step (batch 32) on the tfjs engine vs the ort engine, as a ratio
 *   memory   peak RSS of training (GET-CPU-S/4, GET-T/2 at batch 32), one child process each
 *   stream   peak RSS of one PairStream epoch over N and 10·N pairs (difference must be < 100 MB)
 *   teacher  mixture-teacher fit time and Heun (35 NFE) pairs/s (goal ≥ 250)
 *   s3       upload/download MB/s of a shard-sized object: file:// vs the local Ceph gateway (single, multipart)
 *   export   raw onnxruntime images/s of the exported one-step model (GET-CPU-S/4) at batch 1, 8, 32, 64
 *   onestep  one-step GET vs 35-NFE Heun with an ONNX teacher of similar size, images/s (goal ≥ 10×)
 *   serve    the inference service under HTTP load (autocannon): images/s and p50/p99 at concurrency 1–64,
 *            concurrency 32 vs raw onnxruntime (goal ≥ 80%), RSS after 1k vs 10k requests, 2× overload
 *   eval     feature extraction images/s, FID time at 128-d and 2048-d, precision/recall
 *   jobs     datagen job pairs/s: 1 worker process vs 2 Indexed-Job workers (goal ≥ 1.8×), and the datagen
 *            service's overhead per job (POST → first pair, → done) vs datagenStage in-process
 *   operator the Kubernetes operator against an in-memory API server: runs/s, reconcile time, requests per run
 *   parallel data parallelism on Open MPI: 2-rank loopback allreduce GB/s of the GET-CPU-S/4 and GET-B/2
 *            gradients (single copy none and cma) vs memcpy; GET-CPU-S/4 training images/s on 1 rank × 1
 *            thread, 1 × 2 and 2 ranks × 1, the allreduce's share of the 2-rank step; and the cost model:
 *            the link bandwidth GET-B/2 at batch 128 on 8 GPUs needs for < 10% of its step in communication
 *
 * Usage: npm run bench -- [--quick] [--only <section> [--write]]
 * `--only` prints its rows and leaves docs/benchmarks.md alone; with `--write` it replaces that section's
 * rows (and its block) in docs/benchmarks.md and records the run's date, machine and load beside them.
 * Exits 1 only when a section throws (its row then says why; `--write` then leaves the file alone); a
 * missed goal is reported, not an error.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSnapshot, machineInfo, otherLoad } from './bench/machine.js';
import { measureMatmul, runMatmul } from './bench/matmul.js';
import { runExport } from './bench/export.js';
import { runMemory } from './bench/memory.js';
import { runOnestep } from './bench/onestep.js';
import { runS3 } from './bench/s3.js';
import { runServe } from './bench/serve.js';
import { runEval } from './bench/eval.js';
import { runJobs } from './bench/jobs.js';
import { runOperator } from './bench/operator.js';
import { runParallel } from './bench/parallel.js';
import { benchmarksMarkdown, replaceSection, resultsTable } from './bench/report.js';
import { runStream } from './bench/stream.js';
import { runTeacher } from './bench/teacher.js';
import { runTfjs } from './bench/tfjs.js';
import { type Roofline, runTrain } from './bench/train.js';
import { type BenchContext, type Row, fmt } from './bench/util.js';

const SECTIONS = [
  'matmul',
  'train',
  'tfjs',
  'memory',
  'stream',
  'teacher',
  's3',
  'export',
  'onestep',
  'serve',
  'eval',
  'jobs',
  'operator',
  'parallel',
] as const;
type Section = (typeof SECTIONS)[number];
const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

function parse(): { quick: boolean; only?: Section; write: boolean } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      write: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(`usage: npm run bench -- [--quick] [--only ${SECTIONS.join('|')} [--write]]`);
    process.exit(0);
  }
  if (values.only !== undefined && !SECTIONS.includes(values.only as Section)) {
    console.error(`bench: unknown section "${values.only}"; choose one of ${SECTIONS.join(', ')}`);
    process.exit(2);
  }
  if (values.write && values.only === undefined) {
    console.error('bench: --write goes with --only <section> (a full run always writes docs/benchmarks.md)');
    process.exit(2);
  }
  return { quick: values.quick ?? false, only: values.only as Section | undefined, write: values.write ?? false };
}

async function main(): Promise<number> {
  const { quick, only, write } = parse();
  const machine = machineInfo();
  console.log(
    `bench: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB, node ` +
      `${machine.node}, onnxruntime ${machine.onnxruntime}, load ` +
      `${machine.loadAtStart.toFixed(2)}${quick ? ' (quick)' : ''}`,
  );
  const idle0 = cpuSnapshot();
  await new Promise((r) => setTimeout(r, 1000));
  const busyBefore = otherLoad(idle0, cpuSnapshot());
  if (busyBefore > 0.3)
    console.log(
      `bench: warning: other processes keep ${busyBefore.toFixed(2)} cores busy; the numbers will be low and noisy`,
    );
  const start = performance.now();
  const rows: Row[] = [];
  let failed = false;
  let roofline: Roofline | undefined;
  const sectionLoad: Record<string, number> = {};
  const blocks: Record<string, string> = {};
  const todo = only ? [only] : [...SECTIONS];
  for (const [i, name] of todo.entries()) {
    const t = performance.now();
    const cpu0 = cpuSnapshot();
    console.log(`[${i + 1}/${todo.length}] ${name} …`);
    const ctx: BenchContext = { quick, log: (msg) => console.log(`  ${name}: ${msg}`) };
    try {
      if (name === 'matmul') {
        const r = await runMatmul(ctx);
        rows.push(...r.rows);
        roofline = {
          gflops: r.roofline.gflops,
          what: `MatMul ${r.roofline.m}³ (${fmt(r.roofline.gflops, 1)} GFLOP/s)`,
        };
      } else if (name === 'train') {
        if (!roofline) {
          // `--only train`: the ratio still needs a roofline measured in this run.
          const r = await measureMatmul(1024, 1024, 1024, 2, quick ? 5 : 20);
          roofline = { gflops: r.gflops, what: `MatMul 1024³ (${fmt(r.gflops, 1)} GFLOP/s)` };
          ctx.log(`roofline for the ratio: ${roofline.what}`);
        }
        rows.push(...(await runTrain(ctx, roofline)));
      } else if (name === 'tfjs') rows.push(...(await runTfjs(ctx)));
      else if (name === 'memory') rows.push(...(await runMemory(ctx)));
      else if (name === 'stream') rows.push(...(await runStream(ctx)));
      else if (name === 's3') rows.push(...(await runS3(ctx)));
      else if (name === 'export') rows.push(...(await runExport(ctx)));
      else if (name === 'onestep') rows.push(...(await runOnestep(ctx)));
      else if (name === 'serve') rows.push(...(await runServe(ctx)));
      else if (name === 'eval') rows.push(...(await runEval(ctx)));
      else if (name === 'jobs') rows.push(...(await runJobs(ctx)));
      else if (name === 'operator') rows.push(...(await runOperator(ctx)));
      else if (name === 'parallel') {
        const r = await runParallel(ctx);
        rows.push(...r.rows);
        blocks[name] = r.markdown;
      } else rows.push(...(await runTeacher(ctx)));
    } catch (e) {
      failed = true;
      const msg = (e as Error).message;
      console.error(`  ${name}: ERROR ${msg}`);
      rows.push({ section: name, what: `${name} section`, value: 'error', note: msg.split('\n')[0] });
    }
    sectionLoad[name] = otherLoad(cpu0, cpuSnapshot());
    console.log(
      `  ${name}: done in ${fmt((performance.now() - t) / 1000, 1)} s (other processes kept ` +
        `${sectionLoad[name].toFixed(2)} cores busy)`,
    );
  }
  const seconds = (performance.now() - start) / 1000;
  console.log(`\n${resultsTable(rows)}\n`);
  for (const block of Object.values(blocks)) console.log(`${block}\n`);
  const loadAtEnd = loadavg()[0];
  if (!only) {
    await writeFile(DOC, benchmarksMarkdown(machine, rows, { quick, seconds, loadAtEnd, sectionLoad, blocks }));
    console.log(`bench: wrote ${DOC} (${fmt(seconds)} s in total)`);
  } else if (write && !failed) {
    const doc = replaceSection(await readFile(DOC, 'utf8'), only, rows, blocks[only], {
      machine,
      quick,
      seconds,
      otherLoad: sectionLoad[only],
      loadAtEnd,
    });
    await writeFile(DOC, doc);
    console.log(
      `bench: replaced the ${only} rows of ${DOC} (${fmt(seconds)} s; load average ${loadAtEnd.toFixed(2)} at the end)`,
    );
  } else
    console.log(
      `bench: --only ${only}: ${DOC} left unchanged${write ? ' (the section failed)' : ''} (${fmt(seconds)} s)`,
    );
  return failed ? 1 : 0;
}

process.exitCode = await main();
