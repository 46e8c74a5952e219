/**
 * The teacher stage: the embedded Gaussian-mixture teacher fitted to a dataset's training split
 * (cached on disk, keyed by dataset and fit options), or an EDM-preconditioned ONNX network.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageDataset } from '../data/datasets.js';
import type { Denoiser } from '../edm/denoiser.js';
import { MixtureDenoiser, fitMixtureTeacher, loadMixture, saveMixture } from '../teacher/mixture.js';
import { OnnxEdmTeacher } from '../teacher/onnx-teacher.js';
import { UsageError } from '../util/errors.js';
import { sha256Hex, writeFileAtomic } from '../util/fsutil.js';

export interface TeacherOptions {
  /** `mixture` or a path to an ONNX network F (see OnnxEdmTeacher for its inputs and outputs). */
  readonly spec: string;
  readonly components: number;
  readonly rank: number;
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

const exists = (p: string) => stat(p).then(() => true, () => false);

/**
 * @param train the training split (used by the mixture teacher only).
 * @throws UsageError when the ONNX file is missing or does not have the teacher's inputs/outputs.
 */
export async function prepareTeacher(o: TeacherOptions, train: ImageDataset): Promise<PreparedTeacher> {
  if (o.spec !== 'mixture') {
    if (!(await exists(o.spec))) throw new UsageError(`--teacher ${o.spec}: no such file (give "mixture" or a path to an ONNX network)`);
    try {
      return { denoiser: await OnnxEdmTeacher.load(o.spec, { threads: o.threads }), kind: 'onnx', cached: false, fitSeconds: 0 };
    } catch (e) {
      throw new UsageError(`--teacher ${o.spec}: ${(e as Error).message}`);
    }
  }
  const t0 = performance.now();
  await mkdir(o.cacheDir, { recursive: true });
  const path = join(o.cacheDir, `mixture-${train.name}-n${train.n}-K${o.components}-r${o.rank}.safetensors`);
  // The cache is trusted only when its sha256 sidecar matches; anything else is refitted.
  const digestPath = `${path}.sha256`;
  let params;
  let cached = false;
  if (await exists(path)) {
    try {
      const [bytes, digest] = await Promise.all([readFile(path), readFile(digestPath, 'utf8')]);
      if (sha256Hex(bytes) === digest.trim()) {
        params = await loadMixture(path);
        cached = true;
      }
    } catch {
      params = undefined;
    }
  }
  if (!params) {
    const shape = { channels: train.channels, height: train.height, width: train.width };
    try {
      params = await fitMixtureTeacher(train.images, train.labels, {
        shape, numClasses: train.numClasses, componentsPerClass: o.components, rank: o.rank, seed: 0, threads: o.threads, onGroup: o.onFitGroup,
      });
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(`--teacher-components ${o.components} --teacher-rank ${o.rank}: ${e.message}`);
      throw e;
    }
    await saveMixture(params, path);
    await writeFileAtomic(digestPath, `${sha256Hex(await readFile(path))}\n`);
  }
  const denoiser = await MixtureDenoiser.create(params, { threads: o.threads });
  return { denoiser, kind: 'mixture', cached, fitSeconds: (performance.now() - t0) / 1000 };
}
