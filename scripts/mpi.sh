#!/usr/bin/env bash
# Open MPI for data-parallel training (docs/parallel.md), used by .ci/run and scripts/test.sh:
#
#   scripts/mpi.sh install   apt-get install openmpi-bin libopenmpi-dev when mpirun or mpicc is missing
#                            (apt-get update first only if the install fails); root only, else it names
#                            the sudo command and exits 1
#   scripts/mpi.sh build     install, then build the addon (npm run build:mpi) when it is missing or
#                            older than its sources
#
# .ci/run installs before `npm ci`, whose postinstall then builds the addon; `npm test` runs `build`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openmpi-bin libopenmpi-dev)
ADDON=native/mpi/build/Release/mpi_addon.node

install() {
  command -v mpirun >/dev/null && command -v mpicc >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "mpi.sh: Open MPI is missing: run 'sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}'" >&2
    exit 1
  fi
  echo "mpi.sh: installing ${PACKAGES[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}")
  if ! "${apt[@]}" >/dev/null; then
    apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    "${apt[@]}" >/dev/null
  fi
}

build() {
  install
  if [ ! -f "$ADDON" ] || [ native/mpi/mpi_addon.cc -nt "$ADDON" ] || [ native/mpi/binding.gyp -nt "$ADDON" ]; then
    node scripts/build-mpi.mjs --require
  fi
}

case "${1:-}" in
  install) install ;;
  build) build ;;
  *)
    echo "usage: $0 install|build" >&2
    exit 2
    ;;
esac
