#!/usr/bin/env bash
# A real Prometheus 2.42 and Pushgateway 1.5 (Debian packages `prometheus`, `prometheus-pushgateway`) on
# 127.0.0.1 for the eval job's metrics tests. The binaries run as our own background processes with
# their config and storage in the state dir; the Debian systemd/init services are never used (if a
# package's postinst started one on 9090/9091 it is left alone: our ports differ).
#
#   scripts/prom-server.sh start     start (or reuse) both; wait until Prometheus scrapes the gateway; idempotent
#   scripts/prom-server.sh stop      kill both by PID; keep the logs
#   scripts/prom-server.sh status    exit 0 when both answer and the scrape target is up, 1 otherwise
#   scripts/prom-server.sh env       print the env lines (GET_DISTILL_PUSHGATEWAY_URL, GET_DISTILL_PROMETHEUS_URL)
#   scripts/prom-server.sh install   only install the packages when missing (scripts/test.sh runs it
#                                    before starting servers in parallel, so two apt-gets never race)
#
# State lives under $GET_DISTILL_PROM_DIR (default /tmp/get-distill-prom): prometheus.yml, tsdb/,
# run/*.pid, log/*.log, env (source it: `set -a; . /tmp/get-distill-prom/env; set +a`). Every cold start
# is a fresh, empty TSDB and gateway. Ports: GET_DISTILL_PROMETHEUS_PORT (default 19090) and
# GET_DISTILL_PUSHGATEWAY_PORT (default 19091); the next free one is taken when busy.
# Prometheus scrapes the gateway every second with honor_labels: true (the pushed job/instance labels
# win); its first scrape comes a few seconds after start, so `start` polls /api/v1/targets.
set -euo pipefail

STATE="${GET_DISTILL_PROM_DIR:-/tmp/get-distill-prom}"
CONF="$STATE/prometheus.yml"
ENV_FILE="$STATE/env"
LOG="$STATE/log/prom-server.log"
START_TIMEOUT_S="${GET_DISTILL_PROM_START_TIMEOUT_S:-60}"
DAEMONS=(pushgateway prometheus)
PACKAGES=(prometheus prometheus-pushgateway)

log() { mkdir -p "$STATE/log"; echo "[prom-server $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
die() {
  echo "prom-server: $*" >&2
  local f
  for f in "$LOG" "$STATE"/log/*.out; do
    [ -f "$f" ] || continue
    echo "---- tail of $f" >&2
    tail -n 15 "$f" >&2
  done
  # A failed start leaves no half-started daemons behind.
  [ "${STARTING:-0}" = 1 ] && STARTING=0 && stop_daemons
  exit 1
}

# Is something accepting TCP connections on 127.0.0.1:$1?
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # first free port at or above $1, skipping $2 (the other daemon's pick)
  local p="$1"
  while port_busy "$p" || [ "$p" = "${2:-}" ]; do p=$((p + 1)); done
  echo "$p"
}

pid_of() { [ -f "$STATE/run/$1.pid" ] && cat "$STATE/run/$1.pid" || true; }
# Alive and really one of ours (a stale PID file may name a recycled PID): its command line names
# a file in the state dir (config or persistence file).
alive() {
  local pid; pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$STATE/"
}

port_of() { [ -f "$STATE/ports" ] && sed -n "s/^$1=//p" "$STATE/ports" || true; }
# Prometheus reports the gateway target healthy (at least one successful scrape).
target_up() {
  local port; port="$(port_of prometheus)"
  [ -n "$port" ] && curl -sf -m 2 "http://127.0.0.1:$port/api/v1/targets?state=active" | grep -q '"health":"up"'
}
gateway_answers() {
  local port; port="$(port_of pushgateway)"
  [ -n "$port" ] && curl -sf -o /dev/null -m 2 "http://127.0.0.1:$port/-/ready"
}
healthy() { alive pushgateway && alive prometheus && gateway_answers && target_up; }

print_env() {
  [ -f "$ENV_FILE" ] || die "no env file at $ENV_FILE: run '$0 start' first"
  cat "$ENV_FILE"
}

install_packages() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run 'sudo apt-get install -y --no-install-recommends ${PACKAGES[*]} curl'"
  log "installing ${missing[*]} with apt-get"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  # Wait for a dpkg lock held by another install (e.g. the S3 server's) rather than fail.
  local apt=(apt-get -y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
  if ! "${apt[@]}" install "${missing[@]}" >>"$LOG" 2>&1; then
    apt-get update -q -o DPkg::Lock::Timeout=300 >>"$LOG" 2>&1 || die "apt-get update failed"
    "${apt[@]}" install "${missing[@]}" >>"$LOG" 2>&1 || die "apt-get install ${missing[*]} failed"
  fi
  log "installed in $((SECONDS - t0)) s"
  # The postinst may have started the packaged services (where an init system runs them). They are
  # not ours: leave them, but say so, since they hold the default ports 9090/9091.
  local p
  for p in 9090 9091; do
    port_busy "$p" && log "note: something listens on 127.0.0.1:$p (the packaged service?); left alone, our ports differ"
  done
  return 0
}

# Kill our daemons by PID (TERM, then KILL after 5 s). Never kills by name.
stop_daemons() {
  local d pid i
  for d in prometheus pushgateway; do
    if alive "$d"; then
      pid="$(pid_of "$d")"
      kill "$pid" 2>/dev/null || true
      for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/run/$d.pid"
  done
}

write_conf() {
  local gateway="$1"
  cat >"$CONF" <<EOF
# Written by scripts/prom-server.sh: scrape only the local Pushgateway, every second.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    # Keep the job/instance labels the eval jobs pushed instead of the gateway's own.
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$gateway']
EOF
}

# Start "$@" detached (own session, survives this script), PID into run/$name.pid.
spawn() {
  local name="$1"; shift
  setsid nohup "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
  echo $! >"$STATE/run/$name.pid"
}

wait_for() { # wait_for DESCRIPTION DAEMON COMMAND...: poll until COMMAND succeeds
  local what="$1" daemon="$2"; shift 2
  while ! "$@" >/dev/null 2>&1; do
    alive "$daemon" || die "$what: the $daemon process exited; its log below says why (a bad flag or config, a port taken meanwhile)"
    [ $((SECONDS - T0)) -lt "$START_TIMEOUT_S" ] ||
      die "$what: not ready after ${START_TIMEOUT_S} s; on a slow machine raise GET_DISTILL_PROM_START_TIMEOUT_S, else see the logs below"
    sleep 0.2
  done
}

start() {
  if healthy; then print_env; return 0; fi
  mkdir -p "$STATE/log"
  install_packages
  T0=$SECONDS
  STARTING=1
  stop_daemons
  # Wipe only a folder this script made (GET_DISTILL_PROM_DIR could point anywhere).
  if [ -d "$STATE" ] && [ ! -f "$STATE/.get-distill-prom" ] && [ -n "$(ls -A "$STATE" | grep -vx log)" ]; then
    die "$STATE is not empty and was not made by this script; set GET_DISTILL_PROM_DIR to an empty or new folder"
  fi
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
  find "$STATE/log" -mindepth 1 ! -name prom-server.log -delete
  touch "$STATE/.get-distill-prom"
  mkdir -p "$STATE/tsdb" "$STATE/run" "$STATE/log"
  local prom gateway
  gateway="$(free_port "${GET_DISTILL_PUSHGATEWAY_PORT:-19091}")"
  prom="$(free_port "${GET_DISTILL_PROMETHEUS_PORT:-19090}" "$gateway")"
  printf 'prometheus=%s\npushgateway=%s\n' "$prom" "$gateway" >"$STATE/ports"
  write_conf "$gateway"
  log "cold start in $STATE (prometheus port $prom, pushgateway port $gateway)"

  spawn pushgateway prometheus-pushgateway --web.listen-address="127.0.0.1:$gateway" \
    --persistence.file="$STATE/pushgateway.store" --log.level=info
  spawn prometheus prometheus --config.file="$CONF" --storage.tsdb.path="$STATE/tsdb" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$prom" --log.level=info
  wait_for "pushgateway on 127.0.0.1:$gateway" pushgateway gateway_answers
  wait_for "prometheus scraping the pushgateway" prometheus target_up

  cat >"$ENV_FILE" <<EOF
GET_DISTILL_PUSHGATEWAY_URL=http://127.0.0.1:$gateway
GET_DISTILL_PROMETHEUS_URL=http://127.0.0.1:$prom
EOF
  STARTING=0
  log "ready after $((SECONDS - T0)) s: prometheus http://127.0.0.1:$prom, pushgateway http://127.0.0.1:$gateway"
  print_env
}

status() {
  if healthy; then
    local d pid parts=()
    for d in "${DAEMONS[@]}"; do
      pid="$(pid_of "$d")"
      parts+=("$d $pid RSS $(($(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") / 1024)) MiB")
    done
    echo "prom-server: up, prometheus http://127.0.0.1:$(port_of prometheus), pushgateway http://127.0.0.1:$(port_of pushgateway) (${parts[0]}; ${parts[1]})"
  else
    local d state=""
    for d in "${DAEMONS[@]}"; do alive "$d" && state+=" $d:up" || state+=" $d:down"; done
    target_up && state+=" target:up" || state+=" target:down"
    echo "prom-server: not serving ($STATE;$state)"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop_daemons; rm -f "$ENV_FILE"; echo "prom-server: stopped" ;;
  status) status ;;
  env) print_env ;;
  install) mkdir -p "$STATE/log"; install_packages ;;
  *) echo "usage: $0 start|stop|status|env|install   (state: $STATE)" >&2; exit 2 ;;
esac
