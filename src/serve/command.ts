/**
 * The inference service's command: `get-distill serve` (mounted by src/cli/main.ts) and the container's
 * services/inference/main.ts are this one command. Flags are read as strings and validated, together
 * with their GET_DISTILL_* environment variables, by the one schema in src/serve/config.ts; defaults are
 * shown in --help but applied by that schema, so an environment variable is never masked by a flag default.
 */
import { Command, Option } from 'commander';
import { resolveServeConfig, ServeConfigSchema, type ServeConfig } from './config.js';
import { addConfigOptions, describeOf, type OptionDoc, type OptionGroups } from '../service/config.js';
import { runInferenceService } from './service.js';

type Key = keyof ServeConfig;
/** One flag: its key, placeholder and the schema's description (`shown`: the default --help shows). */
const opt = (key: Key, arg: string, shown?: string): OptionDoc<Key> => {
  const help = describeOf(ServeConfigSchema.shape[key]) ?? key;
  return shown === undefined ? [key, arg, help] : [key, arg, help, shown];
};

/** The flags, grouped as in EDM's train.py. */
const GROUPS: OptionGroups<Key> = [
  ['Model:', [opt('model', '<uri>'), opt('modelName', '<name>')]],
  [
    'HTTP:',
    [
      opt('host', '<address>'),
      opt('port', '<n>'),
      opt('bodyLimit', '<size>', '8mb'), // not the schema's byte count
      opt('requestTimeoutMs', '<ms>'),
      opt('maxImagesPerRequest', '<n>'),
    ],
  ],
  [
    'Batching and compute:',
    [opt('maxBatchSize', '<n>'), opt('maxQueueDelayMs', '<ms>'), opt('maxQueueSize', '<n>'), opt('sessions', '<n>')],
  ],
  ['Process:', [opt('shutdownGraceMs', '<ms>'), opt('logLevel', '<level>')]],
];

/** The `serve` subcommand; its action runs until SIGTERM/SIGINT. */
export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'Serve an exported GET model over HTTP: Open Inference Protocol v2 (/v2/…) and OpenAI-style image ' +
      'generation (/v1/images/generations), with dynamic batching, Prometheus metrics (/metrics) and graceful SIGTERM.',
  );
  addConfigOptions(cmd, ServeConfigSchema, GROUPS);
  cmd.optionsGroup('Other:');
  cmd.addOption(new Option('--dry-run', 'print the resolved configuration as JSON and exit'));
  cmd.addHelpText(
    'after',
    `
Examples:
  get-distill serve --model runs/distill/model.onnx
  GET_DISTILL_MODEL=s3://my-bucket/run1/model.onnx get-distill serve --host 0.0.0.0
  curl -s localhost:8080/v2/models/get | jq .
  curl -s -o digit.png 'localhost:8080/v1/images/generations?seed=7&class_label=3&scale=8'
Exit codes: 0 after a graceful shutdown, 1 when the grace period ran out, 2 bad configuration or model ` +
      '(one line on stderr).',
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const { dryRun, ...flags } = opts;
    const cfg = resolveServeConfig(flags, process.env);
    if (dryRun) {
      process.stdout.write(`${JSON.stringify(cfg, null, 2)}\n`);
      return;
    }
    await runInferenceService(cfg);
  });
  return cmd;
}
