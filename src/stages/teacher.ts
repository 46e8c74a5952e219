/**
 * The teacher stage: the embedded Gaussian-mixture teacher fitted to a dataset's training split
 * (cached on disk, keyed by dataset and fit options), or an EDM-preconditioned ONNX network.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageDataset } from '../data/datasets.js';
import type { Denoiser } from '../edm/denoiser.js';
import { MixtureDenoiser, fitMixtureTeacher, loadMixture, saveMixture } from '../teacher/mixture.js';
import { OnnxEdmTeacher } from '../teacher/onnx-teacher.js';
import { UsageError } from '../util/errors.js';

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
  let params;
  let cached = false;
  if (await exists(path)) {
    try {
      params = await loadMixture(path);
      cached = true;
    } catch {
      params = undefined; // a corrupt cache is refitted and rewritten
    }
  }
  if (!params) {
    const shape = { channels: train.channels, height: train.height, width: train.width };
    params = await fitMixtureTeacher(train.images, train.labels, {
      shape, numClasses: train.numClasses, componentsPerClass: o.components, rank: o.rank, seed: 0, threads: o.threads, onGroup: o.onFitGroup,
    });
    await saveMixture(params, path);
  }
  const denoiser = await MixtureDenoiser.create(params, { threads: o.threads });
  return { denoiser, kind: 'mixture', cached, fitSeconds: (performance.now() - t0) / 1000 };
}
