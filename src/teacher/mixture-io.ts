/**
 * Mixture-teacher parameters on disk: one safetensors file (float64 tensors `weights` [G, K],
 * `means` [G, K, P], `factors` [G, K, r, P], `psi` [G, K, P]; metadata `format` and `config` (JSON of
 * `MixtureConfig`)). Written to a temporary name and renamed, so a reader never sees a partial file.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeSafetensors, encodeSafetensors } from '../data/safetensors.js';
import type { TensorData } from '../graph/ir.js';
import { type MixtureConfig, type MixtureParams, groupCount, validateMixture } from './mixture-params.js';

/** `format` metadata value of a mixture-teacher file. */
export const MIXTURE_FORMAT = 'get-distill/mixture-teacher@1';

/**
 * Writes the parameters to `path` (parent folders are created).
 * @throws RangeError when the parameters are inconsistent; file-system errors name the path.
 */
export async function saveMixture(params: MixtureParams, path: string): Promise<void> {
  validateMixture(params);
  const c = params.config;
  const G = groupCount(c);
  const K = c.components;
  const P = c.shape.channels * c.shape.height * c.shape.width;
  const t = (dims: number[], data: Float64Array): TensorData => ({ dtype: 'float64', dims, data });
  const bytes = encodeSafetensors(
    {
      weights: t([G, K], params.weights),
      means: t([G, K, P], params.means),
      factors: t([G, K, c.rank, P], params.factors),
      psi: t([G, K, P], params.psi),
    },
    { format: MIXTURE_FORMAT, config: JSON.stringify(c) },
  );
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

/**
 * Reads parameters written by `saveMixture`.
 * @throws Error `<path>: ...` when the file is not a mixture-teacher safetensors file, a tensor is
 *   missing or not float64, or the parameters are inconsistent.
 */
export async function loadMixture(path: string): Promise<MixtureParams> {
  const st = decodeSafetensors(new Uint8Array(await readFile(path)), path);
  if (st.metadata.format !== MIXTURE_FORMAT) {
    throw new Error(`${path}: not a mixture-teacher file (metadata format ${JSON.stringify(st.metadata.format)}, expected ${MIXTURE_FORMAT})`);
  }
  let config: MixtureConfig;
  try {
    config = JSON.parse(st.metadata.config ?? '') as MixtureConfig;
  } catch (e) {
    throw new Error(`${path}: metadata 'config' is not JSON (${(e as Error).message})`);
  }
  const get = (name: string): Float64Array => {
    const x = st.tensors[name];
    if (!x || !(x.data instanceof Float64Array)) throw new Error(`${path}: tensor '${name}' is missing or not F64`);
    return x.data;
  };
  const params: MixtureParams = { config, weights: get('weights'), means: get('means'), factors: get('factors'), psi: get('psi') };
  try {
    validateMixture(params);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  return params;
}
