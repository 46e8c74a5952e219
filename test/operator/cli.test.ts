// services/operator/main.ts as a user runs it: --help, bad options and a missing cluster → exit 2 with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const MAIN = join(import.meta.dirname, '..', '..', 'services', 'operator', 'main.ts');
const home = mkdtempSync(join(tmpdir(), 'op-cli-'));
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    timeout: 300_000, // a hang guard, not a time bound
    env: { PATH: process.env.PATH!, HOME: home, KUBECONFIG: join(home, 'none'), ...env },
  });

test('--help lists the options with their environment variables', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /DistillationRun/);
  assert.match(r.stdout, /--datagen-image/);
  assert.match(r.stdout, /GET_DISTILL_NAMESPACES|--namespaces/);
});

test('a bad option value exits 2 with one line naming it', () => {
  const r = run(['--workers', '0']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /--workers/);
  const e = run([], { GET_DISTILL_IMAGE_PULL_POLICY: 'Sometimes' });
  assert.equal(e.status, 2);
  assert.match(e.stderr, /GET_DISTILL_IMAGE_PULL_POLICY/);
});

test('no cluster configured: exit 2 saying how to give one (KUBECONFIG missing, or no kubeconfig at all)', () => {
  const r = run(['--metrics-port', '0']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    /^get-distill-operator: no Kubernetes cluster configured: .*no kubeconfig at .*none; set KUBECONFIG\n$/,
  );
  // Without KUBECONFIG client-node would quietly fall back to http://localhost:8080.
  const bare = spawnSync(process.execPath, ['--import', 'tsx', MAIN, '--metrics-port', '0'], {
    encoding: 'utf8',
    timeout: 300_000, // a hang guard, not a time bound
    env: { PATH: process.env.PATH!, HOME: home },
  });
  assert.equal(bare.status, 2, bare.stderr);
  assert.match(bare.stderr, /no kubeconfig at .*\.kube\/config; set KUBECONFIG/);
});

test('operator process, test API server: ready, leads, creates a Job; SIGTERM frees the Lease, exit 0', async () => {
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const { startCluster, createRun, runSpec, getJob, waitFor } = await import('./harness.js');
  const { srv, user } = await startCluster();
  try {
    const kubeconfig = join(home, 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: "${srv.url}", ` +
        `insecure-skip-tls-verify: true}}]\nusers: [{name: op, user: {token: operator-token}}]\ncontexts: ` +
        `[{name: fake, context: {cluster: fake, user: op}}]\ncurrent-context: fake\n`,
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        '--metrics-port',
        '0',
        '--host',
        '127.0.0.1',
        '--lease-namespace',
        'ops',
        '--log-level',
        'info',
      ],
      {
        env: { PATH: process.env.PATH!, HOME: home, KUBECONFIG: kubeconfig, POD_NAME: 'operator-0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((ok) => child.on('exit', (c) => ok(c)));
    const port = await waitFor('listening port', () => Number(/"port":(\d+)/.exec(out)?.[1]) || undefined, 30_000);
    await waitFor('leader', () => /leading: controllers started/.test(out), 30_000);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^get_operator_is_leader 1$/m);
    await createRun(user, 'proc', runSpec());
    const job = await waitFor('datagen Job', () => getJob(srv, 'proc-datagen'), 10_000);
    assert.equal(job.spec.completions, 4);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    const lease = srv.getObject({
      group: 'coordination.k8s.io',
      plural: 'leases',
      namespace: 'ops',
      name: 'get-distill-operator',
    })!;
    assert.match(lease.spec.holderIdentity ?? '', /^$/); // released on shutdown
  } finally {
    await srv.close();
  }
});
