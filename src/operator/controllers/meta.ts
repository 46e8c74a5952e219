/**
 * Metadata every child carries: the controller ownerReference (cascading deletion; the owner's key for
 * the work queue), recommended labels, and the hash of what the child was built from.
 */
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { ANNOTATIONS, API_VERSION, LABELS, MANAGER } from '../api/v1alpha1/group.js';

/** A custom resource as read from the API: metadata with name, namespace, uid, generation. */
export interface Owned extends KubernetesObject { metadata?: V1ObjectMeta }

/** ownerReference of a child created by `owner` (controller: true, so GC and the queue find it). */
export function ownerRef(owner: Owned, kind: string): V1OwnerReference {
  const m = owner.metadata!;
  return { apiVersion: API_VERSION, kind, name: m.name!, uid: m.uid!, controller: true, blockOwnerDeletion: true };
}

/** Canonical JSON (sorted keys) → sha256 hex: equal inputs give equal hashes across restarts. */
export function specHash(value: unknown): string {
  const canon = (v: unknown): unknown => (Array.isArray(v) ? v.map(canon)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])])) : v);
  return createHash('sha256').update(JSON.stringify(canon(value))).digest('hex');
}

/** Metadata of a child: name, namespace, labels, owner, and the hash of its build input. */
export function childMeta(owner: Owned, ownerKind: string, name: string, labels: Record<string, string>, hash?: string): V1ObjectMeta {
  return {
    name,
    namespace: owner.metadata!.namespace,
    labels: { [LABELS.name]: 'get-distill', [LABELS.instance]: owner.metadata!.name!, [LABELS.managedBy]: MANAGER, ...labels },
    ...(hash ? { annotations: { [ANNOTATIONS.specHash]: hash } } : {}),
    ownerReferences: [ownerRef(owner, ownerKind)],
  };
}
