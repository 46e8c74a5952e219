/**
 * The operator's API group, kinds and the label/annotation keys it stamps on children. Group and kind
 * names follow Kubernetes conventions (a DNS subdomain the project owns; CamelCase singular kinds; an
 * alpha version while the schema may still change): ../shared/reference/peers.md §2d–2e.
 */
export const GROUP = 'distill.getdistill.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** One custom resource type: names as the CRD and the REST paths spell them. */
export interface KindNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  listKind: string;
}

export const RUN: KindNames = {
  kind: 'DistillationRun',
  plural: 'distillationruns',
  singular: 'distillationrun',
  shortNames: ['drun'],
  listKind: 'DistillationRunList',
};
export const ENDPOINT: KindNames = {
  kind: 'GenerationEndpoint',
  plural: 'generationendpoints',
  singular: 'generationendpoint',
  shortNames: ['genep'],
  listKind: 'GenerationEndpointList',
};

/** Object names of both kinds: DNS-1035 labels (they name Jobs, pods, Services and label values). */
export const NAME_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
/** Longest run name: `<run>-datagen-<index>-<5 chars>` pod names must fit 63 characters. */
export const MAX_RUN_NAME = 40;
/** Longest endpoint name: a Service name (DNS-1035 label). */
export const MAX_ENDPOINT_NAME = 63;

/**
 * Why `name` cannot name an object of this kind, or undefined when it can (the CRD's CEL rule says
 * the same; API servers that do not run CEL reach the operator with it).
 */
export function nameProblem(name: string, max: number): string | undefined {
  if (name.length > max)
    return (
      `metadata.name "${name}" has ${name.length} characters; at most ${max} (it names pods and Services); ` +
      `recreate it under a shorter name`
    );
  if (!new RegExp(NAME_PATTERN).test(name))
    return (
      `metadata.name "${name}" must be a DNS-1035 label (lowercase letters, digits and '-', starting with a ` +
      `letter); recreate it under another name`
    );
  return undefined;
}

/** `kubectl get get-distill` lists both kinds. */
export const CATEGORY = 'get-distill';

/** Labels on every child object (Kubernetes recommended labels + ours). */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  run: `${GROUP}/run`,
  endpoint: `${GROUP}/endpoint`,
  stage: `${GROUP}/stage`,
  /**
   * On the pod templates of a trainer MPIJob: one value per MPIJob object, so the pods of an MPIJob that was
   * deleted to start over are never read as the new one's (the MPI Operator names them the same).
   */
  mpiJobInstance: `${GROUP}/mpijob-instance`,
} as const;

/** Annotations the operator reads back from its children. */
export const ANNOTATIONS = {
  /** sha256 of the stage spec a Job was built from: a different one means the spec changed mid-run. */
  specHash: `${GROUP}/spec-hash`,
  /** The served model's digest on the pod template: a new digest rolls the Deployment. */
  modelDigest: `${GROUP}/model-digest`,
  /** Why the operator stopped (suspended) a trainer MPIJob: its launcher failed permanently (exit 2). */
  failure: `${GROUP}/failure`,
} as const;

/** The value of app.kubernetes.io/managed-by on every child. */
export const MANAGER = 'get-distill-operator';
