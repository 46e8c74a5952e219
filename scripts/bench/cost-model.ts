/**
 * The data-parallel cost model of the `parallel` section (issue 15): what interconnect GET-B/2 needs so
 * that a synchronous step spends less than 10% of its time in the gradient allreduce. Pure arithmetic on
 * numbers the section computes from the graph (gradient bytes, FLOP per step) and measures (loopback
 * allreduce bandwidth); rendered as the markdown block docs/benchmarks.md shows under the results.
 *
 * Model (no overlap of communication with compute):
 *   a ring allreduce moves 2(n−1)/n × G bytes in and out of every rank, so T_comm = 2(n−1)/n × G / B, with
 *   B the per-rank link bandwidth in each direction (nccl-tests' "bus bandwidth");
 *   T_compute = F / n / R (F: FLOP of one step of the global batch, R: sustained FLOP/s per GPU);
 *   comm share = T_comm / (T_comm + T_compute) < s  ⇔  B > (1 − s) / s × 2(n−1)/n × G / T_compute.
 */
import { fmt } from './util.js';

/** Interconnects to compare with, by bandwidth in each direction, GB/s (10^9 bytes). */
export const LINKS: readonly { readonly name: string; readonly gbs: number }[] = [
  { name: '100 Gb/s InfiniBand/Ethernet', gbs: 12.5 },
  { name: 'PCIe 4.0 x16', gbs: 25 },
  { name: '200 Gb/s InfiniBand/Ethernet', gbs: 25 },
  { name: '400 Gb/s InfiniBand/Ethernet', gbs: 50 },
  { name: 'NVLink 2 (V100)', gbs: 150 },
  { name: 'NVLink 3 (A100)', gbs: 300 },
  { name: 'NVLink 4 (H100)', gbs: 450 },
];

export interface CostModelInput {
  /** What the gradient is, e.g. `GET-B/2 (cond., CIFAR-10)`. */
  readonly model: string;
  /** Gradient bytes G (parameters × 4). */
  readonly gradBytes: number;
  /** FLOP of one training step of the global batch F. */
  readonly stepFlop: number;
  /** How F was counted, in words. */
  readonly flopNote: string;
  readonly batch: number;
  /** Ranks (GPUs) n. */
  readonly ranks: number;
  /** Largest comm share allowed, e.g. 0.1. */
  readonly share: number;
  /** Sustained per-GPU FLOP/s to tabulate. */
  readonly rates: readonly number[];
  /** Measured loopback bus bandwidths (GB/s) for G, by label (e.g. `cma`, `none`); may be empty. */
  readonly loopback: Readonly<Record<string, number>>;
}

/** Bytes every rank sends (and receives) in a ring allreduce of `bytes` over `n` ranks. */
export const ringBytes = (bytes: number, n: number): number => (2 * (n - 1) * bytes) / n;

/** Seconds of one step's compute on each of `n` GPUs at `rate` FLOP/s. */
export const computeSeconds = (stepFlop: number, n: number, rate: number): number => stepFlop / n / rate;

/** Per-rank bandwidth (bytes/s, each direction) at which the comm share is exactly `share`. */
export function requiredBandwidth(gradBytes: number, n: number, tCompute: number, share: number): number {
  return (((1 - share) / share) * ringBytes(gradBytes, n)) / tCompute;
}

/** Comm share of a step at per-rank bandwidth `bw` (bytes/s), without overlap. */
export function commShare(gradBytes: number, n: number, tCompute: number, bw: number): number {
  const tComm = ringBytes(gradBytes, n) / bw;
  return tComm / (tComm + tCompute);
}

/** The slowest link of {@link LINKS} with at least `gbs`, or null when none has. */
export function slowestSufficient(gbs: number): string | null {
  const ok = LINKS.filter((l) => l.gbs >= gbs);
  if (ok.length === 0) return null;
  const min = Math.min(...ok.map((l) => l.gbs));
  return ok
    .filter((l) => l.gbs === min)
    .map((l) => `${l.name}: ${fmt(l.gbs, l.gbs < 20 ? 1 : 0)}`)
    .join(', ');
}

const pct = (x: number): string => `${fmt(100 * x)}%`;
const tf = (flops: number): string => fmt(flops / 1e12, 1);

/** The markdown block: the model in two sentences, the table, what it means. */
export function costModelMarkdown(c: CostModelInput): string {
  const n = c.ranks;
  const factor = (2 * (n - 1)) / n;
  const loop = Object.entries(c.loopback);
  const head = [
    'sustained per GPU',
    'T_compute',
    `B for < ${pct(c.share)} comm`,
    'slowest link that suffices, GB/s',
    ...loop.map(([k, v]) => `comm share at our loopback rate (${k}, ${fmt(v, 2)} GB/s)`),
  ];
  const lines = [
    `### Data-parallel cost model: ${c.model}, batch ${c.batch} on ${n} GPUs`,
    '',
    `G = ${fmt(c.gradBytes / 1e6, 1)} MB of float32 gradient; a ring allreduce moves 2(n−1)/n × G = ` +
      `${fmt(factor, 2)} × G = ${fmt(ringBytes(c.gradBytes, n) / 1e6)} MB in and out of every GPU per step, so ` +
      `T_comm = ${fmt(factor, 2)} G / B with B the per-GPU link bandwidth in each direction (nccl-tests' bus ` +
      `bandwidth). F = ${tf(c.stepFlop)} TFLOP per step (${c.flopNote}); T_compute = F / ${n} / R for a ` +
      `sustained R per GPU. Without overlap, comm share = T_comm / (T_comm + T_compute) < ${pct(c.share)} needs ` +
      `B > ${fmt((1 - c.share) / c.share)} × ${fmt(factor, 2)} G / T_compute. GB = 10^9 bytes.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
  ];
  for (const r of c.rates) {
    const t = computeSeconds(c.stepFlop, n, r);
    const need = requiredBandwidth(c.gradBytes, n, t, c.share) / 1e9;
    lines.push(
      `| ${fmt(r / 1e12)} TFLOP/s | ${fmt(t * 1000, 1)} ms | ${fmt(need, 1)} GB/s | ` +
        `${slowestSufficient(need) ?? 'none listed'} |` +
        loop.map(([, v]) => ` ${pct(commShare(c.gradBytes, n, t, v * 1e9))} |`).join(''),
    );
  }
  const first = computeSeconds(c.stepFlop, n, c.rates[0]);
  const need0 = requiredBandwidth(c.gradBytes, n, first, c.share) / 1e9;
  lines.push(
    '',
    `Links, each direction: 100/200/400 Gb/s InfiniBand or Ethernet ≈ 12.5/25/50 GB/s, PCIe 4.0 x16 ≈ 25 GB/s ` +
      `(32 nominal), NVLink 150/300/450 GB/s on V100/A100/H100 (300/600/900 GB/s counting both directions). ` +
      `So PCIe or a 200 Gb/s network keeps GET-B/2 under ${pct(c.share)} only up to ` +
      `${fmt((25 / need0) * (c.rates[0] / 1e12), 1)} TFLOP/s sustained, 400 Gb/s up to ` +
      `${fmt((50 / need0) * (c.rates[0] / 1e12), 1)}; beyond that it takes NVLink (or overlapping the allreduce ` +
      `with the backward pass, which this model leaves out).` +
      (loop.length > 0 ? ` ${loopbackSentence(loop)}` : ''),
  );
  return lines.join('\n');
}

/** What the measured loopback rates say beside the links. */
function loopbackSentence(loop: readonly (readonly [string, number])[]): string {
  const [name, best] = loop.reduce((a, b) => (b[1] > a[1] ? b : a));
  const slowest = Math.min(...LINKS.map((l) => l.gbs));
  const where =
    best < slowest
      ? `below every link listed (${fmt(slowest / best, 1)}× under the slowest)`
      : `as fast as ${slowestSufficient(best) ?? 'the fastest link listed'} or better`;
  return (
    `Our loopback allreduce of G (2 ranks on one host through shared memory; at 2 ranks bus bandwidth = ` +
    `algorithm bandwidth) reached ${fmt(best, 2)} GB/s at best (${name}), ${where}; taken as the per-GPU ` +
    `bandwidth it gives the last column${loop.length > 1 ? 's' : ''}.`
  );
}
