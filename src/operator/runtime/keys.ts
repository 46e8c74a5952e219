/**
 * Work-queue keys, as client-go's MetaNamespaceKeyFunc: `namespace/name` for namespaced objects,
 * plain `name` for cluster-scoped ones.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

/** The queue key of an object. @throws Error when metadata.name is missing. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error('objectKey: object has no metadata.name; only stored objects have keys');
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

/** Split a key into namespace ('' when cluster-scoped) and name. @throws Error on a malformed key. */
export function splitKey(key: string): { namespace: string; name: string } {
  const parts = key.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: '', name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new Error(`splitKey: "${key}" is not a "namespace/name" or "name" key`);
}
