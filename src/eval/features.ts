/**
 * Feature networks for FID, IS and precision/recall: the embedded MNIST / Fashion-MNIST classifiers
 * (src/eval/feature-net.ts), or any ONNX image network given by URI with the name of the layer whose
 * activations are the features (e.g. an Inception-v3 export's pool3, 2,048-d, with a 299×299 bilinear
 * resize, as pytorch-fid does).
 *
 * Images enter as the samplers make them (float32 [n, C, H, W], about [−1, 1]) and are quantised the
 * way GET evaluates (get-reference.md §7): u8 = clip(⌊x·127.5 + 128⌋, 0, 255) in float32 (toUint8),
 * v = u8 / 255, then mapped to the network's input range, channel-replicated (1 → 3) and bilinearly
 * resized when it asks for it.
 */
import onnxProto from 'onnx-proto';
import { toUint8 } from '../data/png.js';
import type { ImageShape } from '../edm/denoiser.js';
import { readOnnxSignature } from '../graph/onnx-inspect.js';
import { OrtSession } from '../graph/session.js';
import { UsageError } from '../util/errors.js';
import { sha256Hex } from '../util/fsutil.js';
import { EMBEDDED_FEATURE_NETS, type FeatureNetDataset, embeddedFeatureNet } from './feature-net.js';

const { onnx } = onnxProto;

/** A feature network ready to load: ONNX bytes and how to read it. */
export interface FeatureNetSpec {
  /** Short id used in reports and metric labels (`mnist`, or the URI plus `#layer`). */
  readonly id: string;
  readonly onnx: Uint8Array;
  /** Graph value whose activations are the features ([B, F] or [B, F, 1, 1] …, flattened per sample). */
  readonly featuresOutput: string;
  /** Graph value with class logits [B, K] for the Inception Score; absent: IS is not computed. */
  readonly logitsOutput?: string;
  /** Input value range the network expects, [lo, hi] (the embedded ones: [0, 1]). */
  readonly range: readonly [number, number];
}

/** Options of {@link resolveFeatureNet} (the CLI's --features, --layer, --logits-layer, --input-range). */
export interface FeatureNetOptions {
  /** `mnist`, `fashion-mnist` (embedded: {@link EMBEDDED_FEATURE_NETS}) or the URI of an ONNX network. */
  readonly features: string;
  /** For a URI: the layer (graph value name) to take features from. */
  readonly layer?: string;
  /** For a URI: the layer with class logits, for the Inception Score. */
  readonly logitsLayer?: string;
  /** For a URI: the input range, default [0, 1] (pytorch-fid's Inception takes [0, 1] and rescales inside). */
  readonly range?: readonly [number, number];
}

/** Whether --features names an embedded network (a dataset) rather than the URI of an ONNX network. */
export const isEmbeddedFeatureNet = (features: string): features is FeatureNetDataset =>
  (EMBEDDED_FEATURE_NETS as readonly string[]).includes(features);

/**
 * Resolves --features: an embedded network by dataset name, or an ONNX network given by URI whose
 * `layer` (any value the graph computes, not only its outputs) is exposed as an extra output. The
 * caller reads a URI's ONNX `bytes` (the eval stage opens the store: the model core picks no backend).
 * @throws UsageError when the network is not ONNX, has no such layer (the message lists the graph's
 *   outputs and a few layer names), or --layer is missing for a URI / given for an embedded net.
 * @throws Error (a caller's bug) when `features` is a URI and `bytes` are missing.
 */
export async function resolveFeatureNet(o: FeatureNetOptions, bytes?: Uint8Array): Promise<FeatureNetSpec> {
  if (isEmbeddedFeatureNet(o.features)) {
    if (o.layer || o.logitsLayer || o.range)
      throw new UsageError(
        '--layer / --logits-layer / --input-range apply to an ONNX network given by URI, ' +
          `not to the embedded --features ${o.features}`,
      );
    const net = await embeddedFeatureNet(o.features);
    return {
      id: o.features,
      onnx: net.onnx,
      featuresOutput: net.card.outputs.features.name,
      logitsOutput: net.card.outputs.logits.name,
      range: [0, 1],
    };
  }
  if (bytes === undefined) throw new Error(`resolveFeatureNet(${o.features}): the network's ONNX bytes are required`);
  if (!o.layer)
    throw new UsageError(
      `--features ${o.features}: give --layer <name> (the graph value to take features from), ` +
        `or use an embedded network: ${EMBEDDED_FEATURE_NETS.join(', ')}`,
    );
  const exposed = exposeLayers(bytes, o.features, [o.layer, ...(o.logitsLayer ? [o.logitsLayer] : [])]);
  return {
    id: `${o.features}#${o.layer}`,
    onnx: exposed,
    featuresOutput: o.layer,
    ...(o.logitsLayer ? { logitsOutput: o.logitsLayer } : {}),
    range: o.range ?? [0, 1],
  };
}

/**
 * Adds graph values as graph outputs (onnxruntime returns only graph outputs; an untyped output
 * value-info is allowed and its type is inferred).
 * @throws UsageError naming the layer and listing some that exist when a name is not in the graph.
 */
export function exposeLayers(bytes: Uint8Array, source: string, layers: readonly string[]): Uint8Array {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new UsageError(`--features ${source}: not an ONNX model (${(e as Error).message})`);
  }
  const g = model.graph;
  if (!g) throw new UsageError(`--features ${source}: not an ONNX model (no graph)`);
  const outputs = new Set((g.output ?? []).map((v) => v.name ?? ''));
  const values = new Set((g.node ?? []).flatMap((n) => n.output ?? []));
  for (const layer of layers) {
    if (outputs.has(layer)) continue;
    if (!values.has(layer)) {
      const some = [...new Set([...outputs, ...[...values].slice(-8)])].slice(0, 12);
      throw new UsageError(
        `--features ${source}: no layer named '${layer}' in the graph; outputs and some layers: ${some.join(', ')}`,
      );
    }
    g.output = [...(g.output ?? []), onnx.ValueInfoProto.create({ name: layer })];
    outputs.add(layer);
  }
  return onnx.ModelProto.encode(model).finish();
}

/** Features (and logits) of n images. */
export interface FeatureBatch {
  readonly n: number;
  /** float32 [n, dim]. */
  readonly features: Float32Array;
  /** float32 [n, classes], or null when the network has no logits layer. */
  readonly logits: Float32Array | null;
}

/** A loaded feature network. */
export class FeatureExtractor {
  private constructor(
    readonly spec: FeatureNetSpec,
    private readonly session: OrtSession,
    private readonly inputName: string,
    /** The network's input [C, H, W] (static dims; a dynamic one takes the image's size). */
    private readonly inputDims: readonly (number | string)[],
    /** Feature dimension (flattened), known after a first run. */
    public dim: number,
    public classes: number,
  ) {}

  /** sha256 of the network's ONNX bytes as given (before layers were exposed). */
  get sha256(): string {
    return sha256Hex(this.spec.onnx);
  }

  /**
   * Loads the network and runs it once on a blank image of `shape` to learn the feature dimension.
   * @throws UsageError when the network's input is not an image tensor [B, C, H, W] this shape can be
   *   fed to (channels must match or be 1 → 3), or the layers do not compute per-sample values.
   */
  static async create(spec: FeatureNetSpec, shape: ImageShape, threads?: number): Promise<FeatureExtractor> {
    const sig = readOnnxSignature(spec.onnx, spec.id);
    if (sig.inputs.length !== 1 || sig.inputs[0].dims.length !== 4 || sig.inputs[0].dtype !== 'float32') {
      throw new UsageError(
        `--features ${spec.id}: expected one float32 image input [B, C, H, W], found ${JSON.stringify(sig.inputs)}`,
      );
    }
    const input = sig.inputs[0];
    const C = input.dims[1];
    if (typeof C === 'number' && C !== shape.channels && !(shape.channels === 1 && C === 3)) {
      throw new UsageError(
        `--features ${spec.id}: the network takes ${C}-channel images, the samples have ${shape.channels} channels`,
      );
    }
    let session: OrtSession;
    try {
      session = await OrtSession.create(spec.onnx, { threads });
    } catch (e) {
      throw new UsageError(
        `--features ${spec.id}: onnxruntime cannot load it (${(e as Error).message.split('\n')[0]})`,
      );
    }
    const x = new FeatureExtractor(spec, session, input.name, input.dims.slice(1), 0, 0);
    const probe = await x.extract(new Float32Array(2 * shape.channels * shape.height * shape.width), 2, shape);
    x.dim = probe.features.length / 2;
    x.classes = probe.logits ? probe.logits.length / 2 : 0;
    return x;
  }

  /**
   * @param images float32 [n, C, H, W] in about [−1, 1] (clipped by the quantisation).
   * @throws UsageError when the layer's output does not have n rows (not a per-sample layer).
   *   Non-finite values are caught later, by featureStats (naming the sample and feature).
   */
  async extract(images: Float32Array, n: number, shape: ImageShape): Promise<FeatureBatch> {
    const [c, h, w] = this.inputDims.map((d, i) =>
      typeof d === 'number' ? d : [shape.channels, shape.height, shape.width][i],
    );
    const data = preprocess(images, n, shape, { channels: c, height: h, width: w }, this.spec.range);
    const names = [this.spec.featuresOutput, ...(this.spec.logitsOutput ? [this.spec.logitsOutput] : [])];
    let out;
    try {
      out = await this.session.run({ [this.inputName]: { dtype: 'float32', dims: [n, c, h, w], data } }, names);
    } catch (e) {
      throw new UsageError(`--features ${this.spec.id}: running it failed (${(e as Error).message.split('\n')[0]})`);
    }
    const rows = (name: string) => {
      const t = out[name];
      if (t.dtype !== 'float32' || t.dims[0] !== n || t.data.length % n !== 0) {
        throw new UsageError(
          `--features ${this.spec.id}: layer '${name}' gives ${t.dtype} ${JSON.stringify(t.dims)}, ` +
            `not float32 values per sample for a batch of ${n}; ` +
            'pick a layer after the batch dimension is fixed (e.g. a pooled or flattened one)',
        );
      }
      return t.data as Float32Array;
    };
    return {
      n,
      features: rows(this.spec.featuresOutput),
      logits: this.spec.logitsOutput ? rows(this.spec.logitsOutput) : null,
    };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The evaluation's image preprocessing: EDM/GET quantisation to u8 (toUint8, round half up), /255, the affine
 * map to `range`, 1 → 3 channel replication, and a bilinear resize with half-pixel centres (PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False)`, which pytorch-fid uses for 299×299).
 * @param images float32 [n, C, H, W]; @returns float32 [n, to.channels, to.height, to.width].
 */
export function preprocess(
  images: Float32Array,
  n: number,
  from: ImageShape,
  to: ImageShape,
  range: readonly [number, number],
): Float32Array {
  const { channels: C, height: H, width: W } = from;
  const [lo, hi] = range;
  const scale = (hi - lo) / 255;
  const u8 = toUint8(images.subarray(0, n * C * H * W));
  const q = new Float32Array(u8.length);
  for (let i = 0; i < q.length; i++) q[i] = lo + u8[i] * scale;
  if (to.height === H && to.width === W && to.channels === C) return q;
  const out = new Float32Array(n * to.channels * to.height * to.width);
  const sy = H / to.height;
  const sx = W / to.width;
  // Source coordinate of each output pixel centre, clamped at the border.
  const taps = (size: number, s: number, src: number) =>
    Array.from({ length: size }, (_, o) => {
      const f = Math.max(0, (o + 0.5) * s - 0.5);
      const i0 = Math.min(Math.floor(f), src - 1);
      return { i0, i1: Math.min(i0 + 1, src - 1), t: f - i0 };
    });
  const ys = taps(to.height, sy, H);
  const xs = taps(to.width, sx, W);
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < to.channels; c++) {
      const src = (b * C + (C === to.channels ? c : 0)) * H * W;
      const dst = (b * to.channels + c) * to.height * to.width;
      for (let y = 0; y < to.height; y++) {
        const { i0: y0, i1: y1, t: ty } = ys[y];
        for (let x = 0; x < to.width; x++) {
          const { i0: x0, i1: x1, t: tx } = xs[x];
          const top = q[src + y0 * W + x0] * (1 - tx) + q[src + y0 * W + x1] * tx;
          const bottom = q[src + y1 * W + x0] * (1 - tx) + q[src + y1 * W + x1] * tx;
          out[dst + y * to.width + x] = top * (1 - ty) + bottom * ty;
        }
      }
    }
  }
  return out;
}
