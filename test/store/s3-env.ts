/**
 * Test setup for the S3 tests: loads the env file written by `scripts/s3-server.sh start` (the local
 * Ceph RADOS Gateway's endpoint and test keys) into process.env, and names unique buckets.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const stateDir = process.env.GET_DISTILL_S3_DIR || '/tmp/get-distill-s3';
const envFile = `${stateDir}/env`;

/** Gateway settings; throws with the fix when the server was not started. */
export function loadS3Env(): { endpoint: string; accessKeyId: string; secretAccessKey: string } {
  let text: string;
  try {
    text = readFileSync(envFile, 'utf8');
  } catch {
    throw new Error(`${envFile} missing: run 'bash scripts/s3-server.sh start' first (npm test does)`);
  }
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1]!] = m[2]!;
  }
  // The SDK warns on every Node 20 process that releases after January 2027 will need Node 22.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  return {
    endpoint: process.env.GET_DISTILL_S3_ENDPOINT!,
    accessKeyId: process.env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY!,
  };
}

/** A fresh bucket name per test run (the memstore OSD is wiped on every cold start anyway). */
export const uniqueBucket = (tag: string): string =>
  `t-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

/** Deterministic pseudo-random bytes (xorshift32), so a corrupted round trip cannot pass by luck. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
