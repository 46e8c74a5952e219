/**
 * The operator's command line (services/operator/main.ts): options from OperatorConfigSchema (flags,
 * GET_DISTILL_* env, defaults), the kubeconfig (in-cluster ServiceAccount, else KUBECONFIG or
 * ~/.kube/config), the metrics/health server (/metrics, /healthz, /readyz: ready once the caches synced,
 * on standby replicas too), and SIGTERM: stop the controllers, release the Lease, exit 0.
 */
import { Command, CommanderError } from 'commander';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { addConfigOptions, resolveConfig, schemaOptionDocs } from '../service/config.js';
import { createLogger, createServiceApp, listen } from '../service/index.js';
import { UsageError } from '../util/errors.js';
import { OperatorConfigSchema, type OperatorConfig } from './config.js';
import { Operator } from './manager.js';
import { API_VERSION, ENDPOINT, RUN } from './api/v1alpha1/group.js';

/** Exit code of bad options (as every get-distill command). */
const EXIT_USAGE = 2;

/** Starts the operator with a resolved config; resolves with a stop function once the caches synced. */
export async function startOperator(
  cfg: OperatorConfig,
  kc: KubeConfig,
): Promise<{ stop(): Promise<void>; port: number }> {
  const logger = createLogger('operator', cfg.logLevel);
  const { app, registry, state } = createServiceApp({
    name: 'get-distill-operator',
    logger,
    bodyLimitBytes: 1024,
    routes: () => {},
  });
  const server = await listen(app, cfg.metricsPort, cfg.host);
  const port = (server.address() as { port: number }).port;
  state.starting('syncing the informer caches');
  const op = new Operator({ kubeConfig: kc, cfg, log: logger, registry });
  logger.info(
    {
      port,
      namespaces: cfg.namespaces ?? 'all',
      leaderElection: cfg.leaderElection,
      kinds: [RUN.kind, ENDPOINT.kind],
      apiVersion: API_VERSION,
    },
    'operator starting',
  );
  await op.start();
  state.markReady();
  return {
    port,
    async stop() {
      state.markDraining();
      await op.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The cluster to talk to: in a pod its ServiceAccount, else KUBECONFIG (first existing file of the
 * list), else ~/.kube/config. client-node would otherwise fall back to http://localhost:8080 without
 * a word, and the operator would wait for a cluster that is not there.
 * @throws UsageError naming what is missing and how to give it.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const files = (env.KUBECONFIG ?? join(env.HOME ?? homedir(), '.kube', 'config')).split(delimiter).filter(Boolean);
  const inCluster = !!env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token');
  if (!inCluster && !files.some((f) => existsSync(f))) {
    throw new UsageError(
      `no Kubernetes cluster configured: not in a pod with a ServiceAccount, and no kubeconfig at ` +
        `${files.join(', ') || '~/.kube/config'}; set KUBECONFIG`,
    );
  }
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new UsageError(`cannot read the Kubernetes configuration: ${(e as Error).message}; check KUBECONFIG`);
  }
  if (!kc.getCurrentCluster())
    throw new UsageError('the kubeconfig names no current cluster: set current-context (kubectl config use-context …)');
  return kc;
}

/** `get-distill-operator [options]`; exits 2 with one line on bad options. */
export async function operatorMain(argv = process.argv, env = process.env): Promise<void> {
  const cmd = new Command('get-distill-operator')
    .description(
      `Kubernetes operator of GET Distill: reconciles ${RUN.kind} (datagen → train → export → eval → ` +
        `endpoint) and ${ENDPOINT.kind} (Deployment, Service, HPA or KEDA) objects of ${API_VERSION}.`,
    )
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  addConfigOptions(
    cmd,
    OperatorConfigSchema,
    schemaOptionDocs(OperatorConfigSchema, 'Options (each also as GET_DISTILL_<NAME> env var):'),
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const cfg = resolveConfig(OperatorConfigSchema, opts, env);
    const kc = loadKubeConfig(env);
    const running = await startOperator(cfg, kc);
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) process.exit(1);
      stopping = true;
      process.stderr.write(`get-distill-operator: ${sig}: stopping controllers and releasing the Lease\n`);
      void running.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  try {
    await cmd.parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE);
    process.stderr.write(`get-distill-operator: ${(e as Error).message}\n`);
    process.exit(e instanceof UsageError ? EXIT_USAGE : 1);
  }
}
