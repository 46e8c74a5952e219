/**
 * The one entry point of every stage image (services/<name>/main.ts calls {@link stageMain}): the same
 * binary is a service (`--mode service`, a Deployment taking jobs over /v1/jobs) or one Kubernetes Job
 * pod (`--mode job`, exit 0 / 2 / 75). Configuration is ONE zod schema per concern through the kit
 * (src/service/config.ts): process options below, and the stage's spec schema, whose top-level fields
 * become flags and variables for job mode (`outDir` → `--out-dir`, GET_DISTILL_OUT_DIR; objects as JSON
 * text), over a whole spec document from `--spec` / GET_DISTILL_JOB_SPEC (JSON, or `@path` to a file,
 * e.g. a mounted ConfigMap), over the schema's defaults.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import {
  addConfigOptions,
  flagOf,
  intIn,
  mergeConfig,
  resolveConfig,
  schemaOptionDocs,
  type ObjectSchema,
  type OptionGroups,
} from '../service/config.js';
import { createLogger, LOG_LEVELS } from '../service/logging.js';
import { EXIT_USAGE, UsageError } from '../util/errors.js';
import { classifyError } from '../service/error-class.js';
import { runJobMode } from './run-job.js';
import { startStageService } from './service.js';
import { writeTerminationMessageFromEnv } from '../service/termination.js';
import type { StageJob } from './types.js';
import { launchRanks } from './launcher.js';
import { assignLocalGpu, localRankOf, mpiWorldSize, underMpirun, worldCommunicator } from '../parallel/mpi.js';
import { perRankBatch } from '../train/data-parallel.js';

/** Process options of every stage entry point (flags `--port`, env GET_DISTILL_PORT, …). */
export const ProcessConfigSchema = z
  .object({
    mode: z.enum(['service', 'job'], { error: 'must be service or job' }).default('service'),
    host: z.string().min(1, { error: 'must not be empty' }).default('127.0.0.1'),
    port: intIn(0, 65535).default(8080),
    concurrency: intIn(1, 64).default(1),
    ranks: intIn(1, 4096).default(1),
    keepJobs: intIn(1, 100_000).default(100),
    shutdownGraceMs: intIn(0, 3_600_000).default(30_000),
    logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /** The job spec document: JSON text or `@path`. */
    spec: z.string().min(1, { error: 'must not be empty: JSON text or @path' }).optional(),
  })
  .strict();

/** The spec document's variable is not GET_DISTILL_SPEC: it names what it holds. */
const ENV_NAMES = { spec: 'GET_DISTILL_JOB_SPEC' } as const;

const PROCESS_HELP: OptionGroups<keyof z.infer<typeof ProcessConfigSchema>> = [
  [
    'Process:',
    [
      [
        'mode',
        '<mode>',
        'service: take jobs over POST /v1/jobs; job: run the spec once and exit 0, 2 (permanent) or 75 (retry)',
      ],
      [
        'host',
        '<address>',
        'address of the HTTP server (/healthz, /readyz, /metrics; /v1/jobs in service mode); 0.0.0.0 in a pod',
      ],
      ['port', '<n>', 'TCP port (0 = any free port, logged)'],
      ['concurrency', '<n>', 'service mode: jobs at once; more get 409'],
      [
        'ranks',
        '<n>',
        'job mode, train stage: data-parallel ranks; started outside mpirun this process becomes the launcher ' +
          '(runs mpirun -np N with these options, e.g. in an MPIJob launcher pod); ' +
          'each rank serves on port + local rank',
      ],
      ['keepJobs', '<n>', 'service mode: finished jobs kept for GET /v1/jobs'],
      ['shutdownGraceMs', '<ms>', 'on SIGTERM, how long a running job gets to reach its safe point (checkpoint)'],
      ['logLevel', '<level>', 'fatal, error, warn, info, debug, trace or silent'],
    ],
  ],
  [
    'Job spec (job mode):',
    [
      [
        'spec',
        '<json|@file>',
        'the whole spec as JSON, or @path to a JSON file; the field flags below override its fields',
      ],
    ],
  ],
];

export interface StageMainOptions {
  /** One-line description for --help. */
  readonly description?: string;
  /** Help of the spec's flags; default {@link schemaOptionDocs} (the fields' `.describe()` texts). */
  readonly specHelp?: OptionGroups;
  readonly argv?: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default process.exit. */
  readonly exit?: (code: number) => void;
}

/** The spec's object schema, when it is one (flags need top-level keys). */
const objectSchema = (s: unknown): ObjectSchema | undefined =>
  s instanceof z.ZodObject ? (s as ObjectSchema) : undefined;

/**
 * Reads the spec document: JSON text or `@path`.
 * @throws UsageError naming `source` (the flag or variable) for an unreadable file, bad JSON or a non-object.
 */
export function readSpecDocument(text: string, source: string): Record<string, unknown> {
  let json = text;
  if (text.startsWith('@')) {
    try {
      json = readFileSync(text.slice(1), 'utf8');
    } catch (e) {
      throw new UsageError(
        `${source}: cannot read ${text.slice(1)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
          `give JSON text or @path to a readable file`,
      );
    }
  }
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new UsageError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new UsageError(
      `${source}: must be a JSON object (the stage's spec), got ` +
        `${Array.isArray(doc) ? 'an array' : JSON.stringify(doc)}`,
    );
  return doc as Record<string, unknown>;
}

/**
 * Builds the command (`get-distill-<name>`) for `stage`; its action runs the chosen mode.
 * @throws Error when a spec field's name collides with a process option (a programming error).
 */
export function stageCommand<Spec>(
  stage: StageJob<Spec>,
  name: string,
  o: StageMainOptions = {},
  exit: (code: number) => void = (c) => process.exit(c),
): Command {
  const env = o.env ?? process.env;
  const specSchema = objectSchema(stage.schema);
  const specKeys = Object.keys(specSchema?.shape ?? {});
  const clash = specKeys.filter((k) => k in ProcessConfigSchema.shape);
  if (clash.length > 0)
    throw new Error(`${name}: spec fields ${clash.join(', ')} collide with process options; rename them`);

  const cmd = new Command(`get-distill-${name}`).description(
    o.description ?? `The ${stage.kind} stage as an HTTP service or a one-shot Kubernetes Job.`,
  );
  addConfigOptions(cmd, ProcessConfigSchema, PROCESS_HELP, { envNames: ENV_NAMES });
  if (specSchema)
    addConfigOptions(cmd, specSchema, o.specHelp ?? schemaOptionDocs(specSchema, 'Job spec fields (job mode):'));
  cmd.addHelpText(
    'after',
    `
Service mode: POST /v1/jobs (body: the spec) → 202; GET /v1/jobs[/{id}]; DELETE /v1/jobs/{id} cancels.
Job mode exit codes: 0 done, 2 permanent (bad spec or input: do not retry), 75 retryable (store
unreachable, or SIGTERM after the stage's safe point: retry resumes). JOB_COMPLETION_INDEX (Indexed Job)
is passed to the stage.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const proc: Record<string, unknown> = {};
    const spec: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(opts)) (specKeys.includes(k) ? spec : proc)[k] = v;
    const cfg = resolveConfig(ProcessConfigSchema, proc, env, { envNames: ENV_NAMES });
    // A service's defaults serve every job: check them before reporting ready (job mode checks its one spec).
    if (cfg.mode === 'service' && cfg.ranks > 1)
      throw new UsageError('--ranks applies to job mode (--mode job): a service takes one job at a time in-process');
    if (cfg.mode === 'service') await stage.startupCheck?.(env);
    // Job mode ends in process.exit: synchronous log lines, so none is lost or reordered at the end.
    const logger = createLogger(name, cfg.logLevel, { sync: cfg.mode === 'job' });
    if (cfg.mode === 'service') {
      const given = Object.keys(spec).find((k) => spec[k] !== undefined);
      if (given)
        throw new UsageError(
          `${flagOf(given)} is a job-mode option (--mode job); in service mode POST the spec to /v1/jobs`,
        );
      await startStageService(stage, {
        logger,
        port: cfg.port,
        host: cfg.host,
        concurrency: cfg.concurrency,
        keepFinished: cfg.keepJobs,
        graceMs: cfg.shutdownGraceMs,
        name,
      });
      return; // the server keeps the process alive; SIGTERM exits
    }
    const parallel = cfg.ranks > 1 || underMpirun(env);
    if (parallel && !stage.dataParallel)
      throw new UsageError(`--ranks: the ${stage.kind} stage does not train; only the trainer runs data-parallel`);
    // Under mpirun, --ranks (default: the world's size) must match the world mpirun started.
    if (underMpirun(env) && cfg.ranks > 1 && mpiWorldSize(env) !== cfg.ranks)
      throw new UsageError(
        `--ranks ${cfg.ranks} but mpirun started ${mpiWorldSize(env)} ranks; ` +
          `give mpirun -np ${cfg.ranks}, or drop --ranks`,
      );
    // Several ranks in one pod: each takes its own GPU, before any engine loads CUDA.
    if (underMpirun(env)) assignLocalGpu(process.env);
    const source = proc.spec !== undefined ? '--spec' : ENV_NAMES.spec;
    const doc = cfg.spec === undefined ? undefined : readSpecDocument(cfg.spec, source);
    let input: unknown = doc ?? {};
    if (specSchema) {
      const base = doc && { values: doc, source };
      resolveConfig(specSchema, spec, env, { base }); // one-line errors naming the flag, variable or document field
      input = mergeConfig(specSchema, spec, env, { base }).raw; // validated again (same input) by runJobMode
    }
    if (parallel && !underMpirun(env)) {
      // The launcher: a spec every rank would refuse fails here, once, before mpirun starts.
      const parsed = stage.schema.safeParse(input);
      if (!parsed.success) throw parsed.error;
      const batch = (parsed.data as { batch?: unknown }).batch;
      if (typeof batch === 'number') perRankBatch(batch, cfg.ranks, 'batch');
      return exit(await launchRanks(name, cfg.ranks, env, logger));
    }
    const code = await runJobMode(stage, input, {
      logger,
      // Ranks sharing a host (a pod with several GPUs) serve side by side.
      port: cfg.port === 0 ? 0 : cfg.port + localRankOf(env),
      host: cfg.host,
      graceMs: cfg.shutdownGraceMs,
      name,
      env,
    });
    // A rank that succeeded leaves the world properly (mpirun fails a job whose rank exits 0 without
    // MPI_Finalize); a failed one exits without it, so mpirun stops the other ranks at once.
    if (code === 0 && underMpirun(env)) await worldCommunicator(env).finalize();
    exit(code);
  });
  return cmd;
}

/**
 * Parses argv and runs the stage in the chosen mode. Exits 2 with one line on stderr for bad options
 * (a bug while starting: 2 as well, GET_DISTILL_DEBUG=1 prints its stack);
 * in job mode exits with the job's code; in service mode returns once listening (SIGTERM exits 0).
 */
export async function stageMain<Spec>(stage: StageJob<Spec>, name: string, o: StageMainOptions = {}): Promise<void> {
  const exit = o.exit ?? ((c: number) => process.exit(c));
  const cmd = stageCommand(stage, name, o, exit).exitOverride().showHelpAfterError('(run with --help for usage)');
  try {
    await cmd.parseAsync([...(o.argv ?? process.argv)]);
  } catch (e) {
    if (e instanceof CommanderError) return exit(e.exitCode === 0 ? 0 : EXIT_USAGE); // commander printed its line
    // Bad options, an unbindable port, a bug while starting: one line, and the job-mode exit codes.
    const c = classifyError(e);
    const env = o.env ?? process.env;
    process.stderr.write(`get-distill-${name}: ${c.message}\n`);
    if (c.reason === 'internal' && env.GET_DISTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    // A job pod that fails on its options still tells the operator why (GET_DISTILL_TERMINATION_LOG).
    writeTerminationMessageFromEnv(
      env,
      {
        v: 1,
        stage: stage.kind,
        outcome: 'failed',
        exitCode: c.exitCode,
        summary: {},
        artifacts: {},
        error: { kind: c.class, message: c.message },
      },
      (why) => void process.stderr.write(`get-distill-${name}: ${why}\n`),
    );
    exit(c.exitCode);
  }
}
