#!/usr/bin/env bash
# Generated clients against a live server: generates a Python client (openapi-python-client)
# and TypeScript types (openapi-typescript, used through openapi-fetch) from openapi.yaml,
# type-checks the TypeScript smoke, then runs both smokes (signup -> me -> refresh ->
# sessions -> logout -> me 401, a 422, the cookie transport; then the mailed codes: verify
# the signup's email, forgot -> reset password -> log in anew, change the email and verify
# the new one; then the second factor: enrol TOTP -> confirm with a code (recovery codes)
# -> me mfa [totp] -> login 403 mfa_required with an mfa_token -> /login/mfa with the next
# step's code (amr [pwd, otp]; the confirm's code refused as a replay), a wrong code 400, a
# recovery code -> disable with a recovery code -> me mfa [] and a plain login; then
# passkeys: register -> list -> rename -> log out -> log in naming no account (amr [hwk]),
# a replayed answer 400 and one signed for another origin 401 -> remove, and a passkey-only
# signup whose only passkey is not removed (409) and which no password logs in to) against
# target/debug/latchkey on each backend. No SMTP server: the server runs with
# LATCHKEY_LOG=info, so that it logs each message, and the smokes read the mailed codes from
# its log ($LATCHKEY_SERVER_LOG). The TOTP codes the smokes compute themselves (RFC 6238,
# from the enrolment's secret and the clock: no authenticator app, no new dependency). The
# passkeys are software ones written in each smoke (ES256: node:crypto, and Python's
# `cryptography`, installed here when missing); WebAuthn needs a domain name, so the server's
# LATCHKEY_PUBLIC_URL is http://localhost:<its port>, exported for the smokes to sign for.
# Run from anywhere after `cargo build` (CI: after `cargo test`). PostgreSQL must be up for
# the postgres backend (.ci/run starts it). Generated code lands in git-ignored folders.
#
#   LATCHKEY_CLIENT_BACKENDS="sqlite postgres"   which backends to run (default both)
set -euo pipefail
cd "$(dirname "$0")/.."

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
CRYPTOGRAPHY_VERSION=48.0.0
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-120}
backends=${LATCHKEY_CLIENT_BACKENDS:-sqlite postgres}

log() { printf '\n==> %s\n' "$*"; }

if [ ! -x target/debug/latchkey ] && [ -z "${LATCHKEY_BIN:-}" ]; then
  echo "target/debug/latchkey is missing: run cargo build first" >&2
  exit 1
fi

# --- tools ------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
if [ "$(python3 -m openapi_python_client --version 2>/dev/null || true)" != "openapi-python-client version: $OPENAPI_PYTHON_CLIENT_VERSION" ]; then
  log "installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION"
fi
# The Python smoke's passkey signs with it; any version already there will do.
if ! python3 -c 'import cryptography.hazmat.primitives.asymmetric.ec' 2>/dev/null; then
  log "installing cryptography $CRYPTOGRAPHY_VERSION"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "cryptography==$CRYPTOGRAPHY_VERSION"
fi
if ! (cd clients/typescript && npm ls --depth=0 >/dev/null 2>&1); then
  log "npm ci (clients/typescript)"
  (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- generate ---------------------------------------------------------------------------
log "openapi-python-client generate"
rm -rf clients/python/generated
python3 -m openapi_python_client generate --path openapi.yaml --meta none --fail-on-warning \
  --config clients/python/config.yaml \
  --output-path clients/python/generated/latchkey_client
python3 -c 'import sys; sys.path.insert(0, "clients/python/generated"); import latchkey_client.api.auth.signup'

log "openapi-typescript + tsc --noEmit"
rm -rf clients/typescript/generated
(
  cd clients/typescript
  node_modules/.bin/openapi-typescript ../../openapi.yaml --output generated/schema.d.ts
  node_modules/.bin/tsc --noEmit -p .
)

# --- run against each backend -----------------------------------------------------------
# shellcheck source=lib.sh
source .ci/lib.sh
trap stop_latchkey EXIT

total_passed=0
total_failed=0
timings=()

# run_smoke NAME CMD...: runs one smoke, adds its "NAME: N passed, M failed" line to the
# totals; a smoke that dies without that line counts as one failure.
run_smoke() {
  local name=$1 out rc=0 line
  shift
  out=$(mktemp)
  timeout "$SMOKE_TIMEOUT" "$@" 2>&1 | tee "$out" || rc=$?
  line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$out" | tail -n 1 || true)
  rm -f "$out"
  if [ -n "$line" ]; then
    total_passed=$((total_passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
    total_failed=$((total_failed + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
  fi
  if [ "$rc" -ne 0 ] && { [ -z "$line" ] || [[ "$line" == *" 0 failed" ]]; }; then
    echo "$name smoke exited with status $rc" >&2
    total_failed=$((total_failed + 1))
  fi
  return 0
}

for backend in $backends; do
  log "smokes on $backend"
  started=$SECONDS
  failed_before=$total_failed
  # info: without LATCHKEY_SMTP_URL each mail (with its code) is written to the log there.
  # The public URL names localhost, not 127.0.0.1: with an IP address passkeys are off. It is
  # the origin (and its host the RP id) the smokes' passkeys sign for.
  port=$(free_port)
  export LATCHKEY_PUBLIC_URL="http://localhost:$port"
  LATCHKEY_PORT=$port start_latchkey "$backend" LATCHKEY_LOG=info LATCHKEY_PUBLIC_URL="$LATCHKEY_PUBLIC_URL"
  export LATCHKEY_SERVER_LOG="$LATCHKEY_WORKDIR/server.log"
  run_smoke python python3 clients/python/smoke.py "$LATCHKEY_URL"
  run_smoke typescript bash -c 'cd clients/typescript && exec node_modules/.bin/tsx smoke.ts "$1"' _ "$LATCHKEY_URL"
  if [ "$total_failed" -gt "$failed_before" ]; then
    echo "--- server log ($backend) ---" >&2
    cat "$LATCHKEY_WORKDIR/server.log" >&2 || true
  fi
  stop_latchkey
  timings+=("$backend $((SECONDS - started))s")
done

log "generated clients: ${timings[*]}"
echo "clients: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
