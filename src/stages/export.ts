/**
 * The export stage (checkpoint → model.onnx + model.json, DATA CONTRACT `get-distill/model@1`,
 * docs/data-contracts.md §11): loads a checkpoint's EMA weights, builds the one-step inference model
 * from the same GET definition as training (src/get/export.ts), validates it structurally and by
 * running it at two batch sizes (validateOnnx), then writes `model.onnx` and, last, the model card
 * `model.json` through the object store.
 */
import { type ModelCard, exportModel } from '../get/export.js';
import { paramSpecs } from '../get/model.js';
import { validateOnnx } from '../graph/onnx-inspect.js';
import { type ObjectStore, joinUri, storeFor } from '../store/index.js';
import { type Checkpoint, hasCheckpoint, loadCheckpoint, loadLatestCheckpoint } from '../train/checkpoint.js';
import { UsageError } from '../util/errors.js';

export interface ExportOptions {
  /**
   * URI of a checkpoint folder (its `latest.json` names the checkpoint) or of one
   * `checkpoint-<step>.safetensors` object: a plain path, file:// or s3://.
   */
  readonly checkpoint: string;
  /** Folder URI that receives `model.onnx` and `model.json` (existing ones are replaced atomically). */
  readonly out: string;
  /** Timestamp for the card (ISO 8601); default now. */
  readonly createdAt?: string;
}

export interface ExportResult {
  readonly modelUri: string;
  readonly cardUri: string;
  readonly card: ModelCard;
}

/**
 * Loads the checkpoint at `uri`: the object itself when one exists there, else the folder's
 * latest.json. Parameter specs come from the checkpoint's own config.
 * @throws UsageError naming the URI when there is no checkpoint, it is not one, or it is corrupt.
 */
async function readCheckpoint(store: ObjectStore, uri: string): Promise<Checkpoint> {
  const specs = (state: Checkpoint['state']) => paramSpecs(state.config);
  if ((await store.head(uri)) !== null) {
    if (!uri.endsWith('.safetensors')) {
      throw new UsageError(
        `${uri}: not a checkpoint (checkpoints are checkpoint-<step>.safetensors objects); give one of them, ` +
          `or the folder that holds latest.json`,
      );
    }
    return loadCheckpoint(store, uri, specs);
  }
  if (!(await hasCheckpoint(store, uri))) {
    throw new UsageError(
      `${uri}: no checkpoint there (neither a checkpoint-*.safetensors object nor a folder with ` +
        `latest.json); give a run's checkpoints folder, e.g. runs/distill/checkpoints`,
    );
  }
  return loadLatestCheckpoint(store, uri, specs);
}

/**
 * Exports a checkpoint's EMA weights as `<out>/model.onnx` (opset 17, batch dim `batch`, the
 * checkpoint's fixed-point iteration count unrolled) and writes the model card `<out>/model.json`
 * after it, so a card always describes a complete model.
 * @returns the two URIs and the card (sha256 and size of model.onnx, step, data digest …).
 * @throws UsageError (StoreError included) for a missing, foreign or corrupt checkpoint, a bad URI or
 *   a failed write; Error when the built model fails validation (a bug, not bad input).
 */
export async function exportStage(o: ExportOptions): Promise<ExportResult> {
  const ck = await readCheckpoint(storeFor(o.checkpoint), o.checkpoint);
  const { config, iterations, step, dataManifestSha256 } = ck.state;
  const bad = ck.ema.firstNonFinite();
  if (bad)
    throw new UsageError(
      `${o.checkpoint}: the EMA weight ${bad.name}[${bad.index}] of step ${step} is ${bad.value}, so its model ` +
        'would serve non-finite images; export an earlier checkpoint-*.safetensors of the run',
    );
  const { onnx, card } = exportModel(config, (name) => ck.ema.view(name), {
    iterations,
    step,
    dataManifestSha256,
    createdAt: o.createdAt,
  });
  const modelUri = joinUri(o.out, 'model.onnx');
  const cardUri = joinUri(o.out, 'model.json');
  await validateOnnx(onnx, modelUri);
  const out = storeFor(o.out);
  await out.put(modelUri, onnx);
  await out.put(cardUri, new TextEncoder().encode(`${JSON.stringify(card, null, 2)}\n`));
  return { modelUri, cardUri, card };
}
