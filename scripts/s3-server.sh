#!/usr/bin/env bash
# A real S3 server for tests: Ceph RADOS Gateway on 127.0.0.1 (one mon, one memstore OSD, radosgw
# with the beast frontend), no cephx. The gateway still checks SigV4 signatures against the test user.
#
#   scripts/s3-server.sh start    start (or reuse) the gateway; print the env lines; idempotent
#   scripts/s3-server.sh stop     kill the daemons by PID; keep the log
#   scripts/s3-server.sh status   exit 0 when the gateway answers, 1 otherwise
#   scripts/s3-server.sh env      print the env lines (AWS_ACCESS_KEY_ID, …, GET_DISTILL_S3_ENDPOINT)
#
# State lives under $GET_DISTILL_S3_DIR (default /tmp/get-distill-s3): ceph.conf, mon/osd data,
# run/*.pid, log/*.log, env (source it: `set -a; . /tmp/get-distill-s3/env; set +a`).
# The OSD keeps objects in memory, so every cold start is a fresh, empty cluster.
# Ports: GET_DISTILL_S3_PORT (default 7480; the next free one is taken when busy), and two mon ports.
# Settings that hang Ceph when missing (see shared/DESIGN.md): mon registered with v2+v1 addresses,
# `ms (mon) client mode = crc secure` for clients when auth is none, small pg num / high pg per osd.
set -euo pipefail

# shellcheck source=lib/daemons.sh source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"

SERVER="s3-server"
STATE_VAR=GET_DISTILL_S3_DIR
STATE="${GET_DISTILL_S3_DIR:-/tmp/get-distill-s3}"
MARKER=.get-distill-s3
CONF="$STATE/ceph.conf"
ENV_FILE="$STATE/env"
LOG="$STATE/log/s3-server.log"
TIMEOUT_VAR=GET_DISTILL_S3_START_TIMEOUT_S
START_TIMEOUT_S="${GET_DISTILL_S3_START_TIMEOUT_S:-90}"
POLL_S=0.3 # each poll runs the ceph CLI (a Python process): no faster on 2 cores
# Fixed test credentials: they only open this throw-away local gateway.
ACCESS_KEY="GETDISTILLTESTACCESS"
SECRET_KEY="get-distill-test-secret-key-0123456789abcd"
RGW_USER="get-distill-test"
DAEMONS=(mon osd rgw)
ALIVE_MATCH="$CONF"
DAEMON_LOGS=.log # ceph's own logs (log file = log/$name.log)
PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)
APT_FLAGS=()
USAGE_COMMANDS="start|stop|status|env"

gateway_answers() {
  local port; port="$(port_of rgw)"
  [ -n "$port" ] && curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/"
}
healthy() { alive mon && alive osd && alive rgw && gateway_answers; }

install_packages() {
  local missing=()
  command -v ceph-mon >/dev/null || missing+=(ceph-mon)
  command -v ceph-osd >/dev/null || missing+=(ceph-osd)
  command -v radosgw >/dev/null || missing+=(radosgw)
  command -v ceph >/dev/null && command -v monmaptool >/dev/null || missing+=(ceph-common)
  command -v curl >/dev/null || missing+=(curl)
  apt_install ${missing[@]+"${missing[@]}"}
}

ceph_cli() { timeout 20 ceph -c "$CONF" "$@"; }

write_conf() {
  local fsid="$1" mon2="$2" mon1="$3" rgw="$4"
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $STATE/run
admin socket = $STATE/run/\$name.asok
log file = $STATE/log/\$name.log
log to stderr = false
err to stderr = true
[mon.a]
mon data = $STATE/mon/a
[osd.0]
osd data = $STATE/osd/0
osd objectstore = memstore
memstore device bytes = 2147483648
[client]
# All clients (gateway, ceph CLI, radosgw-admin): without these they wait forever for a
# 'secure' session that auth=none never offers.
ms mon client mode = crc secure
ms client mode = crc secure
[client.rgw.gw]
rgw frontends = beast endpoint=127.0.0.1:$rgw
rgw data = $STATE/rgw
rgw dns name = 127.0.0.1
ms mon client mode = crc secure
ms client mode = crc secure
EOF
}

osd_up() { ceph_cli osd dump 2>/dev/null | grep -q '^osd\.0 up'; }

start() {
  if healthy; then print_env; return 0; fi
  begin_cold_start # memstore kept nothing: anything left of an earlier run is stopped and wiped
  mkdir -p "$STATE/mon/a" "$STATE/osd/0" "$STATE/rgw" "$STATE/run" "$STATE/log"
  local fsid mon2 mon1 rgw osd_uuid
  fsid="$(uuidgen)"; osd_uuid="$(uuidgen)"
  mon2="$(free_port 13300)"; mon1="$(free_port $((mon2 + 1)))"
  rgw="$(free_port "${GET_DISTILL_S3_PORT:-7480}")"
  printf 'rgw=%s\nmon_v2=%s\nmon_v1=%s\n' "$rgw" "$mon2" "$mon1" >"$STATE/ports"
  write_conf "$fsid" "$mon2" "$mon1" "$rgw"
  log "cold start in $STATE (gateway port $rgw, mon ports $mon2/$mon1)"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" \
    "$STATE/monmap" >>"$LOG" 2>&1 || die "monmaptool failed"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$STATE/monmap" >>"$LOG" 2>&1 || die "ceph-mon --mkfs failed"
  spawn mon ceph-mon -f -c "$CONF" -i a
  wait_for "monitor" mon ceph_cli mon stat

  ceph_cli osd new "$osd_uuid" 0 >>"$LOG" 2>&1 || die "'ceph osd new' failed"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$LOG" 2>&1 || die "ceph-osd --mkfs failed"
  spawn osd ceph-osd -f -c "$CONF" -i 0
  wait_for "OSD" osd osd_up

  spawn rgw radosgw -f -c "$CONF" -n client.rgw.gw
  # The gateway creates these on the first bucket, first object and first multipart upload, ~2 s
  # each while the new PGs peer; created now they peer while the gateway boots.
  local pool
  for pool in default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    { ceph_cli osd pool create "$pool" 8 && ceph_cli osd pool application enable "$pool" rgw; } >>"$LOG" 2>&1 ||
      die "creating pool $pool failed"
  done
  wait_for "gateway on 127.0.0.1:$rgw" rgw gateway_answers

  timeout 30 radosgw-admin -c "$CONF" user create --uid="$RGW_USER" --display-name="get-distill tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>>"$LOG" ||
    die "radosgw-admin user create failed"
  end_cold_start "gateway ready at http://127.0.0.1:$rgw after $((SECONDS - T0)) s" <<EOF
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=us-east-1
GET_DISTILL_S3_ENDPOINT=http://127.0.0.1:$rgw
EOF
}

status() {
  if healthy; then
    local rss=0 d pid
    for d in "${DAEMONS[@]}"; do
      pid="$(pid_of "$d")"
      rss=$((rss + $(rss_kib "$pid")))
    done
    echo "s3-server: up at http://127.0.0.1:$(port_of rgw) (mon $(pid_of mon), osd $(pid_of osd), rgw $(pid_of rgw); RSS $((rss / 1024)) MiB)"
  else
    echo "s3-server: not serving ($STATE;$(daemon_states))"
    return 1
  fi
}

daemon_main "$@"
