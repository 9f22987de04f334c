# shellcheck shell=bash
# Sourced by every script in scripts/e2e: settings (all overridable from the environment) and the
# helpers that start, find and stop daemons. Nothing here runs a daemon by itself.
#
# State lives under $E2E_DIR (default /tmp/e2e):
#   pids/NAME.pid, pids/NAME.start   pid and kernel start time of each daemon we started; a pid whose
#                                    start time differs was recycled by another process: never signalled
#   logs/NAME.log                    the daemon's stdout and stderr
#   setup.lock                       flock(1) lock: one setup step at a time, whoever calls it
# The state layout (PID files with start times, logs) is stable across versions of these scripts, so daemons an earlier run started are found and left running.

set -euo pipefail

E2E_DIR="${E2E_DIR:-/tmp/e2e}"
E2E_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIDS="$E2E_DIR/pids"
LOGS="$E2E_DIR/logs"

# Registries on loopback: plain, basic auth (htpasswd), token server + token-auth registry.
E2E_REGISTRY_HOST="${E2E_REGISTRY_HOST:-127.0.0.1}"
E2E_REGISTRY_PORT="${E2E_REGISTRY_PORT:-5000}"
E2E_REGISTRY="$E2E_REGISTRY_HOST:$E2E_REGISTRY_PORT"
E2E_BASIC_PORT="${E2E_BASIC_PORT:-5001}"
E2E_TOKEN_SERVER_PORT="${E2E_TOKEN_SERVER_PORT:-5002}"
E2E_TOKEN_REGISTRY_PORT="${E2E_TOKEN_REGISTRY_PORT:-5003}"
E2E_USER="${E2E_USER:-testuser}"
E2E_PASS="${E2E_PASS:-testpass}"

# containerd and the stargz snapshotter; more proxy snapshotters as "name=/abs/socket ...".
E2E_CONTAINERD_SOCK="$E2E_DIR/containerd/containerd.sock"
E2E_STARGZ_SOCK="$E2E_DIR/stargz/stargz.sock"
E2E_EXTRA_SNAPSHOTTERS="${E2E_EXTRA_SNAPSHOTTERS:-}"

# The shaped "remote" registry: a network namespace behind a veth pair (a /30: .1 host, .2 namespace).
E2E_NETNS="${E2E_NETNS:-e2e-reg}"
E2E_VETH_HOST="${E2E_VETH_HOST:-e2e-h0}"
E2E_VETH_NS="${E2E_VETH_NS:-e2e-n0}"
E2E_NET_PREFIX="${E2E_NET_PREFIX:-10.203.0}"
E2E_HOST_IP="$E2E_NET_PREFIX.1"
E2E_NS_IP="$E2E_NET_PREFIX.2"
E2E_GUARD_ROUTE="${E2E_GUARD_ROUTE:-${E2E_NET_PREFIX%.*}.0.0/16}"
E2E_NS_REGISTRY="$E2E_NS_IP:5000"
E2E_DELAY_MS="${E2E_DELAY_MS:-10}"
E2E_RATE="${E2E_RATE:-200mbit}"

mkdir -p "$PIDS" "$LOGS"
touch "$PIDS/.e2e"   # marks the directory as ours: teardown.sh --purge deletes only such a directory

say() { printf '[e2e %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# take_setup_lock: wait for any other setup step on this $E2E_DIR to finish, then hold the lock until
# this script exits. Scripts this one runs inherit the lock (E2E_LOCK_HELD), daemons never do (fd 9
# is closed for them in start_daemon), so a running registry cannot keep the next caller waiting.
take_setup_lock() {
  [[ ${E2E_LOCK_HELD:-} == "$E2E_DIR" ]] && return 0
  exec 9>>"$E2E_DIR/setup.lock"
  if ! flock -n 9; then
    say "waiting for another setup step on $E2E_DIR (lock $E2E_DIR/setup.lock)"
    flock -w "${E2E_LOCK_TIMEOUT:-1800}" 9 || die "gave up waiting for $E2E_DIR/setup.lock after ${E2E_LOCK_TIMEOUT:-1800} s"
  fi
  export E2E_LOCK_HELD="$E2E_DIR"
}

# need COMMAND|/PATH PACKAGE...: install the Debian packages when the command or file is missing
# (scripts/setup.sh installs them all beforehand; this is for a machine that skipped it)
need() {
  local what=$1; shift
  if [[ $what == /* ]]; then [[ -e $what ]] && return 0; else command -v "$what" >/dev/null && return 0; fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2
}

pid_of() { local f="$PIDS/$1.pid"; if [[ -s $f ]]; then cat "$f"; fi; }
# kernel start time of PID (field 22 of /proc/PID/stat; the command name before it may hold spaces)
start_time_of() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; awk '{print $20}' <<<"$s"; }
# a live process, not a zombie (this machine's init reaps orphans lazily, so kill -0 is not enough)
live() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [[ ${s:0:1} != Z ]]; }

# running NAME: NAME.pid names a live process that started when we recorded it
running() {
  local pid; pid=$(pid_of "$1")
  [[ -n $pid ]] && live "$pid" || return 1
  [[ ! -s $PIDS/$1.start ]] || [[ $(cat "$PIDS/$1.start") == "$(start_time_of "$pid")" ]]
}

# start_daemon NAME CMD...: run CMD in its own session with its own log and record it, unless running
start_daemon() {
  local name=$1; shift
  if running "$name"; then say "$name already running (pid $(pid_of "$name"))"; return 0; fi
  env -u E2E_LOCK_HELD setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  start_time_of "$pid" >"$PIDS/$name.start"
  say "started $name (pid $pid, log $LOGS/$name.log)"
}

# stop_daemon NAME: SIGTERM the recorded process, SIGKILL after 10 s; forget it either way
stop_daemon() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if [[ -n $pid ]] && running "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do live "$pid" || break; sleep 0.1; done
    if live "$pid"; then say "$name (pid $pid) still alive 10 s after SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    say "stopped $name (pid $pid)"
  elif [[ -n $pid ]]; then
    say "$name: pid $pid is gone or now another process; not signalling it"
  fi
  rm -f "$PIDS/$name.pid" "$PIDS/$name.start"
}

# wait_until DESCRIPTION SECONDS CMD...: poll CMD every 0.1 s
wait_until() {
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out after ${secs} s waiting for $what"
}

# port_in_use HOST PORT: something listens there (on HOST or on every address)
port_in_use() {
  local addr
  for addr in $(ss -ltnH "sport = :$2" | awk '{print $4}'); do
    [[ $addr == "$1:$2" || $addr == "0.0.0.0:$2" || $addr == "*:$2" || $addr == "[::]:$2" ]] && return 0
  done
  return 1
}

ctr_() { ctr --address "$E2E_CONTAINERD_SOCK" "$@"; }
