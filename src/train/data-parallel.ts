/**
 * Synchronous data parallelism over a {@link Communicator} (src/parallel/comm.ts): what N ranks do so
 * that together they take exactly the step one process takes on the global batch.
 *
 * - Each global batch (read in the single-process order) is cut into N contiguous slices; rank r takes
 *   slice r (its noise, image, labels and z_0 rows).
 * - The loss is a mean over every element of the batch, so with equal slices the global loss and its
 *   gradient are the means of the ranks' slice losses and gradients: one allreduce (sum) of
 *   [gradient | loss | L1_1..L1_K | stop flag], then a division by N.
 * - AdamW and EMA then run on identical inputs on every rank, so the ranks stay identical. They check it:
 *   the options (at start) and a digest of the state (after start or resume) must agree across ranks.
 */
import { createHash } from 'node:crypto';
import type { Communicator } from '../parallel/comm.js';
import { UsageError } from '../util/errors.js';
import type { TrainBatch } from './training-step.js';

/**
 * The per-rank batch of a global batch `batch` on `size` ranks.
 * @throws UsageError when `batch` is not a multiple of `size` (naming `field`, e.g. `--batch` or `batch`).
 */
export function perRankBatch(batch: number, size: number, field = 'batch'): number {
  if (!Number.isInteger(batch / size)) {
    const divisors = [2, 3, 4, 6, 8, 12, 16].filter((d) => batch % d === 0);
    throw new UsageError(
      `${field} ${batch} is not divisible by the ${size} ranks; use a multiple of ${size} ` +
        `(e.g. ${Math.max(size, Math.round(batch / size) * size)})` +
        (divisors.length ? `, or ranks that divide ${batch} (${divisors.join(', ')})` : ''),
    );
  }
  return batch / size;
}

/**
 * Slice `rank` of `size` of a global batch of `batch` pairs: rows [rank·b, (rank+1)·b) with b = batch/size,
 * as views (noise/image [b,C,H,W] float32, labels [b] int32 or null).
 */
export function sliceBatch(data: TrainBatch, batch: number, rank: number, size: number): TrainBatch {
  const b = batch / size;
  const pixels = data.noise.length / batch;
  return {
    noise: sliceRows(data.noise, rank, b, pixels),
    image: sliceRows(data.image, rank, b, pixels),
    labels: data.labels ? data.labels.subarray(rank * b, (rank + 1) * b) : null,
  };
}

/** Rows [rank·rowsPerRank, …) of a row-major array whose rows hold `rowLength` values (a view). */
export function sliceRows<T extends Float32Array | Int32Array>(
  a: T,
  rank: number,
  rowsPerRank: number,
  rowLength: number,
): T {
  const n = rowsPerRank * rowLength;
  return a.subarray(rank * n, (rank + 1) * n) as T;
}

/** `v` as JSON with object keys sorted, so equal records serialise to equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * `options` as dotted names → canonical JSON of the leaf values (`optimizer.lr` → `0.001`), so a
 * difference is named down to the field.
 */
function flatten(options: Readonly<Record<string, unknown>>, prefix = '', out: Record<string, string> = {}) {
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, `${prefix}${k}.`, out);
    else out[`${prefix}${k}`] = canonical(v);
  }
  return out;
}

/** Broadcasts `bytes` of `root` (length first); every rank gets root's bytes. */
async function broadcastBytes(comm: Communicator, bytes: Uint8Array, root = 0): Promise<Uint8Array> {
  const len = new Int32Array([comm.rank === root ? bytes.length : 0]);
  await comm.broadcast(len, root);
  const buf = comm.rank === root ? bytes : new Uint8Array(len[0]);
  await comm.broadcast(buf, root);
  return buf;
}

/**
 * Checks that every rank was started with the same `options` (a flat record of option name → JSON value).
 * Rank 0's record is broadcast; each rank flags the names whose value differs from its own; one
 * allreduce of the flags tells every rank which options differ, on how many ranks.
 * @throws UsageError on every rank, naming the first differing option, its value on rank 0 and how many
 *   ranks differ.
 */
export async function agreeOnOptions(comm: Communicator, options: Readonly<Record<string, unknown>>): Promise<void> {
  if (comm.size === 1) return;
  const mine = flatten(options);
  const rootText = new TextDecoder().decode(
    await broadcastBytes(comm, new TextEncoder().encode(JSON.stringify(comm.rank === 0 ? mine : {}))),
  );
  const root = JSON.parse(rootText) as Record<string, string>;
  const names = Object.keys(root);
  // One flag per rank-0 option, and one for options rank 0 does not have.
  const flags = new Float32Array(names.length + 1);
  names.forEach((k, i) => (flags[i] = mine[k] === root[k] ? 0 : 1));
  const extra = Object.keys(mine).filter((k) => !(k in root));
  flags[names.length] = extra.length > 0 ? 1 : 0;
  await comm.allreduceSum(flags);
  const i = flags.findIndex((f) => f > 0);
  if (i < 0) return;
  if (i === names.length)
    throw new UsageError(
      `ranks were started with different options: ${flags[i]} of ${comm.size} ranks have options rank 0 lacks` +
        (extra.length ? ` (here: ${extra.join(', ')})` : '') +
        '; start every rank with the same command',
    );
  throw new UsageError(
    `ranks were started with different options: ${names[i]} differs on ${flags[i]} of ${comm.size} ranks ` +
      `(rank 0: ${root[names[i]]}` +
      `${mine[names[i]] !== root[names[i]] ? `, rank ${comm.rank}: ${mine[names[i]]}` : ''}); ` +
      'start every rank with the same options',
  );
}

/** SHA-256 of the bytes of `arrays` and the integer `counters`, hex. */
export function stateDigest(arrays: readonly Float32Array[], counters: readonly number[]): string {
  const h = createHash('sha256');
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  h.update(JSON.stringify(counters));
  return h.digest('hex');
}

/**
 * Checks that every rank holds the same training state (parameters, EMA, Adam moments and counters):
 * rank 0's digest is broadcast and one allreduce counts the ranks that differ.
 * @param when words for the error, e.g. `after resuming from step 120`.
 * @throws UsageError on every rank when any rank's state differs from rank 0's.
 */
export async function agreeOnState(
  comm: Communicator,
  arrays: readonly Float32Array[],
  counters: readonly number[],
  when: string,
): Promise<string> {
  const digest = stateDigest(arrays, counters);
  if (comm.size === 1) return digest;
  const root = new TextDecoder().decode(await broadcastBytes(comm, new TextEncoder().encode(digest)));
  const differ = new Float32Array([root === digest ? 0 : 1]);
  await comm.allreduceSum(differ);
  if (differ[0] > 0)
    throw new UsageError(
      `${differ[0]} of ${comm.size} ranks hold a training state other than rank 0's ${when} (sha256 ` +
        `${root.slice(0, 12)}…); every rank must read the same checkpoint folder: check that the store is shared`,
    );
  return digest;
}

/** Copies rank 0's values of every array into every rank's (in place). */
export async function broadcastArrays(comm: Communicator, arrays: readonly Float32Array[]): Promise<void> {
  for (const a of arrays) await comm.broadcast(a, 0);
}
