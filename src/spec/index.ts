/**
 * One definition of every option: names (datasets, presets, engines, seeds), field builders, the
 * `distill` options by stage, and the stage services' job specs. Pure (zod and pure data): the operator
 * and the CLI's help load it without the ML stack.
 */
export * from './names.js';
export * from './fields.js';
export * from './stages.js';
export * from './jobs.js';
export * from './eval.js';
export * from './distributed.js';
