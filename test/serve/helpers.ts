/**
 * Test fixtures for the inference service: tiny exported models (GET-CPU-XS/8, conditional with 10
 * classes and unconditional) with a randomised decoder so images depend on the seed, and a real
 * Express server on 127.0.0.1:0 around them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GetConfig, resolveConfig } from '../../src/get/config.js';
import { exportModel } from '../../src/get/export.js';
import { paramSpecs } from '../../src/get/model.js';
import { resolveServeConfig, type ServeConfig } from '../../src/serve/config.js';
import { createInferenceService, type InferenceService } from '../../src/serve/service.js';
import { createLogger } from '../../src/service/logging.js';
import { listen } from '../../src/service/app.js';
import { initParams } from '../../src/train/params.js';
import { Rng } from '../../src/util/rng.js';
import type { Json } from '../json.js';

export const CONDITIONAL = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
export const UNCONDITIONAL = resolveConfig('GET-CPU-XS/8', { numClasses: 0 });

/**
 * model.onnx bytes for `cfg`: reference initialisation, then the zero-initialised decoder
 * (final_layer.linear.*) set to N(0, 0.05²) so the image depends on noise and z_0.
 */
export function modelBytes(cfg: GetConfig, seed = 1): Uint8Array {
  const p = initParams(paramSpecs(cfg), seed);
  const rng = new Rng(seed + 100);
  for (const name of ['final_layer.linear.weight', 'final_layer.linear.bias']) {
    const v = p.view(name);
    for (let i = 0; i < v.length; i++) v[i] = 0.05 * rng.normal();
  }
  return exportModel(cfg, (n) => p.view(n), {
    iterations: 6,
    step: 1234,
    dataManifestSha256: 'ab'.repeat(32),
    createdAt: '2025-01-01T00:00:00Z',
  }).onnx;
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** Writes bytes to a fresh temp folder (removed when the process exits) and returns the file path. */
export function writeTemp(bytes: Uint8Array, name = 'model.onnx'): string {
  const dir = mkdtempSync(join(tmpdir(), 'get-serve-'));
  tempDirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const paths = new Map<string, string>();
/** Path of the (cached) conditional or unconditional test model. */
export function modelPath(kind: 'conditional' | 'unconditional'): string {
  let p = paths.get(kind);
  if (!p) {
    p = writeTemp(modelBytes(kind === 'conditional' ? CONDITIONAL : UNCONDITIONAL));
    paths.set(kind, p);
  }
  return p;
}

export interface TestServer {
  readonly url: string;
  readonly service: InferenceService;
  readonly server: Server;
  readonly config: ServeConfig;
  close(): Promise<void>;
}

/** Starts the service on 127.0.0.1:0 with `flags` over the defaults (model: the conditional one). */
export async function startServer(
  flags: Record<string, unknown> = {},
  o: { start?: boolean } = {},
): Promise<TestServer> {
  const config = resolveServeConfig({ model: modelPath('conditional'), port: 0, logLevel: 'silent', ...flags });
  const service = createInferenceService(config, { logger: createLogger('test', 'silent') });
  if (o.start !== false) await service.start();
  const server = await listen(service.app, 0, '127.0.0.1');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    service,
    server,
    config,
    async close() {
      await service.drain();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      await service.close();
    },
  };
}

/** Status, headers and the body parsed as JSON (the raw text when it is not JSON). */
async function parsed(res: Response): Promise<{ status: number; headers: Headers; body: Json }> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body };
}

/** POST JSON (a string body is sent as is); returns status, headers and the parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  return parsed(
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

/** GET; returns status, headers and the parsed body. */
export async function getJson(url: string): Promise<{ status: number; headers: Headers; body: Json }> {
  return parsed(await fetch(url));
}

/** The value of an unlabelled sample or counter line of a Prometheus text exposition. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
