/**
 * GET configurations: the reference presets (locuslab/get models/get.py `GET_models`, CIFAR-10 32×32×3,
 * patch 2) and small presets sized for CPUs. Source: get-reference.md §2.7.
 */
import { z } from 'zod';

export const GetConfigSchema = z
  .object({
    /** Preset name, e.g. `GET-T/2`. */
    name: z.string(),
    channels: z.number().int().positive(),
    imageSize: z.number().int().positive(),
    patchSize: z.number().int().positive(),
    /** Hidden width D. */
    hiddenSize: z.number().int().positive(),
    numHeads: z.number().int().positive(),
    /** Injection transformer depth L_inj (blocks with MLP ratio `injectionMlpRatio`). */
    injectionDepth: z.number().int().nonnegative(),
    injectionMlpRatio: z.number().positive(),
    /** Weight-tied equilibrium blocks L_eq (3 in every reference config). */
    equilibriumDepth: z.number().int().positive(),
    equilibriumMlpRatio: z.number().positive(),
    /** 0 = unconditional. */
    numClasses: z.number().int().nonnegative(),
    /** LayerNorm epsilon (1e-6 in the reference). */
    layerNormEps: z.number().positive(),
  })
  .strict();

export type GetConfig = z.infer<typeof GetConfigSchema>;

const cifar = {
  channels: 3,
  imageSize: 32,
  patchSize: 2,
  injectionMlpRatio: 4,
  equilibriumDepth: 3,
  layerNormEps: 1e-6,
};
const mnist = {
  channels: 1,
  imageSize: 32,
  patchSize: 4,
  injectionMlpRatio: 4,
  equilibriumDepth: 3,
  layerNormEps: 1e-6,
};

/** Preset registry: name → config (unconditional; pass `numClasses` to make a conditional model). */
export const PRESETS: Readonly<Record<string, Omit<GetConfig, 'numClasses'>>> = {
  'GET-T/2': { ...cifar, name: 'GET-T/2', hiddenSize: 256, numHeads: 4, injectionDepth: 6, equilibriumMlpRatio: 6 },
  'GET-M/2': { ...cifar, name: 'GET-M/2', hiddenSize: 384, numHeads: 6, injectionDepth: 6, equilibriumMlpRatio: 6 },
  'GET-S/2': { ...cifar, name: 'GET-S/2', hiddenSize: 512, numHeads: 8, injectionDepth: 6, equilibriumMlpRatio: 8 },
  'GET-B/2': { ...cifar, name: 'GET-B/2', hiddenSize: 768, numHeads: 12, injectionDepth: 1, equilibriumMlpRatio: 12 },
  'GET-B+/2': { ...cifar, name: 'GET-B+/2', hiddenSize: 768, numHeads: 12, injectionDepth: 6, equilibriumMlpRatio: 8 },
  // CPU presets for 32×32×1 (MNIST, Fashion-MNIST): patch 4 → 64 tokens.
  'GET-CPU-S/4': {
    ...mnist,
    name: 'GET-CPU-S/4',
    hiddenSize: 64,
    numHeads: 2,
    injectionDepth: 2,
    equilibriumMlpRatio: 4,
  },
  'GET-CPU-M/4': {
    ...mnist,
    name: 'GET-CPU-M/4',
    hiddenSize: 96,
    numHeads: 3,
    injectionDepth: 2,
    equilibriumMlpRatio: 4,
  },
  'GET-CPU-XS/8': {
    ...mnist,
    name: 'GET-CPU-XS/8',
    patchSize: 8,
    hiddenSize: 32,
    numHeads: 1,
    injectionDepth: 1,
    equilibriumMlpRatio: 2,
  },
};

export const DEFAULT_CPU_PRESET = 'GET-CPU-S/4';

/**
 * Resolves a preset and applies overrides (image shape, classes, patch size …), then validates.
 * @throws Error naming the preset or the field, e.g. an unknown preset or a patch that does not divide the image.
 */
export function resolveConfig(preset: string, overrides: Partial<GetConfig> = {}): GetConfig {
  const base = PRESETS[preset];
  if (!base) throw new Error(`unknown preset "${preset}"; choose one of: ${Object.keys(PRESETS).join(', ')}`);
  const cfg = GetConfigSchema.parse({ numClasses: 0, ...base, ...overrides });
  if (cfg.imageSize % cfg.patchSize !== 0) {
    throw new Error(
      `patch size ${cfg.patchSize} does not divide the image size ${cfg.imageSize}; pick a divisor of ${cfg.imageSize}`,
    );
  }
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new Error(`hidden size ${cfg.hiddenSize} is not divisible by ${cfg.numHeads} heads`);
  }
  return cfg;
}

/** Tokens per image N = (H/p)². */
export const numTokens = (c: GetConfig) => (c.imageSize / c.patchSize) ** 2;

/**
 * Parameter count as the reference reports it (`model.parameters()`, which includes the frozen
 * positional embedding N·D). Closed form, get-reference.md §2.7: per block (4+2r)D² + (9+r)D.
 */
export function referenceParamCount(c: GetConfig): number {
  const D = c.hiddenSize;
  const block = (r: number) => {
    const h = Math.floor(D * r); // MLP hidden width int(D·r)
    return 4 * D * D + 9 * D + 2 * D * h + h;
  };
  const patchIn = c.channels * c.patchSize ** 2;
  return (
    (patchIn + 1) * D +
    numTokens(c) * D +
    c.injectionDepth * block(c.injectionMlpRatio) +
    3 * c.equilibriumDepth * D * D +
    c.equilibriumDepth * block(c.equilibriumMlpRatio) +
    (2 * D + D * patchIn + patchIn) +
    (c.numClasses > 0 ? c.numClasses * 3 * D : 0)
  );
}
