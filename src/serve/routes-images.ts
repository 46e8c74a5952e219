/**
 * OpenAI-style image generation (openai-node `src/resources/images.ts`, the shape diffusers' example
 * server also speaks): `POST /v1/images/generations` returns n PNGs as base64, and
 * `GET /v1/images/generations?seed=…&class_label=…&scale=…` returns one PNG for browsers.
 * Image i of a request uses seed + i: noise = noiseForSeed(seed + i), z_0 = z0ForSeed(seed + i), so the
 * same seed and label give the same PNG bytes from the same model version.
 * Extensions of the OpenAI shape: `seed`, `class_label`; `prompt` and `user` are accepted and ignored
 * (GET is conditioned on a class, not on text); `response_format` is `b64_json` only.
 */
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { SEED_LIMIT } from '../data/seeds.js';
import type { RouteKit } from '../service/app.js';
import { badRequest, zodBadRequest } from '../service/errors.js';
import type { Engine } from './engine.js';
import { checkModelName } from './oip.js';
import { clientGone, type ServeContext } from './routes-oip.js';
import { seedSamples } from '../get/seeded.js';

/** Largest `scale` of the PNG route (a 32×32 image becomes 512×512). */
export const MAX_SCALE = 16;

const intIn = (lo: number, hi: number) => {
  const msg = `must be an integer in [${lo}, ${hi}]`;
  return z.number({ error: msg }).int({ error: msg }).min(lo, { error: msg }).max(hi, { error: msg });
};

/** Body of `POST /v1/images/generations` with `n` capped at `cap`. */
export function imagesRequestSchema(cap: number) {
  return z
    .object({
      model: z.string().optional(),
      prompt: z.string().optional(),
      n: intIn(1, cap).default(1),
      // Checked by resolveLabels, which knows n and the class count.
      class_label: z.unknown().optional(),
      seed: intIn(0, SEED_LIMIT - 1).optional(),
      response_format: z
        .literal('b64_json', { error: 'only "b64_json" is supported (PNGs are returned inline)' })
        .default('b64_json'),
      size: z.string().optional(),
      user: z.string().optional(),
    })
    .strict();
}

/** Query of `GET /v1/images/generations`. */
const intString = z
  .string({ error: 'must be given once, as an integer' })
  .regex(/^\s*-?\d+\s*$/, { error: 'must be an integer' })
  .transform(Number);
const PngQuerySchema = z
  .object({
    seed: intString.pipe(intIn(0, SEED_LIMIT - 1)).optional(),
    class_label: intString.optional(),
    scale: intString.pipe(intIn(1, MAX_SCALE)).default(1),
    model: z.string().optional(),
  })
  .strict();

/**
 * The n labels of a request: one integer for all images or an array of n.
 * @throws HttpError 400 naming `class_label`: missing for a conditional model, given to an
 *   unconditional one, the wrong count, not an integer, or outside [0, numClasses).
 */
export function resolveLabels(v: unknown, n: number, numClasses: number): number[] | null {
  if (numClasses === 0) {
    if (v !== undefined && v !== null)
      throw badRequest('class_label', 'this model is unconditional (it has no classes); omit class_label');
    return null;
  }
  if (v === undefined || v === null)
    throw badRequest(
      'class_label',
      `is required: this model is class-conditional; give an integer in [0, ${numClasses}) or an array of n of them`,
    );
  if (Array.isArray(v) && v.length !== n)
    throw badRequest('class_label', `has ${v.length} labels for n = ${n} images; give one integer or exactly n`);
  const labels: unknown[] = Array.isArray(v) ? v : Array(n).fill(v);
  labels.forEach((y, i) => {
    const field = Array.isArray(v) ? `class_label[${i}]` : 'class_label';
    if (typeof y !== 'number' || !Number.isInteger(y))
      throw badRequest(field, `must be an integer class label, got ${JSON.stringify(y)}`);
    if (y < 0 || y >= numClasses) throw badRequest(field, `${y} is outside [0, ${numClasses})`);
  });
  return labels as number[];
}

/** A random first seed such that seed + n − 1 is still a valid seed. */
const randomSeed = (n: number): number => randomInt(0, SEED_LIMIT - n + 1);

function checkSeed(seed: number, n: number): void {
  if (seed + n > SEED_LIMIT)
    throw badRequest('seed', `seed + n − 1 = ${seed + n - 1} must be below 2^31 (image i uses seed + i)`);
}

export function mountImageRoutes(kit: RouteKit, ctx: ServeContext): void {
  const schema = imagesRequestSchema(ctx.maxImagesPerRequest);

  kit.route('/v1/images/generations', {
    post: [
      ...kit.json,
      async (req, res) => {
        const r = schema.safeParse(req.body);
        if (!r.success) throw zodBadRequest(r.error, 'body');
        const b = r.data;
        checkModelName(b.model ?? ctx.modelName, ctx.modelName);
        const engine: Engine = ctx.engine();
        const info = engine.model.info;
        const H = info.config.imageSize;
        if (b.size !== undefined && b.size !== `${H}x${H}`)
          throw badRequest('size', `this model makes ${H}x${H} images; omit size or give "${H}x${H}"`);
        const labels = resolveLabels(b.class_label, b.n, info.config.numClasses);
        const seed = b.seed ?? randomSeed(b.n);
        checkSeed(seed, b.n);
        const out = await engine.generate({ samples: seedSamples(seed, b.n, labels), pngScale: 1 }, clientGone(res));
        res.json({
          created: Math.floor(Date.now() / 1000),
          data: out.png!.map((png, i) => ({
            b64_json: Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64'),
            seed: seed + i,
            class_label: labels ? labels[i] : null,
          })),
        });
      },
    ],
    get: async (req, res) => {
      const r = PngQuerySchema.safeParse(req.query);
      if (!r.success) throw zodBadRequest(r.error, 'query');
      const q = r.data;
      checkModelName(q.model ?? ctx.modelName, ctx.modelName);
      const engine = ctx.engine();
      const info = engine.model.info;
      const labels = resolveLabels(q.class_label, 1, info.config.numClasses);
      const seed = q.seed ?? randomSeed(1);
      const out = await engine.generate({ samples: seedSamples(seed, 1, labels), pngScale: q.scale }, clientGone(res));
      res
        .type('image/png')
        .set({
          'X-Seed': String(seed),
          ...(labels && { 'X-Class-Label': String(labels[0]) }),
          'X-Model-Version': engine.model.version,
          'Content-Disposition':
            `inline; filename="${ctx.modelName}-seed${seed}` + `${labels ? `-class${labels[0]}` : ''}.png"`,
        })
        .send(Buffer.from(out.png![0].buffer, out.png![0].byteOffset, out.png![0].byteLength));
    },
  });
}
