/**
 * The export stage as a job (services/exporter): a checkpoint's EMA weights → `<out>/model.onnx` +
 * `<out>/model.json` (contract get-distill/model@1, docs/data-contracts.md §11) by the same
 * `exportStage` the local executor runs. Export takes seconds and has no safe point inside: a stop
 * request before it starts cancels it, one during it lets it finish.
 */
import { exportStage } from '../../stages/export.js';
import { StoreError } from '../../store/index.js';
import { UsageError } from '../../util/errors.js';
import type { JobContext, JobOutcome, StageJob } from '../types.js';
import { stageGauge } from '../metrics.js';
import { requireInput } from './common.js';

import { ExportSpecSchema, type ExportSpec } from '../../spec/jobs.js';

export { ExportSpecSchema, type ExportSpec };

async function run(spec: ExportSpec, ctx: JobContext): Promise<JobOutcome> {
  const duration = stageGauge(ctx.registry, {
    name: 'get_export_duration_seconds',
    help: 'Wall seconds of the latest finished export job (load, build, validate, write)',
  });
  if (ctx.signal.aborted) return { artifacts: {}, interrupted: true };
  ctx.progress({ phase: 'exporting' });
  const t0 = performance.now();
  let r;
  try {
    r = await exportStage({ checkpoint: spec.checkpoint, out: spec.out });
  } catch (e) {
    // The stage's own messages start with the checkpoint's URI; say which field it came from.
    if (e instanceof UsageError && !(e instanceof StoreError))
      throw new UsageError(`checkpoint: ${e.message}`, { cause: e });
    throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  duration.set(seconds);
  ctx.progress({ phase: 'done' });
  const { card } = r;
  return {
    artifacts: { model: r.modelUri, card: r.cardUri },
    interrupted: false,
    // sha256 of model.onnx: the operator reads it from the termination message (src/service/termination.ts).
    summary: { step: card.step, sha256: card.sha256, bytes: card.bytes, seconds: Math.round(seconds * 100) / 100 },
  };
}

/** The export stage job. */
export const exportJob: StageJob<ExportSpec> = {
  kind: 'export',
  schema: ExportSpecSchema,
  run,
  preflight: (spec) => requireInput('checkpoint', spec.checkpoint, 'checkpoint', ['latest.json']),
};
