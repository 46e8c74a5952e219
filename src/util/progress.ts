/**
 * Progress bars (cli-progress) on stderr for long stages, and the closing summary. On a terminal
 * the bars redraw in place; elsewhere (CI, logs) they print a line every few seconds.
 */
import cliProgress from 'cli-progress';

export interface Bar {
  update(value: number, total: number, payload?: Record<string, string>): void;
  stop(): void;
}

export class Progress {
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  /** A bar for one stage; `unit` names what is counted (pairs, steps …). */
  bar(stage: string, unit: string): Bar {
    const b = new cliProgress.SingleBar(
      {
        format:
          `${stage.padEnd(24)} |{bar}| {value}/{total} ${unit} | {rate} ` +
          `| {duration_formatted} elapsed, ETA {eta_formatted}{extra}`,
        stream: this.stream,
        noTTYOutput: true,
        notTTYSchedule: 5000,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    let first = 0; // the value at the first update (a resumed stage starts past 0)
    const t0 = performance.now();
    return {
      update: (value, total, payload) => {
        if (!started) first = value;
        const rate = (value - first) / Math.max(1e-9, (performance.now() - t0) / 1000);
        const extra = payload
          ? ` | ${Object.entries(payload)
              .map(([k, v]) => `${k} ${v}`)
              .join(' ')}`
          : '';
        if (!started) {
          b.start(total, value, { rate: '…', extra });
          started = true;
        } else {
          b.setTotal(total);
          // Slow work (the tfjs engine on wasm: seconds per step) reads better as seconds per item.
          b.update(value, {
            rate: rate >= 1 || rate === 0 ? `${rate.toFixed(1)}/s` : `${(1 / rate).toFixed(1)} s each`,
            extra,
          });
        }
      },
      stop: () => {
        if (started) b.stop();
      },
    };
  }

  /** One informational line. */
  note(line: string): void {
    this.stream.write(`${line}\n`);
  }

  /** The closing summary: aligned key/value lines, on stdout (the result; progress stays on stderr). */
  summary(rows: readonly [string, string][], out: NodeJS.WriteStream = process.stdout): void {
    const w = Math.max(...rows.map(([k]) => k.length));
    out.write(`\nGET Distill summary\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`);
  }
}
