/**
 * A Prometheus Pushgateway client for batch jobs that may end before any scrape (the eval job): PUT of
 * a whole registry under a job and grouping labels. A push never fails the job: the first failure is
 * logged as a warning (URL without credentials), later ones at debug level. Userinfo in the URL is sent
 * as basic auth and never appears in logs or error messages.
 */
import { Pushgateway, type Registry } from 'prom-client';
import { UsageError } from '../util/errors.js';
import { withoutUserinfo } from '../util/redact.js';
import type { Logger } from './logging.js';

/** Env var naming the Pushgateway (e.g. `http://pushgateway.monitoring:9091`); unset or empty: no pushes. */
export const PUSHGATEWAY_URL_ENV = 'GET_DISTILL_PUSHGATEWAY_URL';

/**
 * A validated Pushgateway address: `url` (may carry basic-auth userinfo, used for requests only) and
 * `display` (for logs).
 */
export interface PushgatewayTarget {
  readonly url: string;
  readonly display: string;
}

/**
 * Checks a Pushgateway URL: http or https, a host, no query or fragment (the push path is appended to
 * it). Userinfo is allowed (sent as basic auth) and never appears in `display` or in error messages.
 * @param source where the value came from, named in errors (an option name or the env var).
 * @throws UsageError naming the problem and the expected form.
 */
export function parsePushgatewayUrl(raw: string, source = PUSHGATEWAY_URL_ENV): PushgatewayTarget {
  const shown = JSON.stringify(withoutUserinfo(raw).replace(/[?#].*$/, '')); // a query may hold a token
  const fix = 'expected e.g. http://pushgateway:9091';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${source}: ${shown} is not a URL; ${fix}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new UsageError(
      `${source}: ${shown} uses ${u.protocol.slice(0, -1)}; the Pushgateway is reached over http or https, ${fix}`,
    );
  if (!u.hostname) throw new UsageError(`${source}: ${shown} has no host; ${fix}`);
  if (u.search || u.hash)
    throw new UsageError(
      `${source}: ${shown} has a query or fragment, which a push cannot use; give the gateway's base URL, ${fix}`,
    );
  const clean = new URL(u);
  clean.username = '';
  clean.password = '';
  return { url: u.href, display: clean.href };
}

/** The Pushgateway URL from the environment ($GET_DISTILL_PUSHGATEWAY_URL), or undefined when unset or blank. */
export function pushgatewayFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[PUSHGATEWAY_URL_ENV]?.trim();
  return v ? v : undefined;
}

export interface PushgatewayClientOptions {
  /** The gateway's base URL (checked with {@link parsePushgatewayUrl}). */
  readonly url: string;
  /** Where `url` came from, named in errors (an option name or the env var; default the env var). */
  readonly source?: string;
  /** The `job` label of every push. */
  readonly job: string;
  /** Grouping labels (e.g. `{instance: runId}`): a push replaces this group. */
  readonly groupings: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Per-push HTTP timeout in milliseconds (default 5,000). */
  readonly timeoutMs?: number;
}

/** Pushes one registry to one group of a Pushgateway; counts and logs its outcomes. */
export class PushgatewayClient {
  /** The gateway URL for logs (no credentials). */
  readonly display: string;
  /** Pushes that reached the gateway. */
  pushes = 0;
  /** Failed pushes so far (each one logged; only the first as a warning). */
  pushFailures = 0;

  private readonly gateway: Pushgateway<'text/plain; version=0.0.4; charset=utf-8'>;
  /** The gateway URL's userinfo parts (raw and decoded), masked in logged error messages. */
  private readonly secrets: string[] = [];

  /** @throws UsageError when the URL is invalid (see {@link parsePushgatewayUrl}). */
  constructor(
    registry: Registry,
    private readonly o: PushgatewayClientOptions,
  ) {
    const target = parsePushgatewayUrl(o.url, o.source);
    this.display = target.display;
    const u = new URL(target.url);
    // The password is the secret; a username alone only when it looks like a token (a short user
    // name such as "e" would otherwise mask every "e" of every logged message).
    const secret = u.password || (u.username.length >= 8 ? u.username : '');
    if (secret) this.secrets.push(secret, decodeURIComponent(secret));
    this.gateway = new Pushgateway(target.url, { timeout: o.timeoutMs ?? 5000 }, registry);
  }

  /** PUTs the registry now (replacing the group). Never rejects: resolves false when it failed (logged). */
  async push(): Promise<boolean> {
    const { job, groupings } = this.o;
    try {
      await this.gateway.push({ jobName: job, groupings: { ...groupings } });
      this.pushes++;
      return true;
    } catch (err) {
      this.pushFailures++;
      const line = { pushgateway: this.display, job, ...groupings, error: this.scrub(err) };
      if (this.pushFailures === 1)
        this.o.logger.warn(
          line,
          'metrics push to the Pushgateway failed; the job goes on (later failures are logged at debug level)',
        );
      else this.o.logger.debug(line, 'metrics push failed again');
      return false;
    }
  }

  /** An error message with the gateway URL's credentials masked (Node's errors name host:port only, but be sure). */
  private scrub(err: unknown): string {
    let msg = err instanceof Error ? err.message || (err as { code?: string }).code || err.name : String(err);
    for (const s of this.secrets) msg = msg.split(s).join('***');
    return msg.slice(0, 500);
  }
}
