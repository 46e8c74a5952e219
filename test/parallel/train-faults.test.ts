/**
 * Faults of data-parallel training under real mpirun (issue 15): a rank killed with SIGKILL mid-run stops
 * every rank with one line naming it, and --resume then reaches the parameters of an unbroken run; a
 * corrupt shard seen by one rank stops the whole job with exit 2; ranks started with different options
 * exit 2 naming the option; --ranks without Open MPI exits 2 naming the Debian packages.
 *
 * Ranks started with their own job files use mpirun's MPMD form (`-np 1 A : -np 1 B`), the way a
 * misconfigured cluster would start them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/get/config.js';
import { paramSpecs } from '../../src/get/model.js';
import { REFERENCE_ADAMW } from '../../src/train/optim.js';
import { storeFor } from '../../src/store/index.js';
import { loadLatestCheckpoint } from '../../src/train/checkpoint.js';
import { RANK_ENTRY, type RankJob, trainOnRanks } from '../../src/stages/train-ranks.js';
import { findMpirun } from '../../src/parallel/launch.js';
import { Interrupted } from '../../src/util/errors.js';
import { allGone, noMpi, writeSyntheticPairs } from './helpers.js';

const mpirun = findMpirun();
const cfg = resolveConfig('GET-CPU-XS/8', { numClasses: 10 });
let root = '';
let pairs = '';
let digest = '';

function job(out: string, over: Partial<RankJob> = {}): RankJob {
  return {
    pairs,
    config: cfg as unknown as RankJob['config'],
    steps: 12,
    batch: 16,
    iterations: 2,
    optimizer: { ...REFERENCE_ADAMW, lr: 1e-3 },
    ema: { kind: 'halflife', halflifeImages: 100, rampupRatio: 0.05 },
    seed: 3,
    checkpointDir: out,
    checkpointEvery: 4,
    keep: 2,
    resume: true,
    dataManifestSha256: digest,
    threads: 1,
    ...over,
  };
}

/** Runs `mpirun` with one job file per rank (MPMD); resolves its exit code and stderr. */
async function mpmd(jobs: RankJob[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const files: string[] = [];
  for (const [i, j] of jobs.entries()) {
    const f = join(root, `mpmd-${Date.now()}-${i}.json`);
    await writeFile(f, JSON.stringify(j));
    files.push(f);
  }
  const root0 = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const args = [...root0, '--oversubscribe', '--bind-to', 'none'];
  files.forEach((f, i) => {
    if (i > 0) args.push(':');
    args.push('-np', '1', process.execPath, '--import', 'tsx', RANK_ENTRY, f);
  });
  const child = spawn(mpirun!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
  return { code, stderr, stdout };
}

/** PIDs of the rank processes of `file` (those whose command line names it), with their MPI rank. */
async function rankPids(file: string): Promise<{ pid: number; rank: number }[]> {
  const out: { pid: number; rank: number }[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = (await readFile(`/proc/${d}/cmdline`, 'utf8')).split('\0');
      if (!cmd.includes(file) || !cmd.includes(RANK_ENTRY)) continue;
      const env = (await readFile(`/proc/${d}/environ`, 'utf8')).split('\0');
      const r = env.find((e) => e.startsWith('OMPI_COMM_WORLD_RANK='));
      if (r) out.push({ pid: Number(d), rank: Number(r.split('=')[1]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'get-rank-faults-'));
  pairs = join(root, 'pairs');
  digest = await writeSyntheticPairs(pairs, 96, 32, 9);
});
after(() => rm(root, { recursive: true, force: true }));

test(
  'SIGKILL of rank 1 mid-run stops every rank with one line; --resume reaches the unbroken run',
  { skip: noMpi, timeout: 300_000 },
  async () => {
    // Long enough that the kill always lands mid-run: the ranks' pids are looked up from step 1 on, and
    // rank 1 is killed at the first step ≥ 6 once they are known.
    const long = { steps: 120 };
    const unbroken = join(root, 'unbroken');
    await trainOnRanks(job(unbroken, long), { ranks: 2 });
    const broken = join(root, 'broken');
    let killed: { pid: number; rank: number }[] = [];
    const jobFileOf = async () => {
      // The job file is the ranks' last argument; find the ranks by the checkpoint folder they write.
      for (const d of await readdir(tmpdir())) {
        if (!d.startsWith('get-distill-ranks-')) continue;
        const f = join(tmpdir(), d, 'job.json');
        try {
          if ((JSON.parse(await readFile(f, 'utf8')) as RankJob).checkpointDir === broken) return f;
        } catch {
          // not ours, or gone
        }
      }
      return null;
    };
    let pids: { pid: number; rank: number }[] = [];
    let lookup: Promise<void> | null = null;
    const err = await trainOnRanks(job(broken, long), {
      ranks: 2,
      onStep: (s) => {
        lookup ??= (async () => {
          const f = await jobFileOf();
          pids = f ? await rankPids(f) : [];
        })();
        // After a checkpoint (step 4), kill rank 1 while both are training.
        const r1 = pids.find((p) => p.rank === 1);
        if (s.step < 6 || killed.length || !r1) return;
        killed = pids;
        process.kill(r1.pid, 'SIGKILL');
      },
    }).then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(err instanceof Interrupted, `Interrupted (exit 130), got ${err}`);
    assert.match(err.message, /rank 1\b.*lost/);
    assert.match(err.message, /--resume/);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    await allGone(killed.map((p) => p.pid));
    // The last checkpoint is from before the kill; resuming continues from it to step 12.
    const specs = paramSpecs(cfg);
    const before = await loadLatestCheckpoint(storeFor(broken), broken, specs);
    assert.equal(killed.length, 2, `both ranks were found: ${JSON.stringify(killed)}`);
    assert.ok(before.state.step >= 4 && before.state.step < 120, `checkpoint at ${before.state.step}`);
    await trainOnRanks(job(broken, long), { ranks: 2 });
    const a = await loadLatestCheckpoint(storeFor(unbroken), unbroken, specs);
    const b = await loadLatestCheckpoint(storeFor(broken), broken, specs);
    assert.equal(b.state.step, 120);
    assert.deepEqual(b.params.flat, a.params.flat);
    assert.deepEqual(b.ema.flat, a.ema.flat);
    assert.deepEqual(b.adamV.flat, a.adamV.flat);
  },
);

test(
  'a corrupt shard seen by one rank stops the whole job with exit 2',
  { skip: noMpi, timeout: 180_000 },
  async () => {
    // Rank 1 reads a copy of the folder whose first shard lost a byte (same manifest, so the ranks' options
    // and data digest agree): its sha256 check fails at its first batch.
    const bad = join(root, 'pairs-bad');
    await cp(pairs, bad, { recursive: true });
    const shard = (await readdir(bad)).find((f) => f.endsWith('.safetensors'))!;
    const bytes = await readFile(join(bad, shard));
    bytes[bytes.length - 5] ^= 0xff;
    await writeFile(join(bad, shard), bytes);
    const out = join(root, 'corrupt');
    const r = await mpmd([job(out), job(out, { pairs: bad })]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /sha256|checksum|corrupt/i);
    assert.match(r.stderr, /regenerate the pairs/);
  },
);

test('ranks started with different options exit 2 naming the option', { skip: noMpi, timeout: 180_000 }, async () => {
  const out = join(root, 'differ');
  const r = await mpmd([job(out), job(out, { optimizer: { ...REFERENCE_ADAMW, lr: 2e-3 } })]);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => /different options/.test(l));
  assert.ok(lines.length >= 1, r.stderr);
  assert.match(lines[0], /optimizer\.lr differs on 1 of 2 ranks \(rank 0: 0\.001/);
});
