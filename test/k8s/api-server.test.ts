// Drives the REAL @kubernetes/client-node@1.4.0 against the in-repo fake API server (test/k8s/api-server.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  KubeConfig,
  CoreV1Api,
  BatchV1Api,
  AppsV1Api,
  CustomObjectsApi,
  CoordinationV1Api,
  ApiException,
  makeInformer,
  Watch,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { FakeApiServer, mergePatch, jsonPatch, parseLabelSelector, type KObj } from './api-server.js';
import type { Json } from '../json.js';

const TOKEN = 'test-token';
const NS = 'distill';
let srv: FakeApiServer;
let kc: KubeConfig;
let core: CoreV1Api, batch: BatchV1Api, apps: AppsV1Api, custom: CustomObjectsApi, coord: CoordinationV1Api;
const mergeOpts = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

before(async () => {
  srv = await FakeApiServer.start({ token: TOKEN });
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: srv.url, skipTLSVerify: true }],
    users: [{ name: 'tester', token: TOKEN }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
    currentContext: 'fake',
  });
  core = kc.makeApiClient(CoreV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  coord = kc.makeApiClient(CoordinationV1Api);
  srv.registerCustomResource({
    group: 'distill.example.com',
    version: 'v1alpha1',
    plural: 'distilljobs',
    kind: 'DistillJob',
  });
});
after(async () => {
  await srv.close();
});

const job = (name: string, labels: Record<string, string> = {}, extra: Partial<V1Job['metadata']> = {}): V1Job => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name, labels, ...extra },
  spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox' }] } } },
});

async function waitFor(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function apiError(p: Promise<unknown>): Promise<ApiException<string>> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiException) return e as ApiException<string>;
    throw e;
  }
  throw new Error('expected an ApiException');
}

test('Job create/get/list with label selectors; AlreadyExists; generateName; auth header sent', async () => {
  const a = await batch.createNamespacedJob({ namespace: NS, body: job('train-a', { stage: 'train', shard: '0' }) });
  await batch.createNamespacedJob({ namespace: NS, body: job('train-b', { stage: 'train', shard: '1' }) });
  await batch.createNamespacedJob({ namespace: NS, body: job('export-a', { stage: 'export' }) });
  assert.equal(a.metadata?.generation, 1);
  assert.match(a.metadata!.uid!, /^[0-9a-f-]{36}$/);
  // Typed responses are deserialized: timestamps arrive as Date objects.
  assert.ok(a.metadata!.creationTimestamp instanceof Date);

  const got = await batch.readNamespacedJob({ namespace: NS, name: 'train-a' });
  assert.equal(got.metadata?.resourceVersion, a.metadata?.resourceVersion);
  assert.equal(got.kind, 'Job');

  const names = async (labelSelector?: string, fieldSelector?: string) =>
    (await batch.listNamespacedJob({ namespace: NS, labelSelector, fieldSelector })).items
      .map((j) => j.metadata!.name)
      .sort();
  assert.deepEqual(await names('stage=train'), ['train-a', 'train-b']);
  assert.deepEqual(await names('stage in (export,eval)'), ['export-a']);
  assert.deepEqual(await names('stage!=train'), ['export-a']);
  assert.deepEqual(await names('shard'), ['train-a', 'train-b']);
  assert.deepEqual(await names('stage=train,shard notin (0)'), ['train-b']);
  assert.deepEqual(await names(undefined, 'metadata.name=train-b'), ['train-b']);
  const list = await batch.listNamespacedJob({ namespace: NS });
  assert.equal(Number(list.metadata?.resourceVersion) >= Number(a.metadata?.resourceVersion), true);
  // Built-in typed lists omit item kind/apiVersion, as the real apiserver does.
  assert.equal(list.items[0].kind, undefined);

  const dup = await apiError(batch.createNamespacedJob({ namespace: NS, body: job('train-a') }));
  assert.equal(dup.code, 409);
  assert.equal(JSON.parse(dup.body).reason, 'AlreadyExists');
  const gen = await batch.createNamespacedJob({
    namespace: NS,
    body: { ...job(''), metadata: { generateName: 'eval-' } },
  });
  assert.match(gen.metadata!.name!, /^eval-[0-9a-f]{5}$/);
  const missing = await apiError(batch.readNamespacedJob({ namespace: NS, name: 'nope' }));
  assert.equal(missing.code, 404);

  const rec = srv.requests.find((r) => r.verb === 'create' && r.resource === 'batch/jobs')!;
  assert.equal(rec.path, `/apis/batch/v1/namespaces/${NS}/jobs`);
  assert.equal(rec.authorization, `Bearer ${TOKEN}`);
  assert.equal(rec.contentType, 'application/json');
  assert.equal(srv.count('list', 'batch/jobs'), 7);
});

test('update with a stale resourceVersion is a 409 Conflict; status is ignored on the main resource', async () => {
  const cur = await batch.readNamespacedJob({ namespace: NS, name: 'train-a' });
  const fresh = await batch.replaceNamespacedJob({
    namespace: NS,
    name: 'train-a',
    body: {
      ...cur,
      metadata: { ...cur.metadata, labels: { ...cur.metadata!.labels, x: '1' } },
      status: { succeeded: 5 },
    },
  });
  // resourceVersion comes from one global counter, so it jumps past other objects' writes.
  assert.ok(Number(fresh.metadata!.resourceVersion) > Number(cur.metadata!.resourceVersion));
  assert.equal(
    fresh.metadata!.resourceVersion,
    srv.getObject({ group: 'batch', plural: 'jobs', namespace: NS, name: 'train-a' })!.metadata.resourceVersion,
  );
  assert.equal(fresh.metadata?.generation, 1, 'label-only change keeps generation');
  assert.equal(fresh.status, undefined, 'status is not writable through the main resource');
  const err = await apiError(batch.replaceNamespacedJob({ namespace: NS, name: 'train-a', body: cur }));
  assert.equal(err.code, 409);
  assert.equal(JSON.parse(err.body).reason, 'Conflict');

  srv.setStatus(
    { group: 'batch', plural: 'jobs', namespace: NS, name: 'train-a' },
    { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] },
  );
  const done = await batch.readNamespacedJob({ namespace: NS, name: 'train-a' });
  assert.equal(done.status?.succeeded, 1);
  assert.equal(done.metadata?.generation, 1);
});

test('patches: client 1.4 defaults to json-patch; merge-patch needs an explicit Content-Type', async () => {
  const d = await apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: 'serve' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'serve' } },
        template: { metadata: { labels: { app: 'serve' } }, spec: { containers: [{ name: 's', image: 'img:1' }] } },
      },
    },
  });
  const jp = await apps.patchNamespacedDeployment({
    namespace: NS,
    name: 'serve',
    body: [{ op: 'replace', path: '/spec/replicas', value: 3 }],
  });
  assert.equal(jp.spec?.replicas, 3);
  assert.equal(jp.metadata?.generation, 2);
  assert.equal(srv.requests.at(-1)!.contentType, 'application/json-patch+json');

  // A merge-shaped body sent with the default json-patch type is rejected (the 1.x pitfall).
  const bad = await apiError(
    apps.patchNamespacedDeployment({ namespace: NS, name: 'serve', body: { spec: { replicas: 2 } } }),
  );
  assert.equal(bad.code, 400);

  const mp = await apps.patchNamespacedDeployment(
    { namespace: NS, name: 'serve', body: { metadata: { labels: { tier: 'gpu' } }, spec: { replicas: 2 } } },
    mergeOpts,
  );
  assert.equal(srv.requests.at(-1)!.contentType, 'application/merge-patch+json');
  assert.equal(mp.spec?.replicas, 2);
  assert.equal(mp.metadata?.labels?.tier, 'gpu');
  assert.equal(mp.spec?.template?.spec?.containers[0].image, 'img:1');
  assert.equal(mp.metadata?.generation, 3);
  // A merge patch carrying a stale resourceVersion is a precondition: 409.
  const stale = await apiError(
    apps.patchNamespacedDeployment(
      {
        namespace: NS,
        name: 'serve',
        body: { metadata: { resourceVersion: d.metadata!.resourceVersion }, spec: { replicas: 9 } },
      },
      mergeOpts,
    ),
  );
  assert.equal(stale.code, 409);
  // A failing json-patch test op is a 422 and changes nothing.
  const t = await apiError(
    apps.patchNamespacedDeployment({
      namespace: NS,
      name: 'serve',
      body: [
        { op: 'test', path: '/spec/replicas', value: 7 },
        { op: 'replace', path: '/spec/replicas', value: 0 },
      ],
    }),
  );
  assert.equal(t.code, 422);
  assert.equal((await apps.readNamespacedDeployment({ namespace: NS, name: 'serve' })).spec?.replicas, 2);
});

test('custom resource status subresource: status writes keep generation, spec writes bump it', async () => {
  const g = 'distill.example.com',
    v = 'v1alpha1',
    plural = 'distilljobs';
  const created = (await custom.createNamespacedCustomObject({
    group: g,
    version: v,
    namespace: NS,
    plural,
    body: {
      apiVersion: `${g}/${v}`,
      kind: 'DistillJob',
      metadata: { name: 'dj' },
      spec: { nfe: 1 },
      status: { phase: 'ignored-on-create' },
    },
  })) as KubernetesObject & { spec: Json; status?: Json };
  assert.equal(created.metadata?.generation, 1);
  assert.equal(created.status, undefined);
  assert.equal(typeof created.metadata?.creationTimestamp, 'string', 'CustomObjectsApi returns plain JSON');

  const s1 = (await custom.patchNamespacedCustomObjectStatus(
    {
      group: g,
      version: v,
      namespace: NS,
      plural,
      name: 'dj',
      body: { status: { phase: 'Running', observedGeneration: 1 }, spec: { nfe: 99 } },
    },
    mergeOpts,
  )) as KObj;
  assert.equal(s1.status.phase, 'Running');
  assert.equal(s1.spec.nfe, 1, 'status patch cannot change spec');
  assert.equal(s1.metadata.generation, 1);

  const replaced = (await custom.replaceNamespacedCustomObject({
    group: g,
    version: v,
    namespace: NS,
    plural,
    name: 'dj',
    body: { ...s1, spec: { nfe: 2 }, status: { phase: 'Hacked' } },
  })) as KObj;
  assert.equal(replaced.metadata.generation, 2);
  assert.equal(replaced.status.phase, 'Running', 'main-resource write keeps the stored status');

  const s2 = (await custom.replaceNamespacedCustomObjectStatus({
    group: g,
    version: v,
    namespace: NS,
    plural,
    name: 'dj',
    body: { ...replaced, status: { phase: 'Succeeded', observedGeneration: 2 } },
  })) as KObj;
  assert.equal(s2.metadata.generation, 2);
  assert.equal(s2.status.phase, 'Succeeded');
  const conflict = await apiError(
    custom.replaceNamespacedCustomObjectStatus({
      group: g,
      version: v,
      namespace: NS,
      plural,
      name: 'dj',
      body: replaced,
    }),
  );
  assert.equal(conflict.code, 409);
  // Custom resources refuse an update without metadata.resourceVersion.
  const unconditional = await apiError(
    custom.replaceNamespacedCustomObject({
      group: g,
      version: v,
      namespace: NS,
      plural,
      name: 'dj',
      body: { metadata: { name: 'dj' }, spec: {} },
    }),
  );
  assert.equal(unconditional.code, 422);
  const listed = (await custom.listNamespacedCustomObject({ group: g, version: v, namespace: NS, plural })) as KObj;
  assert.equal(listed.items[0].kind, 'DistillJob');
  assert.equal(srv.count('patch/status', `${g}/${plural}`), 1);
});

test('delete: ownerReferences are garbage-collected; finalizers hold the object until removed', async () => {
  const owner = await batch.createNamespacedJob({ namespace: NS, body: job('owner') });
  const ref = { apiVersion: 'batch/v1', kind: 'Job', name: 'owner', uid: owner.metadata!.uid!, controller: true };
  await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'owned-pod', ownerReferences: [ref] },
      spec: { containers: [{ name: 'c', image: 'i' }] },
    },
  });
  await core.createNamespacedConfigMap({
    namespace: NS,
    body: { metadata: { name: 'owned-cm', ownerReferences: [ref], finalizers: ['distill/keep'] }, data: { a: '1' } },
  });
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'unowned-cm' }, data: {} } });

  const st = await batch.deleteNamespacedJob({ namespace: NS, name: 'owner', propagationPolicy: 'Background' });
  assert.equal(st.status, 'Success');
  assert.equal(srv.getObject({ group: 'batch', plural: 'jobs', namespace: NS, name: 'owner' }), undefined);
  assert.equal(srv.getObject({ plural: 'pods', namespace: NS, name: 'owned-pod' }), undefined);
  assert.ok(srv.getObject({ plural: 'configmaps', namespace: NS, name: 'unowned-cm' }));

  const held = await core.readNamespacedConfigMap({ namespace: NS, name: 'owned-cm' });
  assert.ok(held.metadata?.deletionTimestamp instanceof Date, 'finalizer keeps the child, marked for deletion');
  // The server answers the object; the typed client deserializes it as a V1Status, losing its fields.
  const again = await core.deleteNamespacedConfigMap({ namespace: NS, name: 'owned-cm' });
  assert.equal(again.status, undefined);
  assert.equal(srv.requests.at(-1)!.verb, 'delete');
  assert.ok(srv.getObject({ plural: 'configmaps', namespace: NS, name: 'owned-cm' })?.metadata.deletionTimestamp);
  await core.patchNamespacedConfigMap(
    { namespace: NS, name: 'owned-cm', body: { metadata: { finalizers: null } } },
    mergeOpts,
  );
  assert.equal((await apiError(core.readNamespacedConfigMap({ namespace: NS, name: 'owned-cm' }))).code, 404);

  // Orphan propagation strips the ownerReference instead of deleting the child.
  const o2 = await batch.createNamespacedJob({ namespace: NS, body: job('owner2') });
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'kept', ownerReferences: [{ ...ref, name: 'owner2', uid: o2.metadata!.uid! }] } },
  });
  await batch.deleteNamespacedJob({ namespace: NS, name: 'owner2', propagationPolicy: 'Orphan' });
  assert.deepEqual((await core.readNamespacedSecret({ namespace: NS, name: 'kept' })).metadata?.ownerReferences, []);
});

test('informer sees add/update/delete; after a compacted resourceVersion (410) it relists and recovers', async () => {
  const ns = 'inf';
  const path = `/apis/batch/v1/namespaces/${ns}/jobs`;
  let listedRv = '';
  const inf = makeInformer(kc, path, async () => {
    const l = await batch.listNamespacedJob({ namespace: ns });
    listedRv = l.metadata!.resourceVersion!;
    return l;
  });
  const events: string[] = [];
  const errors: unknown[] = [];
  inf.on('add', (o) => events.push(`add ${o.metadata!.name}`));
  inf.on('update', (o) => events.push(`update ${o.metadata!.name}`));
  inf.on('delete', (o) => events.push(`delete ${o.metadata!.name}`));
  let lastSeenRv = '';
  inf.on('change', (o) => {
    lastSeenRv = o.metadata!.resourceVersion!;
  });
  inf.on('error', (e) => errors.push(e));
  await batch.createNamespacedJob({ namespace: ns, body: job('pre') });
  await inf.start();
  assert.deepEqual(events, ['add pre']);
  const firstWatch = srv.requests.at(-1)!;
  assert.equal(firstWatch.verb, 'watch');
  // What 1.4 sends: watch=true&resourceVersion=<list RV>; no timeoutSeconds, no allowWatchBookmarks.
  assert.deepEqual(firstWatch.query, { watch: 'true', resourceVersion: listedRv });

  await batch.createNamespacedJob({ namespace: ns, body: job('live') });
  srv.setStatus({ group: 'batch', plural: 'jobs', namespace: ns, name: 'live' }, { active: 1 });
  await batch.deleteNamespacedJob({ namespace: ns, name: 'pre' });
  await waitFor(() => events.length === 4, 'watch events');
  assert.deepEqual(events.slice(1), ['add live', 'update live', 'delete pre']);

  // Force 410: history is compacted past the informer's resourceVersion while its watch is down.
  srv.compact();
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'bump' } } });
  srv.compact();
  const mark = srv.requests.length;
  srv.closeWatches(); // the informer reconnects from its last resourceVersion, which is now too old
  await waitFor(() => srv.openWatches === 1 && srv.requests.length >= mark + 3, 'relist after 410');
  const seq = srv.requests.slice(mark).map((r) => `${r.verb} ${r.query.resourceVersion ?? ''}`);
  // 1.4: ERROR event (410) clears its resourceVersion, the stream ends, doneHandler relists and rewatches.
  assert.deepEqual(seq, [`watch ${lastSeenRv}`, 'list ', `watch ${listedRv}`]);
  await batch.createNamespacedJob({ namespace: ns, body: job('after') });
  await waitFor(() => events.includes('add after'), 'event after recovery');
  assert.deepEqual(errors, [], '410 goes through the relist path, not the error callbacks');
  assert.deepEqual(
    inf
      .list(ns)
      .map((o) => o.metadata!.name)
      .sort(),
    ['after', 'live'],
  );

  // A non-410 failure (here the watch answers HTTP 500) stops the informer: error callback, no retry.
  srv.failNext('watch', 'batch/jobs', 500);
  srv.closeWatches();
  await waitFor(() => errors.length === 1, 'error callback');
  assert.equal((errors[0] as { statusCode?: number }).statusCode, 500);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(srv.openWatches, 0, 'client-node 1.4 does not restart after a non-410 error');
  await inf.start(); // the caller must restart it (supervision)
  await batch.deleteNamespacedJob({ namespace: ns, name: 'after' });
  await waitFor(() => events.includes('delete after'), 'event after restart');
  await inf.stop();
});

test('raw Watch from a compacted resourceVersion gets an ERROR event with a 410 Expired Status', async () => {
  const old = srv.compact() - 1;
  const got: Array<[string, Json]> = [];
  let doneErr: unknown = 'not called';
  await new Watch(kc).watch(
    `/api/v1/namespaces/${NS}/configmaps`,
    { resourceVersion: String(old) },
    (type, obj) => got.push([type, obj]),
    (e) => {
      doneErr = e;
    },
  );
  await waitFor(() => doneErr !== 'not called', 'watch done');
  assert.equal(doneErr, null, 'the stream ends cleanly after the ERROR event');
  assert.equal(got.length, 1);
  assert.equal(got[0][0], 'ERROR');
  assert.equal(got[0][1].code, 410);
  assert.equal(got[0][1].reason, 'Expired');
});

test('Lease create/update conflicts (leader election basis)', async () => {
  const now = new Date();
  const lease = await coord.createNamespacedLease({
    namespace: NS,
    body: {
      metadata: { name: 'distill-operator' },
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: now, renewTime: now },
    },
  });
  assert.equal(
    (
      await apiError(
        coord.createNamespacedLease({
          namespace: NS,
          body: { metadata: { name: 'distill-operator' }, spec: { holderIdentity: 'b' } },
        }),
      )
    ).code,
    409,
  );
  // Both candidates read the same version; only the first write wins.
  const seenByA = await coord.readNamespacedLease({ namespace: NS, name: 'distill-operator' });
  const seenByB = await coord.readNamespacedLease({ namespace: NS, name: 'distill-operator' });
  const renewed = await coord.replaceNamespacedLease({
    namespace: NS,
    name: 'distill-operator',
    body: { ...seenByA, spec: { ...seenByA.spec, renewTime: new Date(now.getTime() + 1000) } },
  });
  assert.equal(renewed.spec?.holderIdentity, 'a');
  // MicroTime is not a model class in 1.4: sent as Date.toISOString(), returned as a plain string.
  assert.equal(typeof renewed.spec?.renewTime, 'string');
  assert.equal(new Date(renewed.spec!.renewTime as unknown as string).getTime(), now.getTime() + 1000);
  const steal = await apiError(
    coord.replaceNamespacedLease({
      namespace: NS,
      name: 'distill-operator',
      body: { ...seenByB, spec: { ...seenByB.spec, holderIdentity: 'b' } },
    }),
  );
  assert.equal(steal.code, 409);
  assert.equal(
    (await coord.readNamespacedLease({ namespace: NS, name: 'distill-operator' })).spec?.holderIdentity,
    'a',
  );
  assert.notEqual(renewed.metadata?.resourceVersion, lease.metadata?.resourceVersion);
});

test('auth: a wrong token is a 401', async () => {
  const bad = new KubeConfig();
  bad.loadFromOptions({
    clusters: [{ name: 'f', server: srv.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'wrong' }],
    contexts: [{ name: 'f', cluster: 'f', user: 'u' }],
    currentContext: 'f',
  });
  assert.equal((await apiError(bad.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS }))).code, 401);
});

test('patch helpers and selector parser (pure)', () => {
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { b: { c: null, e: 4 }, l: [3] }), {
    a: 1,
    b: { d: 3, e: 4 },
    l: [3],
  });
  assert.deepEqual(
    jsonPatch({ a: [1, 2], b: 1 }, [
      { op: 'add', path: '/a/-', value: 3 },
      { op: 'remove', path: '/b' },
      { op: 'copy', from: '/a/0', path: '/c' },
    ]),
    { a: [1, 2, 3], c: 1 },
  );
  const sel = parseLabelSelector('app in (a, b),!legacy,tier!=cpu');
  assert.equal(sel({ metadata: { labels: { app: 'b' } } }), true);
  assert.equal(sel({ metadata: { labels: { app: 'b', tier: 'cpu' } } }), false);
  assert.equal(sel({ metadata: { labels: { app: 'b', legacy: '' } } }), false);
  assert.equal(sel({ metadata: { labels: { app: 'c' } } }), false);
});

test('watch with a label selector: objects entering/leaving the selector arrive as ADDED/DELETED', async () => {
  const ns = 'sel';
  const rv = (await core.listNamespacedConfigMap({ namespace: ns })).metadata!.resourceVersion!;
  const got: string[] = [];
  const ctl = await new Watch(kc).watch(
    `/api/v1/namespaces/${ns}/configmaps`,
    { resourceVersion: rv, labelSelector: 'role=shard' },
    (type, obj) => got.push(`${type} ${obj.metadata.name}`),
    () => {},
  );
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'x', labels: { role: 'other' } } } });
  await core.patchNamespacedConfigMap(
    { namespace: ns, name: 'x', body: { metadata: { labels: { role: 'shard' } } } },
    mergeOpts,
  );
  await core.patchNamespacedConfigMap({ namespace: ns, name: 'x', body: { data: { k: 'v' } } }, mergeOpts);
  await core.patchNamespacedConfigMap(
    { namespace: ns, name: 'x', body: { metadata: { labels: { role: 'gone' } } } },
    mergeOpts,
  );
  await waitFor(() => got.length === 3, 'selector events');
  assert.deepEqual(got, ['ADDED x', 'MODIFIED x', 'DELETED x']);
  ctl.abort();
});
