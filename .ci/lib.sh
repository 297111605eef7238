# Shared by the CI scripts that drive a live server. Source it, then:
#   start_latchkey sqlite|postgres [ENV=VALUE ...]   # sets LATCHKEY_URL and LATCHKEY_PID
#   stop_latchkey                                    # stops it and drops its database
# The binary is target/debug/latchkey unless LATCHKEY_BIN says otherwise. It listens on a
# free port, or on LATCHKEY_PORT when the caller sets it (to know the URL beforehand, say for
# LATCHKEY_PUBLIC_URL: `port=$(free_port); LATCHKEY_PORT=$port start_latchkey ...`).

LATCHKEY_BIN=${LATCHKEY_BIN:-target/debug/latchkey}
LATCHKEY_PG_BASE=${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_latchkey() {
  local backend=$1
  shift
  LATCHKEY_WORKDIR=$(mktemp -d)
  LATCHKEY_PG_DB=""
  local database_url
  case "$backend" in
    sqlite) database_url="sqlite://$LATCHKEY_WORKDIR/latchkey.db" ;;
    postgres)
      LATCHKEY_PG_DB="latchkey_ci_$$_$RANDOM"
      psql "$LATCHKEY_PG_BASE/postgres" -qc "CREATE DATABASE $LATCHKEY_PG_DB" >/dev/null
      database_url="$LATCHKEY_PG_BASE/$LATCHKEY_PG_DB"
      ;;
    *) echo "start_latchkey: unknown backend $backend" >&2; return 2 ;;
  esac
  local port
  port=${LATCHKEY_PORT:-$(free_port)}
  LATCHKEY_URL="http://127.0.0.1:$port"
  # The metrics listener on a port of the system's choosing: nothing here scrapes it, and
  # the default 127.0.0.1:9090 may be taken by another server on this host.
  env DATABASE_URL="$database_url" LATCHKEY_BIND="127.0.0.1:$port" LATCHKEY_METRICS_BIND=127.0.0.1:0 \
    LATCHKEY_LOG=warn "$@" "$LATCHKEY_BIN" serve >"$LATCHKEY_WORKDIR/server.log" 2>&1 &
  LATCHKEY_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "$LATCHKEY_URL/healthz" >/dev/null 2>&1; then
      export LATCHKEY_URL LATCHKEY_PID
      return 0
    fi
    if ! kill -0 "$LATCHKEY_PID" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "latchkey did not start on $backend:" >&2
  cat "$LATCHKEY_WORKDIR/server.log" >&2
  return 1
}

stop_latchkey() {
  if [ -n "${LATCHKEY_PID:-}" ]; then
    kill "$LATCHKEY_PID" 2>/dev/null || true
    wait "$LATCHKEY_PID" 2>/dev/null || true
    LATCHKEY_PID=""
  fi
  if [ -n "${LATCHKEY_PG_DB:-}" ]; then
    psql "$LATCHKEY_PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $LATCHKEY_PG_DB WITH (FORCE)" >/dev/null || true
    LATCHKEY_PG_DB=""
  fi
  [ -n "${LATCHKEY_WORKDIR:-}" ] && rm -rf "$LATCHKEY_WORKDIR"
  LATCHKEY_WORKDIR=""
}
