// Shared test helpers: a real client-node KubeConfig pointed at the in-memory FakeApiServer.
import type { KubeConfig } from '@kubernetes/client-node';
import { FakeApiServer, kubeConfigFor } from '../../k8s/api-server.js';

/** Start a FakeApiServer and a KubeConfig for it (http, skipTLSVerify as client-node 1.4 needs). */
export async function fakeCluster(): Promise<{ srv: FakeApiServer; kc: KubeConfig }> {
  const srv = await FakeApiServer.start();
  return { srv, kc: kubeConfigFor(srv.url) };
}

/** Poll `pred` every 5 ms; throws naming `what` after `ms`. */
export async function waitFor(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Whether `p` is still unsettled once the already-queued microtasks ran. Exact for a promise that its
 * producer settles synchronously (a WorkQueue waiter, a deferred): no timing involved.
 */
export async function isPending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([p, Promise.resolve(marker)])) === marker;
}
