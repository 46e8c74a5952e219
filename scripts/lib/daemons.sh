# shellcheck shell=bash
# Shared by the local test-server scripts (scripts/s3-server.sh, scripts/prom-server.sh): logging and
# dying with log tails, free ports, PID files, stop by PID, apt-get installs, the cold-start wipe and
# the start|stop|status|env dispatch. Source it after `set -euo pipefail`:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/daemons.sh"
#
# The sourcing script sets these globals (read when the functions run):
#   SERVER           name in messages and of the main log, e.g. s3-server
#   STATE            state dir; run/NAME.pid, log/, ports (NAME=PORT lines), env live in it
#   STATE_VAR        the env variable that sets STATE (named in the not-ours error)
#   MARKER           file in STATE that says this script made it (only such a dir is wiped)
#   LOG              the script's own log, $STATE/log/$SERVER.log
#   ENV_FILE         the env lines the tests source
#   DAEMONS          daemon names in start order (stopped in reverse)
#   ALIVE_MATCH      text every one of our daemons has in its command line (tells ours from a recycled PID)
#   DAEMON_LOGS      suffix of the daemon logs in $STATE/log that die tails (.log or .out)
#   START_TIMEOUT_S  seconds a cold start may take; TIMEOUT_VAR: the env variable that sets it
#   POLL_S           seconds between readiness polls
#   PACKAGES         the Debian packages (named in the sudo hint); APT_FLAGS: extra apt-get install flags
#   USAGE_COMMANDS   the commands for the usage line, e.g. start|stop|status|env
# and defines start, status and install_packages (called by daemon_main and begin_cold_start).

log() { mkdir -p "$STATE/log"; echo "[$SERVER $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# die MESSAGE: print it, the last lines of our log and of each daemon log, stop a half-done start, exit 1.
die() {
  echo "$SERVER: $*" >&2
  local f shown_log=0
  for f in "$LOG" "$STATE"/log/*"$DAEMON_LOGS"; do
    [ -f "$f" ] || continue
    if [ "$f" = "$LOG" ]; then [ "$shown_log" = 1 ] && continue; shown_log=1; fi
    echo "---- tail of $f" >&2
    tail -n 15 "$f" >&2
  done
  # A failed start leaves no half-started daemons behind.
  [ "${STARTING:-0}" = 1 ] && STARTING=0 && stop_daemons
  exit 1
}

# Is something accepting TCP connections on 127.0.0.1:$1?
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # first free port at or above $1, skipping $2 when given (another daemon's pick)
  local p="$1"
  while port_busy "$p" || [ "$p" = "${2:-}" ]; do p=$((p + 1)); done
  echo "$p"
}

# port_of NAME: the port start picked for NAME (the state dir's ports file), empty before a start.
port_of() { [ -f "$STATE/ports" ] && sed -n "s/^$1=//p" "$STATE/ports" || true; }
pid_of() { [ -f "$STATE/run/$1.pid" ] && cat "$STATE/run/$1.pid" || true; }
# Alive and really one of ours (a stale PID file may name a recycled PID): its command line
# contains ALIVE_MATCH.
alive() {
  local pid; pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$ALIVE_MATCH"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# " NAME:up" or " NAME:down" for each of DAEMONS, for the not-serving status line.
daemon_states() {
  local d states=""
  for d in "${DAEMONS[@]}"; do alive "$d" && states+=" $d:up" || states+=" $d:down"; done
  printf '%s' "$states"
}

print_env() {
  [ -f "$ENV_FILE" ] || die "no env file at $ENV_FILE: run '$0 start' first"
  cat "$ENV_FILE"
}

# apt_install PKG...: install PKGs (none: nothing to do) with apt-get and APT_FLAGS; root only, else
# die naming the sudo command. A dpkg lock held by another install is waited for, not a failure.
apt_install() {
  [ $# -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] ||
    die "missing $*: run 'sudo apt-get install -y ${APT_FLAGS[*]+${APT_FLAGS[*]} }${PACKAGES[*]} curl'"
  log "installing $* with apt-get"
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -y -q ${APT_FLAGS[@]+"${APT_FLAGS[@]}"} -o DPkg::Lock::Timeout=300)
  if ! "${apt[@]}" install "$@" >>"$LOG" 2>&1; then
    apt-get update -q -o DPkg::Lock::Timeout=300 >>"$LOG" 2>&1 || die "apt-get update failed"
    "${apt[@]}" install "$@" >>"$LOG" 2>&1 || die "apt-get install $* failed"
  fi
  log "installed in $((SECONDS - t0)) s"
}

# Kill our daemons by PID, last started first (TERM, then KILL after 5 s). Never kills by name.
stop_daemons() {
  local k d pid
  for ((k = ${#DAEMONS[@]} - 1; k >= 0; k--)); do
    d="${DAEMONS[k]}"
    if alive "$d"; then
      pid="$(pid_of "$d")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/run/$d.pid"
  done
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
      die "$what: not ready after ${START_TIMEOUT_S} s; on a slow machine raise $TIMEOUT_VAR, else see the logs below"
    sleep "$POLL_S"
  done
}

# The first half of every cold start: install what is missing, stop whatever an earlier or crashed
# run left, and empty STATE but for log/$SERVER.log (every cold start is a fresh, empty server).
# Sets T0 (the start, in SECONDS) and STARTING=1 (from here a die stops the daemons again).
# Dies when STATE holds files but no MARKER: STATE_VAR could point anywhere.
begin_cold_start() {
  mkdir -p "$STATE/log"
  install_packages
  T0=$SECONDS
  STARTING=1
  stop_daemons
  if [ -d "$STATE" ] && [ ! -f "$STATE/$MARKER" ] && [ -n "$(find "$STATE" -mindepth 1 -maxdepth 1 ! -name log -print -quit)" ]; then
    die "$STATE is not empty and was not made by this script; set $STATE_VAR to an empty or new folder"
  fi
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
  find "$STATE/log" -mindepth 1 ! -name "${LOG##*/}" -delete
  touch "$STATE/$MARKER"
}

# end_cold_start MESSAGE <ENV-LINES: write ENV_FILE from stdin, log MESSAGE, print the env lines.
end_cold_start() {
  cat >"$ENV_FILE"
  STARTING=0
  log "$1"
  print_env
}

# daemon_main COMMAND: start|stop|status|env; anything else prints the usage line and exits 2.
daemon_main() {
  case "${1:-}" in
    start) start ;;
    stop) stop_daemons; rm -f "$ENV_FILE"; echo "$SERVER: stopped" ;;
    status) status ;;
    env) print_env ;;
    *) echo "usage: $0 $USAGE_COMMANDS   (state: $STATE)" >&2; exit 2 ;;
  esac
}
