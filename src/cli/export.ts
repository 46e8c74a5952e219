/**
 * `get-distill export`: a checkpoint's EMA weights → `model.onnx` + `model.json` (the export stage,
 * src/stages/export.ts), with a short summary on stdout.
 */
import { Command } from 'commander';
import { addConfigOptions, describeOf } from '../service/config.js';
import { ExportOptionsSchema } from '../spec/stages.js';
import { exportStage } from '../stages/export.js';

export function exportCommand(): Command {
  const cmd = new Command('export').description(
    "Export a checkpoint's EMA weights as a one-step ONNX generator (model.onnx, opset 17, dynamic batch) " +
      'with its model card (model.json).',
  );
  const help = (key: 'checkpoint' | 'out') => describeOf(ExportOptionsSchema.shape[key]) ?? key;
  addConfigOptions(
    cmd,
    ExportOptionsSchema,
    [
      [
        'Options:',
        [
          ['checkpoint', '<uri>', help('checkpoint')],
          ['out', '<uri>', help('out')],
        ],
      ],
    ],
    { typed: true },
  );
  // Both locations are required (commander's `required option '--out <uri>' not specified`).
  for (const o of cmd.options) o.makeOptionMandatory();
  return cmd
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
      const classes = card.config.numClasses > 0 ? `${card.config.numClasses} classes` : 'unconditional';
      process.stdout.write(
        [
          `model       ${modelUri}`,
          `card        ${cardUri}`,
          `sha256      ${card.sha256}`,
          `size        ${card.bytes.toLocaleString('en-US')} bytes (${mib} MiB)`,
          `parameters  ${card.parameterCount.toLocaleString('en-US')} ` +
            `(${card.preset}, ${classes}, ${card.iterations} iterations)`,
          `step        ${card.step}`,
          '',
        ].join('\n'),
      );
    });
}
