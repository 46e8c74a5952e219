/**
 * Flat parameter storage: every tensor of a model lives in one Float32Array (so AdamW and EMA are
 * single loops over flat arrays), with a named, shaped view per parameter.
 */
import { Rng } from '../util/rng.js';
import type { ParamSpec } from '../get/model.js';

export class ParamStore {
  /** All parameters, concatenated in spec order, float32. */
  readonly flat: Float32Array;
  readonly offsets: ReadonlyMap<string, { offset: number; size: number; shape: readonly number[] }>;

  constructor(
    readonly specs: readonly ParamSpec[],
    flat?: Float32Array,
  ) {
    const offsets = new Map<string, { offset: number; size: number; shape: readonly number[] }>();
    let n = 0;
    for (const s of specs) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      offsets.set(s.name, { offset: n, size, shape: s.shape });
      n += size;
    }
    if (flat && flat.length !== n) throw new Error(`ParamStore: expected ${n} values, got ${flat.length}`);
    this.flat = flat ?? new Float32Array(n);
    this.offsets = offsets;
  }

  get size(): number {
    return this.flat.length;
  }

  /** The view of one parameter (shares memory with `flat`). @throws for an unknown name. */
  view(name: string): Float32Array {
    const o = this.offsets.get(name);
    if (!o) throw new Error(`ParamStore: no parameter named ${name}`);
    return this.flat.subarray(o.offset, o.offset + o.size);
  }

  /**
   * The first non-finite value (NaN or ±Infinity) in declaration order, with its parameter and index;
   * null when every value is finite.
   */
  firstNonFinite(): { name: string; index: number; value: number } | null {
    const f = this.flat;
    for (let i = 0; i < f.length; i++) {
      if (Number.isFinite(f[i])) continue;
      for (const [name, o] of this.offsets)
        if (i >= o.offset && i < o.offset + o.size) return { name, index: i - o.offset, value: f[i] };
    }
    return null;
  }

  /** A copy with its own memory. */
  clone(): ParamStore {
    return new ParamStore(this.specs, this.flat.slice());
  }
}

/**
 * Initialises parameters as the reference does (get-reference.md §2.6): Xavier-uniform weights
 * (limit √(6/(fan_in+fan_out))), zero biases, LayerNorm 1/0, class table N(0, 0.02²), zero decoder.
 * Deterministic in `seed`.
 */
export function initParams(specs: readonly ParamSpec[], seed: number): ParamStore {
  const store = new ParamStore(specs);
  const rng = new Rng(seed);
  for (const s of specs) {
    const v = store.view(s.name);
    const init = s.init;
    if (init.kind === 'ones') v.fill(1);
    else if (init.kind === 'normal') rng.fillNormal(v, init.std);
    else if (init.kind === 'xavier') {
      const a = Math.sqrt(6 / (init.fanIn + init.fanOut));
      for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * a;
    }
  }
  return store;
}
