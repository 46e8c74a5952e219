/**
 * Child-process entry of the memory sections: each measurement runs in its own process so its peak
 * RSS (`process.resourceUsage().maxRSS`, KB on Linux) is its own. Prints one JSON line (`ChildReport`)
 * as the last line of stdout. Modules are imported per task so a stream child never loads onnxruntime.
 *
 * Usage: node --import tsx scripts/bench/child.ts <task> '<json args>'
 *   idle   {}                                           baseline: imports the shard reader, does nothing
 *   train  {preset, numClasses, batch, steps, channels?} full training steps (OrtTrainingEngine)
 *   stream {dir, batch}                                 one epoch of PairStream over a pair dataset
 */

/** What a child reports. */
export interface ChildReport {
  readonly task: string;
  /** Peak resident set size of the child, KB. */
  readonly maxRssKb: number;
  /** Task-specific numbers (ms/step, pairs streamed …). */
  readonly extra: Record<string, number>;
}

async function main(): Promise<void> {
  const [task, json] = process.argv.slice(2);
  const args = JSON.parse(json ?? '{}') as Record<string, unknown>;
  const extra: Record<string, number> = {};
  if (task === 'idle') {
    await import('../../src/data/shards.js');
  } else if (task === 'train') {
    const { resolveConfig } = await import('../../src/get/config.js');
    const { prepareTraining } = await import('./train.js');
    const cfg = resolveConfig(String(args.preset), { numClasses: Number(args.numClasses) });
    const s = await prepareTraining(cfg, Number(args.batch));
    const steps = Number(args.steps);
    let t = performance.now();
    await s.engine.step(s.params, s.data, s.z0, s.grad); // the first step also grows onnxruntime's arena
    extra.firstStepMs = performance.now() - t;
    t = performance.now();
    for (let i = 1; i < steps; i++) await s.engine.step(s.params, s.data, s.z0, s.grad);
    extra.msPerStep = steps > 1 ? (performance.now() - t) / (steps - 1) : extra.firstStepMs;
    extra.compileMs = s.compileMs;
    extra.params = s.params.size;
    await s.engine.close();
  } else if (task === 'stream') {
    const { PairStream } = await import('../../src/data/pair-stream.js');
    const { storeFor } = await import('../../src/store/index.js');
    const stream = await PairStream.open(storeFor(String(args.dir)), String(args.dir), {
      batchSize: Number(args.batch),
      seed: 0,
    });
    const t = performance.now();
    let pairs = 0;
    let checksum = 0;
    for await (const b of stream.epoch(0)) {
      pairs += b.size;
      checksum += b.image[0]; // touch the batch so nothing is optimised away
    }
    extra.pairs = pairs;
    extra.seconds = (performance.now() - t) / 1000;
    extra.peakLoadedShards = stream.stats.peakLoadedShards;
    extra.peakBufferedPairs = stream.stats.peakBufferedPairs;
    extra.checksumFinite = Number.isFinite(checksum) ? 1 : 0;
  } else {
    throw new Error(`bench child: unknown task "${task}"; use idle, train or stream`);
  }
  const report: ChildReport = { task, maxRssKb: process.resourceUsage().maxRSS, extra };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
