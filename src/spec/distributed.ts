/**
 * Data-parallel training across pods: how many worker pods a Kubernetes run trains on and how many GPUs
 * (one MPI rank each) every worker holds. The operator's DistillationRun takes these fields under
 * `training`; with more than one rank it runs the trainer as an MPIJob (Kubeflow MPI Operator) instead
 * of a Job. Pure: zod and the field builders only.
 */
import { intIn } from './fields.js';

/** Most worker pods of one run (an MPIJob's Worker replicas). */
export const MAX_WORKERS = 128;
/** Most GPUs of one worker pod (= the run's resources.gpu.count bound). */
export const MAX_GPUS_PER_WORKER = 16;

export const distributedFields = {
  workers: intIn(1, MAX_WORKERS)
    .default(1)
    .describe(
      'trainer pods (MPI worker pods); above 1 the trainer runs as an MPIJob of the Kubeflow MPI Operator ' +
        'with one rank per GPU (the chart value mpiOperator.enabled must be on)',
    ),
  gpusPerWorker: intIn(0, MAX_GPUS_PER_WORKER)
    .optional()
    .describe(
      'GPUs per worker pod, one MPI rank each (0: one CPU rank per pod); default: resources.gpu.count. Given ' +
        'above 1, a single worker runs its ranks as an MPIJob too; absent with workers 1, the trainer is one Job',
    ),
};
