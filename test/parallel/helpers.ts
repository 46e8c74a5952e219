/**
 * What the data-parallel tests share: whether a real MPI world can run here, a synthetic pair folder, and
 * whether a rank process is still alive.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeManifest, writeShard, type WrittenShard } from '../../src/data/shards.js';
import { datasetDigest } from '../../src/stages/datagen.js';
import { storeFor } from '../../src/store/index.js';
import { findMpirun } from '../../src/parallel/launch.js';
import { MPI_ADDON_PATH } from '../../src/parallel/mpi.js';
import { Rng } from '../../src/util/rng.js';

/** The skip reason of a test that needs mpirun and the built addon (CI has both), else false. */
export const noMpi: string | false =
  findMpirun() === null || !existsSync(MPI_ADDON_PATH) ? 'Open MPI or the addon is missing (npm run build:mpi)' : false;

const PIX = 32 * 32;

/**
 * Writes a pair folder of `n` random conditional 1×32×32 pairs (10 classes; noise N(0,1), image
 * N(0,0.25)) in shards of `shardSize`, deterministic in `seed`.
 * @returns the dataset digest a train stage checks (datasetDigest of the manifest).
 */
export async function writeSyntheticPairs(dir: string, n: number, shardSize: number, seed: number): Promise<string> {
  const rng = new Rng(seed);
  const written: WrittenShard[] = [];
  for (let start = 0; start < n; start += shardSize) {
    const k = Math.min(n, start + shardSize) - start;
    written.push(
      await writeShard(storeFor(dir), dir, {
        teacher: 'synthetic',
        sampler: { name: 'none' },
        seeds: { start, end: start + k },
        shape: { channels: 1, height: 32, width: 32 },
        noise: rng.fillNormal(new Float32Array(k * PIX)),
        image: rng.fillNormal(new Float32Array(k * PIX), 0.5),
        label: Int32Array.from({ length: k }, () => rng.int(10)),
      }),
    );
  }
  const m = await writeManifest(storeFor(dir), dir, {
    dataset: 'synthetic',
    teacher: 'synthetic',
    sampler: { name: 'none' },
    imageShape: { channels: 1, height: 32, width: 32 },
    numClasses: 10,
    conditional: true,
    shards: written,
    createdAt: '2026-01-01T00:00:00.000Z',
  });
  return datasetDigest(m);
}

/** A process is gone once it no longer exists or is a zombie (mpirun's ranks are reparented to init). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/**
 * Waits (a hang guard of 20 s, not a time bound) until none of `pids` is alive: mpirun may end a moment
 * before the kernel has reaped the ranks it killed. Fails naming the living.
 */
export async function allGone(pids: readonly number[]): Promise<void> {
  for (let i = 0; i < 2000 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(pids.filter(alive), [], 'rank processes still alive after mpirun ended');
}
