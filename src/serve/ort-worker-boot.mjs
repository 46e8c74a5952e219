// Entry point of the onnxruntime worker threads. Node 20 does not apply the parent's tsx loader to a
// worker's entry file, so this plain-JS file registers tsx in the worker, then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./ort-worker.ts');
