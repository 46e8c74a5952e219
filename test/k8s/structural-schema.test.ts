// The structural-schema validator (test/k8s/structural-schema.ts) against the MPI Operator's MPIJob CRD
// (test/fixtures/mpi-operator), alone and inside the fake API server: what it accepts, what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { crdSchema, validateStructural, type SchemaNode } from './structural-schema.js';
import { FakeApiServer, kubeConfigFor, type KObj } from './api-server.js';

const CRD = parse(
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'mpi-operator', 'kubeflow.org_mpijobs.yaml'), 'utf8'),
);
const SCHEMA = crdSchema(CRD, 'v2beta1');

/** A small MPIJob of our own making: a launcher running mpirun and two sshd workers. */
function mpiJob(): KObj {
  const container = (name: string, extra: KObj) => ({
    name,
    image: 'registry.example.com/trainer:1.0.0',
    resources: { limits: { cpu: '2', memory: '4Gi', 'nvidia.com/gpu': 1 }, requests: { cpu: '500m' } },
    securityContext: { runAsUser: 10001, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
    ...extra,
  });
  return {
    apiVersion: 'kubeflow.org/v2beta1',
    kind: 'MPIJob',
    metadata: { name: 'demo', namespace: 'ns', labels: { a: 'b' }, ownerReferences: [] },
    spec: {
      slotsPerWorker: 2,
      runPolicy: { backoffLimit: 3, cleanPodPolicy: 'Running' },
      sshAuthMountPath: '/home/user/.ssh',
      mpiImplementation: 'OpenMPI',
      launcherCreationPolicy: 'WaitForWorkersReady',
      mpiReplicaSpecs: {
        Launcher: {
          replicas: 1,
          restartPolicy: 'Never',
          template: { spec: { containers: [container('launcher', { args: ['--ranks', '4'] })] } },
        },
        Worker: {
          replicas: 2,
          template: {
            metadata: { labels: { role: 'worker' } },
            spec: {
              containers: [
                container('worker', {
                  command: ['/usr/sbin/sshd'],
                  ports: [{ containerPort: 2222, protocol: 'TCP' }],
                  readinessProbe: { tcpSocket: { port: 2222 } },
                }),
              ],
              tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
            },
          },
        },
      },
    },
  };
}

/** `mpiJob()` with `edit` applied to a copy. */
const edited = (edit: (o: KObj) => void): KObj => {
  const o = mpiJob();
  edit(o);
  return o;
};

test('a well-formed MPIJob passes the CRD schema (metadata at the root is the API server’s own)', () => {
  assert.deepEqual(validateStructural(mpiJob(), SCHEMA), []);
});

test('the CRD schema refuses unknown fields, wrong types, enums, patterns, ranges and missing fields', () => {
  const worker = (o: KObj) => o.spec.mpiReplicaSpecs.Worker.template.spec;
  const cases: Array<[string, (o: KObj) => void, string]> = [
    ['unknown spec field', (o) => (o.spec.workers = 2), 'spec.workers: unknown field (the API server would prune it)'],
    [
      'unknown container field',
      (o) => (worker(o).containers[0].gpus = 1),
      'spec.mpiReplicaSpecs.Worker.template.spec.containers[0].gpus: unknown field (the API server would prune it)',
    ],
    ['string for an integer', (o) => (o.spec.slotsPerWorker = '2'), 'spec.slotsPerWorker: must be of type integer'],
    ['fraction for an integer', (o) => (o.spec.runPolicy.backoffLimit = 1.5), 'spec.runPolicy.backoffLimit: must be'],
    ['int32 overflow', (o) => (o.spec.slotsPerWorker = 2 ** 31), 'spec.slotsPerWorker: 2147483648 is out of int32'],
    ['enum', (o) => (o.spec.mpiImplementation = 'Gloo'), 'spec.mpiImplementation: unsupported value "Gloo"'],
    ['required', (o) => delete o.spec.mpiReplicaSpecs, 'spec.mpiReplicaSpecs: Required value'],
    [
      'required in a container',
      (o) => delete worker(o).containers[0].name,
      'spec.mpiReplicaSpecs.Worker.template.spec.containers[0].name: Required value',
    ],
    [
      'quantity pattern',
      (o) => (worker(o).containers[0].resources.limits.memory = '4 GB'),
      'spec.mpiReplicaSpecs.Worker.template.spec.containers[0].resources.limits.memory: "4 GB" should match',
    ],
    [
      'int-or-string',
      (o) => (worker(o).containers[0].readinessProbe.tcpSocket.port = true),
      'readinessProbe.tcpSocket.port: must be an integer or a string, got boolean',
    ],
    [
      'list-map keys unique',
      (o) => worker(o).containers.push({ ...worker(o).containers[0] }),
      'spec.mpiReplicaSpecs.Worker.template.spec.containers: duplicate key ["worker"]',
    ],
    [
      'object for a string',
      (o) => (o.spec.sshAuthMountPath = { path: '/x' }),
      'spec.sshAuthMountPath: must be of type',
    ],
  ];
  for (const [what, edit, problem] of cases) {
    const problems = validateStructural(edited(edit), SCHEMA);
    assert.equal(problems.length, 1, `${what}: ${problems.join(' | ')}`);
    assert.ok(problems[0]!.includes(problem), `${what}: ${problems[0]} lacks ${problem}`);
  }
});

test('anyOf, oneOf, nullable and preserve-unknown-fields follow the OpenAPI rules', () => {
  const s: SchemaNode = {
    type: 'object',
    properties: {
      n: { type: 'string', nullable: true },
      free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      one: {
        oneOf: [
          { type: 'integer', minimum: 0 },
          { type: 'integer', maximum: 10 },
        ],
      },
      set: { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'set' },
    },
  };
  assert.deepEqual(validateStructural({ n: null, free: { anything: [1] }, one: 20, set: ['a', 'b'] }, s), []);
  assert.deepEqual(validateStructural({ one: 5 }, s), ['one: matches 2 of oneOf, not exactly one']);
  assert.deepEqual(validateStructural({ set: ['a', 'a'] }, s), ['set: duplicate item "a"']);
});

test('the fake API server answers 422 for an MPIJob its CRD refuses, on create and on update', async () => {
  const srv = await FakeApiServer.start();
  try {
    srv.registerCustomResource({
      group: 'kubeflow.org',
      version: 'v2beta1',
      plural: 'mpijobs',
      kind: 'MPIJob',
      validate: (o) => validateStructural(o, SCHEMA),
    });
    const api = kubeConfigFor(srv.url).makeApiClient(CustomObjectsApi);
    const target = { group: 'kubeflow.org', version: 'v2beta1', namespace: 'ns', plural: 'mpijobs' };
    const bad = edited((o) => (o.spec.slotsPerWorker = 'two'));
    const refused = await api.createNamespacedCustomObject({ ...target, body: bad }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof ApiException);
    assert.equal(refused.code, 422);
    assert.match(
      JSON.parse(String(refused.body)).message,
      /^MPIJob\.kubeflow\.org "demo" is invalid: spec\.slotsPerWorker: must be of type integer, got string$/,
    );
    assert.equal(srv.listObjects({ group: 'kubeflow.org', plural: 'mpijobs' }).length, 0);
    await api.createNamespacedCustomObject({ ...target, body: mpiJob() });
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const patched = await api
      .patchNamespacedCustomObject(
        { ...target, name: 'demo', body: { spec: { runPolicy: { suspend: 'yes' } } } },
        merge,
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.equal((patched as ApiException<unknown>).code, 422);
    await api.patchNamespacedCustomObject(
      { ...target, name: 'demo', body: { spec: { runPolicy: { suspend: true } } } },
      merge,
    );
    const stored = srv.getObject({ group: 'kubeflow.org', plural: 'mpijobs', namespace: 'ns', name: 'demo' })!;
    assert.equal(stored.spec.runPolicy.suspend, true);
    // Status writes are the MPI Operator's and are not checked against the spec schema.
    const st = srv.setStatus(
      { group: 'kubeflow.org', plural: 'mpijobs', namespace: 'ns', name: 'demo' },
      { conditions: [{ type: 'Created', status: 'True' }], somethingElse: 1 },
    );
    assert.equal(st.status.somethingElse, 1);
  } finally {
    await srv.close();
  }
});
