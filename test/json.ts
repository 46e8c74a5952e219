/**
 * Parsed JSON or YAML as the tests read it: HTTP bodies, JSON log lines, Kubernetes objects, CRD schemas,
 * rendered Helm manifests. Tests walk these documents freely and assert the values they find, so a wrong
 * shape fails the assertion that reads it; a structural type per document would only restate those checks.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON; the assertions check its shape
export type Json = any;

/** A parsed JSON object (a response body, a log line, a Kubernetes object). */
export type JsonObject = Record<string, Json>;
