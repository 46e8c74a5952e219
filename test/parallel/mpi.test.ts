/**
 * The MPI loader without a world: which processes are under mpirun, the single-process fallback, the
 * one-line UsageError when the addon or libmpi is missing, and scripts/build-mpi.mjs on a machine
 * without Open MPI (what `npm ci` runs there). The collectives themselves: launch.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SINGLE_PROCESS } from '../../src/parallel/comm.js';
import {
  MPI_ADDON_PATH,
  assignLocalGpu,
  loadMpi,
  localRankOf,
  mpiWorldSize,
  underMpirun,
  worldCommunicator,
  worldRankOf,
} from '../../src/parallel/mpi.js';
import { UsageError } from '../../src/util/errors.js';

const ROOT = join(import.meta.dirname, '..', '..');
const BUILD = join(ROOT, 'scripts', 'build-mpi.mjs');
const MPIRUN_ENV = { OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_LOCAL_RANK: '1' };

test('mpiWorldSize and underMpirun read the variables mpirun sets; a plain run is a world of one', () => {
  assert.equal(underMpirun({}), false);
  assert.equal(mpiWorldSize({}), 1);
  assert.equal(underMpirun(MPIRUN_ENV), true);
  assert.equal(mpiWorldSize(MPIRUN_ENV), 3);
  assert.equal(mpiWorldSize({ OMPI_COMM_WORLD_SIZE: '3' }), 1, 'a size without a rank is not a world');
  assert.equal(mpiWorldSize({ ...MPIRUN_ENV, OMPI_COMM_WORLD_SIZE: 'x' }), 1);
});

test('worldCommunicator outside mpirun is SINGLE_PROCESS and never touches the addon', async () => {
  const comm = worldCommunicator({}, { addonPath: '/nonexistent/mpi_addon.node' });
  assert.equal(comm, SINGLE_PROCESS);
  const buf = new Float32Array([1, 2]);
  await comm.allreduceSum(buf);
  assert.deepEqual(Array.from(buf), [1, 2]);
});

/** The UsageError of a missing or broken addon: one line, naming the packages and the build command. */
function installHint(e: unknown): boolean {
  assert.ok(e instanceof UsageError, String(e));
  assert.match(e.message, /apt-get install openmpi-bin libopenmpi-dev/);
  assert.match(e.message, /npm run build:mpi/);
  assert.doesNotMatch(e.message, /\n/);
  return true;
}

test('loadMpi without the addon, or with one the loader refuses (as without libmpi), is a one-line UsageError', () => {
  assert.throws(
    () => loadMpi({ addonPath: '/nonexistent/mpi_addon.node' }),
    (e) => {
      installHint(e);
      assert.match((e as Error).message, /\/nonexistent\/mpi_addon\.node is not built/);
      return true;
    },
  );
  assert.throws(() => worldCommunicator(MPIRUN_ENV, { addonPath: '/nonexistent/mpi_addon.node' }), installHint);
  const dir = mkdtempSync(join(tmpdir(), 'get-distill-addon-'));
  try {
    const broken = join(dir, 'mpi_addon.node');
    writeFileSync(broken, 'not a shared object');
    assert.throws(() => loadMpi({ addonPath: broken }), installHint);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadMpi where libmpi cannot be found names the missing library and the packages', (t) => {
  if (!existsSync(MPI_ADDON_PATH)) return t.skip('the addon is not built (npm run build:mpi)');
  // The built addon with its dependency renamed (same length) from libmpi.so.N to libmpx.so.N: the
  // dynamic loader's own error, as on a machine where libopenmpi3 was removed after the build.
  const bytes = readFileSync(MPI_ADDON_PATH);
  const at = bytes.indexOf('libmpi.so.');
  assert.ok(at > 0, 'the addon names libmpi.so.N');
  bytes.write('libmpx', at, 'latin1');
  const dir = mkdtempSync(join(tmpdir(), 'get-distill-addon-'));
  try {
    writeFileSync(join(dir, 'mpi_addon.node'), bytes);
    assert.throws(
      () => loadMpi({ addonPath: join(dir, 'mpi_addon.node') }),
      (e) => {
        installHint(e);
        assert.match((e as Error).message, /\(libmpx\.so\.\d+: cannot open shared object file/);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const NOT_FOUND =
  'Open MPI not found: data-parallel training (--ranks) is off; ' +
  'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi\n';

test('build-mpi.mjs without mpicc: one line and exit 0 (npm ci goes on), exit 2 with --require', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [BUILD, ...args], { env, encoding: 'utf8', cwd: ROOT });
  const missing = { ...process.env, GET_DISTILL_MPICC: '/nonexistent/mpicc' };
  for (const [args, env, status] of [
    [[], missing, 0],
    [['--require'], missing, 2],
    // No override and a PATH without mpicc (node is started by its absolute path).
    [[], { PATH: '/nonexistent' }, 0],
  ] as const) {
    const r = run([...args], env);
    assert.equal(r.status, status, r.stderr);
    assert.equal(r.stdout, NOT_FOUND);
    assert.equal(r.stderr, '');
  }
});

test('ranks of one host take one GPU each: the local rank picks from CUDA_VISIBLE_DEVICES, else 0..n−1', () => {
  const world = (local: number, localSize: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    OMPI_COMM_WORLD_SIZE: '4',
    OMPI_COMM_WORLD_RANK: String(2 + local),
    OMPI_COMM_WORLD_LOCAL_RANK: String(local),
    OMPI_COMM_WORLD_LOCAL_SIZE: String(localSize),
    ...extra,
  });
  const e1 = world(1, 2);
  assert.equal(assignLocalGpu(e1), '1');
  assert.equal(e1.CUDA_VISIBLE_DEVICES, '1');
  const e2 = world(1, 2, { CUDA_VISIBLE_DEVICES: '4,6' });
  assert.equal(assignLocalGpu(e2), '6');
  assert.equal(e2.CUDA_VISIBLE_DEVICES, '6');
  assert.equal(worldRankOf(e2), 3);
  assert.equal(localRankOf(e2), 1);
  // One rank per host (a pod per GPU) or no mpirun: nothing changes.
  const one = world(0, 1, { CUDA_VISIBLE_DEVICES: '0,1' });
  assert.equal(assignLocalGpu(one), null);
  assert.equal(one.CUDA_VISIBLE_DEVICES, '0,1');
  const plain: NodeJS.ProcessEnv = { CUDA_VISIBLE_DEVICES: '0,1' };
  assert.equal(assignLocalGpu(plain), null);
  assert.equal(plain.CUDA_VISIBLE_DEVICES, '0,1');
  assert.equal(worldRankOf(plain), 0);
});
