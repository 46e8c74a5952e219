/**
 * `node --import tsx scripts/operator-footprint.ts`: one JSON line with the operator's import footprint
 * (the modules services/operator/main.ts loads, without starting it): module count, npm packages, import
 * milliseconds, RSS MiB after the import, onnxruntime/TensorFlow native libraries mapped.
 */
import { join } from 'node:path';
import { measureFootprint } from './lib/footprint.js';

const root = join(import.meta.dirname, '..');
// services/operator/main.ts only calls operatorMain() from here, which would start the operator.
process.stdout.write(`${JSON.stringify(measureFootprint([join(root, 'src/operator/main.ts')]))}\n`);
