#!/usr/bin/env node
/**
 * Entry point of the datagen image: `node --import tsx services/datagen/main.ts --mode service|job …`.
 * The teacher's Heun pairs for a seed range as pair shards + manifest.json, by the same stage function
 * as `npm run distill` (src/jobs/stages/datagen.ts); in an Indexed Job each pod generates its share.
 * Modes, spec fields, environment, exit codes (0 / 2 permanent / 75 retryable), metrics: services/README.md.
 */
import { stageMain } from '../../src/jobs/main.js';
import { datagenJob } from '../../src/jobs/stages/datagen.js';

await stageMain(datagenJob, 'datagen', {
  description:
    'Teacher pairs (EDM Heun) for a seed range as pair shards + manifest.json: an HTTP service (--mode ' +
    'service) or one Kubernetes Job pod (--mode job; Indexed Jobs split the seed range).',
});
