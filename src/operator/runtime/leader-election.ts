/**
 * Lease-based leader election (coordination.k8s.io/v1), following client-go's
 * `tools/leaderelection` with the controller-runtime defaults (peers.md §2d): lease 15 s,
 * renew deadline 10 s, retry period 2 s.
 * - A candidate takes the Lease when it is absent, has no holder, is already held by this identity,
 *   or has expired: no change to the Lease (its resourceVersion) observed for leaseDurationSeconds,
 *   timed on OUR clock from when we first saw its current version — client-go's rule, which needs no
 *   agreement between the holder's clock (renewTime) and ours. A new candidate therefore waits one
 *   full lease duration before taking over from a holder that died.
 * - Writes are optimistic: the read resourceVersion goes back in a PUT (replace); a 409 means
 *   another candidate won this round and we retry after the retry period. (Typed patch in
 *   client-node 1.4 defaults to JSON patch, so replace is simpler and exact.)
 * - The leader renews every retry period; if no renew succeeded for the renew deadline it stops
 *   leading (signal aborted, onStoppedLeading) and campaigns again.
 * - stop() while leading releases the Lease as client-go's ReleaseOnCancel: holderIdentity '',
 *   leaseDurationSeconds 1, so another replica can take over at once.
 * acquireTime / renewTime are MicroTime (RFC 3339 with microseconds, `V1MicroTime`).
 */
import {
  ApiException,
  V1MicroTime,
  type CoordinationV1Api,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';
import { realClock, type Clock } from '../../util/clock.js';
import { silentLogger, type RuntimeLogger } from './logger.js';
import type { OperatorMetrics } from './metrics.js';

export interface LeaderElectorOptions {
  api: CoordinationV1Api;
  /** Namespace and name of the Lease object. */
  namespace: string;
  name: string;
  /** This candidate's identity (pod name; must be unique per replica). */
  identity: string;
  /** Lease duration in ms; written as whole seconds, at least 1 (default 15 000). */
  leaseDurationMs?: number;
  /** Give up leadership when renews failed for this many ms (default 10 000). */
  renewDeadlineMs?: number;
  /** Interval between acquire / renew attempts in ms (default 2000; candidates add up to 20 % jitter). */
  retryPeriodMs?: number;
  /**
   * Called on becoming leader. `signal` aborts when leadership ends. If it returns a promise,
   * stop() and a re-campaign wait for it, so resolve it once the leader-only work has drained.
   */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called after leadership ended (lost or released). */
  onStoppedLeading?(): void;
  /** Called when the observed holder changes ('' = nobody). */
  onNewLeader?(identity: string): void;
  metrics?: OperatorMetrics;
  log?: RuntimeLogger;
  /** Time source for lease expiry, renew deadline, MicroTime stamps and the retry timers (default: real). */
  clock?: Clock;
}

const micro = (ms: number): V1MicroTime => new V1MicroTime(ms);
const codeOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

/** See the file header. `start()` campaigns in the background; `await stop()` to end and release. */
export class LeaderElector {
  private readonly leaseMs: number;
  private readonly leaseSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly log: RuntimeLogger;
  private leading = false;
  private stopped = true;
  private loop?: Promise<void>;
  private stopping?: Promise<void>;
  private leaderAbort?: AbortController;
  private work?: Promise<void>;
  private observedHolder?: string;
  /** The Lease version last seen, and when (our clock): the expiry clock of client-go's rule. */
  private seenVersion?: string;
  private seenAt = 0;
  private readonly wakers = new Set<() => void>();
  private readonly clock: Clock;
  /** True while parked between rounds (the retry / renew period sleep); see whenIdle(). */
  private idle = false;
  private readonly idleWaiters: Array<() => void> = [];

  /** @throws RangeError unless leaseDurationMs > renewDeadlineMs > 1.2 × retryPeriodMs > 0. */
  constructor(private readonly opts: LeaderElectorOptions) {
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2000;
    if (!(this.retryMs > 0 && this.renewDeadlineMs > 1.2 * this.retryMs && this.leaseMs > this.renewDeadlineMs)) {
      throw new RangeError(
        `LeaderElector: need leaseDurationMs > renewDeadlineMs > 1.2 × retryPeriodMs > 0, got ` +
          `${this.leaseMs} / ${this.renewDeadlineMs} / ${this.retryMs}`,
      );
    }
    this.leaseSeconds = Math.max(1, Math.round(this.leaseMs / 1000));
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? realClock;
  }

  /** Whether this candidate currently leads. */
  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Resolves once this candidate has finished its current acquire / renew round (and any leadership
   * change it caused) and waits for the next one, or is stopped. Lets a test advance an injected
   * clock one retry period at a time and then assert the decisions, without sleeping.
   */
  whenIdle(): Promise<void> {
    if (this.idle || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Begin campaigning (no-op while running). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopping = undefined;
    this.loop = this.run();
  }

  /**
   * Stop campaigning; when leading, abort the signal, wait for onStartedLeading's promise, release the Lease, call
   * onStoppedLeading.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      for (const w of [...this.wakers]) w();
      for (const w of this.idleWaiters.splice(0)) w(); // whenIdle() resolves once stopped
      await this.loop;
      if (this.leading) {
        await this.endLeadership('stopping');
        await this.release();
      }
    })();
    return this.stopping;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) {
        // stop() raced with a successful acquire: hand the Lease straight back.
        if (this.stopped) {
          await this.release();
          return;
        }
        await this.lead();
      } else {
        await this.sleep(this.retryMs * (1 + 0.2 * Math.random()), true).promise;
      }
    }
  }

  /** Hold leadership until a renew deadline passes or stop(); returns with `leading` still true on stop. */
  private async lead(): Promise<void> {
    this.leading = true;
    this.opts.metrics?.setLeader(true);
    this.leaderAbort = new AbortController();
    this.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity }, 'became leader');
    this.work = (async () => {
      await this.opts.onStartedLeading(this.leaderAbort!.signal);
    })().catch((err) => this.log.error({ err }, 'onStartedLeading failed'));
    let lastRenew = this.clock.now();
    while (!this.stopped) {
      await this.sleep(this.retryMs, true).promise;
      if (this.stopped) return;
      const left = this.renewDeadlineMs - (this.clock.now() - lastRenew);
      let ok = false;
      if (left > 0) {
        // A hung request must not keep us leading past the deadline.
        const deadline = this.sleep(left);
        ok = await Promise.race([this.tryAcquireOrRenew(), deadline.promise]);
        deadline.wake();
      }
      if (ok) lastRenew = this.clock.now();
      else if (this.clock.now() - lastRenew >= this.renewDeadlineMs) {
        this.log.warn(
          { lease: this.opts.name, renewDeadlineMs: this.renewDeadlineMs },
          'failed to renew the lease within the renew deadline; stopping leading',
        );
        await this.endLeadership('renew deadline exceeded');
        return;
      }
    }
  }

  private async endLeadership(why: string): Promise<void> {
    this.leading = false;
    this.opts.metrics?.setLeader(false);
    this.leaderAbort?.abort(new Error(`leadership ended: ${why}`));
    await this.work;
    this.work = undefined;
    this.log.info({ lease: this.opts.name, identity: this.opts.identity, why }, 'stopped leading');
    try {
      this.opts.onStoppedLeading?.();
    } catch (err) {
      this.log.error({ err }, 'onStoppedLeading threw');
    }
  }

  /** One acquire-or-renew round; true when this identity holds the Lease afterwards. Never throws. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.opts;
    const now = this.clock.now();
    let cur: V1Lease;
    try {
      cur = await api.readNamespacedLease({ namespace, name });
    } catch (e) {
      if (codeOf(e) !== 404) {
        this.log.warn({ err: e, lease: name }, 'reading the lease failed');
        return false;
      }
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.leaseSeconds,
              acquireTime: micro(now),
              renewTime: micro(now),
              leaseTransitions: 0,
            },
          },
        });
        this.observe(identity);
        return true;
      } catch (err) {
        if (codeOf(err) !== 409) this.log.warn({ err, lease: name }, 'creating the lease failed');
        return false;
      }
    }
    const spec: V1LeaseSpec = cur.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observe(holder);
    const version = cur.metadata?.resourceVersion ?? `${holder}@${String(spec.renewTime)}`;
    if (version !== this.seenVersion) {
      this.seenVersion = version;
      this.seenAt = now;
    }
    const expired = now - this.seenAt > (spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== identity && !expired) return false;
    const mine = holder === identity;
    const body: V1Lease = {
      ...cur,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.leaseSeconds,
        renewTime: micro(now),
        acquireTime: mine ? spec.acquireTime : micro(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      await api.replaceNamespacedLease({ namespace, name, body });
      this.observe(identity);
      return true;
    } catch (err) {
      if (codeOf(err) === 409) this.log.debug({ lease: name }, 'lease changed meanwhile (409); retrying later');
      else this.log.warn({ err, lease: name }, 'updating the lease failed');
      return false;
    }
  }

  /** Clear the holder if it is still us (ReleaseOnCancel); failures only log. */
  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.opts;
    try {
      const cur = await api.readNamespacedLease({ namespace, name });
      if (cur.spec?.holderIdentity !== identity) return;
      const now = micro(this.clock.now());
      await api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          ...cur,
          spec: { ...cur.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
        },
      });
      this.log.info({ lease: name, identity }, 'released the lease');
    } catch (err) {
      this.log.warn({ err, lease: name }, 'releasing the lease failed; others take over after it expires');
    }
  }

  private observe(holder: string): void {
    if (holder === this.observedHolder) return;
    this.observedHolder = holder;
    try {
      this.opts.onNewLeader?.(holder);
    } catch (err) {
      this.log.error({ err }, 'onNewLeader threw');
    }
  }

  private setIdle(idle: boolean): void {
    this.idle = idle;
    if (idle) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Sleep `ms` on the clock, cut short by stop() or `wake()` (so no timer outlives its use).
   * `between` marks the sleep between rounds: the elector counts as idle (whenIdle) until it wakes.
   */
  private sleep(ms: number, between = false): { promise: Promise<false>; wake(): void } {
    let wake!: () => void;
    const promise = new Promise<false>((resolve) => {
      wake = () => {
        this.clock.clearTimeout(t);
        this.wakers.delete(wake);
        // Synchronously, so a whenIdle() called right after the timer fired waits for the coming round.
        if (between) this.setIdle(false);
        resolve(false);
      };
      // Clocks fire on a later turn (Clock.setTimeout), so wake never runs before t is set.
      const t = this.clock.setTimeout(wake, ms);
      this.wakers.add(wake);
    });
    if (between && !this.stopped) this.setIdle(true);
    return { promise, wake };
  }
}
