/**
 * Section `operator`: the Kubernetes operator (src/operator/manager.ts) against the in-memory API server
 * of the tests (test/k8s/api-server.ts: no real API server can run here), both in this process.
 *
 *  1. Admission: N DistillationRuns created at once → time until every run has its datagen Job and a
 *     Datagen status (runs per second, end to end through watch → queue → reconcile → create + status).
 *  2. Transition: all N datagen Jobs completed at once (Job status + a Succeeded pod each) → time
 *     until every run has its trainer Job.
 *  3. Cost per reconcile: mean wall time from get_operator_reconcile_duration_seconds, against one API
 *     round trip (GET of a Job through client-node) measured in the same run; API requests per run;
 *     heap growth per run (operator caches and the in-process API server's store together).
 */
import { BatchV1Api } from '@kubernetes/client-node';
import { kubeConfigFor } from '../../test/k8s/api-server.js';
import {
  NS,
  completeJob,
  createRun,
  getJob,
  getRun,
  runSpec,
  startCluster,
  startOperator,
  waitFor,
  OPERATOR_TOKEN,
} from '../../test/operator/harness.js';
import { type BenchContext, type Row, fmt, median, timeRuns } from './util.js';

export async function runOperator(ctx: BenchContext): Promise<Row[]> {
  const n = ctx.quick ? 40 : 200;
  const { srv, user } = await startCluster();
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const { op, started, registry } = startOperator(srv, 'bench', { leaderElection: false, workers: 2 });
  try {
    await started;
    const names = Array.from({ length: n }, (_, i) => `run-${i}`);
    const t0 = performance.now();
    await Promise.all(
      names.map((name, i) =>
        createRun(user, name, runSpec({ store: { uri: `s3://bench/${name}` }, training: { steps: 100 + i } })),
      ),
    );
    await waitFor(
      'every datagen Job and status',
      () => names.every((r) => getJob(srv, `${r}-datagen`) && getRun(srv, r)?.status?.stage === 'Datagen'),
      300_000,
    );
    const admit = (performance.now() - t0) / 1000;
    ctx.log(`${n} runs admitted in ${fmt(admit, 2)} s`);

    const t1 = performance.now();
    for (const r of names) await completeJob(srv, `${r}-datagen`);
    const completed = (performance.now() - t1) / 1000;
    await waitFor('every trainer Job', () => names.every((r) => getJob(srv, `${r}-train`)), 300_000);
    const transition = (performance.now() - t1) / 1000;
    ctx.log(
      `${n} datagen → train transitions in ${fmt(transition, 2)} s (simulating the Job controller took ` +
        `${fmt(completed, 2)} s of it)`,
    );

    const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values;
    const dur = await metric('get_operator_reconcile_duration_seconds');
    const named = (suffix: string) =>
      dur.filter((v) => (v as { metricName?: string }).metricName?.endsWith(suffix)).reduce((a, v) => a + v.value, 0);
    const [sum, count] = [named('_sum'), named('_count')];
    const batch = kubeConfigFor(srv.url).makeApiClient(BatchV1Api);
    const rtt = median(
      await timeRuns(() => batch.readNamespacedJob({ namespace: NS, name: 'run-0-datagen' }), 20, ctx.quick ? 50 : 200),
    );
    const requests = srv.requests.filter(
      (r) => r.authorization === `Bearer ${OPERATOR_TOKEN}` && r.verb !== 'watch',
    ).length;
    global.gc?.();
    const heapPerRun = (process.memoryUsage().heapUsed - heap0) / n / 1024;
    const meanMs = (sum / count) * 1000;
    return [
      {
        section: 'operator',
        what: `${n} DistillationRuns created → datagen Jobs + status`,
        value: `${fmt(n / admit, 0)} runs/s`,
        note: `${fmt(admit, 2)} s for all; 2 workers, in-memory API server in the same process`,
      },
      {
        section: 'operator',
        what: `${n} datagen Jobs completed → trainer Jobs`,
        value: `${fmt(n / transition, 0)} runs/s`,
        note: `${fmt(transition, 2)} s incl. ${fmt(completed, 2)} s of simulated Job controller writes`,
      },
      {
        section: 'operator',
        what: 'reconcile wall time (mean over all)',
        value: `${fmt(meanMs, 2)} ms`,
        note:
          `${fmt(count, 0)} reconciles; = ${fmt(meanMs / rtt, 1)}× one API round trip (GET Job, median ` +
          `${fmt(rtt, 2)} ms, same run)`,
      },
      {
        section: 'operator',
        what: 'API requests per run (datagen → train, no watches)',
        value: fmt(requests / n, 1),
        note: `${requests} requests for ${n} runs: Job creates, status patches, Events, lists`,
      },
      {
        section: 'operator',
        what: "heap growth per run (operator caches + the in-memory API server's objects and watch history)",
        value: `${fmt(heapPerRun, 1)} KiB`,
        note:
          `an upper bound for the operator alone (run, 2 Jobs, pod, Events per run); ` +
          `${global.gc ? 'after gc' : 'without --expose-gc: includes garbage'}`,
      },
    ];
  } finally {
    await op.stop();
    await srv.close();
  }
}
