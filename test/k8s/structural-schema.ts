/**
 * Validates an object against a CRD's structural OpenAPI v3 schema (apiextensions.k8s.io/v1
 * `openAPIV3Schema`), as the API server does on create and update: types (integer, number, string,
 * boolean, object, array), `properties` and `additionalProperties`, `required`, `enum`, `pattern`,
 * `format` int32/int64 ranges, string/array/number bounds, `nullable`, `anyOf`/`allOf`/`oneOf`/`not`,
 * `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields` and the map/set list types.
 *
 * One deliberate difference: a field the schema does not know is an error here, where the API server
 * would prune it silently (or warn, with fieldValidation=Warn). For a test that is the point: a field the
 * operator sets but the CRD does not have would be lost on a real cluster. Not done: defaulting, CEL
 * (`x-kubernetes-validations`; the MPIJob CRD has none), and the API server's own ObjectMeta checks on the
 * root `metadata` (it is skipped, as the CRD schema only says `type: object` there).
 */
import type { Json, JsonObject } from '../json.js';

/** A structural schema node (parsed YAML/JSON). */
export type SchemaNode = JsonObject;

const INT32: [number, number] = [-(2 ** 31), 2 ** 31 - 1];
const INT64: [number, number] = [-(2 ** 63), 2 ** 63];

const isObject = (v: Json): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOk(type: string, v: Json): boolean {
  switch (type) {
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    default:
      throw new Error(`structural schema: unknown type ${type}`);
  }
}

const describe = (v: Json): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : typeof v === 'number' && Number.isInteger(v)
        ? 'integer'
        : typeof v;

/**
 * The problems of `value` against `schema`, each as `path: what`; empty when valid. `path` names the
 * value (`spec.mpiReplicaSpecs.Worker.replicas`); `root` marks the object's top level, whose `metadata`
 * the API server validates itself.
 */
export function validateStructural(value: Json, schema: SchemaNode, path = '', root = true): string[] {
  const out: string[] = [];
  const at = path || '<root>';
  if (value === null) {
    if (!schema.nullable) out.push(`${at}: must not be null`);
    return out;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (!typeOk('integer', value) && typeof value !== 'string') {
      out.push(`${at}: must be an integer or a string, got ${describe(value)}`);
      return out;
    }
  } else if (schema.type && !typeOk(schema.type, value)) {
    out.push(`${at}: must be of type ${schema.type}, got ${describe(value)}`);
    return out;
  }
  if (schema.enum && !schema.enum.some((e: Json) => JSON.stringify(e) === JSON.stringify(value)))
    out.push(`${at}: unsupported value ${JSON.stringify(value)}: supported values: ${schema.enum.join(', ')}`);
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value))
      out.push(`${at}: ${JSON.stringify(value)} should match '${schema.pattern}'`);
    if (schema.maxLength !== undefined && [...value].length > schema.maxLength)
      out.push(`${at}: longer than ${schema.maxLength} characters`);
    if (schema.minLength !== undefined && [...value].length < schema.minLength)
      out.push(`${at}: shorter than ${schema.minLength} characters`);
  }
  if (typeof value === 'number') {
    const range = schema.format === 'int32' ? INT32 : schema.format === 'int64' ? INT64 : undefined;
    if (range && (value < range[0] || value > range[1])) out.push(`${at}: ${value} is out of ${schema.format} range`);
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${at}: ${value} is below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${at}: ${value} is above ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      out.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.minItems !== undefined && value.length < schema.minItems)
      out.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.items) value.forEach((v, i) => out.push(...validateStructural(v, schema.items, `${path}[${i}]`, false)));
    out.push(...listTypeProblems(value, schema, at));
  }
  if (isObject(value)) out.push(...objectProblems(value, schema, path, root));
  for (const [i, s] of (schema.allOf ?? []).entries())
    for (const p of validateStructural(value, s, path, root)) out.push(`${p} (allOf[${i}])`);
  if (schema.anyOf && !schema.anyOf.some((s: SchemaNode) => validateStructural(value, s, path, root).length === 0))
    out.push(`${at}: matches none of anyOf`);
  if (schema.oneOf) {
    const n = schema.oneOf.filter((s: SchemaNode) => validateStructural(value, s, path, root).length === 0).length;
    if (n !== 1) out.push(`${at}: matches ${n} of oneOf, not exactly one`);
  }
  if (schema.not && validateStructural(value, schema.not, path, root).length === 0)
    out.push(`${at}: must not match the schema in not`);
  return out;
}

function objectProblems(value: JsonObject, schema: SchemaNode, path: string, root: boolean): string[] {
  const out: string[] = [];
  const join = (k: string) => (path ? `${path}.${k}` : k);
  for (const r of schema.required ?? []) if (value[r] === undefined) out.push(`${join(r)}: Required value`);
  const props: Record<string, SchemaNode> = schema.properties ?? {};
  for (const [k, v] of Object.entries(value)) {
    if (root && k === 'metadata') continue;
    if (props[k]) out.push(...validateStructural(v, props[k], join(k), false));
    else if (isObject(schema.additionalProperties))
      out.push(...validateStructural(v, schema.additionalProperties, join(k), false));
    else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties !== true)
      out.push(`${join(k)}: unknown field (the API server would prune it)`);
  }
  return out;
}

/** x-kubernetes-list-type: map (unique keys) and set (unique items). */
function listTypeProblems(value: Json[], schema: SchemaNode, at: string): string[] {
  const type = schema['x-kubernetes-list-type'];
  if (type !== 'map' && type !== 'set') return [];
  const keys: string[] = schema['x-kubernetes-list-map-keys'] ?? [];
  const id = (v: Json) => JSON.stringify(type === 'map' ? keys.map((k) => v?.[k]) : v);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const v of value) {
    if (seen.has(id(v))) out.push(`${at}: duplicate ${type === 'map' ? `key ${id(v)}` : `item ${id(v)}`}`);
    seen.add(id(v));
  }
  return out;
}

/** The `openAPIV3Schema` of version `version` of a CRD object. */
export function crdSchema(crd: JsonObject, version: string): SchemaNode {
  const v = crd.spec?.versions?.find((x: JsonObject) => x.name === version);
  if (!v?.schema?.openAPIV3Schema) throw new Error(`CRD ${crd.metadata?.name} has no schema for ${version}`);
  return v.schema.openAPIV3Schema;
}
