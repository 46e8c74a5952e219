// Test fixtures for the GenerationEndpoint controller: an endpoint object, operator configs, and a
// ControllerContext whose clients are the real @kubernetes/client-node talking to the in-memory
// FakeApiServer and whose caches read the fake's store directly (always fresh, and they send no
// requests, so srv.requests counts only what the controller does).
import type { KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { FakeApiServer, kubeConfigFor, type KObj } from '../../k8s/api-server.js';
import { registerOperatorCrds } from '../harness.js';
import { API_VERSION, ENDPOINT, GROUP, RUN, VERSION } from '../../../src/operator/api/v1alpha1/group.js';
import { OperatorConfigSchema, type OperatorConfig } from '../../../src/operator/config.js';
import {
  makeApis,
  MERGE_PATCH,
  type ControllerContext,
  type ReadCache,
} from '../../../src/operator/controllers/context.js';
import { KEDA } from '../../../src/operator/controllers/endpoint/builders.js';
import { reconcileEndpoint } from '../../../src/operator/controllers/endpoint/reconcile.js';
import { operatorRules } from '../../../src/operator/rbac.js';
import type { RecordedRequest } from '../../k8s/api-server.js';

export const NS = 'ml';
export const DIGEST_A = `sha256:${'a'.repeat(64)}`;
export const DIGEST_B = `sha256:${'b'.repeat(64)}`;
export const MODEL_URI = 's3://models/mnist/model.onnx';

/** An endpoint as the API would return it (uid, generation) for the pure builder tests. */
export function endpointObject(spec: Record<string, unknown>, name = 'mnist'): KObj {
  return {
    apiVersion: API_VERSION,
    kind: ENDPOINT.kind,
    metadata: { name, namespace: NS, uid: `uid-${name}`, generation: 1 },
    spec,
  };
}

export const cfgOf = (o: Partial<Record<keyof OperatorConfig, unknown>> = {}): OperatorConfig =>
  OperatorConfigSchema.parse(o);

const cacheOf = <T>(srv: FakeApiServer, group: string, plural: string): ReadCache<T> => ({
  get: (name, namespace) => srv.getObject({ group, plural, namespace, name }) as T | undefined,
  list: (namespace) => srv.listObjects({ group, plural, namespace }) as T[],
});

export interface Harness {
  srv: FakeApiServer;
  ctx: ControllerContext;
  events: { reason: string; type: string; message: string }[];
  /** reconcileEndpoint(ctx, `ml/<name>`), recording the requests it makes. */
  reconcile(name: string): ReturnType<typeof reconcileEndpoint>;
  /** Requests of the controller (made inside reconcile) that the operator's RBAC rules do not allow. */
  unauthorized(): string[];
  /** Creates an endpoint through the API (so it has a uid and generation). */
  createEndpoint(name: string, spec: Record<string, unknown>): Promise<void>;
  /** Merge-patches an endpoint's spec (bumps generation). */
  patchEndpoint(name: string, spec: Record<string, unknown>): Promise<void>;
  endpoint(name: string): KObj;
  deployment(name: string): KObj | undefined;
  /** Write requests (create/update/patch/delete, any resource) since `from` (an index into srv.requests). */
  writesSince(from: number): string[];
  close(): Promise<void>;
}

/** A fake cluster with the CRDs registered and a controller context on it. */
export async function harness(cfg: OperatorConfig = cfgOf()): Promise<Harness> {
  const srv = await FakeApiServer.start();
  registerOperatorCrds(srv);
  const apis = makeApis(kubeConfigFor(srv.url));
  const events: Harness['events'] = [];
  const ctx: ControllerContext = {
    cfg,
    apis,
    log: pino({ level: 'silent' }),
    now: () => new Date('2026-11-30T12:00:00Z'),
    event: async (_obj: KubernetesObject, type, reason, message) => {
      events.push({ type, reason, message });
    },
    caches: {
      runs: cacheOf(srv, GROUP, RUN.plural),
      endpoints: cacheOf(srv, GROUP, ENDPOINT.plural),
      jobs: cacheOf(srv, 'batch', 'jobs'),
      pods: cacheOf(srv, '', 'pods'),
      deployments: cacheOf(srv, 'apps', 'deployments'),
      services: cacheOf(srv, '', 'services'),
      hpas: cacheOf(srv, 'autoscaling', 'horizontalpodautoscalers'),
      ...(cfg.keda ? { scaledObjects: cacheOf(srv, KEDA.group, KEDA.plural) } : {}),
    },
  };
  const byController: RecordedRequest[] = [];
  const rules = operatorRules({ keda: cfg.keda, mpiOperator: cfg.mpiOperator });
  const allowed = (r: RecordedRequest) => {
    const [verb, sub] = r.verb.split('/');
    const [group, plural] = [
      r.resource.slice(0, r.resource.indexOf('/')),
      r.resource.slice(r.resource.indexOf('/') + 1),
    ];
    const res = sub ? `${plural}/${sub}` : plural;
    return rules.some((x) => x.apiGroups.includes(group) && x.resources.includes(res) && x.verbs.includes(verb));
  };
  const co = { group: GROUP, version: VERSION, namespace: NS, plural: ENDPOINT.plural };
  return {
    srv,
    ctx,
    events,
    reconcile: async (name) => {
      const from = srv.requests.length;
      try {
        return await reconcileEndpoint(ctx, `${NS}/${name}`);
      } finally {
        byController.push(...srv.requests.slice(from));
      }
    },
    unauthorized: () => byController.filter((r) => !allowed(r)).map((r) => `${r.verb} ${r.resource}`),
    createEndpoint: async (name, spec) => {
      await apis.custom.createNamespacedCustomObject({
        ...co,
        body: { apiVersion: API_VERSION, kind: ENDPOINT.kind, metadata: { name }, spec },
      });
    },
    patchEndpoint: async (name, spec) => {
      await apis.custom.patchNamespacedCustomObject({ ...co, name, body: { spec } }, MERGE_PATCH);
    },
    endpoint: (name) => srv.getObject({ group: GROUP, plural: ENDPOINT.plural, namespace: NS, name })!,
    deployment: (name) => srv.getObject({ group: 'apps', plural: 'deployments', namespace: NS, name }),
    writesSince: (from) =>
      srv.requests
        .slice(from)
        .filter((r) => /^(create|update|patch|delete)/.test(r.verb))
        .map((r) => `${r.verb} ${r.resource}`),
    close: () => srv.close(),
  };
}

/** The condition of `type` in an object's status. */
export const conditionOf = (obj: KObj, type: string): KObj | undefined =>
  obj.status?.conditions?.find((c: KObj) => c.type === type);

/** A Deployment status as the deployment controller writes it once `n` pods of generation `gen` are available. */
export function availableStatus(gen: number, n: number): KObj {
  return {
    observedGeneration: gen,
    replicas: n,
    updatedReplicas: n,
    readyReplicas: n,
    availableReplicas: n,
    conditions: [
      { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'ok' },
      { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: 'ok' },
    ],
  };
}
