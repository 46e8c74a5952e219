/**
 * Configuration from ONE zod object schema for every GET Distill service and job: each top-level key
 * `maxBatchSize` is a flag `--max-batch-size` and an environment variable `GET_DISTILL_MAX_BATCH_SIZE`.
 * A flag wins over the environment, the environment over a base document (a job spec given as JSON),
 * that over the schema's default. Flag and environment values are strings: they are coerced here for
 * plain number, boolean, object and array fields (a field with its own preprocess step coerces itself).
 * Errors are one-line UsageErrors (CLI exit 2) naming where the bad value came from.
 */
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { UsageError } from '../util/errors.js';
import { issuePath } from './errors.js';

/** Option key → flag name (`maxBatchSize` → `--max-batch-size`). */
export const flagOf = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
/** Option key → environment variable (`maxBatchSize` → `GET_DISTILL_MAX_BATCH_SIZE`). */
export const envOf = (key: string): string => `GET_DISTILL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Any zod object schema (refinements allowed: in zod 4 they keep `.shape`). */
export type ObjectSchema = z.ZodObject<z.ZodRawShape>;

// intIn (an integer field whose every error reads `must be an integer in [lo, hi]`) is a spec field builder.
export { intIn } from '../spec/fields.js';

/** A field's wrapped schema: optional/default/nullable/readonly/catch peeled off. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur = s as z.ZodType & { _zod: { def: { type: string; innerType?: z.ZodType } } };
  while (
    ['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional'].includes(cur._zod.def.type) &&
    cur._zod.def.innerType
  ) {
    cur = cur._zod.def.innerType as typeof cur;
  }
  return cur;
}

/** The zod type name of a field after {@link unwrap} (`number`, `string`, `object`, `pipe`, …). */
export const baseType = (s: z.ZodType): string =>
  (unwrap(s) as unknown as { _zod: { def: { type: string } } })._zod.def.type;

/** The `.describe()` text of a field, wherever it sits among its wrappers. */
export function describeOf(s: z.ZodType): string | undefined {
  let cur: z.ZodType | undefined = s;
  while (cur) {
    if (cur.description) return cur.description;
    cur = (cur as unknown as { _zod: { def: { innerType?: z.ZodType } } })._zod.def.innerType;
  }
  return undefined;
}

/**
 * A flag or environment string → the type the field expects: numbers for number fields (only when the
 * text is a number, so the schema's error names the bad text), true/false/1/0 for booleans, JSON for
 * objects and arrays. Other fields (strings, enums, preprocessed fields) get the string as given.
 */
export function coerceString(field: z.ZodType, v: string): unknown {
  switch (baseType(field)) {
    case 'number':
      return /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v) ? Number(v) : v;
    case 'boolean':
      return /^(true|1)$/i.test(v.trim()) ? true : /^(false|0)$/i.test(v.trim()) ? false : v;
    case 'object':
    case 'array':
    case 'record':
      try {
        return JSON.parse(v);
      } catch {
        return v; // the schema says "expected object, received string"
      }
    default:
      return v;
  }
}

export interface ResolveOptions {
  /** Keys whose values are never quoted in errors (URIs quote themselves; anything secret-like). */
  readonly noEcho?: readonly string[];
  /** Environment variable names that replace {@link envOf} for some keys (e.g. `spec` → GET_DISTILL_JOB_SPEC). */
  readonly envNames?: Readonly<Record<string, string>>;
  /**
   * Values under the flags and the environment (a spec document), and how errors name them (`GET_DISTILL_JOB_SPEC`).
   */
  readonly base?: { readonly values: Readonly<Record<string, unknown>>; readonly source: string };
}

/** The environment variable of `key` under `o`. */
export const envName = (key: string, o: ResolveOptions = {}): string => o.envNames?.[key] ?? envOf(key);

/**
 * Resolves flags over environment over `o.base` over defaults and validates with `schema`.
 * @param flags values by key (commander's camelCase), strings or already typed; undefined = not given.
 * @param env usually `process.env`; only the variables of the schema's keys are read.
 * @throws UsageError, one line: `--port must be an integer … (got "http")`, naming the flag or variable
 *   that gave the value, both `--flag (or VAR)` when the value was missing, or `SOURCE: field: problem`
 *   for a value from the base document. Unknown flag keys: `unknown option --colour`.
 */
export function resolveConfig<S extends ObjectSchema>(
  schema: S,
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = {},
  o: ResolveOptions = {},
): z.output<S> {
  const { raw, source } = mergeConfig(schema, flags, env, o);
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  throw new UsageError(
    describeIssue(r.error.issues[0], raw, source, schema.shape as Record<string, z.ZodType>, o).replace(/\s+/g, ' '),
  );
}

/**
 * The merge step of {@link resolveConfig} without validation: the raw values (strings coerced) and, per
 * key, the flag or variable that gave it. For callers that hand the input on to code that validates it
 * again (job mode: src/jobs/run-job.ts).
 * @throws UsageError `unknown option --colour` for a flag key the schema lacks.
 */
export function mergeConfig(
  schema: ObjectSchema,
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = {},
  o: ResolveOptions = {},
): { raw: Record<string, unknown>; source: Record<string, string> } {
  const shape = schema.shape as Record<string, z.ZodType>;
  for (const key of Object.keys(flags)) {
    if (!(key in shape) && flags[key] !== undefined) throw new UsageError(`unknown option ${flagOf(key)}`);
  }
  const raw: Record<string, unknown> = { ...(o.base?.values ?? {}) };
  const source: Record<string, string> = {};
  for (const [key, field] of Object.entries(shape)) {
    const fromFlag = flags[key];
    const fromEnv = env[envName(key, o)];
    if (fromFlag !== undefined) {
      raw[key] = typeof fromFlag === 'string' ? coerceString(field, fromFlag) : fromFlag;
      source[key] = flagOf(key);
    } else if (fromEnv !== undefined) {
      raw[key] = coerceString(field, fromEnv);
      source[key] = envName(key, o);
    }
  }
  return { raw, source };
}

/** The one-line message of the first issue (see {@link resolveConfig}). */
function describeIssue(
  issue: z.core.$ZodIssue,
  raw: Record<string, unknown>,
  source: Record<string, string>,
  shape: Record<string, z.ZodType>,
  o: ResolveOptions,
): string {
  const key = String(issue.path[0] ?? '');
  const doc = o.base?.source ?? 'configuration';
  if (issue.code === 'unrecognized_keys') {
    // Only a base document can carry unknown keys (flags were checked, the environment is read by key).
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return (
      `${doc}: unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}; known fields: ` +
      `${Object.keys(shape).join(', ')}`
    );
  }
  if (key === '') return `${doc}: ${issue.message}`;
  const nested = issue.path.length > 1 ? `: ${issuePath(issue.path, '')}:` : '';
  if (source[key] === undefined && raw[key] !== undefined)
    return `${doc}: ${issuePath(issue.path, '')}: ${issue.message}`;
  const where = source[key] ?? `${flagOf(key)} (or ${envName(key, o)})`;
  const echo = raw[key] !== undefined && nested === '' && !(o.noEcho ?? []).includes(key);
  // zod's own text for a missing value ("expected string, received undefined"); custom texts stay.
  const missing = issue.code === 'invalid_type' && / received undefined$/.test(issue.message);
  const wrongType = issue.code === 'invalid_type' && /^Invalid input: expected /.test(issue.message);
  const problem = missing
    ? `is required (${issue.expected})`
    : wrongType
      ? issue.expected === 'boolean'
        ? 'must be true or false'
        : `must be a JSON ${issue.expected}`.replace('JSON number', 'number')
      : issue.message;
  return `${where}${nested} ${problem}${echo ? ` (got ${JSON.stringify(raw[key])})` : ''}`;
}

/** Help of one option: placeholder (`<n>`), text, and the default shown in --help when not the schema's. */
export type OptionDoc<K extends string = string> = readonly [key: K, arg: string, help: string, shownDefault?: string];
/** Options under headings, in --help order. */
export type OptionGroups<K extends string = string> = readonly (readonly [
  heading: string,
  options: readonly OptionDoc<K>[],
])[];

/** The default --help shows for a field: the schema's default, `required`, or nothing (optional). */
function defaultText(field: z.ZodType): string | undefined {
  const r = field.safeParse(undefined);
  if (!r.success) return 'required';
  if (r.data === undefined) return undefined;
  return typeof r.data === 'object' ? JSON.stringify(r.data) : String(r.data);
}

/** How {@link addConfigOptions} adds options. */
export interface AddOptionsOptions extends ResolveOptions {
  /**
   * A command-line tool's options (no environment): each flag parses and validates its value with the
   * field (errors: `--pairs must be an integer in [1, 1073741824], got "0"`, a UsageError), and the
   * schema's default is commander's default, so `--help` shows it and `getOptionValueSource(key)` tells
   * a given flag from a default.
   */
  readonly typed?: boolean;
  /**
   * In typed mode, the enum keys whose values commander lists (`(choices: …)` in --help, its own error);
   * other enum keys are validated by the field (`--engine must be one of ort, tfjs, got "x"`).
   */
  readonly listChoices?: readonly string[];
}

/** Whether `v` is an integer literal (`12`, `-3`): integer flags take no `1e3` or `1.0`. */
const INTEGER_TEXT = /^\s*-?\d+\s*$/;

/** The commander Option of one field in {@link AddOptionsOptions.typed} mode. */
function typedOption(field: z.ZodType, key: string, arg: string, help: string, listChoices: boolean): Option {
  const flag = flagOf(key);
  const opt = new Option(`${flag} ${arg}`, help);
  const inner = unwrap(field) as z.ZodType & { options?: readonly string[]; isInt?: boolean };
  if (listChoices && baseType(field) === 'enum' && inner.options) opt.choices(inner.options);
  else {
    const isNumber = baseType(field) === 'number';
    opt.argParser((v: string) => {
      const given = isNumber && inner.isInt && !INTEGER_TEXT.test(v) ? v : coerceString(field, v);
      const r = field.safeParse(given);
      if (r.success) return r.data;
      // Strings (locations) describe themselves; numbers and choices quote the value given.
      const echo = baseType(field) !== 'string';
      throw new UsageError(`${flag} ${r.error.issues[0].message}${echo ? `, got "${v}"` : ''}`);
    });
  }
  const r = field.safeParse(undefined);
  if (r.success && r.data !== undefined) opt.default(r.data);
  return opt;
}

/**
 * Adds one commander Option per documented key: `--max-batch-size <n>  help (default: 32; env VAR)`.
 * Options read strings and set no commander default, so an environment variable is never masked by a
 * flag default; {@link resolveConfig} applies the schema's defaults. With `o.typed` (a command-line
 * tool), see {@link AddOptionsOptions.typed}.
 * @throws Error when a documented key is not in the schema (a programming error).
 */
export function addConfigOptions<S extends ObjectSchema>(
  cmd: Command,
  schema: S,
  groups: OptionGroups<Extract<keyof S['shape'], string>>,
  o: AddOptionsOptions = {},
): Command {
  const shape = schema.shape as Record<string, z.ZodType>;
  for (const [heading, options] of groups) {
    for (const [key, arg, help, shown] of options) {
      if (!(key in shape)) throw new Error(`addConfigOptions: ${key} is not a field of the schema`);
      if (o.typed) {
        cmd.addOption(typedOption(shape[key], key, arg, help, (o.listChoices ?? []).includes(key)).helpGroup(heading));
        continue;
      }
      const dflt = shown ?? defaultText(shape[key]);
      const notes = [
        dflt === undefined ? undefined : dflt === 'required' ? 'required' : `default: ${dflt}`,
        `env ${envName(key, o)}`,
      ]
        .filter(Boolean)
        .join('; ');
      cmd.addOption(new Option(`${flagOf(key)} ${arg}`, `${help} (${notes})`).helpGroup(heading));
    }
  }
  return cmd;
}

/**
 * Option docs generated from a schema alone: every top-level key, its `.describe()` text and a
 * placeholder from its type (`<n>`, `<bool>`, `<json>`, `<value>`), under one heading. For job specs,
 * whose fields a stage documents with `.describe()`.
 */
export function schemaOptionDocs<S extends ObjectSchema>(
  schema: S,
  heading: string,
): OptionGroups<Extract<keyof S['shape'], string>> {
  const docs = Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, field]) => {
    const t = baseType(field);
    const arg =
      t === 'number'
        ? '<n>'
        : t === 'boolean'
          ? '<bool>'
          : ['object', 'array', 'record'].includes(t)
            ? '<json>'
            : '<value>';
    return [key, arg, describeOf(field) ?? `spec field ${key}`] as const;
  });
  return [[heading, docs as unknown as readonly OptionDoc<Extract<keyof S['shape'], string>>[]]];
}
