#!/usr/bin/env bash
# Latchkey's load benchmark: one command that builds the release binary, starts it on
# SQLite and on PostgreSQL, runs fixed wrk scenarios against each, and prints (and writes
# into BENCHMARKS.md) medians, the targets with PASS/FAIL, the machine and the commands.
#
#   bench/run.sh                                   # the full run: 3 runs of 10 s per scenario
#   BENCH_DURATION=3 BENCH_RUNS=1 bench/run.sh     # quick mode, to try the harness
#   BENCH_BASELINE_BIN=/path/to/old/latchkey bench/run.sh   # old and new, side by side
#
# Settings (environment variables), with their defaults:
#   BENCH_RUNS=3             runs of every scenario; the report gives medians
#   BENCH_DURATION=10        seconds of each wrk run
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_SCENARIOS="healthz me login refresh signup flood signup_flood rss"   # a subset is fine
#   BENCH_USERS=200          users signed up before the runs (their tokens drive /me, /login)
#   BENCH_PG_URL=postgres://postgres@127.0.0.1:5432   # a fresh database is created and dropped
#   BENCH_LOG=warn           the server's LATCHKEY_LOG (warnings and errors are reported)
#   BENCH_HASH_WORKERS=$(nproc)   passed as LATCHKEY_HASH_WORKERS, so the bound is known
#   BENCH_SERVER_NICE=0      how far below PostgreSQL the server and wrk run (0 to 10), as
#                            README's "Sharing a machine with PostgreSQL" advises for the
#                            server; 0: at PostgreSQL's priority (see BENCHMARKS.md for why)
#   BENCH_BIN=               a latchkey binary to measure instead of building one
#   BENCH_BASELINE_BIN=      a second binary: every scenario runs on both, alternating
#   BENCH_WRITE=auto         rewrite BENCHMARKS.md: auto = only for a full run of the
#                            current binary alone (all scenarios, both backends)
#   BENCH_OUT=               directory for raw results (default: a new one under /tmp)
#
# Everything this script starts (servers, wrk, samplers, databases) it stops by PID or
# name on exit, whatever the exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
DEFAULT_SCENARIOS="healthz me login refresh signup flood signup_flood rss"
BENCH_SCENARIOS=${BENCH_SCENARIOS:-$DEFAULT_SCENARIOS}
BENCH_USERS=${BENCH_USERS:-200}
BENCH_PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
BENCH_LOG=${BENCH_LOG:-warn}
BENCH_HASH_WORKERS=${BENCH_HASH_WORKERS:-$(nproc)}
BENCH_SERVER_NICE=${BENCH_SERVER_NICE:-0}
BENCH_BIN=${BENCH_BIN:-}
BENCH_BASELINE_BIN=${BENCH_BASELINE_BIN:-}
BENCH_WRITE=${BENCH_WRITE:-auto}
BENCH_OUT=${BENCH_OUT:-}

# Fixed load parameters: changing them changes what the figures mean, so they are not
# settings; the report prints them.
WRK_THREADS=2
C_HEALTHZ=64
C_ME=64
C_LOGIN=32
C_REFRESH=32
C_SIGNUP=32
C_FLOOD_LOGIN=64 # the login flood beside the /me measurement
C_FLOOD_ME=8     # the /me measurement during (and without) that flood
C_RSS=500        # the login flood during which peak memory is measured
C_OTHERS_LOGIN=4 # other users' logins, measured with and without a signup flood
C_SIGNUP_FLOOD=64 # the signup flood from one address beside them
SIGNUP_FLOODER=203.0.113.66
REFRESH_SPARE=4  # spare refresh chains per wrk thread (see bench/lua/refresh.lua)
# Latencies above wrk's timeout are not recorded (and counted as timeouts): logins queued
# behind a 500-connection flood take many seconds, and that is what is being measured.
WRK_TIMEOUT=60s
# Not a secret: a fixed password for throwaway benchmark accounts, not a common one.
export BENCH_PASSWORD="latchkey bench passphrase 7"
export BENCH_LUA_DIR="$BENCH_DIR/lua"
# Loopback only: never send benchmark traffic through a proxy.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

case "$BENCH_RUNS" in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a whole number >= 1" ;; esac
# At most 10: the hashing threads set themselves to nice 10, and must stay below the workers.
case "$BENCH_SERVER_NICE" in '' | *[!0-9]*) die "BENCH_SERVER_NICE must be a whole number from 0 to 10" ;; esac
[ "$BENCH_SERVER_NICE" -le 10 ] || die "BENCH_SERVER_NICE must be a whole number from 0 to 10"
case "$BENCH_DURATION" in '' | *[!0-9]* | 0) die "BENCH_DURATION must be whole seconds >= 1" ;; esac
for scenario in $BENCH_SCENARIOS; do
  case " $DEFAULT_SCENARIOS " in *" $scenario "*) ;; *) die "unknown scenario $scenario (known: $DEFAULT_SCENARIOS)" ;; esac
done
for backend in $BENCH_BACKENDS; do
  case "$backend" in sqlite | postgres) ;; *) die "unknown backend $backend" ;; esac
done
# --- CPU priority ----------------------------------------------------------------------
# Everything the harness starts (the server, wrk) runs BENCH_SERVER_NICE below PostgreSQL,
# as README's "Sharing a machine with PostgreSQL" advises for the server: its hashing threads
# run below its request workers, but that only counts inside its scheduling group, and
# PostgreSQL is in another (a session's autogroup here, a service's cgroup under systemd),
# where Latchkey competes with it as a whole at equal weight. The server and wrk share one
# group, as they would share one session's, so that lowering does not tilt the machine
# between the load generator and the server it measures. With autogroups the harness runs
# in a session of its own and lowers its group (a plain nice only counts inside a group);
# without, the server and wrk get a plain nice.
BELOW_POSTGRES=()
if [ "$BENCH_SERVER_NICE" -gt 0 ]; then
  if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]; then
    if [ "${BENCH_OWN_SESSION:-}" != 1 ]; then
      # Rerun in a new session, passing on an interrupt to the whole of it.
      BENCH_OWN_SESSION=1 setsid "$0" "$@" &
      inner=$!
      trap 'kill -TERM -- "-$inner" 2>/dev/null' INT TERM
      while kill -0 "$inner" 2>/dev/null; do
        wait "$inner" && exit 0 || status=$?
      done
      exit "${status:-1}"
    fi
    echo "$BENCH_SERVER_NICE" >/proc/self/autogroup
  else
    BELOW_POSTGRES=(nice -n "$BENCH_SERVER_NICE")
  fi
fi

wants() { case " $BENCH_SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac }

# --- What this run started, so that the exit trap stops exactly that -------------------
declare -A SERVER_PID=() SERVER_URL=() SERVER_METRICS_URL=() SERVER_DIR=() SERVER_DB=()
BACKGROUND_PIDS=()
PG_DATABASES=()

# Drops a finished background job from BACKGROUND_PIDS, so that the exit trap never
# signals a PID that the system may have handed to another process since.
forget_pid() {
  local pid kept=()
  for pid in "${BACKGROUND_PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  BACKGROUND_PIDS=("${kept[@]}")
}

stop_pid() {
  local pid=$1 signal=${2:-TERM}
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  # The server finishes requests in flight on SIGTERM (up to its 30 s shutdown timeout).
  for _ in $(seq 1 350); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid label database
  # A background job is a subshell: its children (wrk, sleep) go first, found by parent PID.
  for pid in "${BACKGROUND_PIDS[@]}"; do
    pkill -KILL -P "$pid" 2>/dev/null || true
    stop_pid "$pid" KILL
  done
  for label in "${!SERVER_PID[@]}"; do stop_pid "${SERVER_PID[$label]}"; done
  for database in "${PG_DATABASES[@]}"; do
    psql "$BENCH_PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 ||
      log "could not drop PostgreSQL database $database"
  done
  # The SQLite files are the only bulky leftovers; logs and results stay for reading.
  if [ -n "${RESULTS:-}" ]; then
    find "$RESULTS" -name 'latchkey.db*' -delete 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Tools and binaries ----------------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_wrk() {
  command -v wrk >/dev/null && return 0
  log "installing wrk from Debian"
  as_root apt-get install -y wrk >/dev/null 2>&1 ||
    { as_root apt-get update >/dev/null && as_root apt-get install -y wrk >/dev/null; } ||
    die "could not install wrk (apt-get install -y wrk)"
}

build_current() {
  if [ -n "$BENCH_BIN" ]; then
    [ -x "$BENCH_BIN" ] || die "BENCH_BIN=$BENCH_BIN is not an executable"
    CURRENT_BIN=$BENCH_BIN
    return
  fi
  log "building the release binary (cargo build --release --locked)"
  (cd "$REPO_DIR" && cargo build --release --locked)
  CURRENT_BIN="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/latchkey"
  [ -x "$CURRENT_BIN" ] || die "no binary at $CURRENT_BIN after the build"
}

# free_ports N: N ports free a moment ago, all different (held until all are chosen).
free_ports() {
  python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))' "$1"
}

# --- Process measurements --------------------------------------------------------------
status_kib() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Waits until every server has been nearly idle (< 5 % of a core) for a second: after a
# login flood the server still works through the hashes queued for clients that are gone,
# and that work would otherwise be charged to the next scenario.
wait_idle() {
  local hz calm=0 deadline=$((SECONDS + 300)) label before after busy
  hz=$(getconf CLK_TCK)
  while [ "$SECONDS" -lt "$deadline" ]; do
    busy=0
    declare -A before_ticks=()
    for label in "${!SERVER_PID[@]}"; do before_ticks[$label]=$(cpu_ticks "${SERVER_PID[$label]}"); done
    sleep 0.5
    for label in "${!SERVER_PID[@]}"; do
      before=${before_ticks[$label]}
      after=$(cpu_ticks "${SERVER_PID[$label]}")
      # ticks over 0.5 s, as a share of one core: busy above 5 %.
      if [ $(((after - before) * 200)) -gt $((hz * 5)) ]; then busy=1; fi
    done
    unset before_ticks
    if [ "$busy" -eq 0 ]; then
      calm=$((calm + 1))
      [ "$calm" -ge 2 ] && return 0
    else
      calm=0
    fi
  done
  log "warning: a server was still busy after 300 s; measuring anyway"
}

# scrape_metrics LABEL FILE: the server's GET /metrics from its metrics listener, or from its
# public port for a baseline built before /metrics moved off it, or an empty file if it has
# none (metrics off).
scrape_metrics() {
  local url
  for url in "${SERVER_METRICS_URL[$1]}" "${SERVER_URL[$1]}"; do
    curl -fsS --noproxy '*' --max-time 10 "$url/metrics" >"$2" 2>/dev/null && return 0
  done
  : >"$2"
}

# --- Servers ---------------------------------------------------------------------------
# start_server LABEL BINARY BACKEND: a fresh database, the fixed environment below and
# nothing inherited (env -i), so that a stray LATCHKEY_* in the caller's shell cannot
# change what is measured.
start_server() {
  local label=$1 binary=$2 backend=$3 dir port metrics_port url database_url database
  dir="$RESULTS/$backend-$label"
  mkdir -p "$dir"
  # A metrics port of its own too: with a baseline, two servers run side by side.
  read -r port metrics_port < <(free_ports 2)
  url="http://127.0.0.1:$port"
  case "$backend" in
    sqlite) database_url="sqlite://$dir/latchkey.db" ;;
    postgres)
      database="latchkey_bench_$$_${label}_$RANDOM"
      psql "$BENCH_PG_URL/postgres" -qc "CREATE DATABASE $database" >/dev/null ||
        die "cannot create a database on $BENCH_PG_URL (is PostgreSQL up? BENCH_BACKENDS=sqlite skips it)"
      PG_DATABASES+=("$database")
      SERVER_DB[$label]=$database
      database_url="$BENCH_PG_URL/$database"
      ;;
  esac
  "${BELOW_POSTGRES[@]}" env -i PATH="$PATH" "${SERVER_ENV[@]}" DATABASE_URL="$database_url" \
    LATCHKEY_BIND="127.0.0.1:$port" LATCHKEY_METRICS_BIND="127.0.0.1:$metrics_port" \
    "$binary" serve >"$dir/server.log" 2>&1 &
  SERVER_PID[$label]=$!
  SERVER_URL[$label]=$url
  SERVER_METRICS_URL[$label]="http://127.0.0.1:$metrics_port"
  SERVER_DIR[$label]=$dir
  for _ in $(seq 1 300); do
    if curl -fsS --noproxy '*' "$url/healthz" >/dev/null 2>&1; then
      log "$label latchkey up on $backend at $url (pid ${SERVER_PID[$label]})"
      # Idle memory: after start-up (migrations, signing key, decoy hash), before any load.
      sleep 1
      record_extra "$backend" "$label" 0 idle "{\"rss_kib\":$(status_kib "${SERVER_PID[$label]}" VmRSS)}"
      return 0
    fi
    kill -0 "${SERVER_PID[$label]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/server.log" >&2
  die "$label latchkey did not start on $backend"
}

stop_servers() {
  local label
  for label in "${!SERVER_PID[@]}"; do
    stop_pid "${SERVER_PID[$label]}"
    unset "SERVER_PID[$label]"
  done
}

# The Argon2 parameters the server really used, read back from a stored hash
# ($argon2id$v=19$m=19456,t=2,p=1$...), rather than assumed from the source.
stored_argon2_params() {
  local backend=$1 label=$2 hash
  case "$backend" in
    sqlite)
      hash=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT password_hash FROM users LIMIT 1").fetchone()[0])' \
        "${SERVER_DIR[$label]}/latchkey.db")
      ;;
    postgres)
      hash=$(psql "$BENCH_PG_URL/${SERVER_DB[$label]}" -tAc "SELECT password_hash FROM users LIMIT 1")
      ;;
  esac
  printf '%s\n' "$hash" | cut -d'$' -f2-4
}

# Users for /me and /login, and fresh refresh-token chains for every /refresh run (a chain
# is consumed by its run: its last token is known only to the wrk that followed it).
prepare_server() {
  local backend=$1 label=$2 url=${SERVER_URL[$2]} dir=${SERVER_DIR[$2]} run sessions
  log "$label/$backend: signing up $BENCH_USERS users"
  python3 "$BENCH_DIR/prepare.py" signup "$url" "$BENCH_USERS" "user-$label" "$dir"
  if wants refresh; then
    sessions=$(((C_REFRESH / WRK_THREADS + REFRESH_SPARE) * WRK_THREADS))
    log "$label/$backend: logging in $sessions sessions for each of $BENCH_RUNS /refresh run(s)"
    for run in $(seq 1 "$BENCH_RUNS"); do
      python3 "$BENCH_DIR/prepare.py" sessions "$url" "$dir/users.txt" "$sessions" "$dir/refresh-$run.txt"
    done
  fi
  printf 'argon2_%s_%s\t%s\n' "$backend" "$label" "$(stored_argon2_params "$backend" "$label")" >>"$RESULTS/meta.tsv"
}

# --- wrk -------------------------------------------------------------------------------
# wrk_run OUTPUT CONNECTIONS THREADS SCRIPT URL [ENV=VALUE ...]: runs wrk once and leaves
# its whole output in OUTPUT. Every script prints one BENCH_RESULT line of JSON (lua/common.lua).
wrk_run() {
  local output=$1 connections=$2 threads=$3 script=$4 url=$5
  shift 5
  local command=(wrk "-t$threads" "-c$connections" "-d${WRK_DURATION:-$BENCH_DURATION}s"
    --timeout "$WRK_TIMEOUT" --latency -s "$BENCH_DIR/lua/$script" "$url")
  # The command as the report shows it: the variables the script reads, then wrk itself.
  local shown="${command[*]}"
  [ "$#" -eq 0 ] || shown="$* $shown"
  printf '%s\n' "$(basename "$output" .txt | sed 's/-run[0-9]*$//'): $shown" |
    sed "s|$url|\$URL|; s|$RESULTS/[^ ]*/|\$DATA/|g; s|$BENCH_DIR|bench|g" >>"$RESULTS/commands.txt"
  if ! env "$@" "${BELOW_POSTGRES[@]}" "${command[@]}" >"$output" 2>&1; then
    cat "$output" >&2
    die "wrk failed: ${command[*]}"
  fi
  if ! grep -q '^BENCH_RESULT ' "$output"; then
    cat "$output" >&2
    die "wrk printed no BENCH_RESULT line (a Lua error?): ${command[*]}"
  fi
}

wrk_json() { sed -n 's/^BENCH_RESULT //p' "$1"; }

# record BACKEND LABEL RUN SCENARIO WRK_OUTPUT [EXTRA_JSON]
record() {
  local extra=${6:-}
  [ -n "$extra" ] || extra='{}'
  printf '{"backend":"%s","label":"%s","run":%s,"scenario":"%s","wrk":%s,"extra":%s}\n' \
    "$1" "$2" "$3" "$4" "$(wrk_json "$5")" "$extra" >>"$RESULTS/results.jsonl"
}

record_extra() {
  printf '{"backend":"%s","label":"%s","run":%s,"scenario":"%s","wrk":null,"extra":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" >>"$RESULTS/results.jsonl"
}

# --- Scenarios -------------------------------------------------------------------------
# run_scenario SCENARIO BACKEND LABEL RUN
run_scenario() {
  local scenario=$1 backend=$2 label=$3 run=$4
  local url=${SERVER_URL[$label]} dir=${SERVER_DIR[$label]} pid=${SERVER_PID[$label]}
  local raw="$RESULTS/raw/$backend-$label"
  local tokens="BENCH_TOKENS=$dir/access_tokens.txt" users="BENCH_USERS=$dir/users.txt"
  mkdir -p "$raw"
  log "$backend/$label run $run: $scenario"
  # When each scenario began, so that the report can tell which one a server warning
  # belongs to (the server logs in UTC, RFC 3339).
  printf '%s\t%s\t%s\t%s run %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" "$backend" "$label" "$scenario" "$run" \
    >>"$RESULTS/timeline.tsv"
  case "$scenario" in
    healthz)
      wait_idle
      wrk_run "$raw/healthz-run$run.txt" "$C_HEALTHZ" "$WRK_THREADS" healthz.lua "$url"
      record "$backend" "$label" "$run" healthz "$raw/healthz-run$run.txt"
      ;;
    me)
      wait_idle
      wrk_run "$raw/me-run$run.txt" "$C_ME" "$WRK_THREADS" me.lua "$url" "$tokens"
      record "$backend" "$label" "$run" me "$raw/me-run$run.txt"
      ;;
    login)
      # One connection, one thread: logins one after another, so the time of one login
      # (its hash plus HTTP and database work) is the run's duration over its count.
      wait_idle
      wrk_run "$raw/login_serial-run$run.txt" 1 1 login.lua "$url" "$users"
      record "$backend" "$label" "$run" login_serial "$raw/login_serial-run$run.txt"
      wait_idle
      wrk_run "$raw/login-run$run.txt" "$C_LOGIN" "$WRK_THREADS" login.lua "$url" "$users"
      record "$backend" "$label" "$run" login "$raw/login-run$run.txt"
      ;;
    refresh)
      wait_idle
      wrk_run "$raw/refresh-run$run.txt" "$C_REFRESH" "$WRK_THREADS" refresh.lua "$url" \
        "BENCH_REFRESH_TOKENS=$dir/refresh-$run.txt" "BENCH_THREADS=$WRK_THREADS"
      record "$backend" "$label" "$run" refresh "$raw/refresh-run$run.txt"
      ;;
    signup)
      wait_idle
      wrk_run "$raw/signup-run$run.txt" "$C_SIGNUP" "$WRK_THREADS" signup.lua "$url" \
        "BENCH_NONCE=$label-run$run"
      record "$backend" "$label" "$run" signup "$raw/signup-run$run.txt"
      ;;
    flood)
      # /me latency alone, then the same /me load while other connections flood /login.
      wait_idle
      wrk_run "$raw/me_alone-run$run.txt" "$C_FLOOD_ME" "$WRK_THREADS" me.lua "$url" "$tokens"
      record "$backend" "$label" "$run" me_alone "$raw/me_alone-run$run.txt"
      wait_idle
      # The flood starts a second before the measurement and ends a second after it.
      WRK_DURATION=$((BENCH_DURATION + 2)) wrk_run "$raw/login_flood-run$run.txt" \
        "$C_FLOOD_LOGIN" "$WRK_THREADS" login.lua "$url" "$users" &
      local flood=$!
      BACKGROUND_PIDS+=("$flood")
      sleep 1
      # The server's own /me latency over the measurement, beside wrk's (see server_latency.py).
      scrape_metrics "$label" "$raw/metrics_before_me_flood-run$run.txt"
      wrk_run "$raw/me_flood-run$run.txt" "$C_FLOOD_ME" "$WRK_THREADS" me.lua "$url" "$tokens"
      scrape_metrics "$label" "$raw/metrics_after_me_flood-run$run.txt"
      wait "$flood" || die "the login flood failed (see $raw/login_flood-run$run.txt)"
      forget_pid "$flood"
      record "$backend" "$label" "$run" me_under_flood "$raw/me_flood-run$run.txt" \
        "$(python3 "$BENCH_DIR/server_latency.py" "$raw/metrics_before_me_flood-run$run.txt" \
          "$raw/metrics_after_me_flood-run$run.txt" GET /me)"
      record "$backend" "$label" "$run" login_flood "$raw/login_flood-run$run.txt"
      ;;
    signup_flood)
      # Other users' logins alone, then while one address floods /signup: the per-address
      # signup limit should keep the flood from queueing hashes ahead of them.
      wait_idle
      wrk_run "$raw/login_alone-run$run.txt" "$C_OTHERS_LOGIN" "$WRK_THREADS" login.lua "$url" "$users"
      record "$backend" "$label" "$run" login_alone "$raw/login_alone-run$run.txt"
      wait_idle
      # The flood starts a second before the measurement and ends a second after it.
      WRK_DURATION=$((BENCH_DURATION + 2)) wrk_run "$raw/signup_flood-run$run.txt" \
        "$C_SIGNUP_FLOOD" "$WRK_THREADS" signup.lua "$url" "BENCH_NONCE=flood-$label-run$run" \
        "BENCH_SIGNUP_FROM=$SIGNUP_FLOODER" &
      local signups=$!
      BACKGROUND_PIDS+=("$signups")
      sleep 1
      wrk_run "$raw/login_signup_flood-run$run.txt" "$C_OTHERS_LOGIN" "$WRK_THREADS" login.lua "$url" "$users"
      wait "$signups" || die "the signup flood failed (see $raw/signup_flood-run$run.txt)"
      forget_pid "$signups"
      record "$backend" "$label" "$run" login_during_signup_flood "$raw/login_signup_flood-run$run.txt"
      record "$backend" "$label" "$run" signup_flood "$raw/signup_flood-run$run.txt"
      ;;
    rss)
      # Peak memory during a 500-connection login flood: the kernel's high-water mark
      # (VmHWM), reset first (clear_refs 5), read once the queued hashes are done; and a
      # 10 Hz sample of VmRSS as a cross-check where the reset is not allowed.
      wait_idle
      local hwm_reset=true sampled="$raw/rss_sampled-run$run.txt"
      echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || hwm_reset=false
      echo 0 >"$sampled"
      local sampler_stop="$raw/rss_stop-run$run"
      rm -f "$sampler_stop"
      (
        peak=0
        while [ ! -e "$sampler_stop" ] && kill -0 "$pid" 2>/dev/null; do
          now=$(status_kib "$pid" VmRSS) || break
          if [ "${now:-0}" -gt "$peak" ]; then
            peak=$now
            # Written aside and renamed, so that the reader never sees a half-written file.
            echo "$peak" >"$sampled.new" && mv "$sampled.new" "$sampled"
          fi
          sleep 0.1
        done
      ) &
      local sampler=$!
      BACKGROUND_PIDS+=("$sampler")
      wrk_run "$raw/rss_flood-run$run.txt" "$C_RSS" "$WRK_THREADS" login.lua "$url" "$users"
      wait_idle
      # Asked to stop rather than killed: bash reports a killed child on the terminal.
      touch "$sampler_stop"
      wait "$sampler" 2>/dev/null || true
      forget_pid "$sampler"
      local hwm
      hwm=$(status_kib "$pid" VmHWM)
      record "$backend" "$label" "$run" rss_flood "$raw/rss_flood-run$run.txt" \
        "{\"hwm_kib\":$hwm,\"hwm_reset\":$hwm_reset,\"sampled_peak_kib\":$(cat "$sampled"),\"after_kib\":$(status_kib "$pid" VmRSS)}"
      ;;
  esac
}

machine_info() {
  local model memory os
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  [ -n "$model" ] || model=$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)
  memory=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null)
  {
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'commit\t%s\n' "$(git -C "$REPO_DIR" rev-parse HEAD)"
    printf 'branch\t%s\n' "$(git -C "$REPO_DIR" rev-parse --abbrev-ref HEAD)"
    if [ -n "$(git -C "$REPO_DIR" status --porcelain -- src migrations data Cargo.toml Cargo.lock build.rs 2>/dev/null)" ]; then
      printf 'dirty\ttrue\n'
    fi
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$model"
    printf 'memory\t%s\n' "$memory"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'os\t%s\n' "$os"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
    printf 'rustc\t%s\n' "$(rustc --version 2>/dev/null || echo unknown)"
    printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'invocation\t%s\n' "BENCH_RUNS=$BENCH_RUNS BENCH_DURATION=$BENCH_DURATION BENCH_BACKENDS=\"$BENCH_BACKENDS\" BENCH_SCENARIOS=\"$BENCH_SCENARIOS\" BENCH_USERS=$BENCH_USERS BENCH_LOG=$BENCH_LOG BENCH_HASH_WORKERS=$BENCH_HASH_WORKERS${BENCH_BASELINE_BIN:+ BENCH_BASELINE_BIN=$BENCH_BASELINE_BIN} bench/run.sh"
    printf 'runs\t%s\n' "$BENCH_RUNS"
    printf 'duration\t%s\n' "$BENCH_DURATION"
    printf 'backends\t%s\n' "$BENCH_BACKENDS"
    printf 'scenarios\t%s\n' "$BENCH_SCENARIOS"
    printf 'users\t%s\n' "$BENCH_USERS"
    printf 'hash_workers\t%s\n' "$BENCH_HASH_WORKERS"
    printf 'server_nice\t%s\n' "$BENCH_SERVER_NICE"
    printf 'autogroup\t%s\n' "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0)"
    printf 'wrk_threads\t%s\n' "$WRK_THREADS"
    printf 'wrk_timeout\t%s\n' "$WRK_TIMEOUT"
    printf 'connections\thealthz=%s me=%s login=%s refresh=%s signup=%s flood_login=%s flood_me=%s rss=%s others_login=%s signup_flood=%s\n' \
      "$C_HEALTHZ" "$C_ME" "$C_LOGIN" "$C_REFRESH" "$C_SIGNUP" "$C_FLOOD_LOGIN" "$C_FLOOD_ME" "$C_RSS" \
      "$C_OTHERS_LOGIN" "$C_SIGNUP_FLOOD"
    printf 'server_env\t%s\n' "${SERVER_ENV[*]}"
    printf 'current_bin\t%s\n' "$CURRENT_BIN"
    printf 'baseline_bin\t%s\n' "$BENCH_BASELINE_BIN"
    if [[ " $BENCH_BACKENDS " == *" postgres "* ]]; then
      printf 'postgres\t%s\n' "$(psql "$BENCH_PG_URL/postgres" -tAc 'SHOW server_version' 2>/dev/null || echo unreachable)"
    fi
  } >>"$RESULTS/meta.tsv"
}

# --- Main ------------------------------------------------------------------------------
main() {
  ensure_wrk
  command -v python3 >/dev/null || die "python3 is required (set-up and report)"
  command -v curl >/dev/null || die "curl is required"
  if [[ " $BENCH_BACKENDS " == *" postgres "* ]]; then
    command -v psql >/dev/null || die "psql is required for the PostgreSQL backend"
  fi
  # wrk and the server each hold 500+ sockets in the memory scenario.
  ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

  build_current
  if [ -n "$BENCH_BASELINE_BIN" ]; then
    [ -x "$BENCH_BASELINE_BIN" ] || die "BENCH_BASELINE_BIN=$BENCH_BASELINE_BIN is not an executable"
  fi

  if [ -n "$BENCH_OUT" ]; then
    RESULTS=$BENCH_OUT
    mkdir -p "$RESULTS"
    rm -f "$RESULTS/results.jsonl" "$RESULTS/meta.tsv" "$RESULTS/commands.txt" "$RESULTS/timeline.tsv"
  else
    RESULTS=$(mktemp -d /tmp/latchkey-bench.XXXXXX)
  fi
  mkdir -p "$RESULTS/raw"
  : >"$RESULTS/results.jsonl"
  log "raw results in $RESULTS"

  # The server's environment, complete: limits raised so that the load is measured, not
  # refused (every login of a flood is an attempt in flight from 127.0.0.1, counted against
  # the per-address limit until it succeeds; the floods log the same users in thousands of
  # times, and the sessions whose tokens drive /me must stay among their live ones), and
  # access tokens that outlive the run. Signups name their address (X-Forwarded-For from
  # 127.0.0.1, trusted): each its own, but one for the signup flood, which meets the
  # default per-address limit.
  SERVER_ENV=(
    LATCHKEY_LOG="$BENCH_LOG"
    LATCHKEY_ACCESS_TTL=24h
    LATCHKEY_LOGIN_MAX_FAILURES=1000000
    LATCHKEY_LOGIN_IP_MAX_FAILURES=1000000
    LATCHKEY_MAX_SESSIONS=1000000
    LATCHKEY_TRUSTED_PROXIES=127.0.0.1
    LATCHKEY_HASH_WORKERS="$BENCH_HASH_WORKERS"
  )
  machine_info

  # With a baseline both servers run side by side (each on its own fresh database), and
  # every scenario runs on one, then the other, in alternating order (ABBA), so that
  # drifting background load falls on both alike.
  local labels=(current) backend run scenario label order
  [ -n "$BENCH_BASELINE_BIN" ] && labels=(baseline current)
  for backend in $BENCH_BACKENDS; do
    for label in "${labels[@]}"; do
      if [ "$label" = baseline ]; then
        start_server baseline "$BENCH_BASELINE_BIN" "$backend"
      else
        start_server current "$CURRENT_BIN" "$backend"
      fi
      printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" "$backend" "$label" "set-up" >>"$RESULTS/timeline.tsv"
      prepare_server "$backend" "$label"
    done
    for run in $(seq 1 "$BENCH_RUNS"); do
      for scenario in $BENCH_SCENARIOS; do
        order=("${labels[@]}")
        if [ $((run % 2)) -eq 0 ] && [ "${#labels[@]}" -eq 2 ]; then order=(current baseline); fi
        for label in "${order[@]}"; do
          run_scenario "$scenario" "$backend" "$label" "$run"
        done
      done
    done
    wait_idle
    stop_servers
  done
  printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/meta.tsv"

  local write=$BENCH_WRITE
  if [ "$write" = auto ]; then
    write=0
    if [ -z "$BENCH_BASELINE_BIN" ] && [ "$BENCH_SCENARIOS" = "$DEFAULT_SCENARIOS" ] &&
      [ "$BENCH_BACKENDS" = "sqlite postgres" ]; then write=1; fi
  fi
  local report_args=("$RESULTS")
  [ "$write" = 1 ] && report_args+=(--write "$REPO_DIR/BENCHMARKS.md")
  python3 "$BENCH_DIR/report.py" "${report_args[@]}"
  log "raw results, server logs and report.md in $RESULTS"
}

main "$@"
