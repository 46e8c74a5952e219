/** The machine a bench ran on, for the results file. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, totalmem } from 'node:os';

export interface MachineInfo {
  /** CPU model (`model name` of /proc/cpuinfo), or `unknown`. */
  readonly cpu: string;
  /** Logical cores available to this process. */
  readonly cores: number;
  /** SIMD extensions relevant to onnxruntime's kernels that the CPU reports, e.g. `avx2 fma avx512f`. */
  readonly simd: string;
  /** Total memory, GiB. */
  readonly memoryGiB: number;
  readonly node: string;
  readonly onnxruntime: string;
  /** ISO-8601 time the bench started. */
  readonly date: string;
  /** 1-minute load average when the bench started: other work on the machine skews every number. */
  readonly loadAtStart: number;
}

/** Reads the machine description (Linux /proc/cpuinfo; falls back to `unknown` elsewhere). */
export function machineInfo(): MachineInfo {
  let cpu = 'unknown';
  let simd = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? cpu;
    const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    simd = ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_tile'].filter((f) => flags.has(f)).join(' ');
  } catch {
    // Not Linux: keep `unknown`.
  }
  const require = createRequire(import.meta.url);
  const ort = (require('onnxruntime-node/package.json') as { version: string }).version;
  return {
    cpu,
    cores: availableParallelism(),
    simd,
    memoryGiB: totalmem() / 2 ** 30,
    node: process.version,
    onnxruntime: ort,
    date: new Date().toISOString(),
    loadAtStart: loadavg()[0],
  };
}

/** A snapshot for `otherLoad`: busy CPU ticks of the machine and of this process tree, and the time. */
export interface CpuSnapshot {
  readonly machineTicks: number;
  readonly ownTicks: number;
  readonly ms: number;
}

/**
 * Reads busy ticks (USER_HZ) from /proc/stat and this process's own plus its reaped children's ticks
 * from /proc/self/stat. Zeros where /proc is missing (then `otherLoad` reports 0).
 */
export function cpuSnapshot(): CpuSnapshot {
  const ms = performance.now();
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const busy = cpu.reduce((a, b) => a + b, 0) - cpu[3] - (cpu[4] ?? 0); // all but idle and iowait
    const self = readFileSync('/proc/self/stat', 'utf8');
    const f = self
      .slice(self.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number); // fields from #3 (state) on
    const own = f[11] + f[12] + f[13] + f[14]; // utime, stime, cutime, cstime (#14–#17)
    return { machineTicks: busy, ownTicks: own, ms };
  } catch {
    return { machineTicks: 0, ownTicks: 0, ms };
  }
}

/**
 * Cores kept busy by OTHER processes between two snapshots (0 = the bench had the machine to itself).
 * Assumes USER_HZ = 100 (Linux default). Children still running at `b` are counted as "other".
 */
export function otherLoad(a: CpuSnapshot, b: CpuSnapshot): number {
  const seconds = (b.ms - a.ms) / 1000;
  if (seconds <= 0) return 0;
  const other = b.machineTicks - a.machineTicks - (b.ownTicks - a.ownTicks);
  return Math.max(0, other / 100 / seconds);
}
