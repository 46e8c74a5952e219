/**
 * In-memory Kubernetes API server for tests: speaks enough of the REST and watch protocol for the
 * REAL `@kubernetes/client-node@1.4.0` (typed APIs, CustomObjectsApi, Watch, makeInformer) to run
 * against it on 127.0.0.1 over plain HTTP. There is no real API server to install here (DESIGN.md).
 *
 * Semantics follow the upstream apiserver (kubernetes/kubernetes staging/src/k8s.io/apiserver,
 * generic registry + handlers) where tests can observe them: a global resourceVersion counter,
 * generation bumped on non-metadata/non-status changes, 409 Conflict on stale resourceVersion,
 * status subresource isolation, finalizers + deletionTimestamp, ownerReference garbage collection,
 * watch replay from a resourceVersion and 410 Expired (as an ERROR event) once history is compacted.
 * Schema validation only where a test registers a custom resource with a `validate` function (a CRD's
 * structural schema: test/k8s/structural-schema.ts). Not implemented: admission, built-in validation,
 * defaulting, version conversion, managedFields, real server-side apply (treated as a JSON merge patch),
 * strategic-merge list directives (merge patch), field selectors beyond dotted-path equality, watch
 * bookmarks, protobuf/CBOR, authz.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import type { Json, JsonObject } from '../json.js';

/** A JSON object as stored and served (a Kubernetes object or a Status). */
export type KObj = JsonObject;

/** One resource type served by the fake: group '' is the core (`/api/v1`) group. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Writes to the main resource keep the old status; `/status` writes change only status. */
  statusSubresource: boolean;
  /** DELETE answers the deleted object (pods, custom resources) instead of a Success Status. */
  returnDeletedObject?: boolean;
  /** Custom resources need metadata.resourceVersion on PUT (AllowUnconditionalUpdate=false). */
  custom?: boolean;
  /**
   * Schema validation of creates and updates (not of `/status` writes), as a CRD's openAPIV3Schema gives
   * the API server: the problems of the whole object, empty when valid; any problem answers 422 Invalid.
   */
  validate?: (obj: KObj) => string[];
}

/** Where a test names one object: `plural` plus `group` ('' = core) and, if namespaced, namespace. */
export interface ObjectRef {
  group?: string;
  plural: string;
  namespace?: string;
  name: string;
}

/** One recorded HTTP request (for asserting what the client sent). */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  authorization?: string;
  /** create|get|list|watch|update|patch|delete|discovery, '/status' appended for the subresource. */
  verb: string;
  /** `group/plural` ('' group for core), '' when no resource matched. */
  resource: string;
}

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  res: string;
  obj: KObj;
  prev?: KObj;
}
interface Watcher {
  res: string;
  namespace?: string;
  sel: Selector;
  res_: http.ServerResponse;
}
type Selector = (o: KObj) => boolean;
interface Fault {
  verb: string;
  resource: string;
  code: number;
  remaining: number;
}

const BUILTINS: ResourceType[] = [
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    kind: 'Pod',
    namespaced: true,
    statusSubresource: true,
    returnDeletedObject: true,
  },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true, statusSubresource: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true, statusSubresource: false },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true, statusSubresource: false },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true, statusSubresource: false },
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, statusSubresource: true },
  { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true, statusSubresource: true },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    kind: 'Deployment',
    namespaced: true,
    statusSubresource: true,
  },
  {
    group: 'autoscaling',
    version: 'v2',
    plural: 'horizontalpodautoscalers',
    kind: 'HorizontalPodAutoscaler',
    namespaced: true,
    statusSubresource: true,
  },
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    kind: 'Lease',
    namespaced: true,
    statusSubresource: false,
  },
];

/** Thrown inside handlers; rendered as a metav1 Status. */
class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: KObj,
  ) {
    super(message);
  }
}

/** A metav1 Status failure body, as the apiserver writes it. */
export function failureStatus(code: number, reason: string, message: string, details?: KObj): KObj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code };
}

const clone = <T>(v: T): T => structuredClone(v);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const resKey = (t: { group?: string; plural: string }) => `${t.group ?? ''}/${t.plural}`;
const objKey = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;
const apiVersionOf = (t: ResourceType) => (t.group ? `${t.group}/${t.version}` : t.version);
const isObj = (v: unknown): v is KObj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch; null deletes a key, arrays replace. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: KObj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch (add/remove/replace/move/copy/test); throws StatusError 422 on failure. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new StatusError(400, 'BadRequest', 'json patch body must be an array of operations');
  let root: Json = clone(doc);
  const parse = (p: string) =>
    p === ''
      ? []
      : p
          .split('/')
          .slice(1)
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const fail = (m: string): never => {
    throw new StatusError(422, 'Invalid', `json patch failed: ${m}`);
  };
  const parentOf = (path: string): [Json, string] => {
    const segs = parse(path);
    if (segs.length === 0) fail(`cannot address the root with ${path}`);
    let cur = root;
    for (const s of segs.slice(0, -1)) {
      cur = cur?.[Array.isArray(cur) ? Number(s) : s];
      if (cur === undefined) fail(`missing path ${path}`);
    }
    return [cur, segs[segs.length - 1]];
  };
  const get = (path: string) =>
    parse(path).reduce((c: Json, s) => {
      const n = c?.[Array.isArray(c) ? Number(s) : s];
      if (n === undefined) fail(`missing path ${path}`);
      return n;
    }, root);
  const remove = (path: string) => {
    const [p, k] = parentOf(path);
    if (Array.isArray(p)) {
      if (Number(k) >= p.length) fail(`missing index ${path}`);
      return p.splice(Number(k), 1)[0];
    }
    if (!(k in p)) fail(`missing key ${path}`);
    const v = p[k];
    delete p[k];
    return v;
  };
  const add = (path: string, value: unknown) => {
    if (path === '') {
      root = clone(value);
      return;
    }
    const [p, k] = parentOf(path);
    if (Array.isArray(p)) p.splice(k === '-' ? p.length : Number(k), 0, clone(value));
    else if (isObj(p)) p[k] = clone(value);
    else fail(`parent of ${path} is not a container`);
  };
  for (const op of ops as KObj[]) {
    switch (op.op) {
      case 'add':
        add(op.path, op.value);
        break;
      case 'remove':
        remove(op.path);
        break;
      case 'replace':
        remove(op.path);
        add(op.path, op.value);
        break;
      case 'move':
        add(op.path, remove(op.from));
        break;
      case 'copy':
        add(op.path, get(op.from));
        break;
      case 'test':
        if (JSON.stringify(get(op.path)) !== JSON.stringify(op.value)) fail(`test of ${op.path} did not match`);
        break;
      default:
        fail(`unknown op ${String(op.op)}`);
    }
  }
  return root;
}

/** Parse a label selector (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`). */
export function parseLabelSelector(s: string | undefined): Selector {
  if (!s) return () => true;
  const terms = s
    .split(/,(?![^(]*\))/)
    .map((t) => t.trim())
    .filter(Boolean);
  const preds = terms.map((t): Selector => {
    let m: RegExpMatchArray | null;
    const L = (o: KObj): Record<string, string> => o.metadata?.labels ?? {};
    if ((m = t.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, k, op, list] = m;
      const vals = list.split(',').map((v) => v.trim());
      return op === 'in' ? (o) => k in L(o) && vals.includes(L(o)[k]) : (o) => !(k in L(o)) || !vals.includes(L(o)[k]);
    }
    if ((m = t.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/))) {
      const [, k, op, v] = m;
      return op === '!=' ? (o) => L(o)[k] !== v : (o) => L(o)[k] === v;
    }
    if ((m = t.match(/^!([\w./-]+)$/))) {
      const k = m[1];
      return (o) => !(k in L(o));
    }
    if ((m = t.match(/^([\w./-]+)$/))) {
      const k = m[1];
      return (o) => k in L(o);
    }
    throw new StatusError(400, 'BadRequest', `unable to parse requirement: ${t}`);
  });
  return (o) => preds.every((p) => p(o));
}

/** Parse a field selector: dotted-path `=`, `==`, `!=` terms (e.g. `metadata.name=x`). */
export function parseFieldSelector(s: string | undefined): Selector {
  if (!s) return () => true;
  const preds = s.split(',').map((t): Selector => {
    const m = t.trim().match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new StatusError(400, 'BadRequest', `invalid field selector: ${t}`);
    const [, path, op, v] = m;
    const get = (o: KObj) => String(path.split('.').reduce((c: Json, k) => c?.[k], o) ?? '');
    return op === '!=' ? (o) => get(o) !== v : (o) => get(o) === v;
  });
  return (o) => preds.every((p) => p(o));
}

/**
 * The fake API server. Start with `await FakeApiServer.start()`, point a KubeConfig at `url`
 * (cluster skipTLSVerify: true, which client-node 1.4 requires for http://), `await close()` at the end.
 */
export class FakeApiServer {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url = '';
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  private readonly types = new Map<string, ResourceType>();
  private readonly store = new Map<string, Map<string, KObj>>();
  private history: WatchEvent[] = [];
  /** Watches from a resourceVersion below this get 410 Expired. */
  private compactedRv = 0;
  private rv = 1;
  private readonly watchers = new Set<Watcher>();
  private faults: Fault[] = [];
  private readonly server: http.Server;

  private constructor(private readonly opts: { token?: string; historyLimit?: number }) {
    for (const t of BUILTINS) this.addType(t);
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Listen on 127.0.0.1 (random port). `token`: require `Authorization: Bearer <token>` (else 401). */
  static async start(opts: { token?: string; historyLimit?: number } = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await new Promise<void>((ok) => s.server.listen(0, '127.0.0.1', ok));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /**
   * Test hook: serve a custom resource (as a CRD would); status subresource on by default; `validate`
   * checks every create and update of the object (not its status), as the CRD's schema would.
   */
  registerCustomResource(t: {
    group: string;
    version: string;
    plural: string;
    kind: string;
    namespaced?: boolean;
    statusSubresource?: boolean;
    validate?: (obj: KObj) => string[];
  }): void {
    this.addType({ namespaced: true, statusSubresource: true, ...t, returnDeletedObject: true, custom: true });
  }

  /** Test hook: the stored object (a copy), or undefined. */
  getObject(ref: ObjectRef): KObj | undefined {
    const o = this.store.get(resKey(ref))?.get(objKey(ref.namespace, ref.name));
    return o && clone(o);
  }

  /** Test hook: all stored objects of a resource (copies), optionally in one namespace. */
  listObjects(ref: { group?: string; plural: string; namespace?: string }): KObj[] {
    return [...(this.store.get(resKey(ref))?.values() ?? [])]
      .filter((o) => ref.namespace === undefined || o.metadata.namespace === ref.namespace)
      .map(clone);
  }

  /**
   * Test hook: replace an object's status as a controller (kubelet, job controller) would: new RV,
   * MODIFIED event, generation unchanged. Throws if absent.
   */
  setStatus(ref: ObjectRef, status: KObj): KObj {
    const t = this.typeOf(ref);
    const cur = this.mustGet(t, ref.namespace, ref.name);
    return clone(this.write(t, { ...clone(cur), status: clone(status) }, cur));
  }

  /**
   * Test hook: drop all watch history; watches from any earlier resourceVersion then get 410.
   * Returns the current resourceVersion.
   */
  compact(): number {
    this.history = [];
    this.compactedRv = this.rv;
    return this.rv;
  }

  /** Test hook: end every open watch stream (as an apiserver does on timeout/restart); clients see a clean close. */
  closeWatches(): void {
    for (const w of this.watchers) w.res_.end();
    this.watchers.clear();
  }

  /** Number of open watch streams. */
  get openWatches(): number {
    return this.watchers.size;
  }

  /**
   * Test hook: the next `count` requests with this verb (e.g. 'watch', 'list', 'update/status') on
   * `resource` ('group/plural') fail with `code`.
   */
  failNext(verb: string, resource: string, code: number, count = 1): void {
    this.faults.push({ verb, resource, code, remaining: count });
  }

  /**
   * Test hook: how many requests matched `verb` (e.g. 'list', 'patch/status') and resource
   * ('group/plural', '' group for core).
   */
  count(verb: string, resource: string): number {
    return this.requests.filter((r) => r.verb === verb && r.resource === resource).length;
  }

  /** Stop listening and drop all connections (open watches end). */
  async close(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  // ---- internals ----

  private addType(t: ResourceType): void {
    this.types.set(resKey(t), t);
    if (!this.store.has(resKey(t))) this.store.set(resKey(t), new Map());
  }

  private typeOf(ref: { group?: string; plural: string }): ResourceType {
    const t = this.types.get(resKey(ref));
    if (!t) throw new Error(`fake api server: unknown resource ${resKey(ref)}; call registerCustomResource first`);
    return t;
  }

  private mustGet(t: ResourceType, ns: string | undefined, name: string): KObj {
    const o = this.store.get(resKey(t))!.get(objKey(ns, name));
    if (!o)
      throw new StatusError(404, 'NotFound', `${t.plural}${t.group ? '.' + t.group : ''} "${name}" not found`, {
        name,
        group: t.group,
        kind: t.plural,
      });
    return o;
  }

  /** Persist `obj` (already merged), bump RV and generation, record the watch event, GC when it disappears. */
  private write(t: ResourceType, obj: KObj, prev: KObj | undefined): KObj {
    const md = obj.metadata;
    md.resourceVersion = String(++this.rv);
    if (prev) {
      const strip = (o: KObj) => {
        const { metadata: _metadata, status, ...rest } = o;
        return JSON.stringify(t.statusSubresource ? rest : { ...rest, status });
      };
      md.generation = (prev.metadata.generation ?? 1) + (strip(prev) !== strip(obj) ? 1 : 0);
    }
    const key = objKey(md.namespace, md.name);
    const gone = md.deletionTimestamp && !md.finalizers?.length;
    if (gone) this.store.get(resKey(t))!.delete(key);
    else this.store.get(resKey(t))!.set(key, obj);
    this.emit(t, gone ? 'DELETED' : prev ? 'MODIFIED' : 'ADDED', obj, prev);
    if (gone) this.collectGarbage(md.uid);
    return obj;
  }

  private emit(t: ResourceType, type: WatchEvent['type'], obj: KObj, prev?: KObj): void {
    const ev: WatchEvent = { rv: this.rv, type, res: resKey(t), obj: clone(obj), prev: prev && clone(prev) };
    this.history.push(ev);
    const limit = this.opts.historyLimit ?? 10_000;
    if (this.history.length > limit) this.compactedRv = this.history.splice(0, this.history.length - limit).at(-1)!.rv;
    for (const w of this.watchers) this.sendEvent(w, ev);
  }

  /** Send one event to a watcher, translating selector transitions into ADDED/DELETED as the apiserver does. */
  private sendEvent(w: Watcher, ev: WatchEvent): void {
    if (w.res !== ev.res) return;
    if (w.namespace !== undefined && ev.obj.metadata.namespace !== w.namespace) return;
    const after = w.sel(ev.obj);
    const before = ev.prev ? w.sel(ev.prev) : false;
    let type: string;
    if (ev.type === 'MODIFIED') {
      if (!after && !before) return;
      type = after && before ? 'MODIFIED' : after ? 'ADDED' : 'DELETED';
    } else {
      if (!after && !before) return;
      type = ev.type;
    }
    w.res_.write(JSON.stringify({ type, object: this.withType(ev.obj, ev.res) }) + '\n');
  }

  private withType(o: KObj, res: string): KObj {
    const t = this.types.get(res)!;
    return { apiVersion: apiVersionOf(t), kind: t.kind, ...o };
  }

  /** Background-style GC: delete (or finalize-mark) every object whose ownerReferences name `uid`. */
  private collectGarbage(uid: string): void {
    for (const [rk, objs] of this.store) {
      const t = this.types.get(rk)!;
      for (const o of [...objs.values()]) {
        if (o.metadata.ownerReferences?.some((r: KObj) => r.uid === uid)) this.deleteObject(t, o);
      }
    }
  }

  private deleteObject(t: ResourceType, cur: KObj): KObj {
    if (cur.metadata.finalizers?.length) {
      if (cur.metadata.deletionTimestamp) return cur;
      const next = clone(cur);
      next.metadata.deletionTimestamp = now();
      next.metadata.deletionGracePeriodSeconds = 0;
      return this.write(t, next, cur);
    }
    const next = clone(cur);
    next.metadata.deletionTimestamp ??= now();
    return this.write(t, next, cur);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(u.searchParams);
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: u.pathname,
      query,
      contentType: req.headers['content-type'],
      authorization: req.headers.authorization,
      verb: '',
      resource: '',
    };
    this.requests.push(rec);
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const raw = Buffer.concat(chunks).toString('utf8');
      if (this.opts.token && req.headers.authorization !== `Bearer ${this.opts.token}`)
        throw new StatusError(401, 'Unauthorized', 'Unauthorized');
      await this.route(req, res, u, query, raw, rec);
    } catch (e) {
      const err =
        e instanceof StatusError ? e : new StatusError(500, 'InternalError', String((e as Error)?.stack ?? e));
      if (!res.headersSent) this.json(res, err.code, failureStatus(err.code, err.reason, err.message, err.details));
      else res.end();
    }
  }

  private json(res: http.ServerResponse, code: number, body: KObj): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    u: URL,
    q: Record<string, string>,
    raw: string,
    rec: RecordedRequest,
  ): void {
    let segs = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    if (segs[0] === 'api' && segs[1] === 'v1') {
      group = '';
      segs = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      group = segs[1];
      segs = segs.slice(3);
    } else throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    const version = group ? u.pathname.split('/')[3] : 'v1';
    let legacyWatch = false;
    if (segs[0] === 'watch') {
      legacyWatch = true;
      segs = segs.slice(1);
    }
    if (segs.length === 0) {
      rec.verb = 'discovery';
      return this.json(res, 200, this.discovery(group, version));
    }
    let namespace: string | undefined;
    if (segs[0] === 'namespaces' && segs.length >= 3 && !['status', 'finalize'].includes(segs[2])) {
      namespace = segs[1];
      segs = segs.slice(2);
    }
    const [plural, name, sub] = segs;
    const t = this.types.get(`${group}/${plural}`);
    if (!t || t.version !== version || (sub !== undefined && sub !== 'status') || segs.length > 3)
      throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    rec.resource = resKey(t);
    const m = req.method ?? 'GET';
    const watch = legacyWatch || q.watch === 'true' || q.watch === '1';
    rec.verb =
      m === 'GET'
        ? name
          ? 'get'
          : watch
            ? 'watch'
            : 'list'
        : m === 'POST'
          ? 'create'
          : m === 'PUT'
            ? 'update'
            : m === 'PATCH'
              ? 'patch'
              : m === 'DELETE'
                ? 'delete'
                : m.toLowerCase();
    if (sub) rec.verb += '/status';
    const fault = this.faults.find((f) => f.verb === rec.verb && f.resource === rec.resource && f.remaining > 0);
    if (fault) {
      fault.remaining--;
      throw new StatusError(
        fault.code,
        fault.code === 429 ? 'TooManyRequests' : 'InternalError',
        `injected failure ${fault.code}`,
      );
    }
    if (t.namespaced && name !== undefined && namespace === undefined)
      throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    const body = (): KObj => {
      try {
        return JSON.parse(raw || 'null');
      } catch {
        throw new StatusError(400, 'BadRequest', 'request body is not valid JSON');
      }
    };
    switch (rec.verb.split('/')[0]) {
      case 'watch':
        return this.startWatch(t, namespace, q, res);
      case 'list':
        return this.json(res, 200, this.list(t, namespace, q));
      case 'get':
        return this.json(res, 200, this.withType(clone(this.mustGet(t, namespace, name)), resKey(t)));
      case 'create':
        return this.json(res, 201, this.withType(clone(this.create(t, namespace, body(), q)), resKey(t)));
      case 'update':
        return this.json(res, 200, this.withType(clone(this.update(t, namespace, name, body(), !!sub)), resKey(t)));
      case 'patch':
        return this.json(
          res,
          200,
          this.withType(
            clone(this.patch(t, namespace, name, raw, req.headers['content-type'] ?? '', !!sub, q)),
            resKey(t),
          ),
        );
      case 'delete':
        return this.remove(t, namespace, name, raw ? body() : {}, q, res);
      default:
        throw new StatusError(405, 'MethodNotAllowed', `method ${m} not allowed`);
    }
  }

  private discovery(group: string, version: string): KObj {
    const resources = [...this.types.values()]
      .filter((t) => t.group === group && t.version === version)
      .flatMap((t) => {
        const r = {
          name: t.plural,
          singularName: t.kind.toLowerCase(),
          namespaced: t.namespaced,
          kind: t.kind,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        };
        return t.statusSubresource
          ? [
              r,
              {
                name: `${t.plural}/status`,
                singularName: '',
                namespaced: t.namespaced,
                kind: t.kind,
                verbs: ['get', 'patch', 'update'],
              },
            ]
          : [r];
      });
    if (resources.length === 0)
      throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources,
    };
  }

  private list(t: ResourceType, ns: string | undefined, q: Record<string, string>): KObj {
    const ls = parseLabelSelector(q.labelSelector),
      fs = parseFieldSelector(q.fieldSelector);
    const all = [...this.store.get(resKey(t))!.values()]
      .filter((o) => (ns === undefined || o.metadata.namespace === ns) && ls(o) && fs(o))
      .sort((a, b) =>
        objKey(a.metadata.namespace, a.metadata.name).localeCompare(objKey(b.metadata.namespace, b.metadata.name)),
      );
    const start = q.continue ? Number(Buffer.from(q.continue, 'base64url').toString()) : 0;
    const limit = q.limit ? Number(q.limit) : Infinity;
    const page = all.slice(start, start + limit);
    const more = start + page.length < all.length;
    // Typed lists of built-in kinds omit each item's apiVersion/kind; custom resource lists keep them.
    const items = page.map((o) => (t.custom ? this.withType(clone(o), resKey(t)) : clone(o)));
    return {
      kind: `${t.kind}List`,
      apiVersion: apiVersionOf(t),
      metadata: {
        resourceVersion: String(this.rv),
        ...(more ? { continue: Buffer.from(String(start + page.length)).toString('base64url') } : {}),
      },
      items,
    };
  }

  private create(t: ResourceType, ns: string | undefined, o: KObj, q: Record<string, string>): KObj {
    if (!isObj(o) || !isObj(o.metadata)) throw new StatusError(400, 'BadRequest', 'object has no metadata');
    const md = o.metadata;
    if (t.namespaced) {
      if (md.namespace && md.namespace !== ns)
        throw new StatusError(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      md.namespace = ns;
    } else delete md.namespace;
    if (!md.name && md.generateName) md.name = md.generateName + randomUUID().replace(/-/g, '').slice(0, 5);
    if (!md.name)
      throw new StatusError(
        422,
        'Invalid',
        `${t.kind} is invalid: metadata.name: Required value: name or generateName is required`,
      );
    if (this.store.get(resKey(t))!.has(objKey(md.namespace, md.name))) {
      throw new StatusError(
        409,
        'AlreadyExists',
        `${t.plural}${t.group ? '.' + t.group : ''} "${md.name}" already exists`,
        { name: md.name, group: t.group, kind: t.plural },
      );
    }
    this.validateObject(t, o);
    if (q.dryRun) return o;
    Object.assign(md, { uid: randomUUID(), creationTimestamp: now(), generation: 1 });
    delete md.deletionTimestamp;
    delete md.resourceVersion;
    if (t.statusSubresource) delete o.status;
    delete o.apiVersion;
    delete o.kind;
    return this.write(t, o, undefined);
  }

  /** Merge a client-supplied whole object onto `cur` per the apiserver's update strategy. */
  private commit(t: ResourceType, cur: KObj, next: KObj, statusOnly: boolean): KObj {
    if (!isObj(next) || !isObj(next.metadata)) throw new StatusError(400, 'BadRequest', 'object has no metadata');
    const rv = next.metadata.resourceVersion;
    if (rv && rv !== cur.metadata.resourceVersion) {
      throw new StatusError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${t.plural}${t.group ? '.' + t.group : ''} "${cur.metadata.name}": ` +
          `the object has been modified; please apply your changes to the latest version and try again`,
        { name: cur.metadata.name, group: t.group, kind: t.plural },
      );
    }
    let out: KObj;
    if (statusOnly) out = { ...clone(cur), status: clone(next.status) };
    else {
      out = clone(next);
      delete out.apiVersion;
      delete out.kind;
      if (t.statusSubresource) {
        if (cur.status === undefined) delete out.status;
        else out.status = clone(cur.status);
      }
      // System-owned metadata is immutable through the API.
      for (const k of [
        'uid',
        'creationTimestamp',
        'deletionTimestamp',
        'deletionGracePeriodSeconds',
        'namespace',
        'name',
        'generation',
      ]) {
        if (cur.metadata[k] === undefined) delete out.metadata[k];
        else out.metadata[k] = cur.metadata[k];
      }
      this.validateObject(t, out);
    }
    return this.write(t, out, cur);
  }

  /** 422 Invalid, as the API server answers an object its CRD's schema refuses. */
  private validateObject(t: ResourceType, o: KObj): void {
    const problems = t.validate?.(this.withType(clone(o), resKey(t))) ?? [];
    if (problems.length === 0) return;
    throw new StatusError(
      422,
      'Invalid',
      `${t.kind}.${t.group} "${o.metadata?.name}" is invalid: ${problems.join('; ')}`,
      { name: o.metadata?.name, group: t.group, kind: t.kind, causes: problems.map((message) => ({ message })) },
    );
  }

  private update(t: ResourceType, ns: string | undefined, name: string, o: KObj, statusOnly: boolean): KObj {
    const cur = this.mustGet(t, ns, name);
    if (o?.metadata?.name !== undefined && o.metadata.name !== name)
      throw new StatusError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    if (t.custom && !o?.metadata?.resourceVersion)
      throw new StatusError(
        422,
        'Invalid',
        `${t.kind} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
      );
    return this.commit(t, cur, o, statusOnly);
  }

  private patch(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    raw: string,
    ctype: string,
    statusOnly: boolean,
    q: Record<string, string>,
  ): KObj {
    const mediaType = ctype.split(';')[0].trim();
    let p: unknown;
    try {
      p = JSON.parse(raw);
    } catch {
      throw new StatusError(
        400,
        'BadRequest',
        `patch body is not JSON (content type ${mediaType}); YAML apply bodies are not supported`,
      );
    }
    const existing = this.store.get(resKey(t))!.get(objKey(ns, name));
    if (!existing) {
      // Server-side apply creates missing objects; the other patch types answer 404.
      if (mediaType === 'application/apply-patch+yaml' && isObj(p))
        return this.create(t, ns, { ...p, metadata: { ...p.metadata, name } }, q);
      this.mustGet(t, ns, name);
    }
    const cur = existing!;
    const base = this.withType(clone(cur), resKey(t));
    let next: unknown;
    switch (mediaType) {
      case 'application/json-patch+json':
        next = jsonPatch(base, p);
        break;
      case 'application/merge-patch+json':
      case 'application/strategic-merge-patch+json':
      case 'application/apply-patch+yaml':
        next = mergePatch(base, p);
        break;
      default:
        throw new StatusError(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: ` +
            `application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml ` +
            `(got ${ctype})`,
        );
    }
    return this.commit(t, cur, next as KObj, statusOnly);
  }

  private remove(
    t: ResourceType,
    ns: string | undefined,
    name: string,
    opts: KObj,
    q: Record<string, string>,
    res: http.ServerResponse,
  ): void {
    const cur = this.mustGet(t, ns, name);
    const pre = opts?.preconditions;
    if (
      (pre?.uid && pre.uid !== cur.metadata.uid) ||
      (pre?.resourceVersion && pre.resourceVersion !== cur.metadata.resourceVersion)
    ) {
      throw new StatusError(409, 'Conflict', `Precondition failed for ${t.plural} "${name}"`);
    }
    const policy = opts?.propagationPolicy ?? q.propagationPolicy ?? 'Background';
    if (policy === 'Orphan') {
      for (const [rk, objs] of this.store)
        for (const o of [...objs.values()]) {
          const refs = o.metadata.ownerReferences as KObj[] | undefined;
          if (refs?.some((r) => r.uid === cur.metadata.uid)) {
            const next = clone(o);
            next.metadata.ownerReferences = refs.filter((r) => r.uid !== cur.metadata.uid);
            this.write(this.types.get(rk)!, next, o);
          }
        }
    } else if (policy === 'Foreground') this.collectGarbage(cur.metadata.uid);
    const out = this.deleteObject(t, cur);
    const stillThere = this.store.get(resKey(t))!.has(objKey(ns, name));
    if (stillThere || t.returnDeletedObject) return this.json(res, 200, this.withType(clone(out), resKey(t)));
    this.json(res, 200, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { name, group: t.group, kind: t.plural, uid: cur.metadata.uid },
    });
  }

  private startWatch(
    t: ResourceType,
    ns: string | undefined,
    q: Record<string, string>,
    res: http.ServerResponse,
  ): void {
    const ls = parseLabelSelector(q.labelSelector),
      fs = parseFieldSelector(q.fieldSelector);
    const w: Watcher = { res: resKey(t), namespace: ns, sel: (o) => ls(o) && fs(o), res_: res };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const from = q.resourceVersion;
    if (!from || from === '0') {
      // "Any" resourceVersion: synthetic ADDED for current state, then live events.
      for (const o of this.store.get(resKey(t))!.values()) {
        if ((ns === undefined || o.metadata.namespace === ns) && w.sel(o))
          res.write(JSON.stringify({ type: 'ADDED', object: this.withType(o, resKey(t)) }) + '\n');
      }
    } else {
      const n = Number(from);
      if (!Number.isFinite(n) || n < this.compactedRv) {
        const st = failureStatus(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
        res.end(JSON.stringify({ type: 'ERROR', object: st }) + '\n');
        return;
      }
      for (const ev of this.history) if (ev.rv > n) this.sendEvent(w, ev);
    }
    this.watchers.add(w);
    const done = () => this.watchers.delete(w);
    res.on('close', done);
    const secs = Number(q.timeoutSeconds);
    if (secs > 0)
      setTimeout(() => {
        done();
        res.end();
      }, secs * 1000).unref();
  }
}

/**
 * A real client-node KubeConfig for a FakeApiServer URL (plain http, skipTLSVerify as client-node 1.4
 * needs; `token` is sent as a Bearer token).
 */
export function kubeConfigFor(url: string, token = 't'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'tester', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
    currentContext: 'fake',
  });
  return kc;
}
