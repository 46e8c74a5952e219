/**
 * Section `serve`: the inference service (services/inference/main.ts) under HTTP load, as a child
 * process on 127.0.0.1 serving the exported default CPU preset (GET-CPU-S/4, 10 classes, the `export`
 * section's weights). autocannon (in this process, so on the same cores as the service) sends closed-loop
 * `POST /v1/images/generations {n: 1, seed, class_label}` with a fresh seed per request.
 *
 *  1. images/s and p50/p99 latency at concurrency 1, 8, 32, 64 (each after its own warm-up), with the
 *     service's defaults, and at 32 and 64 with one single-threaded session per core (`tunedFlags`);
 *  2. concurrency 32 against raw onnxruntime at its best batch size (`measureRawInference`, this run);
 *     goal ≥ 80%;
 *  3. memory of the service process (/proc/<pid>/status VmRSS, VmHWM): after 1,000 and after 10,000
 *     requests (bounded: < 10% growth), and under 2× overload (twice the clients the service admits:
 *     max batch × sessions running plus the queue), where the excess gets 429.
 * Each service child is started here and stopped with SIGTERM by its PID (SIGKILL if it hangs, and at
 * exit: serve-child.ts), so no service outlives the section.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveServeConfig } from '../../src/serve/config.js';
import { EXPORT_BATCHES, exportedBenchModel, measureRawInference } from './export.js';
import { cpuSnapshot, otherLoad } from './machine.js';
import {
  type LoadResult,
  loadImages,
  procCpuSeconds,
  procMemory,
  startService,
  type ServiceChild,
} from './serve-child.js';
import { cpuPresetConfig } from './train.js';
import { type BenchContext, type Row, fmt, mb } from './util.js';

/** Concurrency levels of part 1. */
export const SERVE_CONCURRENCY = [1, 8, 32, 64] as const;
/** The level compared with raw onnxruntime, and the goal of that ratio. */
const RATIO_AT = 32;
const RATIO_GOAL = 0.8;
/** The bench's queue limit: small, so 2× overload needs few clients; above what concurrency 64 queues. */
const QUEUE = 64;
/** Allowed RSS growth from 1,000 to 10,000 requests. */
const GROWTH_LIMIT = 0.1;

/** Images per onnxruntime run, from the service's Prometheus histogram (sum and count). */
async function batchStats(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const v = (k: string): number => Number(new RegExp(`^get_batch_size_${k} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { sum: v('sum'), count: v('count') };
}

/** One measured load run with what the service did meanwhile. */
interface Level extends LoadResult {
  /** Mean images per onnxruntime run. */
  readonly meanBatch: number;
  /** Cores the service process kept busy (all its threads). */
  readonly serviceCores: number;
  /** Cores other processes (not the bench, not the service) kept busy. */
  readonly otherCores: number;
  /** Largest VmRSS of the service sampled every 200 ms during the run, KB. */
  readonly maxRssKb: number;
}

async function measure(
  svc: ServiceChild,
  connections: number,
  o: { seconds?: number; amount?: number },
): Promise<Level> {
  const b0 = await batchStats(svc.url);
  const cpu0 = procCpuSeconds(svc.pid);
  const snap = cpuSnapshot();
  let maxRssKb = procMemory(svc.pid).rssKb;
  const sampler = setInterval(() => (maxRssKb = Math.max(maxRssKb, procMemory(svc.pid).rssKb)), 200);
  const r = await loadImages(svc.url, { connections, numClasses: 10, ...o }).finally(() => clearInterval(sampler));
  maxRssKb = Math.max(maxRssKb, procMemory(svc.pid).rssKb);
  const other = otherLoad(snap, cpuSnapshot());
  const serviceCores = (procCpuSeconds(svc.pid) - cpu0) / r.seconds;
  const b1 = await batchStats(svc.url);
  return {
    ...r,
    meanBatch: (b1.sum - b0.sum) / Math.max(1, b1.count - b0.count),
    serviceCores,
    otherCores: Math.max(0, other - serviceCores),
    maxRssKb,
  };
}

const answers = (r: LoadResult): number => Object.values(r.status).reduce((a, b) => a + b, 0);
const statusText = (s: Readonly<Record<string, number>>): string =>
  Object.entries(s)
    .map(([k, v]) => `${fmt(v)}× ${k}`)
    .join(', ');
const pct = (x: number, digits = 0): string => `${fmt(100 * x, digits)}%`;
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${pct(Math.abs(x), 1)}`;

/**
 * The same seed twice gives the same PNG bytes, and two seeds give different images (the decoder is not
 * zero, so the model is not constant). @throws Error when either fails.
 */
async function checkImages(url: string): Promise<void> {
  const post = async (seed: number): Promise<string> => {
    const res = await fetch(`${url}/v1/images/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 1, seed, class_label: 3 }),
    });
    if (!res.ok) throw new Error(`serve: POST /v1/images/generations answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { data: { b64_json: string }[] }).data[0].b64_json;
  };
  const [a, b, c] = [await post(7), await post(7), await post(8)];
  if (a !== b) throw new Error('serve: the same seed gave different PNG bytes');
  if (a === c) throw new Error('serve: seeds 7 and 8 gave the same image: is the model constant?');
}

/** Warm-up then a measured run at each concurrency. */
async function levels(
  svc: ServiceChild,
  conc: readonly number[],
  warm: number,
  secs: number,
  log: (msg: string) => void,
): Promise<{ levels: Level[]; sent: number }> {
  const out: Level[] = [];
  let sent = 0;
  for (const c of conc) {
    sent += answers(await loadImages(svc.url, { connections: c, seconds: warm, numClasses: 10 }));
    const l = await measure(svc, c, { seconds: secs });
    sent += answers(l);
    out.push(l);
    log(
      `concurrency ${c}: ${fmt(l.okPerS)} images/s, p50 ${fmt(l.p50Ms)} ms, p99 ` +
        `${fmt(l.p99Ms)} ms, mean batch ${fmt(l.meanBatch, 1)}, service ${fmt(l.serviceCores, 2)} ` +
        `cores, other ${fmt(l.otherCores, 2)} (${statusText(l.status)})`,
    );
  }
  return { levels: out, sent };
}

/** The result row of one level. */
function levelRow(l: Level, config: string, warm: number): Row {
  const errs =
    l.errors + l.timeouts > 0 || l.ok < answers(l)
      ? `; ${statusText(l.status)}, ${l.errors} errors, ${l.timeouts} timeouts`
      : '';
  return {
    section: 'serve',
    what: `POST /v1/images/generations, ${l.connections} concurrent client${l.connections > 1 ? 's' : ''}${config}`,
    value: `${fmt(l.okPerS)} images/s`,
    note:
      `p50 ${fmt(l.p50Ms)} ms, p99 ${fmt(l.p99Ms)} ms; mean batch ${fmt(l.meanBatch, 1)}; ` +
      `service ${fmt(l.serviceCores, 2)} cores, other processes ` +
      `${fmt(l.otherCores, 2)}; ${fmt(l.seconds)} s after ${warm} s warm-up${errs}`,
  };
}

/**
 * The configuration that fits this machine better than the defaults for the small CPU preset: one
 * single-threaded session per core (no intra-op synchronisation, the most images per core-second) and
 * batches small enough that 32 closed-loop clients keep every session busy.
 */
function tunedFlags(cores: number): { flags: string[]; text: string } {
  const batch = Math.max(4, Math.floor(RATIO_AT / cores));
  return {
    flags: [
      '--sessions',
      String(cores),
      '--max-batch-size',
      String(batch),
      '--max-images-per-request',
      String(Math.min(16, batch)),
    ],
    text: `--sessions ${cores} --max-batch-size ${batch}`,
  };
}

/** Runs the section. @throws Error when a service does not start, answers wrongly, or autocannon fails. */
export async function runServe(ctx: BenchContext): Promise<Row[]> {
  const q = ctx.quick;
  const cfg = cpuPresetConfig();
  const raw = await measureRawInference(cfg, EXPORT_BATCHES, {
    warmup: 2,
    reps: (b) => (q ? (b <= 8 ? 10 : 5) : b <= 8 ? 30 : 10),
  });
  const perBatch = raw.perBatch.map((b) => `batch ${b.batch} ${fmt(b.imagesPerS)}`).join(', ');
  const rawText = `${perBatch} (one session, ${raw.threads} threads, best run)`;
  ctx.log(`raw onnxruntime: best batch ${raw.bestBatch}, ${fmt(raw.bestImagesPerS)} images/s; ${rawText}`);
  const [warm, secs] = q ? [1, 3] : [2, 8];
  const setup =
    `autocannon runs in the bench process on the same ${raw.threads} cores as the service; n = 1, a fresh seed ` +
    `and label (seed mod 10) per request`;
  const ratioRow = (l: Level, config: string): Row => {
    const ratio = l.okPerS / raw.bestImagesPerS;
    return {
      section: 'serve',
      what: `Service at concurrency ${RATIO_AT} vs raw onnxruntime (batch ${raw.bestBatch}), ${config}`,
      value: pct(ratio),
      goal: `≥ ${pct(RATIO_GOAL)}: ${ratio >= RATIO_GOAL ? 'met' : 'missed'}`,
      note: `${fmt(l.okPerS)} / ${fmt(raw.bestImagesPerS)} images/s; raw: ${rawText}; ${setup}`,
    };
  };

  const dir = mkdtempSync(join(tmpdir(), 'get-bench-serve-'));
  const rows: Row[] = [];
  const memRows: Row[] = [];
  try {
    const modelPath = join(dir, 'model.onnx');
    writeFileSync(modelPath, exportedBenchModel(cfg).onnx);
    const serveCfg = resolveServeConfig({ model: modelPath, maxQueueSize: QUEUE });
    const defaults =
      `defaults (max batch ${serveCfg.maxBatchSize}, queue delay ${serveCfg.maxQueueDelayMs} ms, ` +
      `${serveCfg.sessions} session × ${Math.floor(raw.threads / serveCfg.sessions)} threads)`;

    // A. The defaults (queue limit lowered for the overload test): levels, memory, overload.
    let t0 = performance.now();
    const svc = await startService(modelPath, ['--max-queue-size', String(QUEUE)]);
    try {
      const startMs = performance.now() - t0;
      const idle = procMemory(svc.pid);
      ctx.log(`service pid ${svc.pid} ready in ${fmt(startMs)} ms, RSS ${mb(idle.rssKb)}`);
      await checkImages(svc.url);

      // 3a. Memory after N1 and N2 requests (concurrency 32), before the levels.
      const [n1, n2] = q ? [500, 2_000] : [1_000, 10_000];
      const r1 = await measure(svc, RATIO_AT, { amount: n1 });
      const m1 = procMemory(svc.pid);
      const r2 = await measure(svc, RATIO_AT, { amount: n2 - n1 - 3 }); // checkImages sent 3
      const m2 = procMemory(svc.pid);
      const growth = m2.rssKb / m1.rssKb - 1;
      ctx.log(
        `RSS after ${fmt(n1)} requests ${mb(m1.rssKb)}, after ${fmt(n2)} ${mb(m2.rssKb)} ` +
          `(${signed(growth)}); ${fmt(r2.okPerS)} images/s meanwhile`,
      );
      const notOk = r1.ok + r2.ok < n2 - 3 ? `; ${statusText(r1.status)} then ${statusText(r2.status)}` : '';

      // 1. The levels.
      const a = await levels(svc, SERVE_CONCURRENCY, warm, secs, ctx.log);
      let sent = n2 + a.sent;
      const m3 = procMemory(svc.pid);

      // 3b. Overload: twice the clients the service admits (running + queued); the rest get 429. Two
      // halves: bounded if the second half's peak RSS stays within 10% of the first half's (the peaks,
      // sampled every 200 ms, ride out the V8 heap's sawtooth that single readings catch at random).
      const admitted = serveCfg.maxBatchSize * serveCfg.sessions + serveCfg.maxQueueSize;
      const over1 = await measure(svc, 2 * admitted, { seconds: secs / 2 });
      const m4 = procMemory(svc.pid);
      const over2 = await measure(svc, 2 * admitted, { seconds: secs / 2 });
      const m5 = procMemory(svc.pid);
      const status: Record<string, number> = {};
      for (const o of [over1, over2]) for (const [k, v] of Object.entries(o.status)) status[k] = (status[k] ?? 0) + v;
      const answered = answers(over1) + answers(over2);
      const refused = status['429'] ?? 0;
      const okPerS = (over1.ok + over2.ok) / (over1.seconds + over2.seconds);
      sent += answered;
      const overGrowth = over2.maxRssKb / over1.maxRssKb - 1;
      ctx.log(
        `overload ${2 * admitted} clients: ${fmt(okPerS)} images/s, ${fmt(refused)} of ${fmt(answered)} ` +
          `answers 429, RSS ${mb(m3.rssKb)} → ${mb(m4.rssKb)} → ${mb(m5.rssKb)}; peak per half ` +
          `${mb(over1.maxRssKb)}, ${mb(over2.maxRssKb)} (${signed(overGrowth)})`,
      );
      const stopped = await svc.stop();
      ctx.log(`service stopped: ${stopped}`);

      for (const l of a.levels) rows.push(levelRow(l, '', warm));
      rows.push(
        ratioRow(
          a.levels.find((l) => l.connections === RATIO_AT)!,
          defaults,
        ),
      );
      // Single readings land anywhere on the V8 heap's sawtooth (±5–10%); the peaks of whole windows do not.
      const levelPeak = Math.max(...a.levels.map((l) => l.maxRssKb));
      const later = levelPeak / r2.maxRssKb - 1;
      memRows.push({
        section: 'serve',
        what: `Service RSS after ${fmt(n1)} → ${fmt(n2)} requests (concurrency ${RATIO_AT})`,
        value: `${mb(m1.rssKb)} → ${mb(m2.rssKb)} (${signed(growth)})`,
        goal: `< ${pct(GROWTH_LIMIT)} growth: ${growth < GROWTH_LIMIT && !notOk ? 'met' : 'missed'}`,
        note:
          `VmRSS of the service process (worker threads included), defaults, read after each run; ` +
          `${mb(idle.rssKb)} when ready; the first thousand requests include warm-up (V8 heaps, malloc arenas ` +
          `of the worker threads, onnxruntime's arena at full batches)${notOk}`,
      });
      memRows.push({
        section: 'serve',
        what:
          `Service peak RSS over requests ${fmt(n1)}–${fmt(n2)} ` +
          `→ over the concurrency levels (to ${fmt(n2 + a.sent)})`,
        value: `${mb(r2.maxRssKb)} → ${mb(levelPeak)} (${signed(later)})`,
        note:
          `VmRSS sampled every 200 ms during each window (up to 64 clients in the levels, ` +
          `32 before); single readings after the windows: ${mb(m2.rssKb)} → ${mb(m3.rssKb)}; ` +
          `V8 sizes its heaps to the allocation rate, so the peak still rises ` +
          `over the first tens of thousands of requests, then stays (see the notes below)`,
      });
      memRows.push({
        section: 'serve',
        what: `2× overload: ${2 * admitted} clients, queue limit ${QUEUE}`,
        value: `${pct(refused / Math.max(1, answered))} answered 429`,
        goal:
          `bounded (2nd half's peak RSS < +${pct(GROWTH_LIMIT)} of the 1st's): ` +
          `${overGrowth < GROWTH_LIMIT ? 'met' : 'missed'}`,
        note:
          `${statusText(status)} in ${fmt(over1.seconds + over2.seconds)} s (clients retry at once, ignoring ` +
          `Retry-After); ${fmt(okPerS)} images/s still served; p99 ${fmt(Math.max(over1.p99Ms, over2.p99Ms))} ` +
          `ms (all answers); VmRSS ${mb(m3.rssKb)} before, peak ${mb(over1.maxRssKb)} in the 1st half, ` +
          `${mb(over2.maxRssKb)} in the 2nd (${signed(overGrowth)}), ${mb(m5.rssKb)} at the end; admitted = ` +
          `max batch ${serveCfg.maxBatchSize} × ${serveCfg.sessions} session running + ${QUEUE} queued`,
      });
      memRows.push({
        section: 'serve',
        what: 'Peak RSS of the service process (VmHWM), defaults',
        value: mb(m5.hwmKb),
        note:
          `over the whole run (${fmt(sent)} requests); ready in ${fmt(startMs / 1000, 1)} s at ` +
          `${mb(idle.rssKb)}; SIGTERM: ${stopped}`,
      });
    } finally {
      await svc.stop(2_000);
    }

    // B. Tuned for this machine: concurrency 32 and 64 only.
    const tuned = tunedFlags(raw.threads);
    t0 = performance.now();
    const svc2 = await startService(modelPath, tuned.flags);
    try {
      ctx.log(`service (${tuned.text}) pid ${svc2.pid} ready in ${fmt(performance.now() - t0)} ms`);
      const b = await levels(svc2, [RATIO_AT, 64], warm, secs, ctx.log);
      const peak = procMemory(svc2.pid).hwmKb;
      const stopped = await svc2.stop();
      for (const l of b.levels) rows.push(levelRow(l, `, ${tuned.text}`, warm));
      const r = ratioRow(b.levels[0], tuned.text);
      rows.push({ ...r, note: `${r.note}; peak RSS ${mb(peak)}; SIGTERM: ${stopped}` });
    } finally {
      await svc2.stop(2_000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [...rows, ...memRows];
}
