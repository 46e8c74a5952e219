/**
 * `get-distill distill`: options (grouped as EDM's train.py does, defaults shown in --help), their
 * validation, and the call into the local executor.
 */
import { Command, Option } from 'commander';
import { PRESETS, DEFAULT_CPU_PRESET } from '../get/config.js';
import { REFERENCE_EMA } from '../train/optim.js';
import { UsageError } from '../util/errors.js';
import { FEATURE_NET_ARCH } from '../eval/feature-net.js';

/** Feature dimension of the embedded feature networks (FID needs more samples than this). */
const EMBEDDED_FEATURE_DIM = FEATURE_NET_ARCH.hidden;
import { type DistillOptions, HELDOUT_SEED_START, runDistill } from '../stages/pipeline.js';
import { parseUri } from '../store/index.js';
import { TFJS_BACKENDS, TRAINING_ENGINES } from '../train/engine.js';

/** Integer flag in [min, max]. */
export const int =
  (flag: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(
        `${flag} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`}, got "${v}"`,
      );
    }
    return n;
  };
/** Number flag > min (or ≥ min), and < max when given. */
export const num =
  (flag: string, min: number, exclusive = true, max = Infinity) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (exclusive ? n <= min : n < min) || n >= max) {
      throw new UsageError(
        `${flag} must be a number ${exclusive ? '>' : '≥'} ${min}${max < Infinity ? ` and < ${max}` : ''}, got "${v}"`,
      );
    }
    return n;
  };

/** Training seeds stay below the held-out seeds, so held-out pairs are never trained on. */
const MAX_PAIRS = HELDOUT_SEED_START;

/**
 * A location flag's parser: a plain path, file:///… or s3://bucket/prefix (checked by the store's URI parser).
 * @throws UsageError naming the flag for an empty value, a NUL byte or an unknown scheme.
 */
export const location =
  (flag: string) =>
  (v: string): string => {
    if (v.trim() === '') throw new UsageError(`${flag} must not be empty`);
    if (v.includes('\0')) throw new UsageError(`${flag} must not contain NUL bytes`);
    try {
      parseUri(v);
    } catch (e) {
      throw new UsageError(`${flag} ${(e as Error).message}`);
    }
    return v;
  };

/**
 * Checks that need several options together, before anything is written.
 * @throws UsageError naming the flags.
 */
export function validateOptions(o: DistillOptions): void {
  if (o.batch > o.pairs)
    throw new UsageError(`--batch ${o.batch} exceeds --pairs ${o.pairs}; lower --batch or raise --pairs`);
  if (o.fidSamples > 0 && o.fidSamples <= EMBEDDED_FEATURE_DIM)
    throw new UsageError(
      `--fid-samples ${o.fidSamples} is too few for the covariance of ${EMBEDDED_FEATURE_DIM}-d features; give at least ${EMBEDDED_FEATURE_DIM + 1} (10000 is the default), or 0 to skip the FID`,
    );
  if (o.teacherRank > 32 * 32)
    throw new UsageError(`--teacher-rank ${o.teacherRank} exceeds the 1,024 pixels of an image`);
}

/** `--engine` / `--tfjs-backend` value parser: one of `allowed`, else a UsageError naming the flag. */
export const oneOf =
  <T extends string>(flag: string, allowed: readonly T[]) =>
  (v: string): T => {
    if (!(allowed as readonly string[]).includes(v))
      throw new UsageError(`${flag} must be one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };

/**
 * Loads the tfjs backend a tfjs run asks for before anything is written, so a missing package fails
 * at once (exit 2) instead of after the teacher and pairs.
 * @throws UsageError naming --tfjs-backend and the package to install.
 */
async function checkTfjs(o: DistillOptions): Promise<void> {
  if (o.engine !== 'tfjs') return;
  const { loadTfjs } = await import('../graph/tfjs-backend.js'); // tfjs packages are optional
  try {
    await loadTfjs({ backend: o.tfjsBackend ?? 'auto', log: () => {} }); // trainStage logs the backend
  } catch (e) {
    if (e instanceof UsageError && !e.message.startsWith('--tfjs-backend'))
      throw new UsageError(`--tfjs-backend ${o.tfjsBackend}: ${e.message}`, { cause: e });
    throw e;
  }
}

export function distillCommand(): Command {
  const cmd = new Command('distill')
    .description(
      'Run the whole pipeline on this machine: fit the teacher, generate pairs with 35-NFE Heun, train GET, sample in one step, write a report.',
    )
    .optionsGroup('Run:')
    .addOption(
      new Option(
        '--out <uri>',
        'where the run lives: a folder, file:///… or s3://bucket/prefix (shards, checkpoints, samples.png, report.json)',
      )
        .argParser(location('--out'))
        .default('runs/distill'),
    )
    .addOption(
      new Option('--store <uri>', 'same as --out (reads better for s3://bucket/prefix)').argParser(location('--store')),
    )
    .addOption(
      new Option(
        '--resume',
        'continue the run in --out (reuses verified shards, resumes training from checkpoints/latest.json; --steps may be raised)',
      ),
    )
    .addOption(new Option('--dry-run', 'print the resolved options as JSON and exit'))
    .optionsGroup('Data and teacher:')
    .addOption(
      new Option('--dataset <name>', 'training images for the embedded teacher')
        .choices(['mnist', 'fashion-mnist'])
        .default('mnist'),
    )
    .addOption(
      new Option(
        '--teacher <spec>',
        '"mixture" (embedded Gaussian-mixture teacher fitted to --dataset) or the path / s3:// URI of an EDM-preconditioned ONNX network',
      )
        .argParser(location('--teacher'))
        .default('mixture'),
    )
    .addOption(
      new Option('--teacher-components <k>', 'mixture components per class')
        .argParser(int('--teacher-components', 1, 1000))
        .default(10),
    )
    .addOption(
      new Option('--teacher-rank <r>', 'factors per mixture component')
        .argParser(int('--teacher-rank', 1, 1024))
        .default(32),
    )
    .addOption(
      new Option('--sampler-steps <n>', 'Heun steps on the Karras schedule (NFE = 2n − 1)')
        .argParser(int('--sampler-steps', 2, 1000))
        .default(18),
    )
    .addOption(
      new Option('--cache-dir <dir>', 'where fitted teachers are cached (a folder or s3:// prefix)')
        .argParser(location('--cache-dir'))
        .default(process.env.XDG_CACHE_HOME ? `${process.env.XDG_CACHE_HOME}/get-distill` : '.cache/get-distill'),
    )
    .optionsGroup('Pairs (datagen):')
    .addOption(
      new Option('--pairs <n>', 'training pairs (seeds 0 … n−1)')
        .argParser(int('--pairs', 1, MAX_PAIRS))
        .default(32768),
    )
    .addOption(
      new Option('--heldout <n>', 'held-out pairs for the report (seeds from 2^30, never trained on)')
        .argParser(int('--heldout', 1, 1_000_000))
        .default(500),
    )
    .addOption(
      new Option(
        '--shard-size <n>',
        'pairs per shard (training shuffles within two shards at a time, so it shapes the batch order)',
      )
        .argParser(int('--shard-size', 1))
        .default(2048),
    )
    .optionsGroup('Student (GET training):')
    .addOption(new Option('--preset <name>', 'GET preset').choices(Object.keys(PRESETS)).default(DEFAULT_CPU_PRESET))
    .addOption(
      new Option('--patch-size <p>', "override the preset's patch size (must divide the image size)").argParser(
        int('--patch-size', 1),
      ),
    )
    .addOption(new Option('--steps <n>', 'training steps').argParser(int('--steps', 1)).default(6000))
    .addOption(new Option('--batch <n>', 'batch size').argParser(int('--batch', 1)).default(32))
    .addOption(
      new Option('--lr <x>', 'AdamW learning rate (reference presets: 1e-4)').argParser(num('--lr', 0)).default(1e-3),
    )
    .addOption(
      new Option('--ema-halflife-kimg <k>', 'EMA half-life in thousands of images (EDM style, with ramp-up)')
        .argParser(num('--ema-halflife-kimg', 0))
        .default(20),
    )
    .addOption(
      new Option('--ema-rampup <r>', 'EMA ramp-up ratio (half-life ≤ images seen × r)')
        .argParser(num('--ema-rampup', 0))
        .default(0.05),
    )
    .addOption(
      new Option('--ema-decay <beta>', `constant EMA decay instead (the reference: ${REFERENCE_EMA.decay})`).argParser(
        num('--ema-decay', 0, false, 1),
      ),
    )
    .addOption(
      new Option('--iterations <k>', 'fixed-point iterations in training and sampling')
        .argParser(int('--iterations', 1, 100))
        .default(6),
    )
    .addOption(
      new Option('--checkpoint-every <n>', 'steps between checkpoints')
        .argParser(int('--checkpoint-every', 1))
        .default(200),
    )
    .addOption(new Option('--keep <k>', 'checkpoints kept').argParser(int('--keep', 1)).default(3))
    .addOption(
      new Option('--seed <n>', 'seed for initialisation, batch order and fixed-point start states')
        .argParser(int('--seed', 0))
        .default(0),
    )
    .addOption(
      new Option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)').argParser(
        int('--threads', 1, 256),
      ),
    )
    .addOption(
      new Option(
        '--engine <name>',
        `training engine (${TRAINING_ENGINES.join('|')}): ort = onnxruntime CPU/CUDA, the fast default; tfjs = TensorFlow.js, the engine of the tfjs-node-gpu trainer image (same model, same checkpoints: a run may resume on the other engine)`,
      )
        .argParser(oneOf('--engine', TRAINING_ENGINES))
        .default('ort'),
    )
    .addOption(
      new Option(
        '--tfjs-backend <name>',
        `backend of --engine tfjs (${TFJS_BACKENDS.join('|')}): node-gpu = @tensorflow/tfjs-node-gpu (CUDA), node = @tensorflow/tfjs-node (native CPU), wasm = @tensorflow/tfjs-backend-wasm (installed here; slow), cpu = plain JavaScript (slowest), auto = the first installed of node-gpu, node, wasm`,
      )
        .argParser(oneOf('--tfjs-backend', TFJS_BACKENDS))
        .default('auto'),
    )
    .optionsGroup('Evaluation:')
    .addOption(
      new Option(
        '--fid-samples <n>',
        `teacher and student samples scored against the test split with the embedded feature network (FID, IS, precision/recall; 0 skips; needs more than ${EMBEDDED_FEATURE_DIM}, the feature dimension)`,
      )
        .argParser(int('--fid-samples', 0, 1_000_000))
        .default(10_000),
    )
    .optionsGroup('Output:')
    .addOption(
      new Option('--grid-columns <n>', 'samples per class in samples.png')
        .argParser(int('--grid-columns', 1, 64))
        .default(8),
    )
    .addHelpText(
      'after',
      `
Examples:
  npm run distill                                    # the default run (~15 min on 2 cores)
  npm run distill -- --out runs/smoke --pairs 256 --steps 20
  npm run distill -- --out runs/fashion --dataset fashion-mnist
  npm run distill -- --out runs/smoke --resume --steps 40   # continue a run
  npm run distill -- --store s3://my-bucket/run1          # everything in S3 (AWS chain; GET_DISTILL_S3_ENDPOINT for S3-compatible servers)
With --resume, options not given on the command line are the run's (its options.json).
Exit codes: 0 done, 2 bad input (one line on stderr says what and how to fix it), 130 interrupted by SIGINT/SIGTERM (finished work kept; --resume continues).`,
    )
    .action(async (opts: DistillOptions & { dryRun: boolean; store?: string }, command: Command) => {
      if (opts.store !== undefined) {
        if (command.getOptionValueSource('out') === 'cli')
          throw new UsageError('--store and --out name the same thing; give one of them');
        opts.out = opts.store;
      }
      delete opts.store;
      validateOptions(opts);
      // Options that the chosen engine would silently ignore are mistakes: say so.
      const given = (k: string) => command.getOptionValueSource(k) === 'cli';
      if (opts.engine === 'tfjs' && given('threads'))
        throw new UsageError(
          "--threads sets onnxruntime's threads (--engine ort); the tfjs engine does not use it: drop --threads, or use --engine ort",
        );
      if (opts.engine !== 'tfjs' && given('tfjsBackend'))
        throw new UsageError(
          `--tfjs-backend applies to --engine tfjs only (the engine is ${opts.engine}): add --engine tfjs, or drop --tfjs-backend`,
        );
      const { dryRun, ...options } = opts;
      await checkTfjs(options); // a backend that is not installed is bad input, dry run or not
      if (dryRun) {
        process.stdout.write(`${JSON.stringify(options, null, 2)}\n`);
        return;
      }
      // With --resume, options not given here come from the run's options.json.
      const explicit = new Set(Object.keys(options).filter((k) => command.getOptionValueSource(k) === 'cli'));
      await runDistill(options, explicit);
    });
  return cmd;
}
