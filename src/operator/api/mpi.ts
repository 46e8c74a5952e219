/**
 * The Kubeflow MPI Operator's MPIJob (kubeflow.org/v2beta1), as far as this operator writes and reads it,
 * and the contract with the trainer image it runs (docker/Dockerfile.ort, SERVICE=trainer). Names and labels
 * follow the MPI Operator v0.8's controller (pkg/controller/mpi_job_controller.go): the launcher is a
 * batch/v1 Job `<mpijob>-launcher` whose pods carry `training.kubeflow.org/job-role=launcher`; worker pods
 * are named `<mpijob>-worker-<i>` with job-role `worker`; both keep the labels of our pod templates.
 */
import type { KubernetesObject, V1ObjectMeta, V1PodTemplateSpec } from '@kubernetes/client-node';

export const MPI_GROUP = 'kubeflow.org';
export const MPI_VERSION = 'v2beta1';
export const MPI_API_VERSION = `${MPI_GROUP}/${MPI_VERSION}`;
export const MPIJOB = { kind: 'MPIJob', plural: 'mpijobs' } as const;

/** Labels the MPI Operator puts on the launcher and worker pods (besides those of our templates). */
export const MPI_LABELS = {
  jobName: 'training.kubeflow.org/job-name',
  jobRole: 'training.kubeflow.org/job-role',
  replicaIndex: 'training.kubeflow.org/replica-index',
} as const;
export type MpiRole = 'launcher' | 'worker';

/** The worker pod that runs rank 0 (the hostfile lists workers in index order, slots filled in turn). */
export const firstWorkerName = (mpiJob: string): string => `${mpiJob}-worker-0`;

/**
 * The trainer image's MPI side (docker/mpi/): the non-root user 10001 is `distill` with this home; the MPI
 * Operator mounts its generated SSH key pair at `<home>/.ssh` (sshAuthMountPath), the workers run sshd with
 * the image's config on SSH_PORT, and the image's ssh client config points mpirun's ssh at that port.
 */
export const MPI_IMAGE = {
  home: '/home/distill',
  sshAuthMountPath: '/home/distill/.ssh',
  sshdConfig: '/home/distill/.sshd_config',
  sshPort: 2222,
} as const;

/** One replica spec of an MPIJob (Launcher or Worker). */
export interface MpiReplicaSpec {
  replicas: number;
  restartPolicy: 'Never' | 'OnFailure' | 'Always' | 'ExitCode';
  template: V1PodTemplateSpec;
}

/** An MPIJob as this operator builds it (the CRD's fields we set) and reads back (status). */
export interface MpiJob extends KubernetesObject {
  metadata?: V1ObjectMeta;
  spec: {
    slotsPerWorker: number;
    runLauncherAsWorker?: boolean;
    runPolicy: {
      backoffLimit?: number;
      cleanPodPolicy?: 'All' | 'Running' | 'None';
      ttlSecondsAfterFinished?: number;
      activeDeadlineSeconds?: number;
      suspend?: boolean;
    };
    sshAuthMountPath: string;
    mpiImplementation: 'OpenMPI' | 'Intel' | 'MPICH';
    launcherCreationPolicy: 'AtStartup' | 'WaitForWorkersReady';
    mpiReplicaSpecs: { Launcher: MpiReplicaSpec; Worker: MpiReplicaSpec };
  };
  status?: MpiJobStatus;
}

/** An MPIJob condition (JobCondition: Created, Running, Restarting, Succeeded, Suspended, Failed). */
export interface MpiJobCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface MpiJobStatus {
  conditions?: MpiJobCondition[];
  replicaStatuses?: Partial<Record<'Launcher' | 'Worker', { active?: number; succeeded?: number; failed?: number }>>;
  startTime?: string;
  completionTime?: string;
}
