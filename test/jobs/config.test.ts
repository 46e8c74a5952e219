/**
 * The config kit (src/service/config.ts) on a job-spec-like schema and the stage entry point's spec
 * handling (src/jobs/main.ts): flag > env > spec document > default, string coercion by field type,
 * one-line errors naming the flag, the variable or the document field, generated --help options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { z } from 'zod';
import {
  addConfigOptions,
  coerceString,
  envName,
  flagOf,
  intIn,
  resolveConfig,
  schemaOptionDocs,
} from '../../src/service/config.js';
import { ProcessConfigSchema, readSpecDocument, stageCommand } from '../../src/jobs/main.js';
import { UsageError } from '../../src/util/errors.js';
import { fakeStage } from './fake-stage.js';

const Spec = z
  .object({
    outDir: z.string().min(1).describe('run URI'),
    batchSize: intIn(1, 4096).default(32).describe('images per step'),
    lr: z.number().positive().default(1e-4),
    ema: z.boolean().default(true),
    seeds: z
      .object({ start: intIn(0, 1e9), end: intIn(0, 1e9) })
      .strict()
      .optional()
      .describe('seed range'),
  })
  .strict();

const fails = (fn: () => unknown, re: RegExp) =>
  assert.throws(
    fn,
    (e: Error) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'),
    re.source,
  );

test('flag > env > spec document > default; strings coerced by the field type', () => {
  const env = {
    GET_DISTILL_BATCH_SIZE: '64',
    GET_DISTILL_LR: '3e-4',
    GET_DISTILL_EMA: 'false',
    GET_DISTILL_OUT_DIR: 's3://b/env',
  };
  const base = {
    values: { outDir: 's3://b/doc', batchSize: 8, seeds: { start: 0, end: 99 } },
    source: 'GET_DISTILL_JOB_SPEC',
  };
  assert.deepEqual(resolveConfig(Spec, { outDir: 's3://b/flag' }, env, { base }), {
    outDir: 's3://b/flag',
    batchSize: 64,
    lr: 3e-4,
    ema: false,
    seeds: { start: 0, end: 99 },
  });
  assert.deepEqual(resolveConfig(Spec, {}, {}, { base }), {
    outDir: 's3://b/doc',
    batchSize: 8,
    lr: 1e-4,
    ema: true,
    seeds: { start: 0, end: 99 },
  });
  assert.deepEqual(resolveConfig(Spec, { outDir: 'o', seeds: '{"start":5,"end":6}' }), {
    outDir: 'o',
    batchSize: 32,
    lr: 1e-4,
    ema: true,
    seeds: { start: 5, end: 6 },
  });
  assert.equal(flagOf('batchSize'), '--batch-size');
  assert.equal(envName('spec', { envNames: { spec: 'GET_DISTILL_JOB_SPEC' } }), 'GET_DISTILL_JOB_SPEC');
  assert.equal(coerceString(Spec.shape.batchSize, ' 12 '), 12);
  assert.equal(coerceString(Spec.shape.batchSize, '12px'), '12px', 'left for the schema to reject');
  assert.equal(coerceString(Spec.shape.ema, '1'), true);
  assert.equal(coerceString(Spec.shape.outDir, '42'), '42', 'strings stay strings');
});

test('errors: one line naming the flag, the variable, both when missing, or the document field', () => {
  fails(
    () => resolveConfig(Spec, { outDir: 'o', batchSize: '0' }),
    /^--batch-size must be an integer in \[1, 4096\] \(got 0\)$/,
  );
  fails(
    () => resolveConfig(Spec, { outDir: 'o' }, { GET_DISTILL_EMA: 'maybe' }),
    /^GET_DISTILL_EMA must be true or false \(got "maybe"\)$/,
  );
  fails(() => resolveConfig(Spec, {}), /^--out-dir \(or GET_DISTILL_OUT_DIR\) is required \(string\)$/);
  fails(() => resolveConfig(Spec, { outDir: 'o', lr: 'fast' }), /^--lr must be a number \(got "fast"\)$/);
  fails(
    () => resolveConfig(Spec, { outDir: 'o', seeds: '{start: 1}' }),
    /^--seeds must be a JSON object \(got "\{start: 1\}"\)$/,
  );
  fails(
    () => resolveConfig(Spec, { outDir: 'o', seeds: '{"start":1}' }),
    /^--seeds: seeds\.end: must be an integer in \[0, 1000000000\]$/,
  );
  fails(
    () =>
      resolveConfig(
        Spec,
        {},
        {},
        { base: { values: { outDir: 'o', seeds: { start: -1, end: 2 } }, source: '--spec' } },
      ),
    /^--spec: seeds\.start: must be an integer/,
  );
  fails(
    () =>
      resolveConfig(Spec, {}, {}, { base: { values: { outDir: 'o', colour: 'red' }, source: 'GET_DISTILL_JOB_SPEC' } }),
    /^GET_DISTILL_JOB_SPEC: unknown field "colour"; known fields: outDir, batchSize, lr, ema, seeds$/,
  );
  fails(() => resolveConfig(Spec, { colour: 'red' }), /^unknown option --colour$/);
  fails(
    () => resolveConfig(Spec, { outDir: 'o', lr: '-1' }, {}, { noEcho: ['lr'] }),
    /^--lr Too small: expected number to be >0$/,
  );
});

test('--help options from the schema: placeholder by type, .describe() text, default or required, env name', () => {
  const cmd = addConfigOptions(new Command('x'), Spec, schemaOptionDocs(Spec, 'Spec:'));
  const help = cmd.helpInformation().replace(/\s+/g, ' ');
  assert.match(help, /Spec: --out-dir <value> run URI \(required; env GET_DISTILL_OUT_DIR\)/);
  assert.match(help, /--batch-size <n> images per step \(default: 32; env GET_DISTILL_BATCH_SIZE\)/);
  assert.match(help, /--ema <bool> spec field ema \(default: true; env GET_DISTILL_EMA\)/);
  assert.match(help, /--seeds <json> seed range \(env GET_DISTILL_SEEDS\)/);
  assert.throws(
    () => addConfigOptions(new Command('y'), Spec, [['S:', [['nope' as 'lr', '<n>', 'x']]]]),
    /nope is not a field/,
  );
});

test('spec documents: JSON text or @file; unreadable, invalid or non-object documents are one-line errors', () => {
  assert.deepEqual(readSpecDocument('{"outDir":"o","batchSize":4}', '--spec'), { outDir: 'o', batchSize: 4 });
  fails(
    () => readSpecDocument('@/nonexistent/spec.json', '--spec'),
    /^--spec: cannot read \/nonexistent\/spec\.json \(ENOENT\)/,
  );
  fails(() => readSpecDocument('{"outDir":', 'GET_DISTILL_JOB_SPEC'), /^GET_DISTILL_JOB_SPEC: not valid JSON/);
  fails(() => readSpecDocument('[1]', '--spec'), /^--spec: must be a JSON object \(the stage's spec\), got an array$/);
});

test('the entry point: process defaults; spec fields that collide with process options are refused', () => {
  assert.deepEqual(resolveConfig(ProcessConfigSchema, {}), {
    mode: 'service',
    host: '127.0.0.1',
    port: 8080,
    concurrency: 1,
    ranks: 1,
    keepJobs: 100,
    shutdownGraceMs: 30000,
    logLevel: 'info',
  });
  fails(
    () => resolveConfig(ProcessConfigSchema, {}, { GET_DISTILL_MODE: 'batch' }),
    /^GET_DISTILL_MODE must be service or job \(got "batch"\)$/,
  );
  const clash = {
    kind: 'export' as const,
    schema: z.object({ port: z.number(), out: z.string() }).strict(),
    run: async () => ({ artifacts: {}, interrupted: false }),
  };
  assert.throws(() => stageCommand(clash, 'bad'), /bad: spec fields port collide with process options; rename them/);
  const help = stageCommand(fakeStage(), 'fake').helpInformation();
  assert.match(help, /--spec <json\|@file>/);
  assert.match(
    help.replace(/\s+/g, ' '),
    new RegExp(
      '--safe-point-ms <n> milliseconds the pretend checkpoint takes after an abort \\(default: 0; env ' +
        'GET_DISTILL_SAFE_POINT_MS\\)',
    ),
  );
});
