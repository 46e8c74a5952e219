/**
 * The production teacher: an EDM-preconditioned network F in ONNX, run with onnxruntime-node.
 *
 *   D(x; σ, y) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ), y)
 *   c_skip = σ_d²/(σ² + σ_d²), c_out = σ·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼·ln σ,
 *   σ_d = 0.5. Source: Karras et al. 2022 (EDM) Table 1; NVlabs/edm training/networks.py `EDMPrecond`.
 *
 * Model I/O contract (checked at load):
 *   inputs  `x`            float32 [B, C, H, W]  the preconditioned input c_in·x
 *           `c_noise`      float32 [B]           ¼·ln σ per sample
 *           `class_labels` int64   [B]           class indices (conditional models only; an exporter folds
 *                                                  EDM's one-hot class input into the graph)
 *   output  `F`            float32 [B, C, H, W]  the raw network output F_θ
 * C, H, W must be static; B may be symbolic (any batch) or a fixed number (batches are then cut and padded
 * to it). The class count comes from the option `numClasses` or the model metadata key `num_classes`.
 */
import { createHash } from 'node:crypto';
import type { ObjectStore } from '../store/types.js';
import onnxProto from 'onnx-proto';
import { type Denoiser, type ImageShape, checkDenoiseArgs, sampleSize } from '../edm/denoiser.js';
import { resolveExecutionProviders } from '../graph/providers.js';
import { OrtSession, f32, i64 } from '../graph/session.js';

const { onnx } = onnxProto;
const DT = onnx.TensorProto.DataType;

export interface OnnxEdmTeacherOptions {
  /**
   * Classes of a conditional model (overrides metadata `num_classes`); must be absent or 0 for an unconditional one.
   */
  readonly numClasses?: number;
  /** σ_data of the preconditioning; default 0.5 (EDM). */
  readonly sigmaData?: number;
  /** Teacher id; default `onnx-edm-<first 12 hex of the model's sha256>`. */
  readonly id?: string;
  /** Largest batch per onnxruntime call (bounds memory); default: the whole batch (or the model's fixed batch). */
  readonly maxBatch?: number;
  readonly threads?: number;
  /**
   * onnxruntime execution providers, e.g. `['cuda', 'cpu']`; default GET_DISTILL_EXECUTION_PROVIDERS
   * (src/graph/providers.ts: `['cpu']` when unset; a failed GPU provider falls back to CPU).
   */
  readonly executionProviders?: readonly string[];
}

/** What `inspectEdmModel` finds in a model's signature. */
export interface EdmModelSignature {
  readonly shape: ImageShape;
  /** The fixed batch size of `x`, or null when the batch dim is symbolic. */
  readonly fixedBatch: number | null;
  readonly conditional: boolean;
  /** `num_classes` from the model metadata, when present. */
  readonly metadataClasses: number | null;
}

type Dims = (number | null)[];

function tensorSig(v: onnxProto.onnx.IValueInfoProto): { elem: number; dims: Dims } | null {
  const t = v.type?.tensorType;
  if (!t) return null;
  // dim_value and dim_param are a oneof; protobufjs puts defaults on the prototype, so test own properties.
  const dims = (t.shape?.dim ?? []).map((d) =>
    Object.hasOwn(d, 'dimValue') && d.dimValue != null ? Number(String(d.dimValue)) : null,
  );
  return { elem: t.elemType ?? 0, dims };
}

/**
 * Reads and checks the model's inputs and outputs against the contract above.
 * @throws Error `<source>: ...` naming the missing, extra or mistyped input/output and the expected form.
 */
export function inspectEdmModel(bytes: Uint8Array, source: string): EdmModelSignature {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${source}: not an ONNX model (${(e as Error).message})`, { cause: e });
  }
  const g = model.graph;
  if (!g) throw new Error(`${source}: ONNX model has no graph`);
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const inputs = new Map((g.input ?? []).filter((v) => !inits.has(v.name ?? '')).map((v) => [v.name ?? '', v]));
  const outputs = new Map((g.output ?? []).map((v) => [v.name ?? '', v]));
  const expect = (
    where: Map<string, onnxProto.onnx.IValueInfoProto>,
    kind: string,
    name: string,
    elem: number,
    rank: number,
    form: string,
  ) => {
    const v = where.get(name);
    if (!v)
      throw new Error(
        `${source}: the model has no ${kind} '${name}' (${form}); it has ${kind}s ` +
          `[${[...where.keys()].join(', ')}]. Export the EDM network with the I/O names of ` +
          `src/teacher/onnx-teacher.ts`,
      );
    const s = tensorSig(v);
    if (!s || s.elem !== elem || s.dims.length !== rank) {
      throw new Error(
        `${source}: ${kind} '${name}' must be ${form}, got elem type ` +
          `${s ? onnx.TensorProto.DataType[s.elem] : 'non-tensor'} rank ${s ? s.dims.length : '?'}`,
      );
    }
    return s.dims;
  };
  const xd = expect(inputs, 'input', 'x', DT.FLOAT, 4, 'float32 [B, C, H, W]');
  const nd = expect(inputs, 'input', 'c_noise', DT.FLOAT, 1, 'float32 [B]');
  const conditional = inputs.has('class_labels');
  if (conditional) expect(inputs, 'input', 'class_labels', DT.INT64, 1, 'int64 [B]');
  const extra = [...inputs.keys()].filter((n) => !['x', 'c_noise', 'class_labels'].includes(n));
  if (extra.length)
    throw new Error(
      `${source}: unexpected model inputs [${extra.join(', ')}]; only x, c_noise and class_labels are fed`,
    );
  const fd = expect(outputs, 'output', 'F', DT.FLOAT, 4, 'float32 [B, C, H, W]');
  const [, C, H, W] = xd;
  if (C === null || H === null || W === null || C < 1 || H < 1 || W < 1) {
    throw new Error(`${source}: input 'x' needs static C, H, W, got [${xd.map((d) => d ?? '?').join(', ')}]`);
  }
  for (let i = 1; i < 4; i++) {
    if (fd[i] !== null && fd[i] !== xd[i])
      throw new Error(
        `${source}: output 'F' [${fd.map((d) => d ?? '?').join(', ')}] does not match input 'x' [${xd.join(', ')}]`,
      );
  }
  const fixedBatch = xd[0];
  if (fixedBatch !== null && nd[0] !== null && nd[0] !== fixedBatch)
    throw new Error(`${source}: 'c_noise' batch ${nd[0]} differs from 'x' batch ${fixedBatch}`);
  const meta = (model.metadataProps ?? []).find((p) => p.key === 'num_classes')?.value;
  const metadataClasses = meta != null && /^\d+$/.test(meta) ? Number(meta) : null;
  return { shape: { channels: C, height: H, width: W }, fixedBatch, conditional, metadataClasses };
}

/** `Denoiser` over an EDM-preconditioned ONNX network. Create with `OnnxEdmTeacher.load` or `fromBytes`. */
export class OnnxEdmTeacher implements Denoiser {
  private constructor(
    readonly id: string,
    readonly shape: ImageShape,
    readonly numClasses: number,
    readonly sigmaData: number,
    private readonly session: OrtSession,
    private readonly chunk: number,
    private readonly fixedBatch: number | null,
  ) {}

  /**
   * Loads the model object `uri` (a path, file:// or s3:// URI) from `store` (the caller opens it, e.g.
   * `storeFor(parentUri(uri))`: the model core never picks a store backend).
   * @throws StoreError naming the URI when it cannot be read; Error when it breaks the I/O contract.
   */
  static async load(store: ObjectStore, uri: string, opts: OnnxEdmTeacherOptions = {}): Promise<OnnxEdmTeacher> {
    return OnnxEdmTeacher.fromBytes(await store.get(uri), opts, uri);
  }

  /** Builds the teacher from model bytes; `source` names the model in errors. */
  static async fromBytes(
    bytes: Uint8Array,
    opts: OnnxEdmTeacherOptions = {},
    source = 'onnx teacher',
  ): Promise<OnnxEdmTeacher> {
    const sig = inspectEdmModel(bytes, source);
    const numClasses = opts.numClasses ?? sig.metadataClasses ?? (sig.conditional ? -1 : 0);
    if (sig.conditional && !(numClasses > 0)) {
      throw new Error(
        `${source}: the model takes class_labels but the class count is unknown; pass numClasses or set ` +
          `model metadata num_classes`,
      );
    }
    if (!sig.conditional && numClasses !== 0)
      throw new Error(
        `${source}: numClasses ${numClasses} given, but the model has no class_labels input (unconditional)`,
      );
    const sigmaData = opts.sigmaData ?? 0.5;
    if (!(sigmaData > 0)) throw new RangeError(`${source}: sigmaData must be > 0, got ${sigmaData}`);
    // Resolved outside the try: a bad GET_DISTILL_EXECUTION_PROVIDERS stays a UsageError (exit 2).
    const executionProviders = opts.executionProviders ?? resolveExecutionProviders();
    let session: OrtSession;
    try {
      session = await OrtSession.create(bytes, { threads: opts.threads, executionProviders });
    } catch (e) {
      throw new Error(`${source}: onnxruntime rejected the model (${(e as Error).message})`, { cause: e });
    }
    const id = opts.id ?? `onnx-edm-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}`;
    if (opts.maxBatch !== undefined && !(Number.isInteger(opts.maxBatch) && opts.maxBatch > 0)) {
      throw new RangeError(`OnnxEdmTeacher: maxBatch must be a positive integer, got ${opts.maxBatch}`);
    }
    const chunk = sig.fixedBatch ?? opts.maxBatch ?? Infinity;
    return new OnnxEdmTeacher(id, sig.shape, numClasses, sigmaData, session, chunk, sig.fixedBatch);
  }

  /** D(x; σ, y) for float64 x [batch, C, H, W]; F runs in float32. See `Denoiser.denoise`. */
  async denoise(x: Float64Array, sigma: number, labels: Int32Array | null, batch: number): Promise<Float64Array> {
    checkDenoiseArgs(this, x, sigma, labels, batch);
    const P = sampleSize(this.shape);
    const sd2 = this.sigmaData ** 2;
    const s2 = sigma * sigma;
    const cSkip = sd2 / (s2 + sd2);
    const cOut = (sigma * this.sigmaData) / Math.sqrt(s2 + sd2);
    const cIn = 1 / Math.sqrt(s2 + sd2);
    const cNoise = Math.log(sigma) / 4;
    const out = new Float64Array(x.length);
    const { channels: C, height: H, width: W } = this.shape;
    for (let start = 0; start < batch; start += this.chunk) {
      const n = Math.min(this.chunk, batch - start);
      const nFeed = this.fixedBatch ?? n; // a fixed-batch model gets the last chunk zero-padded
      const xin = new Float32Array(nFeed * P);
      for (let j = 0; j < n * P; j++) xin[j] = cIn * x[start * P + j];
      const feeds: Record<string, ReturnType<typeof f32>> = {
        x: f32([nFeed, C, H, W], xin),
        c_noise: f32([nFeed], new Float32Array(nFeed).fill(cNoise)),
      };
      if (this.numClasses > 0) {
        const y = new BigInt64Array(nFeed);
        for (let i = 0; i < n; i++) y[i] = BigInt(labels![start + i]);
        feeds.class_labels = i64([nFeed], y);
      }
      const F = (await this.session.run(feeds, ['F'])).F.data as Float32Array;
      if (F.length !== nFeed * P)
        throw new Error(`${this.id}: output 'F' has ${F.length} values, expected ${nFeed * P}`);
      for (let j = 0; j < n * P; j++) out[start * P + j] = cSkip * x[start * P + j] + cOut * F[j];
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
