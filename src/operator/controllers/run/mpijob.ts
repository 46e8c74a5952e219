/**
 * The trainer of a multi-rank run as a Kubeflow MPIJob (kubeflow.org/v2beta1): one launcher pod runs the
 * trainer image's entry point with `--ranks <workers × slots>`, which starts `mpirun` over the hostfile the
 * MPI Operator mounts; N worker pods of the same image run sshd for mpirun's remote launches, each with
 * `gpusPerWorker` GPUs and as many MPI slots. Rank 0 runs on `<mpijob>-worker-0`, whose job-mode server the
 * progress poller asks for the step.
 *
 * Retries: the launcher is a Job with `runPolicy.backoffLimit` = training.backoffLimit, and every retry
 * resumes from the latest checkpoint. Unlike the trainer Job there is no pod failure policy on it, so the
 * reconcile stops an MPIJob whose launcher exited 2 itself (mpijob-state.ts).
 */
import { randomBytes } from 'node:crypto';
import type { V1EnvVar } from '@kubernetes/client-node';
import { ANNOTATIONS, LABELS, MANAGER, RUN } from '../../api/v1alpha1/group.js';
import type { DistillationRunSpec } from '../../api/v1alpha1/run.js';
import type { ResourcesSpec } from '../../api/v1alpha1/common.js';
import { MPIJOB, MPI_API_VERSION, MPI_IMAGE, type MpiJob } from '../../api/mpi.js';
import type { OperatorConfig } from '../../config.js';
import { childMeta, specHash, type Owned } from '../meta.js';
import { podSpec, serviceContainer, storeEnv } from '../pod.js';
import { STAGE_GRACE_SECONDS, jobName } from './jobs.js';
import { trainJobSpec, trainingTopology } from './plan.js';

/** The launcher runs mpirun and the entry point's wrapper only: no GPU, a little CPU and memory. */
export const LAUNCHER_RESOURCES = { cpu: '1', memory: '1Gi' } as const;

/** The launcher's resources: the run's placement (node selector, tolerations, classes) without a GPU. */
export function launcherResources(spec: DistillationRunSpec): ResourcesSpec {
  return { ...spec.resources, ...LAUNCHER_RESOURCES, gpu: { ...spec.resources.gpu, count: 0 } };
}

/** A worker's resources: the run's, with gpusPerWorker GPUs. */
export function workerResources(spec: DistillationRunSpec): ResourcesSpec {
  return { ...spec.resources, gpu: { ...spec.resources.gpu, count: trainingTopology(spec).gpusPerWorker } };
}

/**
 * The MPIJob of the run's train stage (named like the trainer Job it replaces: `<run>-train`). `instance`
 * labels its pods (a fresh value for each MPIJob created; not part of the spec hash).
 */
export function buildTrainMpiJob(
  run: Owned,
  spec: DistillationRunSpec,
  cfg: OperatorConfig,
  instance = randomBytes(6).toString('hex'),
): MpiJob {
  const runName = run.metadata!.name!;
  const topo = trainingTopology(spec);
  const labels = { [LABELS.run]: runName, [LABELS.stage]: 'train', [LABELS.component]: 'train' };
  const podLabels = (role: string) => ({
    ...labels,
    [LABELS.component]: `train-${role}`,
    [LABELS.name]: 'get-distill',
    [LABELS.instance]: runName,
    [LABELS.managedBy]: MANAGER,
    [LABELS.mpiJobInstance]: instance,
  });
  const jobSpec = JSON.stringify(trainJobSpec(spec));
  const env: V1EnvVar[] = [{ name: 'GET_DISTILL_JOB_SPEC', value: jobSpec }, ...storeEnv(spec.store, cfg)];
  const args = ['--mode', 'job', '--ranks', String(topo.ranks)];
  const launcher = serviceContainer('launcher', cfg.trainerImage, env, launcherResources(spec), cfg, { args });
  // The ranks get their environment from mpirun (-x), not from this container: sshd starts their sessions.
  const worker = serviceContainer('worker', cfg.trainerImage, [], workerResources(spec), cfg, {
    command: ['/usr/sbin/sshd'],
    args: ['-De', '-f', MPI_IMAGE.sshdConfig],
    ports: [{ name: 'ssh', containerPort: MPI_IMAGE.sshPort, protocol: 'TCP' }],
    // Ready once sshd listens: the launcher waits for every worker to be ready (and resolvable) first.
    readinessProbe: { tcpSocket: { port: MPI_IMAGE.sshPort }, periodSeconds: 5 },
  });
  const pod = { terminationGracePeriodSeconds: STAGE_GRACE_SECONDS };
  const body: MpiJob = {
    apiVersion: MPI_API_VERSION,
    kind: MPIJOB.kind,
    metadata: childMeta(run, RUN.kind, jobName(runName, 'train'), labels),
    spec: {
      slotsPerWorker: topo.slotsPerWorker,
      runLauncherAsWorker: false,
      runPolicy: { backoffLimit: spec.training.backoffLimit, cleanPodPolicy: 'Running' },
      sshAuthMountPath: MPI_IMAGE.sshAuthMountPath,
      mpiImplementation: 'OpenMPI',
      // mpirun reaches every worker on its first try (DNS of the headless Service, sshd listening).
      launcherCreationPolicy: 'WaitForWorkersReady',
      mpiReplicaSpecs: {
        // Never: each launch is a new pod with its own exit code and termination message.
        Launcher: {
          replicas: 1,
          restartPolicy: 'Never',
          template: {
            metadata: { labels: podLabels('launcher') },
            spec: podSpec(launcher, launcherResources(spec), cfg, pod),
          },
        },
        // OnFailure: a crashed sshd restarts in place (the MPI Operator recreates only deleted workers).
        Worker: {
          replicas: topo.workers,
          restartPolicy: 'OnFailure',
          template: {
            metadata: { labels: podLabels('worker') },
            spec: podSpec(worker, workerResources(spec), cfg, pod),
          },
        },
      },
    },
  };
  // What the run decides for this stage (not the operator's images; see jobs.ts).
  body.metadata!.annotations = {
    [ANNOTATIONS.specHash]: specHash({
      kind: MPIJOB.kind,
      env: { GET_DISTILL_JOB_SPEC: jobSpec },
      args,
      topology: topo,
      launcher: launcherResources(spec),
      worker: workerResources(spec),
      store: spec.store,
      backoffLimit: spec.training.backoffLimit,
    }),
  };
  return body;
}
