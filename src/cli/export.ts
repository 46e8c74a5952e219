/**
 * `get-distill export`: a checkpoint's EMA weights → `model.onnx` + `model.json` (the export stage,
 * src/stages/export.ts), with a short summary on stdout.
 */
import { Command, Option } from 'commander';
import { exportStage } from '../stages/export.js';
import { location } from './distill.js';

export function exportCommand(): Command {
  return new Command('export')
    .description(
      "Export a checkpoint's EMA weights as a one-step ONNX generator (model.onnx, opset 17, dynamic batch) with its model card (model.json).",
    )
    .addOption(
      new Option(
        '--checkpoint <uri>',
        'a checkpoints folder (its latest.json is used) or one checkpoint-*.safetensors object: a path, file:///… or s3://…',
      )
        .argParser(location('--checkpoint'))
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--out <uri>', 'folder that receives model.onnx and model.json (replaced if present)')
        .argParser(location('--out'))
        .makeOptionMandatory(),
    )
    .addHelpText(
      'after',
      `
Examples:
  get-distill export --checkpoint runs/distill/checkpoints --out runs/distill
  get-distill export --checkpoint runs/distill/checkpoints/checkpoint-000006000.safetensors --out models/mnist
  get-distill export --checkpoint s3://my-bucket/run1/checkpoints --out s3://my-bucket/models/run1
Exit codes: 0 done, 2 bad input (one line on stderr says what and how to fix it).`,
    )
    .action(async (opts: { checkpoint: string; out: string }) => {
      const { modelUri, cardUri, card } = await exportStage(opts);
      const mib = (card.bytes / 2 ** 20).toFixed(2);
      process.stdout.write(
        [
          `model       ${modelUri}`,
          `card        ${cardUri}`,
          `sha256      ${card.sha256}`,
          `size        ${card.bytes.toLocaleString('en-US')} bytes (${mib} MiB)`,
          `parameters  ${card.parameterCount.toLocaleString('en-US')} (${card.preset}, ${card.config.numClasses > 0 ? `${card.config.numClasses} classes` : 'unconditional'}, ${card.iterations} iterations)`,
          `step        ${card.step}`,
          '',
        ].join('\n'),
      );
    });
}
