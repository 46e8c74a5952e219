// The CRDs in the chart are exactly what the zod schemas generate, validate as apiextensions/v1, and are structural.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { CRD_DIR, crdFiles } from '../../scripts/gen-crds.js';
import { runCrd, endpointCrd, structural } from '../../src/operator/api/v1alpha1/crd.js';
import { DistillationRunSpecSchema } from '../../src/operator/api/v1alpha1/run.js';
import type { Json } from '../json.js';

test('charts/get-distill/crds holds the generated CRDs (run npm run gen-crds after a schema change)', () => {
  for (const [file, text] of Object.entries(crdFiles()))
    assert.equal(readFileSync(join(CRD_DIR, file), 'utf8'), text, `${file} is stale`);
});

/** Every schema node below the root has a type (or preserves unknown fields): the structural rule. */
function untyped(node: Json, path: string, out: string[]): string[] {
  if (!node.type && !node['x-kubernetes-preserve-unknown-fields']) out.push(path);
  if (node.additionalProperties === false) out.push(`${path} (additionalProperties: false)`);
  for (const [k, v] of Object.entries(node.properties ?? {})) untyped(v, `${path}.${k}`, out);
  if (node.items) untyped(node.items, `${path}[]`, out);
  if (typeof node.additionalProperties === 'object') untyped(node.additionalProperties, `${path}{}`, out);
  return out;
}

test('both CRDs validate as apiextensions.k8s.io/v1, are structural, and carry status, columns and CEL rules', () => {
  for (const crd of [runCrd(), endpointCrd()]) {
    new CustomResourceDefinition(crd as never).validate();
    const v = crd.spec.versions[0];
    assert.deepEqual(v.subresources, { status: {} });
    assert.deepEqual(untyped(v.schema.openAPIV3Schema, 'root', []), []);
    assert.equal(v.schema.openAPIV3Schema.properties.status.properties.conditions['x-kubernetes-list-type'], 'map');
    assert.deepEqual(v.schema.openAPIV3Schema.properties.status.properties.conditions['x-kubernetes-list-map-keys'], [
      'type',
    ]);
  }
  const run = runCrd().spec.versions[0];
  assert.deepEqual(
    run.additionalPrinterColumns.map((c: { name: string }) => c.name),
    ['Stage', 'Shards', 'Step', 'Loss', 'FID', 'Endpoint', 'Age'],
  );
  const spec = run.schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(
    spec.properties.datagen['x-kubernetes-validations'].map((r: { rule: string }) => r.rule),
    [
      'self.seeds.end > self.seeds.start',
      '(self.seeds.end - self.seeds.start + self.shardSize - 1) / self.shardSize <= 10000',
    ],
  );
  assert.equal(spec.properties.store['x-kubernetes-validations'][0].rule, 'self.uri == oldSelf.uri');
  assert.equal(spec.properties.datagen.properties.shardSize.default, 2048);
  assert.equal(spec.properties.training.properties.iterations.default, 6); // the trainer's own default (GET: K = 6)
  assert.deepEqual(spec.required, ['store', 'datagen', 'training']);
  assert.equal(runCrd().metadata.name, 'distillationruns.distill.getdistill.dev');
  assert.equal(
    run.schema.openAPIV3Schema['x-kubernetes-validations'][0].rule,
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40",
  );
  assert.match(
    endpointCrd().spec.versions[0].schema.openAPIV3Schema['x-kubernetes-validations'][0].rule,
    /size\(self\.metadata\.name\) <= 63$/,
  );
  assert.deepEqual(endpointCrd().spec.names.shortNames, ['genep']);
});

test('structural() drops int64 sentinels and additionalProperties: false, and refuses untyped nodes', () => {
  assert.deepEqual(
    structural({
      type: 'object',
      additionalProperties: false,
      properties: { n: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
    }),
    { type: 'object', properties: { n: { type: 'integer', minimum: 1 } } },
  );
  assert.throws(
    () => structural({ type: 'object', properties: { x: { anyOf: [{ type: 'string' }] } } }),
    /schema node without a type/,
  );
});

test('the example run parses, and the schema rejects what the CEL rules reject', () => {
  const example = parse(readFileSync(join(CRD_DIR, '..', 'examples', 'run.yaml'), 'utf8'));
  const spec = DistillationRunSpecSchema.parse(example.spec);
  assert.equal(spec.datagen.seeds.end, 65536);
  const bad = (datagen: object) => DistillationRunSpecSchema.safeParse({ ...example.spec, datagen });
  const e1 = bad({ seeds: { start: 5, end: 5 } });
  assert.equal(e1.success, false);
  assert.deepEqual(e1.error!.issues[0].path, ['datagen', 'seeds', 'end']);
  const e2 = bad({ seeds: { start: 0, end: 20_001 }, shardSize: 2 });
  assert.match(e2.error!.issues[0].message, /more than 10000 shards/);
  for (const uri of ['file:///tmp/x', 's3://a..b/x', 's3://bucket//x', 's3://-b/x']) {
    assert.equal(DistillationRunSpecSchema.safeParse({ ...example.spec, store: { uri } }).success, false, uri);
  }
  assert.equal(
    DistillationRunSpecSchema.safeParse({ ...example.spec, store: { uri: 's3://my-bucket.eu/runs/r1/' } }).success,
    true,
  );
  const evalWith = (evaluation: object) => DistillationRunSpecSchema.safeParse({ ...example.spec, evaluation });
  assert.equal(evalWith({ features: 'imagenet' }).success, false);
  assert.equal(evalWith({ reference: 'cifar10:test' }).success, false);
  assert.equal(evalWith({ features: 'fashion-mnist', reference: 'fashion-mnist:test' }).success, true);
  assert.equal(evalWith({ features: 's3://nets/inception.onnx', reference: 's3://stats/cifar10.npz' }).success, true);
});
