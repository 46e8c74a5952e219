/** Operator runtime: rate limiters, work queue, supervised informer, Lease leader election, metrics, controller runner. */
export * from './rate-limiter.js';
export * from './workqueue.js';
export * from './informer.js';
export * from './leader-election.js';
export * from './metrics.js';
export * from './controller.js';
export * from './keys.js';
export * from './logger.js';
