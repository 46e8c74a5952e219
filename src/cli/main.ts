#!/usr/bin/env node
/**
 * `get-distill`: the command line. `distill` runs the whole pipeline on one machine with embedded
 * defaults (dataset → teacher → pairs → GET → one-step samples → report → model.onnx); `export`
 * turns a checkpoint into model.onnx + model.json; `eval` scores samples (FID, IS, precision/recall);
 * `serve` runs the one-step generation service. Errors a user can fix print one line and exit 2.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_INTERRUPTED, EXIT_USAGE, Interrupted, UsageError } from '../util/errors.js';
import { distillCommand } from './distill.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
// The one import of a service: `get-distill serve` mounts the inference service's own command.
import { serveCommand } from '../serve/command.js';

export function buildProgram(): Command {
  const program = new Command('get-distill')
    .description('One-step diffusion distillation with the Generative Equilibrium Transformer (GET)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // addCommand does not inherit settings: each subcommand needs exitOverride to exit 2, not 1.
  program.addCommand(distillCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
  program.addCommand(exportCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
  program.addCommand(evalCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
  program.addCommand(serveCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; commander already printed its one-line error otherwise.
      process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    if (e instanceof UsageError) {
      process.stderr.write(`get-distill: ${e.message}\n`);
      process.exit(EXIT_USAGE);
    }
    if (e instanceof Interrupted) {
      process.stderr.write(`get-distill: ${e.message}\n`);
      process.exit(EXIT_INTERRUPTED);
    }
    // A bug or an environment failure: one line, the stack only on request.
    process.stderr.write(`get-distill: ${(e as Error).message ?? String(e)}\n`);
    if (process.env.GET_DISTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    else
      process.stderr.write('(unexpected error; rerun with GET_DISTILL_DEBUG=1 for the stack trace, and report it)\n');
    process.exit(1);
  }
}

await main(process.argv);
