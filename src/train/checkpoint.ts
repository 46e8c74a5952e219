/**
 * Training checkpoints (data contract, docs/data-contracts.md):
 * - `checkpoint-<step, 9 digits>.safetensors`: float32 tensors `params.<name>`, `ema.<name>`,
 *   `adam_m.<name>`, `adam_v.<name>` for every GET parameter (names as in locuslab/get
 *   models/get.py), metadata `format` = `get-distill-checkpoint/1` and `state` = JSON of
 *   {@link CheckpointState}.
 * - `latest.json`: {step, file, sha256, bytes}, written last, atomically; rotation keeps the newest K.
 * A checkpoint is complete when `latest.json` names it; a killed run resumes from there. The
 * checkpoint folder is a URI in an object store (src/store): a plain path, file:// or s3://.
 */
import { z } from 'zod';
import { decodeSafetensors, encodeSafetensors } from '../data/safetensors.js';
import type { TensorData } from '../graph/ir.js';
import { GetConfigSchema } from '../get/config.js';
import type { ParamSpec } from '../get/model.js';
import { UsageError } from '../util/errors.js';
import { type ObjectStore, StoreError } from '../store/types.js';
import { joinUri } from '../store/uri.js';
import { sha256Hex } from '../util/fsutil.js';
import { AdamWConfigSchema, EmaConfigSchema } from './optim.js';
import { ParamStore } from './params.js';

export const CHECKPOINT_FORMAT = 'get-distill-checkpoint/1';

export const CheckpointStateSchema = z
  .object({
    step: z.number().int().nonnegative(),
    imagesSeen: z.number().int().nonnegative(),
    adamSteps: z.number().int().nonnegative(),
    config: GetConfigSchema,
    optimizer: AdamWConfigSchema,
    ema: EmaConfigSchema,
    batch: z.number().int().positive(),
    iterations: z.number().int().positive(),
    seed: z.number().int(),
    /** Digest of the pair dataset the run trains on: sha256 of its manifest's shard list (datasetDigest). */
    dataManifestSha256: z.string(),
    /** Last logged training loss (for progress displays). */
    loss: z.number().nullable(),
  })
  .strict();
export type CheckpointState = z.infer<typeof CheckpointStateSchema>;

const LatestSchema = z
  .object({
    step: z.number().int().nonnegative(),
    file: z.string().regex(/^checkpoint-\d{9}\.safetensors$/),
    sha256: z.string(),
    bytes: z.number().int(),
  })
  .strict();

export interface Checkpoint {
  readonly state: CheckpointState;
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly adamM: ParamStore;
  readonly adamV: ParamStore;
}

const fileFor = (step: number) => `checkpoint-${String(step).padStart(9, '0')}.safetensors`;

const CHECKPOINT_NAME = /^checkpoint-\d{9}\.safetensors$/;

/** The four weight groups of a checkpoint with their tensor-name prefixes. */
const checkpointGroups = (ck: Checkpoint): [string, ParamStore][] => [
  ['params', ck.params],
  ['ema', ck.ema],
  ['adam_m', ck.adamM],
  ['adam_v', ck.adamV],
];

/**
 * The safetensors bytes of `ck` (docs/data-contracts.md §7), unchecked: {@link saveCheckpoint} refuses
 * non-finite values before calling it; tests use it to build a bad checkpoint on purpose.
 */
export function encodeCheckpoint(ck: Checkpoint): Uint8Array {
  const tensors: Record<string, TensorData> = {};
  for (const s of ck.params.specs) {
    for (const [prefix, store] of checkpointGroups(ck))
      tensors[`${prefix}.${s.name}`] = { dtype: 'float32', dims: s.shape, data: store.view(s.name) };
  }
  return encodeSafetensors(tensors, { format: CHECKPOINT_FORMAT, state: JSON.stringify(ck.state) });
}

/**
 * Writes a checkpoint object under the folder URI `dir`, then `latest.json`, then removes all but the
 * newest `keep`. Each write is atomic, and `latest.json` only ever names a complete checkpoint.
 * @returns the checkpoint's URI. @throws StoreError when a write fails.
 */
export async function saveCheckpoint(store: ObjectStore, dir: string, ck: Checkpoint, keep: number): Promise<string> {
  const groups = checkpointGroups(ck);
  // A checkpoint is what a resume, an export and a server trust: one with NaN or Inf is never written
  // (the EMA can go bad on its own, with a finite loss), so the last good checkpoint stays the latest.
  for (const [group, values] of groups) {
    const bad = values.firstNonFinite();
    if (bad)
      throw new UsageError(
        `checkpoint of step ${ck.state.step} not written: ${group} ${bad.name}[${bad.index}] is ${bad.value}; ` +
          `training diverged (lower the learning rate, now ${ck.state.optimizer.lr}); ` +
          `${dir}/latest.json still names the last finite checkpoint`,
      );
  }
  const bytes = encodeCheckpoint(ck);
  const file = fileFor(ck.state.step);
  await store.put(joinUri(dir, file), bytes);
  const pointer = { step: ck.state.step, file, sha256: sha256Hex(bytes), bytes: bytes.length };
  const latest = `${JSON.stringify(pointer, null, 2)}\n`;
  await store.put(joinUri(dir, 'latest.json'), new TextEncoder().encode(latest));
  // Keep this checkpoint and the newest keep−1 before it; files of later steps belong to an abandoned
  // timeline (a restart from an earlier step) and go too, so they can never outrank this one.
  const all = await listCheckpoints(store, dir);
  const older = all.filter((f) => f < file);
  const kept = new Set([file, ...(keep > 1 ? older.slice(-(keep - 1)) : [])]);
  await Promise.all(all.filter((f) => !kept.has(f)).map((f) => store.delete(joinUri(dir, f))));
  return joinUri(dir, file);
}

/** Checkpoint object names directly under the folder URI `dir`, oldest step first ([] when none). */
export async function listCheckpoints(store: ObjectStore, dir: string): Promise<string[]> {
  const prefix = joinUri(dir, '');
  const uris = await store.list(prefix.endsWith('/') ? prefix : `${prefix}/`);
  return uris
    .map((u) => u.slice(u.lastIndexOf('/') + 1))
    .filter((f) => CHECKPOINT_NAME.test(f))
    .sort();
}

/** True when `<dir>/latest.json` exists. @throws StoreError when the store cannot be asked. */
export async function hasCheckpoint(store: ObjectStore, dir: string): Promise<boolean> {
  return (await store.head(joinUri(dir, 'latest.json'))) !== null;
}

/** The parameters a checkpoint must hold: fixed, or derived from its own state (e.g. paramSpecs(state.config)). */
export type SpecsFor = readonly ParamSpec[] | ((state: CheckpointState) => readonly ParamSpec[]);

/**
 * Loads the checkpoint named by `<dir>/latest.json`, verifying its size, sha256 and that every
 * parameter of `specs` is present with its shape.
 * @throws UsageError naming the URI when it is missing, truncated, corrupt or of another model;
 *   StoreError when the store fails.
 */
export async function loadLatestCheckpoint(store: ObjectStore, dir: string, specs: SpecsFor): Promise<Checkpoint> {
  const latestPath = joinUri(dir, 'latest.json');
  let latest: z.infer<typeof LatestSchema>;
  try {
    latest = LatestSchema.parse(JSON.parse(new TextDecoder().decode(await store.get(latestPath))));
  } catch (e) {
    if (e instanceof StoreError && e.code !== 'NotFound') throw e;
    throw new UsageError(
      `${latestPath}: not a valid checkpoint pointer (${(e as Error).message.split('\n')[0].slice(0, 120)}); ` +
        `delete the checkpoints folder to train from step 0`,
    );
  }
  return loadCheckpoint(store, joinUri(dir, latest.file), specs, latest);
}

/**
 * Loads one checkpoint object (`checkpoint-*.safetensors`) by URI. With `expect` (from latest.json)
 * its size and sha256 are verified; without, the safetensors structure, format, state and every
 * tensor's dtype and shape are (a flipped weight byte would go unnoticed).
 * @throws UsageError naming the URI when it is missing, not a checkpoint, truncated, corrupt or of
 *   another model; StoreError when the store fails.
 */
export async function loadCheckpoint(
  store: ObjectStore,
  path: string,
  specs: SpecsFor,
  expect?: { bytes: number; sha256: string },
): Promise<Checkpoint> {
  const bytes = await store.get(path).catch((e: unknown) => {
    if (e instanceof StoreError && e.code !== 'NotFound') throw e;
    throw new UsageError(`${path}: checkpoint ${expect ? 'named by latest.json ' : ''}is missing`);
  });
  if (expect && (bytes.length !== expect.bytes || sha256Hex(bytes) !== expect.sha256)) {
    throw new UsageError(
      `${path}: checkpoint is corrupt or truncated (size/sha256 differ from latest.json); restore the file, ` +
        `or delete the checkpoints folder to train again from step 0 (the pairs are kept)`,
    );
  }
  let st;
  try {
    st = decodeSafetensors(bytes, path);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}; not a ${CHECKPOINT_FORMAT} file`);
  }
  if (st.metadata.format !== CHECKPOINT_FORMAT)
    throw new UsageError(`${path}: format "${st.metadata.format}" is not ${CHECKPOINT_FORMAT}`);
  let state: unknown = null;
  try {
    state = JSON.parse(st.metadata.state ?? 'null');
  } catch {
    // reported below as an invalid state
  }
  const parsed = CheckpointStateSchema.safeParse(state);
  if (!parsed.success) throw new UsageError(`${path}: invalid checkpoint state (${parsed.error.issues[0]?.message})`);
  let want: readonly ParamSpec[];
  try {
    want = typeof specs === 'function' ? specs(parsed.data) : specs;
  } catch (e) {
    throw new UsageError(`${path}: checkpoint config cannot be built (${(e as Error).message})`);
  }
  const stores = ['params', 'ema', 'adam_m', 'adam_v'].map((prefix) => {
    const store = new ParamStore(want);
    for (const s of want) {
      const t = st.tensors[`${prefix}.${s.name}`];
      if (!t || t.dtype !== 'float32' || t.dims.join() !== s.shape.join()) {
        throw new UsageError(
          `${path}: tensor ${prefix}.${s.name} is missing or not float32 [${s.shape.join(',')}]; the ` +
            `checkpoint belongs to another model`,
        );
      }
      store.view(s.name).set(t.data as Float32Array);
    }
    return store;
  });
  return { state: parsed.data, params: stores[0], ema: stores[1], adamM: stores[2], adamV: stores[3] };
}
