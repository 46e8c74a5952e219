/**
 * Open Inference Protocol v2 REST routes (kserve/open-inference-protocol `inference_rest.md`):
 * health, server and model metadata, model readiness and JSON inference. The optional
 * `/versions/{version}` segment is served too (the version is the model's short sha256).
 */
import { createRequire } from 'node:module';
import type { Request, Response } from 'express';
import type { RouteKit } from '../service/app.js';
import type { Engine } from './engine.js';
import { checkModelName, checkModelVersion, parseInferRequest, tensorMetadata } from './oip.js';

/** What routes need from the service. */
export interface ServeContext {
  /** Name clients use for the model (known before it loads). */
  readonly modelName: string;
  readonly maxBatchSize: number;
  readonly maxImagesPerRequest: number;
  /** The engine when ready. @throws HttpError 503 (not ready / draining) otherwise. */
  engine(): Engine;
}

const SERVER = {
  name: 'get-distill',
  version: (createRequire(import.meta.url)('../../package.json') as { version: string }).version,
};

/** Aborts when the client goes away before its response is sent (so a queued request is dropped). */
export function clientGone(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

const param = (req: Request, k: string): string | undefined => (req.params as Record<string, string | undefined>)[k];

export function mountOipRoutes(kit: RouteKit, ctx: ServeContext): void {
  const { state } = kit;
  const MODEL = '/v2/models/:name{/versions/:version}';

  kit.route('/v2/health/live', { get: (_req, res) => void res.json({ live: true }) });
  kit.route('/v2/health/ready', {
    get: (_req, res) => {
      if (!state.ready) throw state.notReadyError();
      res.json({ ready: true });
    },
  });
  kit.route('/v2', {
    get: (_req, res) => void res.json({ name: SERVER.name, version: SERVER.version, extensions: [] }),
  });

  /** The engine of the named model (404 for another name or version, 503 until ready). */
  const engineFor = (req: Request): Engine => {
    checkModelName(param(req, 'name')!, ctx.modelName);
    const engine = ctx.engine();
    checkModelVersion(engine.model, param(req, 'version'));
    return engine;
  };

  kit.route(MODEL, {
    get: (req, res) => {
      const { model } = engineFor(req);
      const { config, iterations, step, dataManifestSha256 } = model.info;
      res.json({
        name: model.name,
        versions: [model.version],
        platform: 'onnxruntime',
        inputs: model.info.inputs.map(tensorMetadata),
        outputs: model.info.outputs.map(tensorMetadata),
        // An extension beside the spec's fields: what a client needs to build valid requests.
        parameters: {
          preset: config.name,
          num_classes: config.numClasses,
          channels: config.channels,
          image_size: config.imageSize,
          tokens: model.info.tokens,
          hidden_size: config.hiddenSize,
          iterations,
          step,
          sha256: model.sha256,
          data_manifest_sha256: dataManifestSha256,
        },
      });
    },
  });
  kit.route(`${MODEL}/ready`, {
    get: (req, res) => {
      const { model } = engineFor(req);
      res.json({ name: model.name, ready: true });
    },
  });
  kit.route(`${MODEL}/infer`, {
    post: [
      ...kit.json,
      async (req, res) => {
        const engine = engineFor(req);
        const { model } = engine;
        const parsed = parseInferRequest(req.body, model, ctx.maxBatchSize);
        const out = await engine.generate({ samples: parsed.samples }, clientGone(res));
        const { channels: C, imageSize: H } = model.info.config;
        const n = parsed.samples.n;
        const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
          image: { shape: [n, C, H, H], data: out.image },
          residual2: { shape: [n], data: out.residual2 },
        };
        res.json({
          model_name: model.name,
          model_version: model.version,
          ...(parsed.id !== undefined && { id: parsed.id }),
          outputs: parsed.outputs.map((name) => ({
            name,
            datatype: 'FP32',
            shape: tensors[name].shape,
            data: Array.from(tensors[name].data),
          })),
        });
      },
    ],
  });
}
