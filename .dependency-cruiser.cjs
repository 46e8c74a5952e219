/* global module */
/**
 * The layering of docs/architecture.md ("Layers"), enforced: `npm run depcruise` (and scripts/test.sh,
 * after the typecheck) fail on any rule of severity error. Dependencies point down:
 *
 *   services/, src/jobs, src/serve, src/operator   │  src/cli        (siblings at the top)
 *   src/service (the service kit, shared by both)
 *   src/stages
 *   model core: src/get, src/edm, src/teacher, src/train, src/eval
 *   src/data → src/store → src/graph → src/spec, src/util
 *   src/parallel (Open MPI: util only; for src/train, src/stages, src/jobs, src/cli)
 *
 * Type-only imports count (tsPreCompilationDeps), so an interface cannot smuggle a dependency in.
 * Every rule names its reason; keep docs/architecture.md's table and this file in step.
 */

/** Folder patterns (paths relative to the repository root). */
const UTIL = '^src/util/';
const SPEC = '^src/spec/';
const GRAPH = '^src/graph/';
const STORE = '^src/store/';
/** The store's contract: the ObjectStore interface, StoreError and pure URI arithmetic (no fs, no SDK). */
const STORE_CONTRACT = '^src/store/(types|uri)[.]ts$';
const DATA = '^src/data/';
const MODEL_CORE = '^src/(get|edm|teacher|train|eval)/';
const STAGES = '^src/stages/';
const SERVICE_KIT = '^src/service/';
const CLI = '^src/cli/';
const JOBS = '^src/jobs/';
const SERVE = '^src/serve/';
const OPERATOR = '^src/operator/';
const SERVICE_MAINS = '^services/';
const PARALLEL = '^src/parallel/';
const TESTS = '^test/';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'A cycle makes both modules one unit: neither can be loaded, tested or moved alone. One exception: ' +
        'the op files of src/graph/ops build each gradient from other ops (Concat ⇄ Split, MatMul ⇄ Gemm, ' +
        'Add ⇄ Neg …), so cycles made only of op files are allowed; builders run at call time, never at load.',
      from: {},
      to: { circular: true, via: { pathNot: '^src/graph/ops/' } },
    },
    {
      name: 'no-orphans',
      severity: 'warn',
      comment: 'A module of src nothing imports is dead code or a missing entry point.',
      from: {
        orphan: true,
        path: '^src/',
        pathNot: ['[.]d[.]ts$', '^src/cli/main[.]ts$', '^src/serve/ort-worker-boot[.]mjs$'],
      },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve fails at run time (tsx) even when tsc is satisfied.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'util-is-the-bottom',
      severity: 'error',
      comment: 'util (RNG, sha256, progress, UsageError/Interrupted, exit codes) is imported by every layer.',
      from: { path: UTIL },
      to: { path: '^(src|services|scripts|test)/', pathNot: UTIL },
    },
    {
      name: 'spec-only-util',
      severity: 'error',
      comment:
        'Schemas and constants (src/spec) are read by the operator and the stages alike: zod and util only, ' +
        'plus two pure modules it names rather than copies: the URI grammar (store/uri.ts, string parsing) ' +
        'and the preset registry (get/config.ts, zod data). The operator footprint test keeps them light.',
      from: { path: SPEC },
      to: {
        path: '^(src|services|scripts|test)/',
        pathNot: [UTIL, SPEC, '^src/store/uri[.]ts$', '^src/get/config[.]ts$'],
      },
    },
    {
      name: 'graph-only-util-spec',
      severity: 'error',
      comment: 'The graph IR, autodiff and sessions know tensors, not files, datasets or models.',
      from: { path: GRAPH },
      to: { path: '^(src|services|scripts|test)/', pathNot: [GRAPH, UTIL, SPEC] },
    },
    {
      name: 'store-only-util-spec',
      severity: 'error',
      comment: 'The object store moves bytes by URI; it knows no format, model or stage.',
      from: { path: STORE },
      to: { path: '^(src|services|scripts|test)/', pathNot: [STORE, UTIL, SPEC] },
    },
    {
      name: 'data-below-model-core',
      severity: 'error',
      comment: 'Datasets, seeds, safetensors, shards and PNG are formats: graph, store, spec and util below them.',
      from: { path: DATA },
      to: { path: '^(src|services|scripts|test)/', pathNot: [DATA, STORE, GRAPH, UTIL, SPEC] },
    },
    {
      name: 'model-core-not-up',
      severity: 'error',
      comment:
        'GET, EDM, teachers, training and metrics are used by stages, the CLI and services; importing them ' +
        'back makes the ML code depend on Express, commander and the executors.',
      from: { path: MODEL_CORE },
      to: { path: `${STAGES}|${CLI}|${SERVICE_KIT}|${JOBS}|${SERVE}|${OPERATOR}|${SERVICE_MAINS}|^scripts/` },
    },
    {
      name: 'model-core-not-store-backends',
      severity: 'error',
      comment:
        'Stages open stores (storeFor) and pass an ObjectStore or bytes in; the model core may name the ' +
        'contract (ObjectStore, StoreError, joinUri) but never picks a backend (fs, the AWS SDK). No ' +
        'exceptions: the eval stage reads an ONNX --features URI and hands src/eval/features.ts its bytes.',
      from: { path: MODEL_CORE },
      to: { path: STORE, pathNot: STORE_CONTRACT },
    },
    {
      name: 'stages-not-up',
      severity: 'error',
      comment:
        'Stages take options, a store and callbacks; they never know which executor (CLI, job, operator) runs them.',
      from: { path: STAGES },
      to: { path: `${CLI}|${SERVICE_KIT}|${JOBS}|${SERVE}|${OPERATOR}|${SERVICE_MAINS}|^scripts/` },
    },
    {
      name: 'service-kit-light',
      severity: 'error',
      comment:
        'The service kit (Express app, logs, metrics server, Pushgateway, error classes, termination message) is ' +
        'shared by the CLI, the services and the operator, so it must not pull in stages, the model core or ' +
        'a store backend; StoreError (store/types) is the one thing it reads below util.',
      from: { path: SERVICE_KIT },
      to: { path: '^(src|services|scripts|test)/', pathNot: [SERVICE_KIT, UTIL, SPEC, STORE_CONTRACT] },
    },
    {
      name: 'cli-not-services',
      severity: 'error',
      comment:
        'The CLI and the services are siblings at the top: shared pieces live in the service kit or below. ' +
        "One composition point: `get-distill serve` (src/cli/main.ts) mounts the inference service's own command.",
      from: { path: CLI },
      to: {
        path: `${JOBS}|${SERVE}|${OPERATOR}|${SERVICE_MAINS}`,
        pathNot: '^src/serve/command[.]ts$',
      },
    },
    {
      name: 'only-cli-main-mounts-serve',
      severity: 'error',
      comment: 'The exception above is for the program root only, not for any other CLI module.',
      from: { path: CLI, pathNot: '^src/cli/main[.]ts$' },
      to: { path: SERVE },
    },
    {
      name: 'nothing-imports-cli',
      severity: 'error',
      comment: 'The CLI is an entry point (bin/get-distill.js); what others need from it belongs lower down.',
      from: { pathNot: CLI },
      to: { path: CLI },
    },
    {
      name: 'jobs-not-serve-or-operator',
      severity: 'error',
      comment: 'Stage jobs, the inference service and the operator deploy as separate images; each stands alone.',
      from: { path: JOBS },
      to: { path: `${SERVE}|${OPERATOR}` },
    },
    {
      name: 'serve-not-jobs-or-operator',
      severity: 'error',
      comment: 'The inference service stands alone (see jobs-not-serve-or-operator).',
      from: { path: SERVE },
      to: { path: `${JOBS}|${OPERATOR}` },
    },
    {
      name: 'operator-only-spec-util-service',
      severity: 'error',
      comment:
        'The operator knows stage specs and Kubernetes objects, never the model core, the stages or the ' +
        'stage jobs: its image carries no ML stack.',
      from: { path: OPERATOR },
      to: { path: '^(src|services|scripts|test)/', pathNot: [OPERATOR, SPEC, UTIL, SERVICE_KIT] },
    },
    {
      name: 'operator-without-ml-stack',
      severity: 'error',
      comment: 'Not even transitively: onnxruntime and TensorFlow.js must not load in the operator process.',
      from: { path: '^services/operator/main[.]ts$' },
      to: { path: 'node_modules/(onnxruntime-node|onnxruntime-common|@tensorflow/[^/]+)/', reachable: true },
    },
    {
      name: 'service-mains-not-each-other',
      severity: 'error',
      comment: 'Each services/<name>/main.ts is one container entry point.',
      from: { path: '^services/([^/]+)/' },
      to: { path: '^services/([^/]+)/', pathNot: '^services/$1/' },
    },
    {
      name: 'parallel-only-util',
      severity: 'error',
      comment:
        'Data parallelism (src/parallel: the Communicator, the Open MPI addon loader, the mpirun launcher) ' +
        'is a leaf: node builtins and util only, no package, so the launcher pod and the ranks load it alone.',
      from: { path: PARALLEL },
      to: { path: '^(src|services|scripts|test|node_modules)/', pathNot: [PARALLEL, UTIL] },
    },
    {
      name: 'parallel-for-training',
      severity: 'error',
      comment:
        'Only training and what runs it use the world of ranks: src/train, src/stages, src/jobs, src/cli. ' +
        'The operator, serve and the service kit never start MPI.',
      from: { path: '^(src|services)/', pathNot: [PARALLEL, '^src/(train|stages|jobs|cli)/'] },
      to: { path: PARALLEL },
    },
    {
      name: 'express-at-the-edge',
      severity: 'error',
      comment: 'Express belongs to the service kit and the services, never to the CLI, stages or model core.',
      from: { pathNot: `${SERVICE_KIT}|${JOBS}|${SERVE}|${OPERATOR}|${SERVICE_MAINS}|^scripts/` },
      to: { path: 'node_modules/express/' },
    },
    {
      name: 's3-sdk-in-the-store',
      severity: 'error',
      comment: 'Only the S3 backend speaks to the AWS SDK; everything else goes through ObjectStore.',
      from: { pathNot: '^src/store/s3[.]ts$|^scripts/' },
      to: { path: 'node_modules/@aws-sdk/' },
    },
    {
      name: 'kubernetes-in-the-operator',
      severity: 'error',
      comment: 'Only the operator talks to the Kubernetes API.',
      from: { pathNot: `${OPERATOR}|^services/operator/|^scripts/|${TESTS}` },
      to: { path: 'node_modules/(@kubernetes/client-node|kubernetes-models)/' },
    },
    {
      name: 'src-not-tests',
      severity: 'error',
      comment: 'Tests may import anything; shipped code must not import test helpers.',
      from: { path: '^(src|services)/' },
      to: { path: TESTS },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // node_modules may be a symlink (worktrees share one); keep its modules under node_modules/.
    preserveSymlinks: true,
    includeOnly: '^(src|services|scripts|test|node_modules)/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: { text: { highlightFocused: true } },
  },
};
