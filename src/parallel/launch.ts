/**
 * Starting a world of ranks from a parent process with Open MPI's `mpirun` (the CLI's `--ranks N`, the
 * MPI Operator's launcher pod). mpirun starts the ranks, relays their output and ends the whole job
 * when one rank fails; this module builds its command line, passes the ranks' lines through, and turns
 * mpirun's multi-line notices into one line and an exit code (docs/parallel.md):
 *
 * - a rank lost to a signal (a preempted pod, the OOM killer) or a host whose daemon was lost → 75
 *   ({@link EXIT_RETRYABLE}): the job may be retried and resumes from its checkpoint;
 * - a rank that exited non-zero → that rank's code (2 stays 2, 75 stays 75); MPI_Abort(code) → code;
 * - mpirun refusing the launch (not enough slots, no such program, no hostfile) → 2;
 * - mpirun missing → a {@link UsageError} naming the Debian packages.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import { EXIT_RETRYABLE, EXIT_USAGE, UsageError } from '../util/errors.js';
import { MPI_STOP_SIGNAL } from './mpi.js';

/** The Debian packages that provide mpirun and the addon's headers. */
const MPIRUN_MISSING =
  'mpirun not found: data-parallel training needs Open MPI (apt-get install openmpi-bin libopenmpi-dev)';

/** Environment names a parent usually forwards to the ranks (matched by {@link forwardedEnvNames}). */
export const DEFAULT_FORWARD_ENV: readonly RegExp[] = [
  /^GET_DISTILL_/,
  /^AWS_/,
  /^(NODE_OPTIONS|NODE_ENV)$/,
  /^(OMP|UV)_/,
  /^(HOME|PATH|LD_LIBRARY_PATH|TMPDIR)$/,
];

/** MCA parameters mpirunArgs passes unless mpirun's environment sets them (see there). */
export const DEFAULT_MCA: Readonly<Record<string, string>> = {
  btl_vader_single_copy_mechanism: 'none',
  btl_base_warn_component_unused: '0',
};

/** The names of `env` that match `patterns`, sorted (for mpirun's `-x NAME`). */
export function forwardedEnvNames(
  env: NodeJS.ProcessEnv = process.env,
  patterns: readonly RegExp[] = DEFAULT_FORWARD_ENV,
): string[] {
  return Object.keys(env)
    .filter((k) => env[k] !== undefined && patterns.some((p) => p.test(k)))
    .sort();
}

/** The `mpirun` on PATH (GET_DISTILL_MPIRUN names another), or null when there is none. */
export function findMpirun(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates =
    env.GET_DISTILL_MPIRUN !== undefined
      ? [env.GET_DISTILL_MPIRUN]
      : (env.PATH ?? '')
          .split(delimiter)
          .filter((d) => d !== '')
          .map((d) => join(d, 'mpirun'));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not there
    }
  }
  return null;
}

export interface MpirunOptions {
  /** Ranks to start (mpirun -np). */
  readonly ranks: number;
  /** What every rank runs: the program and its arguments, e.g. [process.execPath, '--import', 'tsx', …]. */
  readonly command: readonly string[];
  /** Environment names to forward to every rank (`-x NAME`); names not set in `env` are left out. */
  readonly forwardEnv?: readonly string[];
  /** mpirun's environment, which ranks on this host inherit (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** Allow more ranks than cores (--oversubscribe). */
  readonly oversubscribe?: boolean;
  /** A hostfile (--hostfile). The MPI Operator sets OMPI_MCA_orte_default_hostfile instead, read by mpirun. */
  readonly hostfile?: string;
  /** More MCA parameters (--mca NAME VALUE), after the defaults, so they override them. */
  readonly mca?: Readonly<Record<string, string>>;
  /** The user id mpirun runs as (default process.getuid()): 0 adds --allow-run-as-root. */
  readonly uid?: number;
}

/**
 * mpirun's arguments (without the mpirun path itself):
 * - `--bind-to none`: ranks run onnxruntime's own thread pools; core binding would pin each to one core;
 * - `--tag-output`: rank lines come as `[1,R]<stdout>:…`, so they can be told from mpirun's notices;
 * - `--mca btl_vader_single_copy_mechanism none`: the shared-memory transport's default single copy (CMA,
 *   process_vm_readv) fails in containers without ptrace rights; none copies through shared memory
 *   (slower for large buffers, markedly so when ranks share cores: docs/parallel.md);
 * - `--mca btl_base_warn_component_unused 0`: no banner about network hardware that goes unused;
 * - `--allow-run-as-root` as root (containers), `--oversubscribe`, `--hostfile` when asked.
 * The two MCA defaults ({@link DEFAULT_MCA}) are left out when mpirun's environment sets them
 * (OMPI_MCA_btl_vader_single_copy_mechanism=cma where ptrace is allowed); `mca` overrides everything.
 */
export function mpirunArgs(o: MpirunOptions): string[] {
  if (!Number.isSafeInteger(o.ranks) || o.ranks < 1)
    throw new UsageError(`ranks must be a positive integer, not ${o.ranks}`);
  if (o.command.length === 0) throw new UsageError('mpirun needs a command for the ranks to run');
  const env = o.env ?? process.env;
  const uid = o.uid ?? process.getuid?.();
  // Our defaults yield to the same parameter in mpirun's environment (OMPI_MCA_<name>, e.g. =cma where
  // ptrace is allowed: faster for large buffers); `mca` wins over both.
  const defaults = Object.entries(DEFAULT_MCA).filter(([k]) => env[`OMPI_MCA_${k}`] === undefined);
  const mca: Record<string, string> = { ...Object.fromEntries(defaults), ...o.mca };
  return [
    '-np',
    String(o.ranks),
    '--bind-to',
    'none',
    '--tag-output',
    ...(o.oversubscribe ? ['--oversubscribe'] : []),
    ...(uid === 0 ? ['--allow-run-as-root'] : []),
    ...(o.hostfile !== undefined ? ['--hostfile', o.hostfile] : []),
    ...Object.entries(mca).flatMap(([k, v]) => ['--mca', k, v]),
    ...(o.forwardEnv ?? []).filter((k) => env[k] !== undefined).flatMap((k) => ['-x', k]),
    ...o.command,
  ];
}

/** Where a line came from: a rank's stdout/stderr, or mpirun itself (rank undefined, stream stderr). */
export interface LineSource {
  readonly rank?: number;
  readonly stream: 'stdout' | 'stderr';
}

export interface RunMpirunOptions extends MpirunOptions {
  /** The mpirun to run (default {@link findMpirun}). */
  readonly mpirun?: string;
  readonly cwd?: string;
  /**
   * Every line of the ranks (the tag removed) and every line of mpirun's that is not a notice this
   * module recognises. Default: written to this process's stdout/stderr as they came.
   */
  readonly onLine?: (line: string, from: LineSource) => void;
  /**
   * Relay this process's SIGTERM and SIGINT (default true): the first one sends {@link MPI_STOP_SIGNAL}
   * to mpirun, which forwards it to every rank (a graceful stop: each rank checkpoints and exits); a
   * second one sends SIGTERM, and mpirun kills the job.
   */
  readonly forwardSignals?: boolean;
}

/** A rank that died of a signal. mpirun names no PID (it prints 0) for ranks on its own host. */
export interface LostRank {
  readonly rank: number;
  readonly signal: string;
  readonly host?: string;
  readonly pid?: number;
}

export interface MpirunResult {
  /** 0, a rank's exit code, 75 for a lost rank or host, 2 for a refused launch, else mpirun's own code. */
  readonly code: number;
  readonly lostRank?: LostRank;
  /** The host whose Open MPI daemon mpirun lost (a worker pod gone), when that ended the job. */
  readonly lostHost?: string;
  /** One line saying why the job ended, when it failed. */
  readonly line?: string;
}

/**
 * Runs mpirun to the end. Resolves with the outcome (it never rejects for a failed rank); rejects with a
 * UsageError when mpirun is missing or cannot be started.
 */
export function runMpirun(o: RunMpirunOptions): Promise<MpirunResult> {
  const mpirun = o.mpirun ?? findMpirun(o.env ?? process.env);
  if (mpirun === null) return Promise.reject(new UsageError(MPIRUN_MISSING));
  let args: string[];
  try {
    args = mpirunArgs(o);
  } catch (e) {
    return Promise.reject(e);
  }
  const onLine = o.onLine ?? writeLine;
  return new Promise<MpirunResult>((resolve, reject) => {
    // Its own process group: a terminal's Ctrl-C reaches this process only, which relays it gracefully
    // (mpirun's own SIGINT handling would kill the ranks a second later).
    const child = spawn(mpirun, args, {
      env: o.env ?? process.env,
      cwd: o.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const notices = new NoticeParser((line) => onLine(line, { stream: 'stderr' }));
    for (const stream of ['stdout', 'stderr'] as const) {
      splitLines(child[stream], (line) => {
        const m = TAG.exec(line);
        if (m) onLine(m[3]!, { rank: Number(m[1]), stream: m[2] === 'stdout' ? 'stdout' : 'stderr' });
        else notices.push(line);
      });
    }
    let stops = 0;
    const relay = (): void => {
      stops += 1;
      child.kill(stops === 1 ? MPI_STOP_SIGNAL : 'SIGTERM');
    };
    const forward = o.forwardSignals ?? true;
    if (forward) for (const s of RELAYED) process.on(s, relay);
    const unhook = (): void => {
      if (forward) for (const s of RELAYED) process.off(s, relay);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      unhook();
      reject(e.code === 'ENOENT' ? new UsageError(`${MPIRUN_MISSING}: ${mpirun}`, { cause: e }) : e);
    });
    child.on('close', (code, signal) => {
      unhook();
      notices.end();
      resolve(notices.outcome(code, signal));
    });
  });
}

const RELAYED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
/** A rank's line under --tag-output: `[jobid,rank]<stream>:text`. */
const TAG = /^\[\d+,(\d+)\]<(stdout|stderr|stddiag)>:(.*)$/;
/** mpirun frames each notice between two lines of dashes. */
const RULE = /^-{20,}$/;
/** mpirun's one-line chatter: a relayed signal, help-message aggregation, a known Debian 4.1.4 error. */
const CHATTER = [
  /^mpirun: Forwarding signal \d+ to job$/,
  /^\[[^\]]+\] \d+ more process(es)? ha(s|ve) sent help message /,
  /^\[[^\]]+\] Set MCA parameter "orte_base_help_aggregate" to 0 to see all help \/ error messages$/,
  // Open MPI 4.1.4 (Debian) fails to relay a rank's MPI_ABORT notice and logs this instead.
  /ORTE_ERROR_LOG: Data unpack would read past end of buffer in file \S*show_help\.c at line \d+$/,
];

/** What a recognised notice says ended the job; the first one wins. */
type Failure =
  | { kind: 'signal'; lost: LostRank }
  | { kind: 'host'; host: string }
  | { kind: 'daemons' }
  | { kind: 'exit'; rank: number; code: number }
  | { kind: 'abort'; rank: number; code: number }
  | { kind: 'improper'; rank: number; host: string }
  | { kind: 'launch'; line: string };

/** Recognises mpirun's notices (between rules) and chatter; passes anything else on. */
class NoticeParser {
  private block: string[] | null = null;
  private failure: Failure | undefined;
  private unknown: string | undefined;

  constructor(private readonly pass: (line: string) => void) {}

  push(line: string): void {
    if (RULE.test(line)) {
      if (this.block === null) this.block = [];
      else this.close();
      return;
    }
    if (this.block !== null) this.block.push(line);
    else if (!CHATTER.some((re) => re.test(line))) this.pass(line);
  }

  end(): void {
    if (this.block !== null) this.close();
  }

  private close(): void {
    const lines = this.block ?? [];
    this.block = null;
    const f = classify(lines.join(' ').replace(/\s+/g, ' ').trim());
    if (f === 'ignore') return;
    if (f !== undefined) {
      this.failure ??= f;
      return;
    }
    // Not a notice we know: show it as mpirun printed it.
    for (const l of lines) this.pass(l);
    this.unknown ??= lines.find((l) => l.trim() !== '')?.trim();
  }

  outcome(code: number | null, signal: NodeJS.Signals | null): MpirunResult {
    const f = this.failure;
    const stopped = 'every rank stopped';
    switch (f?.kind) {
      case 'signal': {
        const { rank, pid, host, signal: sig } = f.lost;
        const where = [pid !== undefined ? `pid ${pid}` : '', host !== undefined ? `host ${host}` : '']
          .filter(Boolean)
          .join(', ');
        const num = osConstants.signals[sig as NodeJS.Signals];
        return {
          code: EXIT_RETRYABLE,
          lostRank: f.lost,
          line: `rank ${rank}${where ? ` (${where})` : ''} was lost: killed by signal ${num} (${sig}); ${stopped}`,
        };
      }
      case 'host':
        return {
          code: EXIT_RETRYABLE,
          lostHost: f.host,
          line: `the ranks on host ${f.host} were lost (mpirun lost its Open MPI daemon there); ${stopped}`,
        };
      case 'daemons':
        return { code: EXIT_RETRYABLE, line: 'mpirun could not start its Open MPI daemons on every host' };
      case 'exit':
        return { code: f.code, line: `rank ${f.rank} exited with code ${f.code}; ${stopped}` };
      case 'abort':
        return { code: f.code, line: `rank ${f.rank} called MPI_Abort with code ${f.code}; ${stopped}` };
      case 'improper':
        return {
          code: code || 1,
          line: `rank ${f.rank} (host ${f.host}) exited without MPI_Finalize (or before MPI_Init); ${stopped}`,
        };
      case 'launch':
        return { code: EXIT_USAGE, line: f.line };
    }
    if (signal !== null)
      return { code: 128 + (osConstants.signals[signal] ?? 0), line: `mpirun was killed by ${signal}` };
    if (code === 0) return { code: 0 };
    return { code: code ?? 1, line: `mpirun exited with code ${code}${this.unknown ? `: ${this.unknown}` : ''}` };
  }
}

/** A notice's meaning (its text on one line), 'ignore' for a preamble, undefined when unknown. */
function classify(text: string): Failure | 'ignore' | undefined {
  let m: RegExpExecArray | null;
  if (/^Primary job terminated normally, but \d+ process(es)? returned a non-zero exit code/.test(text)) {
    return 'ignore';
  }
  if ((m = /mpirun noticed that process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+)/.exec(text))) {
    const pid = Number(m[2]);
    return {
      kind: 'signal',
      lost: { rank: Number(m[1]), signal: signalName(Number(m[4])), host: m[3]!, ...(pid > 0 ? { pid } : {}) },
    };
  }
  if (
    (m =
      /mpirun detected that one or more processes exited with non-zero status.*?\],(\d+)\]\s*Exit code:\s*(\d+)/.exec(
        text,
      ))
  ) {
    return { kind: 'exit', rank: Number(m[1]), code: Number(m[2]) };
  }
  if ((m = /MPI_ABORT was invoked on rank (\d+) in communicator \S+ with errorcode (-?\d+)/.exec(text))) {
    return { kind: 'abort', rank: Number(m[1]), code: Number(m[2]) };
  }
  if ((m = /mpirun has exited due to process rank (\d+) with PID \d+ on node (\S+) exiting improperly/.exec(text))) {
    return { kind: 'improper', rank: Number(m[1]), host: m[2]! };
  }
  if ((m = /ORTE has lost communication with a remote daemon\..*Remote daemon: \S+ on node (\S+)/.exec(text))) {
    return { kind: 'host', host: m[1]! };
  }
  if (/ORTE was unable to reliably start one or more daemons/.test(text)) return { kind: 'daemons' };
  if ((m = /There are not enough slots available in the system to satisfy the (\d+) slots/.exec(text))) {
    return {
      kind: 'launch',
      line: `mpirun: not enough slots for ${m[1]} ranks (more cores or hostfile slots, or --oversubscribe)`,
    };
  }
  if ((m = /could not access or execute an executable: Executable: (\S+)/.exec(text))) {
    return { kind: 'launch', line: `mpirun could not run ${m[1]}` };
  }
  if ((m = /unable to open the hostfile: (\S+)/.exec(text))) {
    return { kind: 'launch', line: `mpirun could not open the hostfile ${m[1]}` };
  }
  return undefined;
}

function signalName(num: number): string {
  const entry = Object.entries(osConstants.signals).find(([, n]) => n === num);
  return entry ? entry[0] : `signal ${num}`;
}

/** Calls `each` with every complete line of `stream` (and a last unterminated one at its end). */
function splitLines(stream: NodeJS.ReadableStream, each: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const p of parts) each(p.replace(/\r$/, ''));
  });
  stream.on('end', () => {
    if (rest !== '') each(rest.replace(/\r$/, ''));
    rest = '';
  });
}

function writeLine(line: string, from: LineSource): void {
  (from.stream === 'stdout' ? process.stdout : process.stderr).write(`${line}\n`);
}
