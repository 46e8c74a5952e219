/**
 * A supervised informer over client-node 1.4's ListWatch (the class `makeInformer` builds).
 * ListWatch relists on 410 Gone but stops for good on any other list/watch error and has no watch
 * timeout (peers.md §2a); this wrapper adds what client-go's reflector/shared informer provide:
 * - restart after an 'error' with exponential backoff (default 1 s doubling to 30 s, reset by the
 *   next successful list or watch event); each restart counts in get_operator_informer_restarts_total;
 * - a server-side watch timeout (`timeoutSeconds`, default 300 s × random [1, 2) as client-go) so
 *   the watch is re-established regularly, plus an idle watchdog that restarts a watch that has not
 *   connected or delivered an event for `idleTimeoutMs` (a half-open connection);
 * - periodic resync (default every 10 min): every cached object re-delivered to `update` handlers
 *   with old === new, so level-triggered controllers re-check state they might have missed.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import { realClock, type Clock, type TimerHandle } from '../../util/clock.js';
import { objectKey } from './keys.js';
import { silentLogger, type RuntimeLogger } from './logger.js';
import type { OperatorMetrics } from './metrics.js';

/** Event handlers; `update` gets the previously delivered object as `old` (=== obj on resync). */
export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** Watch path, e.g. `/apis/batch/v1/namespaces/distill/jobs`. */
  path: string;
  /** Lists the same collection as `path` (e.g. `() => batch.listNamespacedJob({ namespace })`). */
  list: ListPromise<T>;
  labelSelector?: string;
  /** `resource` label of the restart metric (default: `path`). */
  resource?: string;
  /** Full resync period in ms (default 600 000; 0 disables). */
  resyncMs?: number;
  /** First restart delay in ms after an error (default 1000). */
  backoffInitialMs?: number;
  /** Restart delay cap in ms (default 30 000). */
  backoffMaxMs?: number;
  /** Base server-side watch timeout in s, jittered ×[1, 2) per watch (default 300; 0: none). */
  watchTimeoutSeconds?: number;
  /**
   * Restart when no watch (re)connected and no event arrived for this many ms (default 4000 × watchTimeoutSeconds, i.e.
   * twice the longest jittered watch; 0: off).
   */
  idleTimeoutMs?: number;
  metrics?: OperatorMetrics;
  log?: RuntimeLogger;
  /** Time source for the restart backoff, resync and idle-watchdog timers (default: the real clock). */
  clock?: Clock;
}

/** A Watch that adds a jittered `timeoutSeconds` to every watch request (client-go's reflector does the same). */
class TimeoutWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly baseSeconds: number,
  ) {
    super(config);
  }

  override watch(...[path, query, cb, done]: Parameters<Watch['watch']>): Promise<AbortController> {
    const q =
      this.baseSeconds > 0 ? { ...query, timeoutSeconds: Math.floor(this.baseSeconds * (1 + Math.random())) } : query;
    return super.watch(path, q, cb, done);
  }
}

/** See the file header. Construct, register handlers with on(), then `await start()`. */
export class SupervisedInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly handlers: {
    add: Array<(o: T) => void>;
    update: Array<(o: T, old: T) => void>;
    delete: Array<(o: T) => void>;
  } = { add: [], update: [], delete: [] };
  /** The last object delivered per key, to hand `old` to update handlers. */
  private readonly last = new Map<string, T>();
  private readonly log: RuntimeLogger;
  private readonly resource: string;
  private stopped = true;
  private synced = false;
  private listedOnce = false;
  private failures = 0;
  private restartCount = 0;
  private lastActivity = 0;
  private restartTimer?: TimerHandle;
  private resyncTimer?: TimerHandle;
  private idleTimer?: TimerHandle;
  private readonly clock: Clock;
  private syncWaiters: Array<() => void> = [];

  constructor(private readonly opts: SupervisedInformerOptions<T>) {
    this.log = opts.log ?? silentLogger;
    this.resource = opts.resource ?? opts.path;
    this.clock = opts.clock ?? realClock;
    const list: ListPromise<T> = async () => {
      const l = await opts.list();
      this.listedOnce = true;
      this.failures = 0;
      return l;
    };
    this.lw = new ListWatch<T>(
      opts.path,
      new TimeoutWatch(opts.kubeConfig, opts.watchTimeoutSeconds ?? 300),
      list,
      false,
      opts.labelSelector,
    );
    this.lw.on('add', (o) => {
      this.seen();
      this.last.set(objectKey(o), o);
      this.emit('add', o);
    });
    this.lw.on('update', (o) => {
      this.seen();
      const k = objectKey(o);
      const old = this.last.get(k) ?? o;
      this.last.set(k, o);
      this.emit('update', o, old);
    });
    this.lw.on('delete', (o) => {
      this.seen();
      this.last.delete(objectKey(o));
      this.emit('delete', o);
    });
    this.lw.on('connect', () => {
      this.lastActivity = this.clock.now();
    });
    this.lw.on('error', (err) => this.onError(err));
  }

  /** Register a handler; handlers that throw are logged and do not disturb the informer. */
  on(verb: 'add' | 'delete', fn: (obj: T) => void): void;
  on(verb: 'update', fn: (obj: T, old: T) => void): void;
  on(verb: 'add' | 'update' | 'delete', fn: (obj: T, old: T) => void): void {
    (this.handlers[verb] as Array<(o: T, old: T) => void>).push(fn);
  }

  /** Register several handlers at once (e.g. from enqueueHandlers / ownerHandlers). */
  addHandlers(h: InformerHandlers<T>): void {
    if (h.add) this.on('add', h.add);
    if (h.update) this.on('update', h.update);
    if (h.delete) this.on('delete', h.delete);
  }

  /**
   * Start listing and watching. Resolves once the first list has been applied to the cache (after
   * retries with backoff if it fails), or when stop() is called first. Calling it again while running
   * returns the same wait.
   */
  start(): Promise<void> {
    if (this.stopped) {
      this.stopped = false;
      this.lastActivity = this.clock.now();
      const resync = this.opts.resyncMs ?? 600_000;
      if (resync > 0)
        this.every(
          resync,
          (t) => (this.resyncTimer = t),
          () => this.resync(),
        );
      const idle = this.opts.idleTimeoutMs ?? 4000 * (this.opts.watchTimeoutSeconds ?? 300);
      if (idle > 0)
        this.every(
          Math.max(10, idle / 4),
          (t) => (this.idleTimer = t),
          () => this.checkIdle(idle),
        );
      void this.runOnce();
    }
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  /** Stop watching and all timers; pending start() calls resolve. The cache keeps its last state. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.restartTimer, this.resyncTimer, this.idleTimer]) this.clock.clearTimeout(t);
    this.restartTimer = this.resyncTimer = this.idleTimer = undefined;
    for (const w of this.syncWaiters.splice(0)) w();
    await this.lw.stop();
  }

  /** The cached object, or undefined. */
  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  /** Cached objects, all or of one namespace. */
  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  /** Whether the first list has been applied. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Restarts so far (errors and idle watchdog). */
  get restarts(): number {
    return this.restartCount;
  }

  /**
   * Call `fn` every `ms` on the clock until stop(): a re-armed timeout (setInterval's behaviour), unref'd
   * so a periodic timer alone does not keep the process alive; `store` keeps the live handle for stop().
   */
  private every(ms: number, store: (t: TimerHandle | undefined) => void, fn: () => void): void {
    const arm = () => {
      const t = this.clock.setTimeout(() => {
        if (this.stopped) return;
        fn();
        if (!this.stopped) arm();
      }, ms);
      (t as { unref?(): unknown }).unref?.();
      store(t);
    };
    arm();
  }

  private seen(): void {
    this.lastActivity = this.clock.now();
    this.failures = 0;
  }

  private emit(verb: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const h of this.handlers[verb] as Array<(o: T, old?: T) => void>) {
      try {
        h(obj, old);
      } catch (err) {
        this.log.error({ resource: this.resource, verb, err }, 'informer handler threw');
      }
    }
  }

  private async runOnce(): Promise<void> {
    await this.lw.start();
    // ListWatch checks its stop flag only before listing; a stop() during the list leaves a watch open.
    if (this.stopped) {
      await this.lw.stop();
      return;
    }
    if (this.listedOnce && !this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private onError(err: unknown): void {
    // Aborts come from our own stop()/restart, not from the server.
    if (this.stopped || (err as { name?: string })?.name === 'AbortError') return;
    this.scheduleRestart(err, 'list/watch error');
  }

  private scheduleRestart(err: unknown, why: string): void {
    if (this.restartTimer) return;
    const base = this.opts.backoffInitialMs ?? 1000,
      cap = this.opts.backoffMaxMs ?? 30_000;
    const delay = Math.min(cap, base * 2 ** this.failures);
    this.failures++;
    this.restartCount++;
    this.opts.metrics?.informerRestarted(this.resource);
    this.log.warn(
      { resource: this.resource, err, delayMs: delay, restarts: this.restartCount },
      `informer ${why}; restarting`,
    );
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      void (async () => {
        await this.lw.stop();
        // Let the aborted request's done callback run first, or ListWatch would abort the new watch.
        await new Promise((r) => setImmediate(r));
        if (this.stopped) return;
        this.lastActivity = this.clock.now();
        await this.runOnce();
      })();
    }, delay);
  }

  private checkIdle(idleMs: number): void {
    if (this.stopped || this.restartTimer || this.clock.now() - this.lastActivity <= idleMs) return;
    this.lastActivity = this.clock.now();
    this.scheduleRestart(undefined, `watch idle for over ${idleMs} ms`);
  }

  private resync(): void {
    if (this.stopped || !this.synced) return;
    for (const o of this.lw.list()) this.emit('update', o, o);
  }
}

/** Handlers that enqueue the object's own key ('namespace/name') on add, update and delete. */
export function enqueueHandlers<T extends KubernetesObject>(queue: { add(key: string): void }): InformerHandlers<T> {
  const f = (o: T) => queue.add(objectKey(o));
  return { add: f, update: f, delete: f };
}

/** The API group of an apiVersion: 'batch/v1' → 'batch', 'v1' → ''. */
export function apiGroup(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/**
 * The queue key of `obj`'s controlling owner of the given kind: the ownerReference with
 * `controller: true`, the same `kind` and the same API group (any version), as
 * controller-runtime's EnqueueRequestForOwner(OnlyControllerOwner). Owners are taken to live in
 * the child's namespace (namespaced children cannot have namespaced owners elsewhere).
 * Returns undefined when no such owner exists.
 */
export function controllerOwnerKey(
  obj: KubernetesObject,
  owner: { apiVersion: string; kind: string },
): string | undefined {
  const group = apiGroup(owner.apiVersion);
  const ref = obj.metadata?.ownerReferences?.find(
    (r) => r.controller === true && r.kind === owner.kind && apiGroup(r.apiVersion) === group,
  );
  if (!ref) return undefined;
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${ref.name}` : ref.name;
}

/** Handlers for a child informer that enqueue the controlling owner's key (see controllerOwnerKey). */
export function ownerHandlers<T extends KubernetesObject>(
  queue: { add(key: string): void },
  owner: { apiVersion: string; kind: string },
): InformerHandlers<T> {
  const f = (o: T) => {
    const k = controllerOwnerKey(o, owner);
    if (k) queue.add(k);
  };
  return { add: f, update: f, delete: f };
}
