/**
 * The inference service's command: `get-distill serve` (mounted by src/cli/main.ts) and the container's
 * services/inference/main.ts are this one command. Flags are read as strings and validated, together
 * with their GET_DISTILL_* environment variables, by the one schema in src/serve/config.ts; defaults are
 * shown in --help but applied by that schema, so an environment variable is never masked by a flag default.
 */
import { Command, Option } from 'commander';
import { resolveServeConfig, ServeConfigSchema, type ServeConfig } from './config.js';
import { addConfigOptions, type OptionGroups } from '../service/config.js';
import { runInferenceService } from './service.js';

/** Help text per option, grouped as in EDM's train.py. */
const GROUPS: OptionGroups<keyof ServeConfig> = [
  [
    'Model:',
    [
      ['model', '<uri>', 'model.onnx exported by `get-distill export`: a path, file:///… or s3://bucket/key'],
      ['modelName', '<name>', 'name in URLs (/v2/models/{name}) and in the `model` field of OpenAI requests'],
    ],
  ],
  [
    'HTTP:',
    [
      ['host', '<address>', 'address to bind (0.0.0.0 in a container)'],
      ['port', '<n>', 'TCP port (0 = any free port, logged)'],
      ['bodyLimit', '<size>', 'largest JSON body, e.g. 8mb, 512kb', '8mb'],
      ['requestTimeoutMs', '<ms>', 'deadline of a request; past it the client gets 504'],
      ['maxImagesPerRequest', '<n>', 'largest n of POST /v1/images/generations (≤ --max-batch-size)'],
    ],
  ],
  [
    'Batching and compute:',
    [
      ['maxBatchSize', '<n>', 'most images in one onnxruntime run'],
      ['maxQueueDelayMs', '<ms>', 'longest a request waits for a fuller batch'],
      ['maxQueueSize', '<n>', 'waiting requests beyond this get 429 with Retry-After'],
      ['sessions', '<n>', 'onnxruntime sessions (worker threads), each with floor(cores / n) threads'],
    ],
  ],
  [
    'Process:',
    [
      ['shutdownGraceMs', '<ms>', 'on SIGTERM, how long to finish queued requests before cutting connections'],
      ['logLevel', '<level>', 'fatal, error, warn, info, debug, trace or silent'],
    ],
  ],
];

/** The `serve` subcommand; its action runs until SIGTERM/SIGINT. */
export function serveCommand(): Command {
  const cmd = new Command('serve').description(
    'Serve an exported GET model over HTTP: Open Inference Protocol v2 (/v2/…) and OpenAI-style image generation (/v1/images/generations), with dynamic batching, Prometheus metrics (/metrics) and graceful SIGTERM.',
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
Exit codes: 0 after a graceful shutdown, 1 when the grace period ran out, 2 bad configuration or model (one line on stderr).`,
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
