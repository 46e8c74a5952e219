/**
 * Exactly the API access the operator uses: the Helm chart's ClusterRole/Role must grant these rules
 * and nothing more (test/charts checks the rendered chart; the operator scenario tests check every
 * request the operator makes is covered). No Secrets: pods get S3 credentials by `secretKeyRef` and the
 * operator never reads them. Leases only in the operator's own namespace (a separate Role).
 */
import { GROUP } from './api/v1alpha1/group.js';

/** One RBAC PolicyRule (rbac.authorization.k8s.io/v1), verbs sorted. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Rules on the watched namespaces (a ClusterRole, or a Role per namespace); KEDA's only with `keda`. */
export function operatorRules(o: { keda: boolean }): PolicyRule[] {
  return o.keda ? [...BASE_RULES, KEDA_RULE] : [...BASE_RULES];
}

/** KEDA ScaledObjects: only when KEDA is installed (its CRD must exist for the watch). */
export const KEDA_RULE: PolicyRule = {
  apiGroups: ['keda.sh'],
  resources: ['scaledobjects'],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'],
};

const BASE_RULES: readonly PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['distillationruns', 'generationendpoints'], verbs: ['get', 'list', 'watch'] },
  {
    apiGroups: [GROUP],
    resources: ['distillationruns/status', 'generationendpoints/status'],
    verbs: ['get', 'patch', 'update'],
  },
  // Setting blockOwnerDeletion on children needs update on the owner's finalizers subresource.
  {
    apiGroups: [GROUP],
    resources: ['distillationruns/finalizers', 'generationendpoints/finalizers'],
    verbs: ['update'],
  },
  // A run creates, keeps in step and (serve turned off) deletes the endpoint that serves its model.
  { apiGroups: [GROUP], resources: ['generationendpoints'], verbs: ['create', 'delete', 'patch'] },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'watch'] },
  // Pods: termination messages (stage results) and why a pod cannot start.
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['create', 'get', 'list', 'patch', 'watch'] },
  { apiGroups: [''], resources: ['services'], verbs: ['create', 'get', 'list', 'patch', 'watch'] },
  {
    apiGroups: ['autoscaling'],
    resources: ['horizontalpodautoscalers'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'],
  },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
];

/** Rules in the operator's own namespace: the leader-election Lease. */
export const LEADER_ELECTION_RULES: readonly PolicyRule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'get', 'update'] },
];
