#!/usr/bin/env bash
# `npm test`: typecheck, start the local S3 server (Ceph RADOS Gateway on 127.0.0.1, installed with
# apt-get when missing; scripts/s3-server.sh), run every test, and stop the server by PID at the end
# when this run started it (a server that was already up is left running).
#
#   npm test                              all of test/*/*.test.ts
#   npm test -- test/store/*.test.ts      just these files
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit
started=0
stop_server() { if [ "$started" = 1 ]; then bash scripts/s3-server.sh stop >/dev/null || true; fi; }
trap stop_server EXIT
if ! bash scripts/s3-server.sh status >/dev/null 2>&1; then
  started=1
  bash scripts/s3-server.sh start >/dev/null
fi
set -a
# shellcheck disable=SC1091
. "${GET_DISTILL_S3_DIR:-/tmp/get-distill-s3}/env"
set +a
# The SDK warns on Node 20 that its releases after January 2027 need Node 22; the pinned one does not.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
[ $# -gt 0 ] || set -- test/*/*.test.ts
node --import tsx --test --test-concurrency=1 "$@"
