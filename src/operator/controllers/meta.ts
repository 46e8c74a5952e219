/**
 * Metadata every child carries: the controller ownerReference (cascading deletion; the owner's key for
 * the work queue), recommended labels, and the hash of what the child was built from.
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { ANNOTATIONS, API_VERSION, LABELS, MANAGER } from '../api/v1alpha1/group.js';

/** A custom resource as read from the API: metadata with name, namespace, uid, generation. */
export interface Owned extends KubernetesObject {
  metadata?: V1ObjectMeta;
}

/** ownerReference of a child created by `owner` (controller: true, so GC and the queue find it). */
export function ownerRef(owner: Owned, kind: string): V1OwnerReference {
  const m = owner.metadata!;
  return { apiVersion: API_VERSION, kind, name: m.name!, uid: m.uid!, controller: true, blockOwnerDeletion: true };
}

/** True when `obj` carries a controller ownerReference to `owner` (by uid): ours to change. */
export const ownedBy = (obj: Owned, owner: Owned): boolean =>
  !!obj.metadata?.ownerReferences?.some((r) => r.controller && r.uid === owner.metadata?.uid);

/** Canonical JSON (sorted keys) → sha256 hex: equal inputs give equal hashes across restarts. */
export function specHash(value: unknown): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canon)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canon(value)))
    .digest('hex');
}

/** Metadata of a child: name, namespace, labels, owner, and the hash of its build input. */
export function childMeta(
  owner: Owned,
  ownerKind: string,
  name: string,
  labels: Record<string, string>,
  hash?: string,
): V1ObjectMeta {
  return {
    name,
    namespace: owner.metadata!.namespace,
    labels: {
      [LABELS.name]: 'get-distill',
      [LABELS.instance]: owner.metadata!.name!,
      [LABELS.managedBy]: MANAGER,
      ...labels,
    },
    ...(hash ? { annotations: { [ANNOTATIONS.specHash]: hash } } : {}),
    ownerReferences: [ownerRef(owner, ownerKind)],
  };
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/**
 * A JSON merge patch (RFC 7386) turning `current` into `desired`: keys `current` has and `desired`
 * lacks become null (a plain merge would leave e.g. a removed nodeSelector behind). Undefined values
 * count as absent (client-node's typed objects carry them). Arrays and scalars are replaced.
 */
export function replaceWith(current: unknown, desired: unknown): unknown {
  if (!isObj(desired) || !isObj(current)) return desired;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(desired)) if (v !== undefined) out[k] = replaceWith(current[k], v);
  for (const [k, v] of Object.entries(current))
    if (v !== undefined && v !== null && desired[k] === undefined) out[k] = null;
  return out;
}
