/**
 * A float64 reference interpreter of the graph IR: plain TypeScript loops over row-major arrays, one
 * kernel per op (each in its op's file under ops/, looked up in ops/registry.ts), following ONNX
 * opset-17 semantics (onnx/docs/Operators.md). Every float value (float32 or float64 in the graph) is
 * computed in float64 without rounding, so this is the exact-arithmetic oracle for onnxruntime's
 * forward pass and for finite-difference gradient checks. It also checks each node's result against
 * the shape the IR declared (a check of the shape rules).
 * Slow by design; use it on small graphs only.
 */
import { type Dim, type Graph, type Node, type TensorArray, type Value, fail, shapeStr } from './ir.js';
import { liveNodes } from './onnx.js';
import { type RefTensor, size, toRef } from './ops/core.js';
import { opDef } from './ops/registry.js';

export type { RefTensor } from './ops/core.js';
export { erfNumber as erf } from './ops/erf.js';

/**
 * A fed value: a tensor with dims (e.g. a session `HostTensor`), or bare data when the value's shape
 * fixes the dims.
 */
export type RefFeed = TensorArray | { readonly dims: readonly number[]; readonly data: TensorArray };

/** Feeds by input value or by input name. */
export type RefFeeds = ReadonlyMap<Value, RefFeed> | Readonly<Record<string, RefFeed>>;

/** Evaluates one node with its op's reference kernel; returns its outputs. */
function run(n: Node, ins: readonly (RefTensor | undefined)[]): RefTensor[] {
  const def = opDef(n.op);
  if (!def) return fail('reference', `op ${n.op} is not implemented (node output ${n.outputs[0].name})`);
  return def.reference(ins, n);
}

/** Checks actual dims against a declared shape, binding symbolic dims in `env` on first sight. */
function checkDims(v: Value, dims: readonly number[], env: Map<string, number>): void {
  const bad = () =>
    fail(
      'reference',
      `${v.name}: declared ${shapeStr(v.shape)} but computed ${shapeStr(dims)}` +
        (v.producer ? ` (op ${v.producer.op})` : ''),
    );
  if (dims.length !== v.shape.length) bad();
  v.shape.forEach((d: Dim, i) => {
    if (typeof d === 'number') {
      if (d !== -1 && d !== dims[i]) bad();
    } else if (env.has(d)) {
      if (env.get(d) !== dims[i]) bad();
    } else env.set(d, dims[i]);
  });
}

function feedTensor(v: Value, f: RefFeed): RefTensor {
  if ('dims' in f && !ArrayBuffer.isView(f)) return toRef(v.dtype, f.dims, f.data);
  const data = f as TensorArray;
  const syms = v.shape.filter((d) => typeof d !== 'number');
  if (syms.length > 1)
    fail('reference', `input ${v.name} ${shapeStr(v.shape)} has several symbolic dims; feed { dims, data }`);
  const known = v.shape.filter((d): d is number => typeof d === 'number').reduce((p, d) => p * d, 1);
  return toRef(
    v.dtype,
    v.shape.map((d) => (typeof d === 'number' ? d : data.length / known)),
    data,
  );
}

/**
 * Evaluates `outputs` of graph `g` in float64 (see the file comment).
 * @param feeds every graph input the outputs need, keyed by Value or by input name. Float data of any
 *   float array type is widened to float64; symbolic dims are bound from the fed dims.
 * @param params the value of each parameter the outputs need (Float64Array or Float32Array, row-major).
 * @returns one RefTensor per output, in order: floats as Float64Array, int64 as BigInt64Array, bool as Uint8Array.
 * @throws when a needed input is not fed, dims disagree with the declared shapes (naming the value),
 *   or an op is not implemented here.
 */
export function evaluate(
  g: Graph,
  feeds: RefFeeds,
  outputs: readonly Value[],
  params: (p: Value) => Float64Array | Float32Array,
): RefTensor[] {
  const env = new Map<string, number>();
  const vals = new Map<Value, RefTensor>();
  const byName = feeds instanceof Map ? undefined : (feeds as Readonly<Record<string, RefFeed>>);
  const nodes = liveNodes(g, outputs);
  const needed = new Set<Value>(outputs);
  for (const n of nodes) for (const x of n.inputs) needed.add(x);
  for (const v of g.inputs) {
    if (!needed.has(v)) continue;
    const f = byName ? byName[v.name] : (feeds as ReadonlyMap<Value, RefFeed>).get(v);
    if (!f) fail('reference', `input ${v.name} ${shapeStr(v.shape)} is not fed`);
    const t = feedTensor(v, f);
    checkDims(v, t.dims, env);
    vals.set(v, t);
  }
  for (const p of g.params) {
    if (!needed.has(p)) continue;
    const data = params(p);
    const t = toRef(p.dtype, p.shape as number[], data);
    if (t.data.length !== size(t.dims))
      fail('reference', `parameter ${p.name} ${shapeStr(p.shape)} has ${data.length} values`);
    vals.set(p, t);
  }
  for (const c of g.consts) if (needed.has(c) && c.data) vals.set(c, toRef(c.dtype, c.data.dims, c.data.data));
  for (const n of nodes) {
    const outs = run(
      n,
      n.inputs.map((x) => vals.get(x)),
    );
    n.outputs.forEach((o, i) => {
      checkDims(o, outs[i].dims, env);
      vals.set(o, outs[i]);
    });
  }
  return outputs.map((o) => vals.get(o) ?? fail('reference', `output ${o.name} was not computed`));
}
