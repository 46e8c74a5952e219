/**
 * Exactly the API access the operator uses: the Helm chart's ClusterRole/Role must grant these rules
 * and nothing more (test/charts checks the rendered chart; the operator scenario tests check every
 * request the operator makes is covered). No Secrets: pods get S3 credentials by `secretKeyRef` and the
 * operator never reads them. Leases only in the operator's own namespace (a separate Role).
 */
import { GROUP } from './api/v1alpha1/group.js';
import { MPIJOB, MPI_GROUP } from './api/mpi.js';

/** One RBAC PolicyRule (rbac.authorization.k8s.io/v1), verbs sorted. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/**
 * Rules on the watched namespaces (a ClusterRole, or a Role per namespace); KEDA's only with `keda`, the
 * MPIJobs' only with `mpiOperator` (the chart's keda.enabled and mpiOperator.enabled).
 */
export function operatorRules(o: { keda: boolean; mpiOperator: boolean }): PolicyRule[] {
  return [...BASE_RULES, ...(o.keda ? [KEDA_RULE] : []), ...(o.mpiOperator ? [MPIJOB_RULE] : [])];
}

/** KEDA ScaledObjects: only when KEDA is installed (its CRD must exist for the watch). */
export const KEDA_RULE: PolicyRule = {
  apiGroups: ['keda.sh'],
  resources: ['scaledobjects'],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'watch'],
};

/**
 * Kubeflow MPIJobs: only when the MPI Operator is installed (its CRD must exist for the watch). Create the
 * trainer's MPIJob, watch it, suspend it (patch) when the launcher fails permanently, and delete it to start
 * over when a worker pod is lost for good. Its launcher and worker pods are read through the pods rule.
 */
export const MPIJOB_RULE: PolicyRule = {
  apiGroups: [MPI_GROUP],
  resources: [MPIJOB.plural],
  verbs: ['create', 'delete', 'list', 'patch', 'watch'],
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
