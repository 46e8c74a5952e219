#!/usr/bin/env bash
# `npm test`: typecheck, check the layering (npm run depcruise), lint (ESLint and Prettier's check),
# install Open MPI and build its addon when missing (scripts/mpi.sh, for test/parallel), start the local
# S3 server (Ceph RADOS Gateway on 127.0.0.1; scripts/s3-server.sh) and the local
# Prometheus + Pushgateway (scripts/prom-server.sh), both installed with apt-get when missing and started
# side by side, run every test, and stop the servers by PID at the end when this run started them (a
# server that was already up is left running).
#
#   npm test                              all of test/*/*.test.ts and test/*/*/*.test.ts
#   npm test -- test/store/*.test.ts      just these files
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit
# The layers of docs/architecture.md (.dependency-cruiser.cjs): any violation of severity error fails the run.
npm run -s depcruise
# Lint and formatting of our sources (eslint.config.js, .prettierrc.json; ignores in both ignore lists).
npx eslint .
npx prettier --check .
started_s3=0
started_prom=0
stop_servers() {
  if [ "$started_s3" = 1 ]; then bash scripts/s3-server.sh stop >/dev/null || true; fi
  if [ "$started_prom" = 1 ]; then bash scripts/prom-server.sh stop >/dev/null || true; fi
}
trap stop_servers EXIT
need_s3=0
need_prom=0
bash scripts/s3-server.sh status >/dev/null 2>&1 || need_s3=1
bash scripts/prom-server.sh status >/dev/null 2>&1 || need_prom=1
# Open MPI and its addon for test/parallel (installed and built when missing; the addon also when older
# than its sources), before any other apt-get runs.
bash scripts/mpi.sh build
# Install Prometheus first when missing (two apt-gets at once would fight over the dpkg lock), then
# cold-start both servers side by side.
if [ "$need_prom" = 1 ]; then bash scripts/prom-server.sh install; fi
pids=()
if [ "$need_s3" = 1 ]; then
  started_s3=1
  bash scripts/s3-server.sh start >/dev/null &
  pids+=($!)
fi
if [ "$need_prom" = 1 ]; then
  started_prom=1
  bash scripts/prom-server.sh start >/dev/null &
  pids+=($!)
fi
failed=0
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || exit 1
set -a
# shellcheck disable=SC1091
. "${GET_DISTILL_S3_DIR:-/tmp/get-distill-s3}/env"
# shellcheck disable=SC1091
. "${GET_DISTILL_PROM_DIR:-/tmp/get-distill-prom}/env"
set +a
# The SDK warns on Node 20 that its releases after January 2027 need Node 22; the pinned one does not.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
[ $# -gt 0 ] || set -- test/*/*.test.ts test/*/*/*.test.ts
node --import tsx --test --test-concurrency=1 "$@"
