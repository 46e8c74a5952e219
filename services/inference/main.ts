#!/usr/bin/env node
/**
 * Entry point of the inference service: `node --import tsx services/inference/main.ts --model URI …`
 * (the container's command; `get-distill serve` runs the same code). Configuration comes from flags
 * and GET_DISTILL_* environment variables (src/serve/config.ts). Bad configuration or a model that
 * cannot be loaded: one line on stderr, exit 2. SIGTERM: drain, exit 0.
 */
import { CommanderError } from 'commander';
import { serveCommand } from '../../src/serve/command.js';
import { EXIT_USAGE, UsageError } from '../../src/util/errors.js';

const program = serveCommand()
  .name('get-distill-inference')
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE); // commander printed its line
  if (e instanceof UsageError) {
    process.stderr.write(`get-distill-inference: ${e.message}\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`get-distill-inference: ${(e as Error).message ?? String(e)}\n`);
  if (process.env.GET_DISTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
}
