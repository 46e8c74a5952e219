#!/usr/bin/env node
/**
 * Entry point of the trainer image: `node --import tsx services/trainer/main.ts --mode service|job …`.
 * GET training on a pair folder with checkpoints in <out>/checkpoints, by the same stage function as
 * `npm run distill` (src/jobs/stages/train.ts); a job always resumes from latest.json.
 * Modes, spec fields, environment, exit codes (0 / 2 permanent / 75 retryable), metrics: services/README.md.
 */
import { stageMain } from '../../src/jobs/main.js';
import { trainJob } from '../../src/jobs/stages/train.js';

await stageMain(trainJob, 'trainer', {
  description:
    'GET training on a pair folder, checkpoints in <out>/checkpoints (resumes from latest.json; SIGTERM ' +
    'checkpoints and exits 75): an HTTP service (--mode service) or one Kubernetes Job pod (--mode job).',
});
