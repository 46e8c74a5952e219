/**
 * Credentials out of user-given URIs before they reach a log line, an error message or a metric label.
 */

/**
 * `http://user:pw@host/x` → `http://host/x`, also for strings `URL` cannot parse. A password pasted
 * unescaped may hold `/` (AWS secret keys do): `user:` followed by anything up to an `@` before the
 * query counts as userinfo too, unless the colon starts a port (`host:8080/m@v2` is kept). The cost:
 * a rare path like `s3://bucket/a:b@c` loses `bucket/a:b@`, which beats leaking a key.
 */
export function withoutUserinfo(raw: string): string {
  return raw
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@:]*:(?!\d{1,5}(?:\/|$))[^?#@]*@/i, '$1')
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}
