/**
 * Section `memory`: peak RSS of training, each configuration in its own child process (so the peaks
 * are separate): the default CPU preset and GET-T/2 (the smallest reference model) at batch 32.
 */
import { runChild } from './spawn.js';
import { type BenchContext, type Row, fmt, mb } from './util.js';

/** Runs the section. */
export async function runMemory(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const cases = [
    {
      preset: 'GET-CPU-S/4',
      numClasses: 10,
      batch: 32,
      steps: ctx.quick ? 1 : 3,
      label: 'GET-CPU-S/4 (cond., 1×32×32)',
    },
    { preset: 'GET-T/2', numClasses: 0, batch: 32, steps: ctx.quick ? 1 : 2, label: 'GET-T/2 (uncond., 3×32×32)' },
  ];
  for (const c of cases) {
    const r = await runChild('train', c);
    const { msPerStep, firstStepMs, compileMs, params } = r.extra;
    const timing =
      c.steps > 1
        ? `first step ${fmt(firstStepMs)} ms, then ${fmt(msPerStep)} ms/step`
        : `one step, ${fmt(firstStepMs)} ms`;
    ctx.log(`${c.preset} batch ${c.batch}: peak RSS ${mb(r.maxRssKb)} (${timing})`);
    rows.push({
      section: 'memory',
      what: `Peak RSS, training ${c.label}, batch ${c.batch}, 6 iterations`,
      value: mb(r.maxRssKb),
      note: `child process; ${timing} (${fmt(compileMs / 1000, 1)} s compile); ${fmt(params)} params`,
    });
  }
  return rows;
}
