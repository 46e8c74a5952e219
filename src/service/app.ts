/**
 * The service kit's app factory (Express 5): the pieces every GET Distill service shares, so a service
 * only writes its own routes. In order: request metrics and access logs, the service's routes (JSON
 * bodies parsed per route, with a size limit and a 415 for other content types; 405 with `Allow` for a
 * known path with another method), `GET /healthz`, `GET /readyz`, `GET /metrics`, then a JSON 404 for
 * unknown routes and one error handler that renders `{ "error": { "code", "message" } }`.
 * A client mistake is always a 4xx; a 500 means a bug (logged with its stack, never sent to clients).
 */
import type { Server } from 'node:http';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Registry } from 'prom-client';
import { ZodError } from 'zod';
import { UsageError } from '../util/errors.js';
import { HttpError, zodBadRequest } from './errors.js';
import type { Logger } from './logging.js';
import { createRegistry, httpMetrics } from './metrics.js';

/** Where a service is in its life: only `ready` takes traffic. */
export type Phase = 'starting' | 'ready' | 'draining';

/** Readiness shared by the probes, the routes and the shutdown helper. */
export class ServiceState {
  private current: Phase = 'starting';
  private why = 'starting up';

  get phase(): Phase {
    return this.current;
  }

  /** Why the service is not ready (for 503 bodies and logs). */
  get reason(): string {
    return this.why;
  }

  get ready(): boolean {
    return this.current === 'ready';
  }

  get draining(): boolean {
    return this.current === 'draining';
  }

  /** Still starting; `reason` says what it waits for (e.g. "loading the model"). Ignored once draining. */
  starting(reason: string): void {
    if (this.current === 'draining') return;
    this.current = 'starting';
    this.why = reason;
  }

  markReady(): void {
    if (this.current === 'draining') return;
    this.current = 'ready';
    this.why = '';
  }

  /** Final: a draining service never becomes ready again. */
  markDraining(): void {
    this.current = 'draining';
    this.why = 'shutting down';
  }

  /** The 503 to send while not ready. */
  notReadyError(): HttpError {
    return this.draining
      ? new HttpError(503, 'draining', 'the service is shutting down; retry on another replica')
      : new HttpError(503, 'not_ready', `not ready: ${this.why}`);
  }
}

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Handlers = RequestHandler | readonly RequestHandler[];

/** What a service's `routes` callback gets. */
export interface RouteKit {
  readonly app: Express;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly state: ServiceState;
  /**
   * Put first on routes that take a JSON body: 415 unless `Content-Type: application/json`, 413 over the limit, 400 for
   * bad JSON.
   */
  readonly json: readonly RequestHandler[];
  /** Registers `path` with one handler (chain) per method; other methods get 405 with `Allow`. HEAD follows GET. */
  route(path: string, methods: Partial<Record<Method, Handlers>>): void;
}

export interface ServiceAppOptions {
  /** Service name, used in logs and `/healthz`. */
  readonly name: string;
  readonly logger: Logger;
  /** Largest accepted JSON body in bytes. */
  readonly bodyLimitBytes: number;
  /** Default: a fresh registry with the default process metrics. */
  readonly registry?: Registry;
  readonly state?: ServiceState;
  /** Routes whose successful requests are logged at debug level (probes, scrapes). */
  readonly quietRoutes?: readonly string[];
  /** Registers the service's own routes. */
  routes(kit: RouteKit): void;
}

export interface ServiceApp {
  readonly app: Express;
  readonly registry: Registry;
  readonly state: ServiceState;
  readonly logger: Logger;
}

/** Builds the app (see the file header for what it contains). Listen with {@link listen}. */
export function createServiceApp(o: ServiceAppOptions): ServiceApp {
  const app = express();
  app.disable('x-powered-by');
  const registry = o.registry ?? createRegistry();
  const state = o.state ?? new ServiceState();
  const logger = o.logger;
  const quiet = new Set(['/healthz', '/readyz', '/metrics', ...(o.quietRoutes ?? [])]);

  app.use(httpMetrics(registry));
  app.use(accessLog(logger, quiet));
  // While draining, tell keep-alive clients to reconnect (to another replica) after this response.
  app.use((_req, res, next) => {
    if (state.draining) res.setHeader('Connection', 'close');
    next();
  });

  const json: RequestHandler[] = [requireJson, express.json({ limit: o.bodyLimitBytes })];
  const kit: RouteKit = {
    app,
    registry,
    logger,
    state,
    json,
    route(path, methods) {
      const r = app.route(path);
      const allow: string[] = [];
      for (const [m, h] of Object.entries(methods) as [Method, Handlers][]) {
        r[m](...(Array.isArray(h) ? h : [h as RequestHandler]));
        allow.push(m.toUpperCase(), ...(m === 'get' ? ['HEAD'] : []));
      }
      r.all((req) => {
        throw new HttpError(
          405,
          'method_not_allowed',
          `${req.method} is not allowed on ${path}; use ${allow.join(', ')}`,
          { Allow: allow.join(', ') },
        );
      });
    },
  };
  o.routes(kit);

  kit.route('/healthz', { get: (_req, res) => void res.json({ status: 'ok', service: o.name }) });
  kit.route('/readyz', {
    get: (_req, res) => {
      if (!state.ready) throw state.notReadyError();
      res.json({ ready: true });
    },
  });
  kit.route('/metrics', {
    get: async (_req, res) => {
      res.type(registry.contentType).send(await registry.metrics());
    },
  });

  app.use((req) => {
    throw new HttpError(404, 'not_found', `no route ${req.method} ${req.path}`);
  });
  app.use(errorHandler(logger));
  return { app, registry, state, logger };
}

/** 415 unless the request declares a JSON body. */
const requireJson: RequestHandler = (req, _res, next) => {
  if (req.is('application/json')) return next();
  const got = req.headers['content-type'];
  // req.is() is null for a request without a body, whatever its Content-Type says.
  if (got && /^application\/json\b/i.test(got))
    throw new HttpError(400, 'bad_request', 'body: is required (a JSON object)');
  throw new HttpError(
    415,
    'unsupported_media_type',
    `Content-Type must be application/json, got ${got ? JSON.stringify(got) : 'none'}`,
  );
};

/** One log line per finished request: method, route pattern, path, status, milliseconds. */
function accessLog(logger: Logger, quiet: ReadonlySet<string>): RequestHandler {
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : undefined;
      const line = {
        method: req.method,
        route,
        path: req.path,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - start) / 1e6,
      };
      if (res.statusCode === 503)
        logger.info(line, 'not ready'); // probes before warm-up and while draining
      else if (res.statusCode >= 500) logger.error(line, 'request failed');
      else if (res.statusCode < 400 && route !== undefined && quiet.has(route)) logger.debug(line, 'request');
      else logger.info(line, 'request');
    });
    next();
  };
}

/** Maps anything thrown by a route or a body parser to an HttpError (unknown errors → 500). */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ZodError) return zodBadRequest(err, 'body');
  // body-parser (raw-body) errors carry a `type` and a 4xx `status`.
  const e = err as {
    type?: string;
    status?: number;
    expose?: boolean;
    message?: string;
    limit?: number;
    length?: number;
  };
  switch (e.type) {
    case 'entity.parse.failed':
      return new HttpError(400, 'invalid_json', `body: not valid JSON (${e.message ?? 'parse error'})`);
    case 'entity.too.large':
      return new HttpError(
        413,
        'payload_too_large',
        `body: ${e.length ?? 'more than'} bytes exceed the limit of ${e.limit} bytes; send a smaller request`,
      );
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpError(415, 'unsupported_media_type', `body: ${e.message ?? 'unsupported encoding'}`);
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return new HttpError(e.status, 'bad_request', e.expose && e.message ? e.message : 'bad request');
  }
  return new HttpError(500, 'internal', 'internal error; the server log has the details', {}, { cause: err });
}

function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const h = toHttpError(err);
    if (h.status >= 500 && h.code === 'internal')
      logger.error({ err, method: req.method, path: req.path }, 'unhandled error');
    if (res.headersSent) {
      // Too late for a JSON error: cut the connection so the client sees a failure, not a short body.
      req.socket.destroy();
      return;
    }
    res
      .status(h.status)
      .set(h.headers)
      .json({ error: { code: h.code, message: h.message } });
  };
}

/**
 * Starts listening. Resolves with the server once bound (port 0 picks a free port: read it from
 * `server.address()`).
 * @throws UsageError when the address is in use or cannot be bound (names host and port).
 */
export function listen(app: Express, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    const onError = (e: NodeJS.ErrnoException): void => {
      const why =
        e.code === 'EADDRINUSE'
          ? 'the port is already in use; pick another one'
          : e.code === 'EADDRNOTAVAIL'
            ? 'the host is not an address of this machine'
            : e.code === 'EACCES'
              ? 'the port needs privileges; use one ≥ 1024'
              : e.message;
      reject(new UsageError(`cannot listen on ${host}:${port}: ${why}`, { cause: e }));
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}
