/**
 * The Open MPI engine end to end: real mpirun worlds of 2 and 3 ranks (oversubscribed: this machine
 * has 2 cores) running test/parallel/fixtures/rank.ts through the addon, launched by runMpirun. Skipped
 * only where mpirun is absent (CI installs Open MPI). Nothing here measures time: ranks signal each
 * other and the test through files and their output lines; timeouts are hang guards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findMpirun,
  forwardedEnvNames,
  mpirunArgs,
  runMpirun,
  type LineSource,
  type MpirunResult,
  type RunMpirunOptions,
} from '../../src/parallel/launch.js';
import { UsageError } from '../../src/util/errors.js';
import { allGone } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FIXTURES = join(import.meta.dirname, 'fixtures');
const RANK = join(FIXTURES, 'rank.ts');
const NO_MPIRUN = findMpirun() === null && 'mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)';
/** Hang guard of a test that starts a world (tsx start-up of every rank on a loaded 2-core machine). */
const GUARD = { timeout: 120_000 };

interface Line extends LineSource {
  readonly line: string;
}

/** A world being run: its lines so far, a way to wait for some, and its outcome. */
interface World {
  readonly dir: string;
  readonly lines: Line[];
  /** Resolves once `pred` holds for the lines seen so far (checked at every new line). */
  until(pred: (lines: Line[]) => boolean): Promise<void>;
  readonly done: Promise<MpirunResult>;
}

function startWorld(ranks: number, mode: string, extra: Partial<RunMpirunOptions> = {}): World {
  const dir = mkdtempSync(join(tmpdir(), 'get-distill-mpi-'));
  const lines: Line[] = [];
  const waiters: { pred: (l: Line[]) => boolean; resolve: () => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      if (w.pred(lines)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const done = runMpirun({
    ranks,
    command: [process.execPath, '--import', 'tsx', RANK, mode, dir],
    oversubscribe: true,
    cwd: ROOT,
    forwardSignals: false,
    onLine: (line, from) => {
      lines.push({ ...from, line });
      check();
    },
    ...extra,
  });
  void done.finally(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    lines,
    until: (pred) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ pred, resolve });
        check();
        void done.then(() => reject(new Error(`the world ended first; its lines:\n${show(lines)}`)), reject);
      }),
    done,
  };
}

const show = (lines: Line[]): string => lines.map((l) => `[${l.rank ?? 'mpirun'}] ${l.line}`).join('\n');
const tagged = (lines: Line[], word: string): Line[] => lines.filter((l) => l.line.startsWith(word));
const results = (lines: Line[]): Record<string, unknown>[] =>
  tagged(lines, 'RESULT ').map((l) => JSON.parse(l.line.slice('RESULT '.length)) as Record<string, unknown>);
const pids = (lines: Line[]): number[] => tagged(lines, 'PID ').map((l) => Number(l.line.slice(4)));
const countOf = (word: string, n: number) => (lines: Line[]) => tagged(lines, word).length >= n;

async function expectOk(w: World): Promise<Record<string, unknown>[]> {
  const r = await w.done;
  assert.deepEqual(r, { code: 0 }, show(w.lines));
  return results(w.lines).sort((a, b) => Number(a.rank) - Number(b.rank));
}

test('mpirunArgs: no core binding, tagged output, CMA off, root only as root, only the env names that are set', () => {
  const args = mpirunArgs({
    ranks: 3,
    command: ['node', 'x.js', '--flag'],
    forwardEnv: ['GET_DISTILL_A', 'AWS_REGION', 'UNSET_NAME'],
    env: { GET_DISTILL_A: '1', AWS_REGION: 'eu' },
    oversubscribe: true,
    hostfile: '/etc/hosts.mpi',
    mca: { btl: 'self,tcp' },
    uid: 0,
  });
  assert.deepEqual(args, [
    '-np',
    '3',
    '--bind-to',
    'none',
    '--tag-output',
    '--oversubscribe',
    '--allow-run-as-root',
    '--hostfile',
    '/etc/hosts.mpi',
    '--mca',
    'btl_vader_single_copy_mechanism',
    'none',
    '--mca',
    'btl_base_warn_component_unused',
    '0',
    '--mca',
    'btl',
    'self,tcp',
    '-x',
    'GET_DISTILL_A',
    '-x',
    'AWS_REGION',
    'node',
    'x.js',
    '--flag',
  ]);
  const user = mpirunArgs({ ranks: 1, command: ['node'], uid: 1000, mca: { btl_vader_single_copy_mechanism: 'cma' } });
  assert.ok(!user.includes('--allow-run-as-root') && !user.includes('--oversubscribe'));
  assert.equal(user[user.indexOf('btl_vader_single_copy_mechanism') + 1], 'cma', 'caller MCA values win');
  const fromEnv = mpirunArgs({ ranks: 1, command: ['node'], env: { OMPI_MCA_btl_vader_single_copy_mechanism: 'cma' } });
  assert.ok(!fromEnv.includes('btl_vader_single_copy_mechanism'), "mpirun's environment beats the default");
  assert.throws(() => mpirunArgs({ ranks: 0, command: ['node'] }), UsageError);
  assert.deepEqual(
    forwardedEnvNames({ GET_DISTILL_X: '1', AWS_PROFILE: 'p', NODE_OPTIONS: '', SECRET: 's', OMP_NUM_THREADS: '2' }),
    ['AWS_PROFILE', 'GET_DISTILL_X', 'NODE_OPTIONS', 'OMP_NUM_THREADS'],
  );
});

test('without mpirun: findMpirun is null, runMpirun rejects with a UsageError naming the Debian packages', async () => {
  assert.equal(findMpirun({ PATH: '/nonexistent' }), null);
  assert.equal(findMpirun({ PATH: process.env.PATH, GET_DISTILL_MPIRUN: '/nonexistent/mpirun' }), null);
  const expectMissing = (e: unknown): boolean => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /apt-get install openmpi-bin libopenmpi-dev/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  };
  await assert.rejects(runMpirun({ ranks: 2, command: ['node'], env: { PATH: '/nonexistent' } }), expectMissing);
  await assert.rejects(runMpirun({ ranks: 2, command: ['node'], mpirun: '/nonexistent/mpirun' }), expectMissing);
});

/** What mpirun printed in these cases (Open MPI 4.1.4), replayed by fixtures/fake-mpirun.sh. */
async function replay(text: string, code: number): Promise<{ r: MpirunResult; passed: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'get-distill-mpirun-'));
  try {
    writeFileSync(join(dir, 'out'), text);
    const passed: string[] = [];
    const r = await runMpirun({
      ranks: 2,
      command: ['node'],
      mpirun: join(FIXTURES, 'fake-mpirun.sh'),
      env: { ...process.env, FAKE_MPIRUN_OUT: join(dir, 'out'), FAKE_MPIRUN_CODE: String(code) },
      forwardSignals: false,
      onLine: (line) => passed.push(line),
    });
    return { r, passed };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const RULE = '-'.repeat(74);
const banner = (...lines: string[]): string => [RULE, ...lines, RULE].join('\n') + '\n';

test("mpirun's notices become one line: MPI_ABORT, an improper exit, a refused launch; unknown ones pass", async () => {
  const abort = await replay(
    banner(
      'MPI_ABORT was invoked on rank 1 in communicator MPI_COMM_WORLD',
      'with errorcode 2.',
      '',
      'NOTE: invoking MPI_ABORT causes Open MPI to kill all MPI processes.',
      'You may or may not see output from other processes, depending on',
      'exactly when Open MPI kills them.',
    ) + '[vm:05531] 1 more process has sent help message help-mpi-api.txt / mpi-abort\n',
    2,
  );
  assert.deepEqual(abort, {
    r: { code: 2, line: 'rank 1 called MPI_Abort with code 2; every rank stopped' },
    passed: [],
  });
  const improper = await replay(
    banner(
      'mpirun has exited due to process rank 1 with PID 0 on',
      'node vm exiting improperly. There are three reasons this could occur:',
      '',
      'You can avoid this message by specifying -quiet on the mpirun command line.',
    ),
    1,
  );
  assert.equal(improper.r.code, 1);
  assert.match(improper.r.line!, /^rank 1 \(host vm\) exited without MPI_Finalize/);
  const slots = await replay(
    banner(
      'There are not enough slots available in the system to satisfy the 5',
      'slots that were requested by the application:',
      '',
      '  node',
    ),
    1,
  );
  assert.equal(slots.r.code, 2);
  assert.match(slots.r.line!, /not enough slots for 5 ranks/);
  const unknown = await replay(banner('Something new went wrong:', '  details'), 1);
  assert.deepEqual(unknown, {
    r: { code: 1, line: 'mpirun exited with code 1: Something new went wrong:' },
    passed: ['Something new went wrong:', '  details'],
  });
});

test(
  'collectives on 2 ranks: exact float32 sums, broadcast from roots 0 and 1, barrier, rank/size/localRank',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const got = await expectOk(startWorld(2, 'collectives'));
    assert.equal(got.length, 2);
    got.forEach((r, rank) => {
      assert.deepEqual(r, {
        rank,
        size: 2,
        localRank: rank,
        threadLevel: 'multiple',
        sumBad: 0,
        untouched: [0, 0, 0],
        b0: [2501, 0],
        b1: [2501, 0],
        pi: Math.PI,
      });
    });
  },
);

test(
  'collectives on 3 ranks, in slices of 1,000 elements (GET_DISTILL_MPI_MAX_COUNT: the int-count path)',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const got = await expectOk(
      startWorld(3, 'collectives', { env: { ...process.env, GET_DISTILL_MPI_MAX_COUNT: '1000' } }),
    );
    assert.deepEqual(
      got.map((r) => [r.rank, r.size, r.localRank, r.sumBad, r.untouched, r.b0, r.b1, r.pi]),
      [0, 1, 2].map((rank) => [rank, 3, rank, 0, [0, 0, 0], [2501, 0], [2501, 0], Math.PI]),
    );
  },
);

test(
  'an allreduce of 64 Mi floats (256 MiB, far above the eager limit) sums exactly',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const got = await expectOk(startWorld(2, 'large'));
    assert.deepEqual(got, [
      { rank: 0, length: 64 * 1024 * 1024, sumBad: 0 },
      { rank: 1, length: 64 * 1024 * 1024, sumBad: 0 },
    ]);
  },
);

test(
  'the JavaScript thread is free during an allreduce: HTTP and timers run while it waits for rank 1',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const got = await expectOk(startWorld(2, 'free'));
    assert.deepEqual(got, [{ rank: 0, body: 'pong', ticks: 3, settledBeforeGo: false, sum: [3, 20] }, { rank: 1 }]);
  },
);

test(
  'SIGKILL of a rank while the others block in an allreduce: code 75, one line naming it, no rank left',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const w = startWorld(3, 'block');
    await w.until(countOf('READY', 3));
    const victim = tagged(w.lines, 'PID ').find((l) => l.rank === 1)!;
    process.kill(Number(victim.line.slice(4)), 'SIGKILL');
    const r = await w.done;
    assert.equal(r.code, 75, show(w.lines));
    assert.equal(r.lostRank?.rank, 1);
    assert.equal(r.lostRank?.signal, 'SIGKILL');
    assert.match(
      r.line!,
      /^rank 1 \((pid \d+, )?host \S+\) was lost: killed by signal 9 \(SIGKILL\); every rank stopped$/,
    );
    assert.deepEqual(
      w.lines.filter((l) => l.rank === undefined),
      [],
      "mpirun's notices are swallowed, not passed on",
    );
    assert.equal(tagged(w.lines, 'UNREACHABLE').length, 0);
    await allGone(pids(w.lines));
  },
);

test('a rank that exits 2 ends the world with code 2', { ...GUARD, skip: NO_MPIRUN }, async () => {
  const w = startWorld(3, 'exit2');
  const r = await w.done;
  assert.deepEqual(r, { code: 2, line: 'rank 1 exited with code 2; every rank stopped' }, show(w.lines));
  await allGone(pids(w.lines));
});

test('abort(2) from one rank ends every rank with code 2', { ...GUARD, skip: NO_MPIRUN }, async () => {
  const w = startWorld(3, 'abort2');
  const r = await w.done;
  assert.equal(r.code, 2, show(w.lines));
  assert.equal(pids(w.lines).length, 3);
  await allGone(pids(w.lines));
});

test(
  "the parent's SIGTERM reaches every rank as SIGTERM (through mpirun's SIGUSR2); their code 75 comes back",
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    const listeners = process.listenerCount('SIGTERM');
    const w = startWorld(2, 'stop', { forwardSignals: true });
    await w.until(countOf('READY', 2));
    process.kill(process.pid, 'SIGTERM'); // runMpirun's relay handles it; this test process lives on
    const r = await w.done;
    assert.deepEqual(
      tagged(w.lines, 'SIGTERM')
        .map((l) => l.rank)
        .sort(),
      [0, 1],
      show(w.lines),
    );
    assert.equal(r.code, 75);
    assert.match(r.line!, /^rank [01] exited with code 75; every rank stopped$/);
    assert.equal(process.listenerCount('SIGTERM'), listeners, 'the relay is unhooked when mpirun ends');
    await allGone(pids(w.lines));
  },
);

test(
  'a lost host (its Open MPI daemon and ranks killed, as a preempted pod) ends the world with code 75',
  {
    ...GUARD,
    skip: NO_MPIRUN,
  },
  async () => {
    // Two "hosts" reached through a fake ssh that runs each daemon here; TCP between the ranks (shared
    // memory would mix the two hosts' segments, which share this machine's hostname).
    const hosts = mkdtempSync(join(tmpdir(), 'get-distill-hosts-'));
    try {
      writeFileSync(join(hosts, 'hostfile'), 'nodea slots=1\nnodeb slots=1\n');
      const w = startWorld(2, 'block', {
        hostfile: join(hosts, 'hostfile'),
        mca: { plm_rsh_agent: join(FIXTURES, 'fake-ssh.sh'), btl: 'self,tcp' },
        env: { ...process.env, FAKE_SSH_DIR: hosts },
      });
      await w.until(countOf('READY', 2));
      const daemon = Number(readFileSync(join(hosts, 'nodeb.pid'), 'utf8'));
      const rank1 = Number(
        tagged(w.lines, 'PID ')
          .find((l) => l.rank === 1)!
          .line.slice(4),
      );
      process.kill(daemon, 'SIGKILL');
      process.kill(rank1, 'SIGKILL');
      const r = await w.done;
      assert.equal(r.code, 75, show(w.lines));
      assert.equal(r.lostHost, 'nodeb');
      assert.match(r.line!, /^the ranks on host nodeb were lost/);
      await allGone([...pids(w.lines), daemon]);
    } finally {
      rmSync(hosts, { recursive: true, force: true });
    }
  },
);
