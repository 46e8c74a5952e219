/**
 * `get-distill eval`: FID, Inception Score and improved precision/recall of a model's samples (the
 * evaluation stage, src/stages/eval.ts), with Prometheus metrics on /metrics while it runs and pushed
 * to a Pushgateway when one is configured.
 */
import { Command, Option } from 'commander';
import { addConfigOptions, describeOf, type OptionDoc } from '../service/config.js';
import { EvalSpecSchema, type EvalSpec } from '../spec/eval.js';
import { createLogger } from '../service/logging.js';
import { PUSHGATEWAY_URL_ENV, parsePushgatewayUrl, pushgatewayFromEnv } from '../service/pushgateway.js';
import { evalStage, type EvalResult, saveEvalOutputs } from '../stages/eval.js';
import { classifyError } from '../service/error-class.js';
import { type TerminationMessage, writeTerminationMessageFromEnv } from '../service/termination.js';
import { EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { createEvalMetrics, serveEvalMetrics } from './eval-metrics.js';
import type { MetricsServer } from '../service/metrics-server.js';

/** A Pushgateway URL (http/https; the error never echoes credentials), or blank for none. */
const url =
  (flag: string) =>
  (v: string): string => {
    if (v.trim() === '') return ''; // a blank GET_DISTILL_PUSHGATEWAY_URL turns pushes off
    parsePushgatewayUrl(v, flag);
    return v;
  };

type Opts = EvalSpec;

/** The exit code src/cli/main.ts gives an error thrown by the action: 2 usage, 130 interrupted, 1 a bug. */
const exitCodeOf = (e: unknown): number =>
  e instanceof UsageError ? EXIT_USAGE : e instanceof Interrupted ? EXIT_INTERRUPTED : 1;

/**
 * The termination message of an eval run (src/service/termination.ts; written when
 * GET_DISTILL_TERMINATION_LOG is set, as the eval Job's pod does): summary {fid, inceptionScore (mean),
 * precision, recall, samples}, artifacts {report, reference} where written.
 */
function evalTermination(
  o: Pick<Opts, 'out' | 'saveReference'>,
  end: { result: EvalResult } | { error: unknown } | { signal: NodeJS.Signals },
): TerminationMessage {
  const artifacts: Record<string, string> = {};
  if ('result' in end) {
    const r = end.result.report;
    if (o.out) artifacts.report = o.out;
    if (o.saveReference) artifacts.reference = o.saveReference;
    const s = r.scores;
    return {
      v: 1,
      stage: 'eval',
      outcome: 'done',
      exitCode: 0,
      summary: {
        fid: s.fid,
        inceptionScore: s.inceptionScore?.mean ?? null,
        precision: s.precision,
        recall: s.recall,
        samples: r.samples,
      },
      artifacts,
    };
  }
  if ('signal' in end) return { v: 1, stage: 'eval', outcome: 'interrupted', exitCode: 130, summary: {}, artifacts };
  const c = classifyError(end.error);
  const code = exitCodeOf(end.error);
  return {
    v: 1,
    stage: 'eval',
    outcome: code === 130 ? 'interrupted' : 'failed',
    exitCode: code,
    summary: {},
    artifacts,
    error: { kind: c.class, message: c.message },
  };
}
const writeTermination = (msg: TerminationMessage): void =>
  void writeTerminationMessageFromEnv(process.env, msg, (why) => void process.stderr.write(`get-distill: ${why}\n`));

type Key = Extract<keyof typeof EvalSpecSchema.shape, string>;
/** One flag: its key, placeholder and the spec's description. */
const opt = (key: Key, arg: string): OptionDoc<Key> => [key, arg, describeOf(EvalSpecSchema.shape[key]) ?? key];

/** Adds the flags of `keys` under `heading`, generated from the eval spec (defaults shown in --help). */
function addFlags(cmd: Command, heading: string, ...flags: OptionDoc<Key>[]): void {
  // --dataset lists its choices (commander's error); the other fields validate with their spec field.
  addConfigOptions(cmd, EvalSpecSchema, [[heading, flags]], { typed: true, listChoices: ['dataset'] });
}

export function evalCommand(): Command {
  const cmd = new Command('eval').description(
    "Score a model's samples: FID against reference statistics, Inception Score (10 splits) and improved " +
      'precision/recall (k-NN, k = 3), from the features of a feature network.',
  );
  addFlags(cmd, 'What is evaluated:', opt('model', '<spec>'), opt('samples', '<n>'), opt('seedStart', '<n>'));
  cmd.options.find((o) => o.attributeName() === 'model')!.makeOptionMandatory();
  addFlags(
    cmd,
    'Feature network:',
    opt('features', '<net>'),
    opt('layer', '<name>'),
    opt('logitsLayer', '<name>'),
    opt('inputRange', '<lo,hi>'),
  );
  addFlags(
    cmd,
    'Reference:',
    opt('reference', '<spec>'),
    opt('referenceSamples', '<n>'),
    opt('saveReference', '<uri>'),
  );
  addFlags(
    cmd,
    'Teacher (for --model teacher or an ONNX teacher):',
    opt('dataset', '<name>'),
    opt('teacherComponents', '<k>'),
    opt('teacherRank', '<r>'),
    opt('samplerSteps', '<n>'),
    opt('cacheDir', '<dir>'),
  );
  const output = 'Metrics and output:';
  addFlags(cmd, output, opt('splits', '<n>'), opt('k', '<n>'), opt('batch', '<n>'), opt('threads', '<n>'));
  addFlags(cmd, output, opt('out', '<uri>'));
  // The Pushgateway also comes from the environment, and its URL is checked by the service kit.
  cmd.addOption(
    new Option('--pushgateway <url>', describeOf(EvalSpecSchema.shape.pushgateway))
      .env(PUSHGATEWAY_URL_ENV)
      .argParser(url(`--pushgateway (or ${PUSHGATEWAY_URL_ENV})`))
      .helpGroup(output),
  );
  addFlags(cmd, output, opt('metricsPort', '<port>'), opt('metricsHost', '<host>'));
  return cmd
    .addHelpText(
      'after',
      `
Examples:
  get-distill eval --model runs/distill/model.onnx                        # student vs MNIST test split
  get-distill eval --model teacher --samples 10000                         # the embedded teacher, 35 NFE
  get-distill eval --model mnist:train --samples 10000                     # train vs test: FID's floor
  get-distill eval --model mnist:test --samples 10000 --save-reference mnist-test.npz
  get-distill eval --model model.onnx --features inception.onnx --layer pool3 --input-range 0,1 ` +
        `--reference cifar10.train.npz
Metrics (Prometheus): get_eval_fid{model,reference,features}, get_eval_inception_score, get_eval_precision,
get_eval_recall, get_eval_samples_per_second, get_eval_duration_seconds, progress gauges (docs/monitoring.md).
Exit codes: 0 done, 2 bad input (one line on stderr says what and how to fix it).
GET_DISTILL_TERMINATION_LOG=<file>: also write the result as one JSON object there (a Kubernetes
termination message: stage, outcome, exitCode, summary {fid, inceptionScore, precision, recall, samples}).`,
    )
    .action(async (opts: Opts, command: Command) => {
      const { pushgateway, metricsPort, metricsHost, ...o } = opts;
      // The embedded teacher's dataset picks the feature network and reference unless they are given.
      const given = (k: string) => command.getOptionValueSource(k) === 'cli';
      if (!given('features')) o.features = o.dataset;
      if (!given('reference')) o.reference = `${o.dataset}:test`;
      const modelLabel =
        o.model === 'teacher'
          ? `teacher:mixture-${o.dataset}-K${o.teacherComponents}-r${o.teacherRank}-nfe${2 * o.samplerSteps - 1}`
          : o.model;
      const logger = createLogger('eval', 'info', { stderr: true }); // stdout carries the result only
      const metrics = createEvalMetrics({
        model: modelLabel,
        reference: o.reference,
        features: o.features,
        pushgateway: pushgateway ?? pushgatewayFromEnv(),
        logger,
      });
      let server: MetricsServer | undefined;
      if (metricsPort !== undefined) {
        server = await serveEvalMetrics(metrics, metricsPort, metricsHost, logger).catch((e: unknown) => {
          writeTermination(evalTermination(o, { error: e }));
          throw e;
        });
        process.stderr.write(`metrics on ${server.url}/metrics\n`);
      }
      // Ctrl-C / SIGTERM: the gateway must not keep showing "running".
      const onSignal = (sig: NodeJS.Signals) => {
        process.stderr.write(`get-distill: ${sig}: evaluation stopped, nothing written\n`);
        writeTermination(evalTermination(o, { signal: sig }));
        void metrics.fail().finally(() => process.exit(130));
      };
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      const progress = new Progress();
      try {
        await metrics.start();
        const result = await evalStage(o, { progress, metrics });
        const r = result.report;
        const s = r.scores;
        const f = (v: number | null, d = 4) => (v === null ? 'n/a' : v.toFixed(d));
        const classes = r.features.classes ? `, ${r.features.classes} classes` : '';
        const is = s.inceptionScore
          ? `${f(s.inceptionScore.mean)} ± ${f(s.inceptionScore.std)} (${s.inceptionScore.splits} splits)`
          : 'n/a (no logits layer)';
        const k = s.k ? ` (k = ${s.k})` : " (needs the reference's features, not an .npz)";
        process.stdout.write(
          [
            `model       ${r.model.id} (${r.model.kind}), ${r.samples} samples`,
            `features    ${r.features.id} (${r.features.dim}-d${classes})`,
            `reference   ${r.reference.id}${r.reference.samples ? ` (${r.reference.samples} images)` : ''}`,
            `FID         ${s.fid.toFixed(4)}${s.fidOffsetApplied ? ' (ε·I added to the covariances)' : ''}`,
            `IS          ${is}`,
            `precision   ${f(s.precision)}   recall ${f(s.recall)}${k}`,
            `speed       ${r.samplesPerSecond.toFixed(1)} samples/s, ${r.wallSeconds.toFixed(1)} s in all`,
            '',
          ].join('\n'),
        );
        await saveEvalOutputs(o, result); // after printing: a failing write does not lose the scores
        if (o.saveReference) process.stdout.write(`reference statistics saved to ${o.saveReference}\n`);
        if (o.out) process.stdout.write(`report      ${o.out}\n`);
        await metrics.succeed(r);
        writeTermination(evalTermination(o, { result }));
      } catch (e) {
        writeTermination(evalTermination(o, { error: e }));
        await metrics.fail();
        throw e;
      } finally {
        process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
        await metrics.close();
        await server?.close();
      }
    });
}
