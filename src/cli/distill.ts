/**
 * `get-distill distill`: options (grouped as EDM's train.py does, defaults shown in --help), their
 * validation, and the call into the local executor.
 */
import { Command, Option } from 'commander';
import { UsageError } from '../util/errors.js';
import { FEATURE_NET_ARCH } from '../eval/feature-net.js';
import { addConfigOptions, describeOf, type OptionDoc } from '../service/config.js';
import { DistillSpecSchema, type DistillOptions } from '../spec/index.js';
import { runDistill } from '../stages/pipeline.js';
import { parseUri } from '../store/index.js';

/** Feature dimension of the embedded feature networks (FID needs more samples than this). */
const EMBEDDED_FEATURE_DIM = FEATURE_NET_ARCH.hidden;

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
      `--fid-samples ${o.fidSamples} is too few for the covariance of ${EMBEDDED_FEATURE_DIM}-d features; ` +
        `give at least ${EMBEDDED_FEATURE_DIM + 1} (10000 is the default), or 0 to skip the FID`,
    );
  if (o.teacherRank > 32 * 32)
    throw new UsageError(`--teacher-rank ${o.teacherRank} exceeds the 1,024 pixels of an image`);
}

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

type Key = Extract<keyof typeof DistillSpecSchema.shape, string>;
/** One flag of {@link DISTILL_GROUPS}: its placeholder and, when not the spec's description, its help. */
const opt = (key: Key, arg: string, help?: string): OptionDoc<Key> => [
  key,
  arg,
  help ?? describeOf(DistillSpecSchema.shape[key]) ?? key,
];

/** The flags after `Run:` (whose --out comes first, then the CLI's own switches), in --help order. */
const DISTILL_GROUPS = [
  [
    'Data and teacher:',
    [
      opt('dataset', '<name>'),
      opt('teacher', '<spec>'),
      opt('teacherComponents', '<k>'),
      opt('teacherRank', '<r>'),
      opt('samplerSteps', '<n>'),
      opt('cacheDir', '<dir>'),
    ],
  ],
  ['Pairs (datagen):', [opt('pairs', '<n>'), opt('heldout', '<n>'), opt('shardSize', '<n>')]],
  [
    'Student (GET training):',
    [
      opt('preset', '<name>'),
      opt('patchSize', '<p>'),
      opt('steps', '<n>'),
      opt('batch', '<n>'),
      opt('lr', '<x>'),
      opt('emaHalflifeKimg', '<k>'),
      opt('emaRampup', '<r>'),
      opt('emaDecay', '<beta>'),
      opt('iterations', '<k>'),
      opt('checkpointEvery', '<n>'),
      opt('keep', '<k>'),
      opt('seed', '<n>'),
      opt('threads', '<n>'),
      opt('engine', '<name>'),
      opt('tfjsBackend', '<name>'),
      opt('ranks', '<n>'),
    ],
  ],
  [
    'Evaluation:',
    [
      opt(
        'fidSamples',
        '<n>',
        `${describeOf(DistillSpecSchema.shape.fidSamples)!.replace(/\)$/, '')}; needs more than ` +
          `${EMBEDDED_FEATURE_DIM}, the feature dimension)`,
      ),
    ],
  ],
  ['Output:', [opt('gridColumns', '<n>')]],
] as const satisfies readonly (readonly [string, readonly OptionDoc<Key>[]])[];

export function distillCommand(): Command {
  const cmd = new Command('distill').description(
    'Run the whole pipeline on this machine: fit the teacher, generate pairs with 35-NFE Heun, train GET, ' +
      'sample in one step, write a report.',
  );
  addConfigOptions(cmd, DistillSpecSchema, [['Run:', [opt('out', '<uri>')]]], { typed: true });
  // --dataset and --preset list their choices; --engine and --tfjs-backend name them in their help.
  const listChoices = ['dataset', 'preset'];
  cmd
    .addOption(
      new Option('--store <uri>', 'same as --out (reads better for s3://bucket/prefix)')
        .argParser(location('--store'))
        .helpGroup('Run:'),
    )
    .addOption(
      new Option(
        '--resume',
        'continue the run in --out (reuses verified shards, resumes training from checkpoints/latest.json; ' +
          '--steps may be raised)',
      ).helpGroup('Run:'),
    )
    .addOption(new Option('--dry-run', 'print the resolved options as JSON and exit').helpGroup('Run:'));
  addConfigOptions(cmd, DistillSpecSchema, DISTILL_GROUPS, { typed: true, listChoices });
  return cmd
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
Exit codes: 0 done, 2 bad input (one line on stderr says what and how to fix it), ` +
        '130 interrupted by SIGINT/SIGTERM (finished work kept; --resume continues).',
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
          "--threads sets onnxruntime's threads (--engine ort); the tfjs engine does not use it: drop " +
            '--threads, or use --engine ort',
        );
      if (opts.engine !== 'tfjs' && given('tfjsBackend'))
        throw new UsageError(
          `--tfjs-backend applies to --engine tfjs only (the engine is ` +
            `${opts.engine}): add --engine tfjs, or drop --tfjs-backend`,
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
