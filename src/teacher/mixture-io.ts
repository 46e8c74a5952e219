/**
 * Mixture-teacher parameters on disk: one safetensors file (float64 tensors `weights` [G, K],
 * `means` [G, K, P], `factors` [G, K, r, P], `psi` [G, K, P]; metadata `format` and `config` (JSON of
 * `MixtureConfig`)), stored as one object through the object store (atomic: absent or complete).
 */
import { decodeSafetensors, encodeSafetensors } from '../data/safetensors.js';
import type { TensorData } from '../graph/ir.js';
import type { ObjectStore } from '../store/types.js';
import { type MixtureConfig, type MixtureParams, groupCount, validateMixture } from './mixture-params.js';

/** `format` metadata value of a mixture-teacher file. */
export const MIXTURE_FORMAT = 'get-distill/mixture-teacher@1';

/**
 * Writes the parameters as the object `uri` of `store`; returns the bytes written (for their digest).
 * @throws RangeError when the parameters are inconsistent; StoreError naming the URI when the write fails.
 */
export async function saveMixture(params: MixtureParams, store: ObjectStore, uri: string): Promise<Uint8Array> {
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
  await store.put(uri, bytes);
  return bytes;
}

/**
 * Reads parameters written by `saveMixture` from the object `path` of `store`.
 * @throws StoreError when it cannot be read; Error `<path>: ...` when it is not a mixture-teacher
 *   safetensors file, a tensor is missing or not float64, or the parameters are inconsistent.
 */
export async function loadMixture(store: ObjectStore, path: string): Promise<MixtureParams> {
  return decodeMixture(await store.get(path), path);
}

/**
 * Parses mixture-teacher bytes (as written by `saveMixture`); `path` names them in errors.
 * @throws Error `<path>: ...` as loadMixture.
 */
export function decodeMixture(bytes: Uint8Array, path: string): MixtureParams {
  const st = decodeSafetensors(bytes, path);
  if (st.metadata.format !== MIXTURE_FORMAT) {
    throw new Error(
      `${path}: not a mixture-teacher file (metadata format ` +
        `${JSON.stringify(st.metadata.format)}, expected ${MIXTURE_FORMAT})`,
    );
  }
  let config: MixtureConfig;
  try {
    config = JSON.parse(st.metadata.config ?? '') as MixtureConfig;
  } catch (e) {
    throw new Error(`${path}: metadata 'config' is not JSON (${(e as Error).message})`, { cause: e });
  }
  const get = (name: string): Float64Array => {
    const x = st.tensors[name];
    if (!x || !(x.data instanceof Float64Array)) throw new Error(`${path}: tensor '${name}' is missing or not F64`);
    return x.data;
  };
  const params: MixtureParams = {
    config,
    weights: get('weights'),
    means: get('means'),
    factors: get('factors'),
    psi: get('psi'),
  };
  try {
    validateMixture(params);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
  return params;
}
