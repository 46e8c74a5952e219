#!/usr/bin/env node
/**
 * Entry point of the exporter image: `node --import tsx services/exporter/main.ts --mode service|job …`.
 * A checkpoint's EMA weights → model.onnx + model.json, by the same stage function as `npm run distill`
 * and `get-distill export` (src/jobs/stages/export.ts).
 * Modes, spec fields, environment, exit codes (0 / 2 permanent / 75 retryable), metrics: services/README.md.
 */
import { stageMain } from '../../src/jobs/main.js';
import { exportJob } from '../../src/jobs/stages/export.js';

await stageMain(exportJob, 'exporter', {
  description:
    "A checkpoint's EMA weights → model.onnx + model.json (get-distill/model@1): an HTTP service (--mode " +
    'service) or one Kubernetes Job pod (--mode job).',
});
