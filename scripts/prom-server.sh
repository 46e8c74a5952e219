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

# shellcheck source=lib/daemons.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"

SERVER="prom-server"
STATE_VAR=GET_DISTILL_PROM_DIR
STATE="${GET_DISTILL_PROM_DIR:-/tmp/get-distill-prom}"
MARKER=.get-distill-prom
CONF="$STATE/prometheus.yml"
ENV_FILE="$STATE/env"
LOG="$STATE/log/prom-server.log"
TIMEOUT_VAR=GET_DISTILL_PROM_START_TIMEOUT_S
START_TIMEOUT_S="${GET_DISTILL_PROM_START_TIMEOUT_S:-60}"
POLL_S=0.2
DAEMONS=(pushgateway prometheus)
# Each daemon's command line names a file in the state dir (config or persistence file).
ALIVE_MATCH="$STATE/"
DAEMON_LOGS=.out # both log to stderr, which spawn sends to log/NAME.out
PACKAGES=(prometheus prometheus-pushgateway)
APT_FLAGS=(--no-install-recommends)
USAGE_COMMANDS="start|stop|status|env|install"

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

install_packages() {
  local missing=() p
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}"
  # The postinst may have started the packaged services (where an init system runs them). They are
  # not ours: leave them, but say so, since they hold the default ports 9090/9091.
  for p in 9090 9091; do
    port_busy "$p" && log "note: something listens on 127.0.0.1:$p (the packaged service?); left alone, our ports differ"
  done
  return 0
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

start() {
  if healthy; then print_env; return 0; fi
  begin_cold_start
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

  end_cold_start "ready after $((SECONDS - T0)) s: prometheus http://127.0.0.1:$prom, pushgateway http://127.0.0.1:$gateway" <<EOF
GET_DISTILL_PUSHGATEWAY_URL=http://127.0.0.1:$gateway
GET_DISTILL_PROMETHEUS_URL=http://127.0.0.1:$prom
EOF
}

status() {
  if healthy; then
    local d pid parts=()
    for d in "${DAEMONS[@]}"; do
      pid="$(pid_of "$d")"
      parts+=("$d $pid RSS $(($(rss_kib "$pid") / 1024)) MiB")
    done
    echo "prom-server: up, prometheus http://127.0.0.1:$(port_of prometheus), pushgateway http://127.0.0.1:$(port_of pushgateway) (${parts[0]}; ${parts[1]})"
  else
    local state; state="$(daemon_states)"
    target_up && state+=" target:up" || state+=" target:down"
    echo "prom-server: not serving ($STATE;$state)"
    return 1
  fi
}

case "${1:-}" in
  install) mkdir -p "$STATE/log"; install_packages ;;
  *) daemon_main "$@" ;;
esac
