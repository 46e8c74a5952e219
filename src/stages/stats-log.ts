/**
 * A run's stats.jsonl (docs/data-contracts.md §10) as an object: object stores cannot append, so the
 * lines are kept in memory and the whole object is rewritten behind the run (at most one write in
 * flight; lines logged meanwhile go with the next). A failed write warns instead of stopping the run.
 */
import { type ObjectStore, StoreError } from '../store/index.js';

export class StatsLog {
  private pending: Promise<void> | null = null; // the write in flight
  private dirty = false;

  private constructor(
    private readonly store: ObjectStore,
    readonly uri: string,
    private lines: string[],
    private readonly warn: (msg: string) => void,
  ) {}

  /**
   * A resumed run continues the existing lines; a new one starts empty.
   * @throws StoreError when the existing object cannot be read (other than absent).
   */
  static async open(
    store: ObjectStore,
    uri: string,
    resuming: boolean,
    warn: (msg: string) => void,
  ): Promise<StatsLog> {
    let text = '';
    if (resuming) {
      text = await store.get(uri).then(
        (b) => new TextDecoder().decode(b),
        (e: unknown) => {
          if (e instanceof StoreError && e.code === 'NotFound') return '';
          throw e;
        },
      );
    }
    return new StatsLog(
      store,
      uri,
      text.split('\n').filter((l) => l !== ''),
      warn,
    );
  }

  /** Appends `{time, ...rec}` as one line. @returns when it is stored (or its write failed). */
  log(rec: Record<string, unknown>): Promise<void> {
    this.lines.push(JSON.stringify({ time: new Date().toISOString(), ...rec }));
    return this.flushSoon();
  }

  /** Drops training lines of `step` and later: a resumed run repeats the steps after its checkpoint. */
  forgetTrainStepsFrom(step: number): void {
    const before = this.lines.length;
    this.lines = this.lines.filter((l) => {
      try {
        const r = JSON.parse(l) as { stage?: unknown; step?: unknown };
        return !(r.stage === 'train' && typeof r.step === 'number' && r.step >= step);
      } catch {
        return true;
      }
    });
    if (this.lines.length !== before) void this.flushSoon();
  }

  private flushSoon(): Promise<void> {
    this.dirty = true;
    this.pending ??= this.flush().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async flush(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const text = this.lines.length ? `${this.lines.join('\n')}\n` : '';
      await this.store
        .put(this.uri, new TextEncoder().encode(text))
        .catch((e: Error) => this.warn(`warning: cannot write ${this.uri} (${e.message})`));
    }
  }
}
