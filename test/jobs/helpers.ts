/**
 * Shared helpers of the job-machinery tests: HTTP calls, polling, Prometheus samples, and the
 * environment of an S3 endpoint that refuses connections (for retryable store failures).
 */
import { createServer } from 'node:net';
import type { Json } from '../json.js';

/** One HTTP call; the body is parsed as JSON when the answer says so, else returned as text. */
export async function call(
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; body: Json }> {
  const r = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const json = (r.headers.get('content-type') ?? '').includes('application/json');
  return { status: r.status, headers: r.headers, body: json && text ? JSON.parse(text) : text };
}

/**
 * Polls `f` every 10 ms until it returns something other than undefined (or false/null) and returns it.
 * @throws Error naming `what` after `timeoutMs`.
 */
export async function until<T>(
  f: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The value of sample `name` with exactly `labels` (any order) in Prometheus text, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_])/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (got === want) return Number(m[3]);
  }
  return undefined;
}

/** Env of an S3 endpoint on a free 127.0.0.1 port nothing listens on (connections are refused). */
export async function unreachableS3Env(): Promise<Record<string, string>> {
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  return {
    GET_DISTILL_S3_ENDPOINT: `http://127.0.0.1:${port}`,
    AWS_ACCESS_KEY_ID: 'test-access-key',
    AWS_SECRET_ACCESS_KEY: 'test-secret-key',
    AWS_REGION: 'us-east-1',
    GET_DISTILL_S3_MAX_ATTEMPTS: '2',
  };
}
