#!/usr/bin/env node
/**
 * Entry point of the operator image: `node --import tsx services/operator/main.ts [options]`.
 * Reconciles DistillationRun and GenerationEndpoint objects (distill.getdistill.dev/v1alpha1) into
 * Jobs, Deployments, Services and autoscalers. Options: --help; install: charts/get-distill.
 */
import { operatorMain } from '../../src/operator/main.js';

await operatorMain();
