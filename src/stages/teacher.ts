/**
 * The teacher stage: the embedded Gaussian-mixture teacher fitted to a dataset's training split
 * (cached in an object store, keyed by dataset and fit options), or an EDM-preconditioned ONNX network.
 */
import type { ImageDataset } from '../data/datasets.js';
import type { Denoiser } from '../edm/denoiser.js';
import { MixtureDenoiser, decodeMixture, fitMixtureTeacher, saveMixture } from '../teacher/mixture.js';
import { OnnxEdmTeacher } from '../teacher/onnx-teacher.js';
import { StoreError, joinUri, parentUri, storeFor } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { sha256Hex } from '../util/fsutil.js';

export interface TeacherOptions {
  /** `mixture` or the URI of an ONNX network F (see OnnxEdmTeacher for its inputs and outputs). */
  readonly spec: string;
  readonly components: number;
  readonly rank: number;
  /** Folder URI of the fitted-teacher cache (a path, file:// or s3://). */
  readonly cacheDir: string;
  readonly threads?: number;
  readonly onFitGroup?: (group: number, groups: number) => void;
}

export interface PreparedTeacher {
  readonly denoiser: Denoiser;
  readonly kind: 'mixture' | 'onnx';
  /** True when a cached fit was loaded. */
  readonly cached: boolean;
  readonly fitSeconds: number;
}

/**
 * @param train the training split (used by the mixture teacher only).
 * @throws UsageError when the ONNX model is missing or does not have the teacher's inputs/outputs;
 *   StoreError when the cache's store fails.
 */
export async function prepareTeacher(o: TeacherOptions, train: ImageDataset): Promise<PreparedTeacher> {
  if (o.spec !== 'mixture') {
    try {
      return {
        denoiser: await OnnxEdmTeacher.load(storeFor(parentUri(o.spec)), o.spec, { threads: o.threads }),
        kind: 'onnx',
        cached: false,
        fitSeconds: 0,
      };
    } catch (e) {
      if (e instanceof StoreError && e.code === 'NotFound')
        throw new UsageError(
          `--teacher ${o.spec}: no such file or object (give "mixture" or the URI of an ONNX network)`,
        );
      if (e instanceof StoreError) throw new UsageError(`--teacher ${e.message}`);
      if (e instanceof UsageError) throw e;
      throw new UsageError(`--teacher ${o.spec}: ${(e as Error).message}`);
    }
  }
  const t0 = performance.now();
  const store = storeFor(o.cacheDir);
  if ((await store.head(o.cacheDir)) !== null)
    throw new UsageError(`--cache-dir ${o.cacheDir} is a file (an object), not a folder; give a folder path or prefix`);
  const path = joinUri(o.cacheDir, `mixture-${train.name}-n${train.n}-K${o.components}-r${o.rank}.safetensors`);
  // The cache is trusted only when its sha256 sidecar matches; anything else is refitted.
  const digestPath = `${path}.sha256`;
  let params;
  let cached = false;
  if ((await store.head(path)) !== null) {
    try {
      const [bytes, digest] = await Promise.all([store.get(path), store.get(digestPath)]);
      if (sha256Hex(bytes) === new TextDecoder().decode(digest).trim()) {
        params = decodeMixture(bytes, path); // the bytes just verified, not a second download
        cached = true;
      }
    } catch (e) {
      if (e instanceof StoreError && e.code !== 'NotFound') throw e;
      params = undefined;
    }
  }
  if (!params) {
    const shape = { channels: train.channels, height: train.height, width: train.width };
    try {
      params = await fitMixtureTeacher(train.images, train.labels, {
        shape,
        numClasses: train.numClasses,
        componentsPerClass: o.components,
        rank: o.rank,
        seed: 0,
        threads: o.threads,
        onGroup: o.onFitGroup,
      });
    } catch (e) {
      if (e instanceof RangeError)
        throw new UsageError(`--teacher-components ${o.components} --teacher-rank ${o.rank}: ${e.message}`);
      throw e;
    }
    const written = await saveMixture(params, store, path);
    await store.put(digestPath, new TextEncoder().encode(`${sha256Hex(written)}\n`));
  }
  const denoiser = await MixtureDenoiser.create(params, { threads: o.threads });
  return { denoiser, kind: 'mixture', cached, fitSeconds: (performance.now() - t0) / 1000 };
}
