/**
 * A fake stage for the job machinery's tests: it counts steps (`stepMs` each), reports progress and a
 * `get_fake_step` gauge, honours the abort signal at each step boundary (its safe point: a pretend
 * checkpoint that takes `safePointMs`), and fails on request with the errors real stages throw: a
 * UsageError, a StoreError from a real S3 store whose endpoint refuses connections (Unreachable), a
 * StoreError NotFound from a real file store, or a bug (TypeError).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { stageGauge } from '../../src/jobs/metrics.js';
import type { JobContext, JobOutcome, StageJob } from '../../src/jobs/types.js';
import { intIn } from '../../src/service/config.js';
import { joinUri, storeFor } from '../../src/store/index.js';
import { UsageError } from '../../src/util/errors.js';

export const FakeSpecSchema = z
  .object({
    out: z.string().min(1).describe('run URI (s3://… for fail=unreachable, a folder for fail=notfound)'),
    steps: intIn(1, 1_000_000).default(3).describe('steps to count'),
    stepMs: intIn(0, 60_000).default(5).describe('milliseconds per step'),
    fail: z
      .enum(['none', 'usage', 'store', 'bug'])
      .default('none')
      .describe('fail at step failAt: usage, store (a real store get/put on out) or bug'),
    failAt: intIn(1, 1_000_000).default(1).describe('the step that fails'),
    safePointMs: intIn(0, 60_000).default(0).describe('milliseconds the pretend checkpoint takes after an abort'),
    ignoreSignal: z.boolean().default(false).describe('never stop early (a stage without a safe point)'),
    seeds: z
      .object({ start: intIn(0, 1e9), end: intIn(0, 1e9) })
      .strict()
      .optional()
      .describe('a seed range {start, end}'),
  })
  .strict();
export type FakeSpec = z.infer<typeof FakeSpecSchema>;

/** The fake stage; `runs` counts calls of run(). */
export function fakeStage(): StageJob<FakeSpec> & { runs: number } {
  const stage = {
    kind: 'train' as const,
    schema: FakeSpecSchema as z.ZodType<FakeSpec>,
    runs: 0,
    async run(spec: FakeSpec, ctx: JobContext): Promise<JobOutcome> {
      stage.runs++;
      const gauge = stageGauge(ctx.registry, { name: 'get_fake_step', help: 'Steps done by the fake stage' });
      for (let step = 1; step <= spec.steps; step++) {
        if (ctx.signal.aborted && !spec.ignoreSignal) {
          await sleep(spec.safePointMs);
          ctx.log.info({ step: step - 1 }, 'safe point reached');
          return {
            artifacts: { checkpoint: `${spec.out}/ckpt-${step - 1}` },
            interrupted: true,
            summary: { step: step - 1 },
          };
        }
        if (spec.fail !== 'none' && step === spec.failAt) {
          if (spec.fail === 'usage')
            throw new UsageError(
              `teacher ${spec.out}/teacher.onnx: not an EDM denoiser; export it with \`get-distill teacher\``,
            );
          if (spec.fail === 'bug') throw new TypeError("Cannot read properties of undefined (reading 'shape')");
          const store = storeFor(spec.out);
          const uri = joinUri(spec.out, 'missing.bin');
          await (spec.out.startsWith('s3://') ? store.put(uri, new Uint8Array(4)) : store.get(uri));
        }
        ctx.progress({ step, steps: spec.steps, phase: 'counting' });
        gauge.set(step);
        await sleep(spec.stepMs);
      }
      return {
        artifacts: { result: `${spec.out}/result.json` },
        interrupted: false,
        summary: { steps: spec.steps, completionIndex: ctx.completionIndex ?? null, seeds: spec.seeds ?? null },
      };
    },
  };
  return stage;
}
