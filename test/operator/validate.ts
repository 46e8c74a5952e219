/**
 * Validates every object the operator created in the fake API server against kubernetes-models@4.5.1, and
 * MPIJobs against the MPI Operator's own CRD schema (test/fixtures/mpi-operator).
 */
import { Job } from 'kubernetes-models/batch/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service, Event } from 'kubernetes-models/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type { FakeApiServer, KObj } from '../k8s/api-server.js';
import { validateStructural } from '../k8s/structural-schema.js';
import { MPIJOB_SCHEMA } from './harness.js';
import { MPIJOB, MPI_API_VERSION, MPI_GROUP } from '../../src/operator/api/mpi.js';
import { GROUP, RUN, ENDPOINT } from '../../src/operator/api/v1alpha1/group.js';
import { DistillationRunStatusSchema } from '../../src/operator/api/v1alpha1/run.js';
import {
  GenerationEndpointSpecSchema,
  GenerationEndpointStatusSchema,
} from '../../src/operator/api/v1alpha1/endpoint.js';

const MODELS: Array<[string, string, (o: KObj) => { validate(): void }]> = [
  ['batch', 'jobs', (o) => new Job(o as never)],
  ['apps', 'deployments', (o) => new Deployment(o as never)],
  ['', 'services', (o) => new Service(o as never)],
  ['', 'events', (o) => new Event(o as never)],
  ['autoscaling', 'horizontalpodautoscalers', (o) => new HorizontalPodAutoscaler(o as never)],
  ['coordination.k8s.io', 'leases', (o) => new Lease(o as never)],
  ['keda.sh', 'scaledobjects', (o) => new ScaledObject(o as never)],
];

/** Throws naming the object when one fails its schema; returns how many objects were checked. */
export function validateCreated(srv: FakeApiServer): number {
  let n = 0;
  for (const [group, plural, make] of MODELS) {
    for (const o of srv.listObjects({ group, plural })) {
      try {
        make(o).validate();
      } catch (e) {
        throw new Error(`${plural} ${o.metadata.name} fails kubernetes-models validation: ${(e as Error).message}`, {
          cause: e,
        });
      }
      n++;
    }
  }
  for (const o of srv.listObjects({ group: MPI_GROUP, plural: MPIJOB.plural })) {
    const problems = validateStructural({ apiVersion: MPI_API_VERSION, kind: MPIJOB.kind, ...o }, MPIJOB_SCHEMA);
    if (problems.length)
      throw new Error(`MPIJob ${o.metadata.name} fails the MPIJob CRD schema: ${problems.join('; ')}`);
    n++;
  }
  for (const o of srv.listObjects({ group: GROUP, plural: RUN.plural }))
    if (o.status) {
      DistillationRunStatusSchema.parse(o.status);
      n++;
    }
  for (const o of srv.listObjects({ group: GROUP, plural: ENDPOINT.plural })) {
    GenerationEndpointSpecSchema.parse(o.spec);
    if (o.status) GenerationEndpointStatusSchema.parse(o.status);
    n++;
  }
  return n;
}
