/**
 * Prometheus metrics of the operator runtime (prom-client), named after controller-runtime's
 * `controller_runtime_reconcile_*` and client-go's `workqueue_*` families with a
 * `get_operator_` prefix. Durations are in seconds.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WorkQueueMetrics } from './workqueue.js';

/** Outcome label of one reconcile: returned normally, threw, or asked for a timed requeue. */
export type ReconcileResult = 'success' | 'error' | 'requeue';

/**
 * All operator runtime series, registered on `registry`.
 * @throws Error (from prom-client) when the registry already holds these names: create one per registry.
 */
export class OperatorMetrics {
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly queueRetries: Counter<'controller'>;
  readonly queueAdds: Counter<'controller'>;
  readonly isLeader: Gauge;
  readonly informerRestarts: Counter<'resource'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: 'get_operator_reconcile_total',
      help: 'Reconciles per controller and result (success|error|requeue).',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'get_operator_reconcile_duration_seconds',
      help: 'Reconcile wall time in seconds.',
      labelNames: ['controller'],
      registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    });
    this.reconcileErrors = new Counter({
      name: 'get_operator_reconcile_errors_total',
      help: 'Reconciles that threw.',
      labelNames: ['controller'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'get_operator_workqueue_depth',
      help: 'Keys waiting in the work queue.',
      labelNames: ['controller'],
      registers,
    });
    this.queueRetries = new Counter({
      name: 'get_operator_workqueue_retries_total',
      help: 'Rate-limited requeues.',
      labelNames: ['controller'],
      registers,
    });
    this.queueAdds = new Counter({
      name: 'get_operator_workqueue_adds_total',
      help: 'Keys enqueued (after dedupe).',
      labelNames: ['controller'],
      registers,
    });
    this.isLeader = new Gauge({
      name: 'get_operator_is_leader',
      help: '1 while this replica holds the leader Lease, else 0.',
      registers,
    });
    this.isLeader.set(0);
    this.informerRestarts = new Counter({
      name: 'get_operator_informer_restarts_total',
      help: 'Informer restarts after a list/watch error.',
      labelNames: ['resource'],
      registers,
    });
  }

  /** Record one reconcile of `controller` that took `seconds`. */
  observeReconcile(controller: string, result: ReconcileResult, seconds: number): void {
    this.reconcileTotal.inc({ controller, result });
    this.reconcileDuration.observe({ controller }, seconds);
    if (result === 'error') this.reconcileErrors.inc({ controller });
  }

  /** Work-queue hooks labelled with `controller` (pass as WorkQueueOptions.metrics). */
  queueMetrics(controller: string): WorkQueueMetrics {
    this.queueDepth.set({ controller }, 0);
    return {
      added: () => this.queueAdds.inc({ controller }),
      depth: (n) => this.queueDepth.set({ controller }, n),
      retried: () => this.queueRetries.inc({ controller }),
    };
  }

  /** Set the leader gauge (LeaderElector calls this). */
  setLeader(leading: boolean): void {
    this.isLeader.set(leading ? 1 : 0);
  }

  /** Count an informer restart of `resource` (SupervisedInformer calls this). */
  informerRestarted(resource: string): void {
    this.informerRestarts.inc({ resource });
  }
}
