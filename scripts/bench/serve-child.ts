/**
 * The inference service (services/inference/main.ts) as a child process of the bench, on loopback, and
 * the load generator (autocannon) that drives it. Linux /proc gives the child's memory and CPU time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'services/inference/main.ts';
/** USER_HZ: the unit of /proc/<pid>/stat CPU times (100 on every Linux build Node supports). */
const CLK_TCK = 100;

/** Resident memory of a process, KB (/proc/<pid>/status). */
export interface ProcMemory {
  /** VmRSS: resident now. */
  readonly rssKb: number;
  /** VmHWM: the peak resident set since the process started. */
  readonly hwmKb: number;
}

/** @throws Error when /proc/<pid>/status cannot be read (not Linux, or the process is gone). */
export function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)\\s*kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** User + system CPU seconds a process has used, all its threads (/proc/<pid>/stat fields 14 and 15). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // field 3 onwards (comm may hold spaces)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** A running service child. */
export interface ServiceChild {
  readonly pid: number;
  readonly url: string;
  /** Sends SIGTERM (graceful drain), then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<string>;
}

// Never leave a stray service: kill running children (by PID) when the bench exits or is interrupted.
const children = new Set<ChildProcess>();
const killChildren = (): void => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
};
const onSignal = (sig: NodeJS.Signals): void => {
  killChildren();
  process.kill(process.pid, sig); // the handlers are gone by now (once), so the default action ends the bench
};
process.on('exit', killChildren);
const track = (child: ChildProcess): void => {
  if (children.size === 0) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
  children.add(child);
  child.once('exit', () => {
    children.delete(child);
    if (children.size === 0) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
  });
};

/** A free TCP port on 127.0.0.1 (bound and released; the service binds it right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the service on 127.0.0.1 and waits until `/v2/health/ready` answers 200 (model loaded and
 * warmed up). `flags` are extra CLI flags (e.g. `['--max-queue-size', '64']`). The child's stdout (JSON
 * logs, one access-log line per request) is drained and dropped: an undrained pipe would block it.
 * @throws Error with the child's stderr when it exits or is not ready within `timeoutMs`.
 */
export async function startService(
  modelPath: string,
  flags: readonly string[] = [],
  timeoutMs = 120_000,
): Promise<ServiceChild> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, '--model', modelPath, '--host', '127.0.0.1', '--port', String(port), ...flags],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  track(child);
  let how: string | null = null;
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => {
      how = signal ? `killed by ${signal}` : `exit code ${code}`;
      resolve(how);
    }),
  );
  child.stdout!.resume();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const t0 = performance.now();
  for (;;) {
    if (how !== null)
      throw new Error(
        `inference service child ended (${how}) before it was ready: ` +
          `${stderr.trim().split('\n').slice(-5).join(' | ') || '(no stderr)'}`,
      );
    if (performance.now() - t0 > timeoutMs) {
      process.kill(child.pid!, 'SIGKILL');
      throw new Error(
        `inference service child not ready after ${timeoutMs} ms: ` +
          `${stderr.trim().split('\n').slice(-5).join(' | ') || '(no stderr)'}`,
      );
    }
    const ok = await fetch(`${url}/v2/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(100);
  }
  return {
    pid: child.pid!,
    url,
    async stop(graceMs = 10_000) {
      if (how !== null) return exited;
      process.kill(child.pid!, 'SIGTERM');
      const kill = setTimeout(() => how === null && process.kill(child.pid!, 'SIGKILL'), graceMs);
      const ended = await exited;
      clearTimeout(kill);
      return ended;
    },
  };
}

/** What one load run measured. */
export interface LoadResult {
  readonly connections: number;
  readonly seconds: number;
  /** Responses received, by status code. */
  readonly status: Readonly<Record<string, number>>;
  readonly ok: number;
  /** 2xx responses per second (= images/s with n = 1). */
  readonly okPerS: number;
  /** Latency of all responses, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Connection errors and timeouts (0 in a healthy run). */
  readonly errors: number;
  readonly timeouts: number;
}

let nextSeed = 1;

/**
 * Closed-loop load: `connections` clients each POST /v1/images/generations {n: 1, class_label, seed}
 * and send the next request as soon as the answer arrives; every request gets a fresh seed (and label
 * seed mod 10), so no two requests are the same image. Runs for `seconds` or, with `amount`, until that
 * many requests were answered.
 * @throws Error when autocannon cannot run (bad URL).
 */
export async function loadImages(
  url: string,
  o: { connections: number; seconds?: number; amount?: number; numClasses: number },
): Promise<LoadResult> {
  const r = await autocannon({
    url,
    connections: o.connections,
    ...(o.amount !== undefined ? { amount: o.amount } : { duration: o.seconds ?? 5 }),
    timeout: 60,
    requests: [
      {
        method: 'POST',
        path: '/v1/images/generations',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => {
          const seed = nextSeed++;
          return {
            ...req,
            body: JSON.stringify({ n: 1, seed, ...(o.numClasses > 0 && { class_label: seed % o.numClasses }) }),
          };
        },
      },
    ],
  });
  const status: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) status[code] = s.count ?? 0;
  const ok = r['2xx'];
  return {
    connections: o.connections,
    seconds: r.duration,
    status,
    ok,
    okPerS: ok / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}
