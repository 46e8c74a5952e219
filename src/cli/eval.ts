/**
 * `get-distill eval`: FID, Inception Score and improved precision/recall of a model's samples (the
 * evaluation stage, src/stages/eval.ts), with Prometheus metrics on /metrics while it runs and pushed
 * to a Pushgateway when one is configured.
 */
import { Command, Option } from 'commander';
import { createLogger } from '../service/logging.js';
import { parsePushgatewayUrl, pushgatewayFromEnv } from '../service/pushgateway.js';
import { EVAL_SEED_START, evalStage, type EvalOptions, type EvalResult, saveEvalOutputs } from '../stages/eval.js';
import { classifyError } from '../service/error-class.js';
import { type TerminationMessage, writeTerminationMessageFromEnv } from '../service/termination.js';
import { EMBEDDED_FEATURE_NETS } from '../eval/feature-net.js';
import { EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { int, location } from './distill.js';
import { createEvalMetrics, serveEvalMetrics } from './eval-metrics.js';
import type { MetricsServer } from '../service/metrics-server.js';

/** `lo,hi` with lo < hi, both finite. */
const range =
  (flag: string) =>
  (v: string): [number, number] => {
    const parts = v.split(',').map((s) => s.trim());
    const [lo, hi] = parts.map(Number);
    if (parts.length !== 2 || parts.some((s) => s === '') || !Number.isFinite(lo) || !Number.isFinite(hi) || lo >= hi) {
      throw new UsageError(`${flag} must be two numbers lo,hi with lo < hi (e.g. 0,1 or -1,1), got "${v}"`);
    }
    return [lo, hi];
  };

/** A model / reference spec: a dataset split, `teacher`, or a location. */
const spec =
  (flag: string) =>
  (v: string): string => {
    if (/^(mnist|fashion-mnist):(train|test)$/.test(v) || v === 'teacher') return v;
    if (/^(mnist|fashion-mnist):/i.test(v))
      throw new UsageError(
        `${flag} ${v}: unknown dataset split; use mnist:train, mnist:test, fashion-mnist:train or fashion-mnist:test`,
      );
    return location(flag)(v);
  };

/** A Pushgateway URL (http/https; the error never echoes credentials), or blank for none. */
const url =
  (flag: string) =>
  (v: string): string => {
    if (v.trim() === '') return ''; // a blank GET_DISTILL_PUSHGATEWAY_URL turns pushes off
    parsePushgatewayUrl(v, flag);
    return v;
  };

type Opts = Omit<EvalOptions, 'inputRange'> & {
  inputRange?: [number, number];
  pushgateway?: string;
  metricsPort?: number;
  metricsHost: string;
};

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

export function evalCommand(): Command {
  return new Command('eval')
    .description(
      "Score a model's samples: FID against reference statistics, Inception Score (10 splits) and improved precision/recall (k-NN, k = 3), from the features of a feature network.",
    )
    .optionsGroup('What is evaluated:')
    .addOption(
      new Option(
        '--model <spec>',
        'model.onnx of a student (get-distill export), an EDM teacher ONNX network or "teacher" (the embedded mixture, Heun sampler), a pair folder, or a split such as mnist:train',
      )
        .argParser(spec('--model'))
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--samples <n>', 'samples to draw (seeded models use seeds --seed-start … + n − 1)')
        .argParser(int('--samples', 2, 1_000_000))
        .default(10_000),
    )
    .addOption(
      new Option('--seed-start <n>', 'first seed of seeded models (noise, label and z₀ per the seed contract)')
        .argParser(int('--seed-start', 0, 2 ** 31 - 1))
        .default(EVAL_SEED_START),
    )
    .optionsGroup('Feature network:')
    .addOption(
      new Option(
        '--features <net>',
        `embedded classifier (${EMBEDDED_FEATURE_NETS.join(', ')}) or the URI of an ONNX image network (default: the one of --dataset)`,
      )
        .argParser(spec('--features'))
        .default('mnist'),
    )
    .addOption(
      new Option(
        '--layer <name>',
        'with an ONNX URI: the graph value whose activations are the features (e.g. an Inception-v3 pool3 output)',
      ),
    )
    .addOption(
      new Option(
        '--logits-layer <name>',
        'with an ONNX URI: the graph value holding class logits (for the Inception Score)',
      ),
    )
    .addOption(
      new Option(
        '--input-range <lo,hi>',
        'with an ONNX URI: the value range its input expects (images are quantised to u8, then mapped here)',
      ).argParser(range('--input-range')),
    )
    .optionsGroup('Reference:')
    .addOption(
      new Option(
        '--reference <spec>',
        'reference statistics: an .npz of mu and sigma (pytorch-fid layout), a split such as mnist:test, a pair folder or a model (default: the test split of --dataset)',
      )
        .argParser(spec('--reference'))
        .default('mnist:test'),
    )
    .addOption(
      new Option(
        '--reference-samples <n>',
        'images of a computed reference (default: all of a split or pair folder, else --samples)',
      ).argParser(int('--reference-samples', 2, 1_000_000)),
    )
    .addOption(
      new Option('--save-reference <uri>', 'write the reference statistics here as .npz (mu, sigma float64)').argParser(
        location('--save-reference'),
      ),
    )
    .optionsGroup('Teacher (for --model teacher or an ONNX teacher):')
    .addOption(
      new Option(
        '--dataset <name>',
        'dataset of the embedded teacher; also picks the default --features and --reference',
      )
        .choices(['mnist', 'fashion-mnist'])
        .default('mnist'),
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
      new Option('--sampler-steps <n>', 'Heun steps (NFE = 2n − 1)')
        .argParser(int('--sampler-steps', 2, 1000))
        .default(18),
    )
    .addOption(
      new Option('--cache-dir <dir>', 'fitted-teacher cache (a folder or s3:// prefix)')
        .argParser(location('--cache-dir'))
        .default(process.env.XDG_CACHE_HOME ? `${process.env.XDG_CACHE_HOME}/get-distill` : '.cache/get-distill'),
    )
    .optionsGroup('Metrics and output:')
    .addOption(new Option('--splits <n>', 'Inception Score splits').argParser(int('--splits', 1, 1000)).default(10))
    .addOption(
      new Option('--k <n>', 'nearest neighbours of the precision/recall manifolds')
        .argParser(int('--k', 1, 100))
        .default(3),
    )
    .addOption(
      new Option('--batch <n>', 'images per feature-network run').argParser(int('--batch', 1, 4096)).default(128),
    )
    .addOption(
      new Option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)').argParser(
        int('--threads', 1, 256),
      ),
    )
    .addOption(
      new Option(
        '--out <uri>',
        'write the report (JSON) here (a file or object name; an existing one is replaced)',
      ).argParser(location('--out')),
    )
    .addOption(
      new Option('--pushgateway <url>', 'push progress and results to this Prometheus Pushgateway')
        .env('GET_DISTILL_PUSHGATEWAY_URL')
        .argParser(url('--pushgateway (or GET_DISTILL_PUSHGATEWAY_URL)')),
    )
    .addOption(
      new Option('--metrics-port <port>', 'serve /metrics on this port while running (0: any free port)').argParser(
        int('--metrics-port', 0, 65535),
      ),
    )
    .addOption(new Option('--metrics-host <host>', 'address for --metrics-port').default('127.0.0.1'))
    .addHelpText(
      'after',
      `
Examples:
  get-distill eval --model runs/distill/model.onnx                        # student vs MNIST test split
  get-distill eval --model teacher --samples 10000                         # the embedded teacher, 35 NFE
  get-distill eval --model mnist:train --samples 10000                     # train vs test: FID's floor
  get-distill eval --model mnist:test --samples 10000 --save-reference mnist-test.npz
  get-distill eval --model model.onnx --features inception.onnx --layer pool3 --input-range 0,1 --reference cifar10.train.npz
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
        process.stdout.write(
          [
            `model       ${r.model.id} (${r.model.kind}), ${r.samples} samples`,
            `features    ${r.features.id} (${r.features.dim}-d${r.features.classes ? `, ${r.features.classes} classes` : ''})`,
            `reference   ${r.reference.id}${r.reference.samples ? ` (${r.reference.samples} images)` : ''}`,
            `FID         ${s.fid.toFixed(4)}${s.fidOffsetApplied ? ' (ε·I added to the covariances)' : ''}`,
            `IS          ${s.inceptionScore ? `${s.inceptionScore.mean.toFixed(4)} ± ${s.inceptionScore.std.toFixed(4)} (${s.inceptionScore.splits} splits)` : 'n/a (no logits layer)'}`,
            `precision   ${f(s.precision)}   recall ${f(s.recall)}${s.k ? ` (k = ${s.k})` : " (needs the reference's features, not an .npz)"}`,
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
