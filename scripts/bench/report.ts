/** Renders bench results as markdown (docs/benchmarks.md) and as console text. */
import type { MachineInfo } from './machine.js';
import type { Row } from './util.js';

const cell = (s: string | undefined): string => (s ?? '').replace(/\|/g, '\\|');

/** The results table: one row per measurement. */
export function resultsTable(rows: readonly Row[]): string {
  const lines = ['| Section | Measurement | Result | Goal | Conditions |', '|---|---|---|---|---|'];
  for (const r of rows)
    lines.push(`| ${cell(r.section)} | ${cell(r.what)} | ${cell(r.value)} | ${cell(r.goal)} | ${cell(r.note)} |`);
  return lines.join('\n');
}

/** Markdown a section adds below the results table (e.g. the parallel section's cost model), by section. */
export type SectionBlocks = Readonly<Record<string, string>>;

/** A section's block between markers, so a later `--only <section> --write` can replace it. */
const blockMarkers = (section: string): [string, string] => [`<!-- bench:${section} -->`, `<!-- /bench:${section} -->`];

function renderBlocks(blocks: SectionBlocks): string {
  return Object.entries(blocks)
    .map(([k, v]) => {
      const [open, close] = blockMarkers(k);
      return `${open}\n${v.trim()}\n${close}\n\n`;
    })
    .join('');
}

/** The whole docs/benchmarks.md: how to run, the machine, the table, how to read it. */
export function benchmarksMarkdown(
  m: MachineInfo,
  rows: readonly Row[],
  opts: {
    quick: boolean;
    seconds: number;
    loadAtEnd: number;
    sectionLoad: Readonly<Record<string, number>>;
    blocks?: SectionBlocks;
  },
): string {
  const sectionLoad = Object.entries(opts.sectionLoad)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
  return `# Benchmarks

Measured by \`npm run bench\` (scripts/bench.ts) in one run, so every ratio compares numbers taken
beside each other on the same machine. Re-run it to refresh this file; \`--quick\` makes a shorter
smoke run, \`--only <section>\` (matmul, train, tfjs, memory, stream, teacher, s3, export,
onestep, serve, eval, jobs, operator, parallel) runs one section and prints its table without
rewriting this file. \`--only <section> --write\` replaces that section's rows (and its block below the
table) here and records the date, machine and load of that run in a \`Re-run\` line of the Machine
table; every ratio in a section's rows is still taken within one run.

## Machine

| | |
|---|---|
| CPU | ${m.cpu} (${m.simd || 'no AVX2'}) |
| Cores | ${m.cores} |
| Memory | ${m.memoryGiB.toFixed(1)} GiB |
| Node | ${m.node} |
| onnxruntime-node | ${m.onnxruntime} (CPU execution provider, intra-op threads = cores) |
| Date | ${m.date} |
| Mode | ${opts.quick ? 'quick (--quick)' : 'full'}, ${Math.round(opts.seconds)} s in total |
| Other load | cores kept busy by other processes during each section: ${sectionLoad} (0 = the bench had the \
machine to itself); load average ${m.loadAtStart.toFixed(2)} before, ${opts.loadAtEnd.toFixed(2)} after |

## Results

${resultsTable(rows)}

${renderBlocks(opts.blocks ?? {})}## How to read it

- The machine may be a shared VM: the **Other load** row gives the cores other processes used during
  each section. Even with none, steps made of many small kernels (the CPU preset) vary by tens of
  percent between runs; compare numbers from one run, as the ratios do.
- **matmul**: float32 MatMul through the project's graph IR → ONNX → onnxruntime, inputs fed each run,
  best of several runs after warm-up; 2·m·k·n flops. The best size is the roofline the training ratios use.
- **train**: GFLOP/s count only MatMul flops, ×3 for forward + backward (\`matmulFlops\`, the engine's
  convention), over the best step time (the same statistic as the roofline; the median is beside it).
  The rest of the step (LayerNorm, softmax, GELU, transposes, feeding parameters and copying
  gradients) is the overhead the ratio exposes. Zero-initialised parameters (biases, GET's decoder)
  are replaced with small random values so no step is degenerate. The block is the model's own
  \`block\` (src/get/model.ts), without a QKV injection.
- **Why the CPU preset misses 60%**: its matrices are small (D 64, 64 tokens; its largest GEMM shape
  reaches ~60% of the large MatMul by itself), and an onnxruntime profile of one step (2,538 nodes)
  puts ~42% of kernel time in Gemm/MatMul (which run at ~270 GFLOP/s there) and the rest in
  elementwise and layout kernels: Mul 14%, ReduceSum (bias and LayerNorm gradients) 11%, Transpose
  (attention heads) 8%, Add 6%, LayerNorm 4%. Reaching 60% of the large MatMul would need those
  fused into the GEMMs; the GET-T-width block, with 4× wider matrices, meets the goal.
- **memory** and **stream**: peak RSS (\`process.resourceUsage().maxRSS\`) of a child process per
  measurement, which includes Node, tsx and (for training) onnxruntime's arenas. The stream datasets are
  synthetic pairs written under the OS temp folder and deleted afterwards.
- **teacher**: the fit is cached under the OS temp folder between runs; pairs/s is steady state after
  one warm-up batch (the first batch also computes the σ-dependent tensors).
- **s3**: one shard-sized object (2048 pairs, 16.8 MB) through src/store, MB = 10^6 bytes, best and
  median of several round trips after a verified warm-up. The gateway is Ceph RADOS Gateway with an
  in-memory OSD on this machine (started by the section when it is not running), so the numbers are
  the protocol's cost (HTTP, SigV4, MD5, the gateway's CPU on the same cores), not a network's.
  file:// uploads fsync; its downloads come from the page cache and alternate between fast reads and
  slower ones that fault in a fresh 16.8 MB buffer, so compare medians (S3/file is given for both).
- **export**: the model \`get-distill export\` writes (src/get/export.ts: K = 6 fixed-point iterations
  unrolled, weights baked in) with initial weights, in one onnxruntime session (intra-op threads =
  cores); feeds are built once and only \`session.run\` is timed: the ceiling a service can approach.
  GFLOP/s count the MatMuls of the whole inference graph at the best run.
- **onestep**: the exported GET at batch 32 against EDM Heun (18 steps, 35 NFE) through
  \`OnnxEdmTeacher\`, as datagen runs a teacher (Heun's float64 updates and the preconditioning
  included). The teacher is an untrained ViT denoiser (patch embedding, σ and class embedding added to
  every token, GET's own blocks, linear decoder; scripts/bench/timing-teacher.ts) sized within ±20% of
  GET's parameters: a timing stand-in, so its images are not images, but its cost per evaluation is
  that of a trained network of this size. Each round times 5 GET batches (their mean) then one Heun
  batch, so both sides see the same load and get as many samples; the ratio is best round over best
  round, with the median of the per-round ratios beside it. FLOPs are MatMul FLOPs per image: GET's whole
  inference graph, the teacher's one evaluation × 35.
- **serve**: the inference service (services/inference/main.ts) as a child process on 127.0.0.1 with the
  \`export\` section's model, driven by autocannon in the bench process, so the load generator and the
  service share the same cores (autocannon itself takes ~0.05–0.1 core). Closed loop: each client sends
  its next \`POST /v1/images/generations\` {n: 1, seed, class_label} as soon as its answer arrives, with
  a new seed every request (every answer is a new image); each level runs 8 s after a 2 s warm-up, and
  its mean batch comes from \`get_batch_size\`. The ratio divides by the raw best-run rate measured at
  the start of the section (prebuilt feeds, \`session.run\` only). What the service adds per image: seed
  → noise and z_0 (~0.18 ms) and the PNG (~0.19 ms) in the session's worker thread, HTTP, JSON, base64
  and logging on the main thread (~0.2 ms), and gaps while a batch's clients are being answered. On 2
  cores that is ~0.6 core-ms per image beside onnxruntime's own ~1.5 (2 cores / raw images/s), which
  caps the ratio near 70–75%. With the defaults (one session × 2 threads, max batch 32), 32 closed-loop
  clients fall into lock-step in one batch of 32 and the session idles while they are answered, or
  settle in two half batches that leave the spinning onnxruntime threads and the HTTP thread fighting
  for the cores: between runs the defaults' result at 32 clients flips between ~790 and ~580 images/s.
  One single-threaded session per core with max batch 16 (the second configuration) keeps both cores
  busy, has no intra-op threads to spin or synchronise, and is steady (921–953 images/s in three full
  runs). Memory: VmRSS and VmHWM of /proc/<pid>/status (worker threads included). Single readings land
  anywhere on the V8 heap's sawtooth (±5–10%), so the later window reports peaks sampled every 200 ms;
  V8 grows its heaps with the allocation rate over the first tens of thousands of requests (a separate
  100,000-request run at 64 clients, peaks per 10,000: 311, 331, 332, 335, 339, 321, 345, 335, 337, 336
  MB), then stays. Overload: twice the requests the service admits (max batch running + 64 queued),
  clients retrying 429s at once; bounded = the second half's peak RSS within 10% of the first half's.
- **jobs**: the datagen stage as job-mode processes (services/datagen/main.ts) with the embedded teacher
  (MNIST, K 10, r 32, cached fit), writing to a temporary folder. pairs/s count each worker's sampling
  phase (teacher ready → its shards written; the job's own \`pairsPerSecond\`); the two-worker rate is
  the seed range over the slower worker's sampling time, beside the end-to-end wall time (process start,
  MNIST and teacher loading included). onnxruntime threads are set per process (cores / workers), so the
  two workers never run more threads than cores; the rows give the cores other processes kept busy,
  which caps what two workers can gain on 2 cores. The service overhead runs tiny jobs (256 pairs),
  polled every 5 ms: after the first job the service reuses that job's teacher (warm), so they compare
  with datagenStage in the bench process on a loaded teacher; the first job compares with loading
  MNIST and the cached teacher in-process first.
- **tfjs**: one GET-CPU-S/4 training step (batch 32, 6 iterations, the same batch, z₀ and weights) on
  each training engine in the same run: ort (onnxruntime with the generated backward graph) and tfjs (the
  same forward graph interpreted with TensorFlow.js, gradients by tfjs autograd) on the backend \`auto\`
  finds — wasm here (SIMD, one thread; tfjs-node cannot be installed on this machine). The row also
  gives the largest gradient difference between the engines.
- **operator**: the Kubernetes operator (src/operator/manager.ts, 2 workers, no leader election)
  against the tests' in-memory API server (test/k8s/api-server.ts) in the same process: no real API
  server can run here, so the rates measure the operator's own path (watch → queue → reconcile →
  create + status patch + Event), not etcd or admission. The test plays the Job controller (Job status
  and a Succeeded pod with its termination message per run). The reconcile mean is compared with one
  client-node GET round trip measured in the same run.
- **parallel**: data-parallel training on Open MPI (docs/parallel.md), 2 ranks on this machine (shared
  memory, no network). Allreduce: the ranks sum a float32 buffer the size of the GET-CPU-S/4 and of the
  GET-B/2 (cond., CIFAR-10) gradient in place (scripts/bench/allreduce-rank.ts); after warm-up, each
  repetition runs from a barrier until the slower rank's allreduce settles (the addon's hop to libuv's
  thread pool included, as the trainer sees it), and the median is the result. GB/s = bytes / time, the
  algorithm bandwidth; the bus-bandwidth convention (× 2(n−1)/n) gives the same number at 2 ranks.
  Single copy \`none\` (our default, needed where ptrace is not allowed) copies through shared-memory
  fragments and needs both ranks on a core at once, so it is slow and erratic when they share cores with
  other work; \`cma\` is the kernel's single copy (process_vm_readv). memcpy is
  \`Float32Array.prototype.set\` of the same bytes in the bench process (each byte read once and written
  once; at the small size both buffers fit in the CPU's caches, the large one streams through memory):
  the ceiling of one copy. Training: GET-CPU-S/4 at batch 32 on synthetic pairs, every
  configuration through trainOnRanks (mpirun -np 1 or 2 over src/cli/train-rank.ts, so all three pay the
  same process setup; one rank makes no allreduce) with the named onnxruntime threads per rank; images/s =
  batch / mean step time after the warm-up steps (a step: batch read, engine step, allreduce, AdamW, EMA;
  the only checkpoint comes after the last). 2 ranks × 1 thread and 1 rank × 2 threads use the same
  cores. The allreduce share is rank 0's median of commSeconds / stepSeconds; it includes waiting for the
  slower rank, so it exceeds the transfer alone (the allreduce row of that size). The cost model below
  the results turns the GET-B/2 gradient and the FLOP of its training graph into the link bandwidth 8
  GPUs need; it is arithmetic, not a measurement, except for its loopback columns.
`;
}

/** When and where an `--only <section> --write` run measured, for its `Re-run` line. */
export interface SectionRun {
  readonly machine: MachineInfo;
  readonly quick: boolean;
  readonly seconds: number;
  /** Cores other processes kept busy during the section. */
  readonly otherLoad: number;
  readonly loadAtEnd: number;
}

/**
 * `--only <section> --write`: `doc` (a docs/benchmarks.md from {@link benchmarksMarkdown}) with that
 * section's rows replaced by `rows` (where its first old row stood, else at the end of the results
 * table), its block replaced by `block` (added before "## How to read it" when new, removed when
 * undefined), and a `Re-run: <section>` line in the Machine table with the run's date, machine and load.
 * @throws Error when `doc` has no Machine or results table.
 */
export function replaceSection(
  doc: string,
  section: string,
  rows: readonly Row[],
  block: string | undefined,
  run: SectionRun,
): string {
  let lines = doc.split('\n');
  const tableAfter = (heading: string, what: string): [number, number] => {
    const h = lines.indexOf(heading);
    const start = h < 0 ? -1 : lines.findIndex((l, i) => i > h && l.startsWith('|'));
    if (start < 0) throw new Error(`${what}: no table under "${heading}" in docs/benchmarks.md`);
    let end = start;
    while (end < lines.length && lines[end].startsWith('|')) end++;
    return [start, end];
  };

  // Results: drop the section's old rows, put the new ones where the first one was.
  const [rStart, rEnd] = tableAfter('## Results', 'results');
  const mine = `| ${cell(section)} |`;
  const body = lines.slice(rStart + 2, rEnd);
  const at = body.findIndex((l) => l.startsWith(mine));
  const kept = body.filter((l) => !l.startsWith(mine));
  const fresh = resultsTable(rows).split('\n').slice(2);
  kept.splice(at < 0 ? kept.length : at, 0, ...fresh);
  lines = [...lines.slice(0, rStart + 2), ...kept, ...lines.slice(rEnd)];

  // Machine: one Re-run line per section, replaced by the next such run.
  const [mStart, mEnd] = tableAfter('## Machine', 'machine');
  const m = run.machine;
  const key = `| Re-run: ${cell(section)} |`;
  const cpu = `${cell(m.cpu)} (${m.simd || 'no AVX2'})`;
  const sameCpu = lines.slice(mStart, mEnd).includes(`| CPU | ${cpu} |`);
  const line =
    `${key} ${cell(section)} rows measured alone (\`--only ${section} --write\`)` +
    `${sameCpu ? '' : ', on another CPU than the rows above'} on ${m.date}, ` +
    `${run.quick ? 'quick (--quick)' : 'full'}, ${Math.round(run.seconds)} s: ${cpu}, ${m.cores} cores, ` +
    `${m.memoryGiB.toFixed(1)} GiB, node ${m.node}, onnxruntime-node ${m.onnxruntime}; other processes kept ` +
    `${run.otherLoad.toFixed(2)} cores busy; load average ${m.loadAtStart.toFixed(2)} before, ` +
    `${run.loadAtEnd.toFixed(2)} after |`;
  const old = lines.findIndex((l, i) => i >= mStart && i < mEnd && l.startsWith(key));
  if (old >= 0) lines[old] = line;
  else lines.splice(mEnd, 0, line);

  // The section's block.
  let text = lines.join('\n');
  const [open, close] = blockMarkers(section);
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  const fresh2 = block === undefined ? '' : renderBlocks({ [section]: block });
  if (a >= 0 && b > a) {
    let end = b + close.length;
    while (text[end] === '\n') end++;
    text = text.slice(0, a) + fresh2 + text.slice(end);
  } else if (fresh2) {
    const how = text.indexOf('## How to read it');
    if (how < 0) throw new Error('no "## How to read it" heading in docs/benchmarks.md');
    text = text.slice(0, how) + fresh2 + text.slice(how);
  }
  return text;
}
