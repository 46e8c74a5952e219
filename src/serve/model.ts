/**
 * Loading the served model: bytes through the object store (a path, file:///… or s3://bucket/key),
 * checked against the `get-distill/model@1` contract (src/get/export.ts) before any session exists.
 */
import { type ModelInfo, readModelInfo } from '../get/export.js';
import { parentUri, storeFor } from '../store/index.js';
import { UsageError } from '../util/errors.js';
import { sha256Hex } from '../util/fsutil.js';

/** A model ready to hand to the session pool. */
export interface LoadedModel {
  /** The name clients use (`/v2/models/{name}`). */
  readonly name: string;
  /** Version string: the first 12 hex digits of the file's sha256, so a version names immutable bytes. */
  readonly version: string;
  readonly uri: string;
  /** sha256 of model.onnx, lowercase hex (the model card's `sha256`). */
  readonly sha256: string;
  readonly bytes: Uint8Array;
  readonly info: ModelInfo;
  /** Seconds spent fetching the bytes. */
  readonly fetchSeconds: number;
}

/**
 * Fetches and checks a model.
 * @throws StoreError (a UsageError) when the object is missing or unreachable; UsageError
 *   `<uri>: …` when the bytes are not a GET Distill export.
 */
export async function loadModel(uri: string, name: string): Promise<LoadedModel> {
  const t0 = performance.now();
  const bytes = await storeFor(parentUri(uri)).get(uri);
  const fetchSeconds = (performance.now() - t0) / 1000;
  let info: ModelInfo;
  try {
    info = readModelInfo(bytes, uri);
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  const sha256 = sha256Hex(bytes);
  return { name, version: sha256.slice(0, 12), uri, sha256, bytes, info, fetchSeconds };
}
