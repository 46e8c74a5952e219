// Builds the Open MPI addon (native/mpi, docs/parallel.md) with node-gyp where Open MPI is installed.
// Plain Node (no tsx): it runs as the root package's postinstall, before anything else is set up.
//
//   node scripts/build-mpi.mjs             no Open MPI: print one line and exit 0 (npm ci must succeed);
//                                          a failed build prints node-gyp's output and one line, exit 0
//   node scripts/build-mpi.mjs --require   the same, but exit 2 without Open MPI and 1 on a failed build
//                                          (`npm run build:mpi`, scripts/test.sh)
//
// Open MPI is found through its wrapper compiler: GET_DISTILL_MPICC (a path; tests point it at a missing
// file), else `mpicc` on PATH. `mpicc --showme:incdirs` must name a folder holding mpi.h. node-gyp is
// npm's own (npm sets npm_config_node_gyp for scripts it runs), else the one bundled with the npm next to
// this node, else `node-gyp` on PATH. Node's headers come from the installation when it ships them
// (<prefix>/include/node, as Debian's nodejs and the official tarballs do), else node-gyp downloads them.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ADDON_DIR = join(ROOT, 'native', 'mpi');
const ADDON = join(ADDON_DIR, 'build', 'Release', 'mpi_addon.node');
const NOT_FOUND =
  'Open MPI not found: data-parallel training (--ranks) is off; ' +
  'apt-get install openmpi-bin libopenmpi-dev, then npm run build:mpi';

const BUNDLED_NODE_GYP = join('node_modules', 'node-gyp', 'bin', 'node-gyp.js');

const required = process.argv.includes('--require');

/** The first executable `name` on PATH, or null. */
function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Open MPI's wrapper compiler when it exists and its include folders hold mpi.h, else null. */
function findMpicc() {
  const explicit = process.env.GET_DISTILL_MPICC;
  const mpicc = explicit !== undefined ? explicit : onPath('mpicc');
  if (!mpicc || !existsSync(mpicc)) return null;
  const r = spawnSync(mpicc, ['--showme:incdirs'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dirs = r.stdout.trim().split(/\s+/).filter(Boolean);
  return dirs.some((d) => existsSync(join(d, 'mpi.h'))) ? mpicc : null;
}

/** How to run node-gyp: [command, ...leading args]. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join('/usr/lib/node_modules/npm', BUNDLED_NODE_GYP),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', BUNDLED_NODE_GYP),
  ];
  for (const js of candidates) if (js && existsSync(js)) return [process.execPath, js];
  const bin = onPath('node-gyp');
  return bin ? [bin] : null;
}

/** --nodedir=<prefix> when this node's installation ships headers of its own version, else nothing. */
function nodeDirArgs() {
  const prefix = resolve(dirname(process.execPath), '..');
  const header = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(header)) return [];
  const text = readFileSync(header, 'utf8');
  const part = (name) => new RegExp(`#define NODE_${name}_VERSION (\\d+)`).exec(text)?.[1];
  const version = `v${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  return version === process.version ? [`--nodedir=${prefix}`] : [];
}

function fail(line, code) {
  console.log(line);
  process.exit(required ? code : 0);
}

const mpicc = findMpicc();
if (mpicc === null) fail(NOT_FOUND, 2);
const gyp = nodeGyp();
if (gyp === null) fail('node-gyp not found (it ships with npm): the Open MPI addon was not built', 1);

const [cmd, ...lead] = gyp;
const r = spawnSync(cmd, [...lead, 'rebuild', `--mpicc=${mpicc}`, ...nodeDirArgs()], {
  cwd: ADDON_DIR,
  encoding: 'utf8',
});
if (r.status !== 0 || !existsSync(ADDON)) {
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  const why = r.error ? r.error.message : `node-gyp exited with ${r.status ?? r.signal}`;
  fail(`building the Open MPI addon failed (${why}): data-parallel training (--ranks) is off`, 1);
}
console.log(`Open MPI addon built: ${relative(process.cwd(), ADDON) || ADDON} (mpicc ${mpicc})`);
