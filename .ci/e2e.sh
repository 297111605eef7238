#!/usr/bin/env bash
# The page (GET /) in a real browser: e2e/page.test.js drives Debian's Chromium (headless)
# with playwright-core and node's test runner against target/debug/latchkey, on SQLite and
# then on PostgreSQL: sign up, reload, two tabs refreshing at once, a refresh after a 401,
# ending another device's session, logout, a page on another origin trying the cookie, and
# the mailed codes: a forgotten password, verifying and changing the address, the mails'
# links; two-factor authentication: setting it up, the recovery codes, the login's code
# step and turning it off, with TOTP codes the test file computes itself (no clock waits);
# passkeys (below).
# Screenshots of the main states land in target/e2e/<backend>/.
#
# Passkeys: adding one, renaming and deleting it, signing in with it (no email typed, and no
# code step on an account with TOTP), signing up with one and no password (whose only
# passkey cannot be deleted), in a virtual authenticator that the test file adds to
# each tab through the DevTools protocol (discoverable, user-verifying, backed up like a
# synced passkey).
#
# Mail is real SMTP: the test file runs a sink (smtp-server, from e2e/node_modules) on
# SMTP_PORT, which this script picks and gives to the server as LATCHKEY_SMTP_URL. The
# server sends from a background worker with retries, so it may start before the sink.
#
# The server's LATCHKEY_PUBLIC_URL is http://localhost:<its port>, and the tests open the
# page there (LATCHKEY_URL of the test file): the mails' links lead to the server under test,
# and WebAuthn, which needs a domain for its relying party id, takes `localhost` from it
# (http://localhost is a secure context). 127.0.0.1, where the server listens, stands for
# another site in the tests that need one.
#
# Run from anywhere after `cargo build` (CI: after `cargo test`). PostgreSQL must be up for
# the postgres backend (.ci/run starts it).
#
#   LATCHKEY_E2E_BACKENDS="sqlite postgres"   which backends to run (default both)
set -euo pipefail
cd "$(dirname "$0")/.."

# Access tokens live 2 s here, so that the page's proactive refresh and its refresh after a
# 401 both happen within a test.
ACCESS_TTL=2
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
backends=${LATCHKEY_E2E_BACKENDS:-sqlite postgres}

log() { printf '\n==> %s\n' "$*"; }

if [ ! -x target/debug/latchkey ] && [ -z "${LATCHKEY_BIN:-}" ]; then
  echo "target/debug/latchkey is missing: run cargo build first" >&2
  exit 1
fi

# --- tools ------------------------------------------------------------------------------
# Playwright cannot download its own browser build here; Debian's Chromium is the browser.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! (cd e2e && npm ls --depth=0 >/dev/null 2>&1); then
  log "npm ci (e2e)"
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# --- run against each backend -----------------------------------------------------------
# shellcheck source=lib.sh
source .ci/lib.sh
trap stop_latchkey EXIT

total_passed=0
total_failed=0
timings=()

for backend in $backends; do
  log "browser tests on $backend"
  started=$SECONDS
  shots="$PWD/target/e2e/$backend"
  rm -rf "$shots"
  port=$(free_port)
  smtp_port=$(free_port)
  while [ "$smtp_port" = "$port" ]; do smtp_port=$(free_port); done
  public_url="http://localhost:$port"
  # Every test signs up from 127.0.0.1: more than the default 20 signups (and mails asked
  # for) an hour allow.
  LATCHKEY_PORT=$port start_latchkey "$backend" LATCHKEY_ACCESS_TTL="$ACCESS_TTL" \
    LATCHKEY_SMTP_URL="smtp://127.0.0.1:$smtp_port" LATCHKEY_PUBLIC_URL="$public_url" \
    LATCHKEY_SIGNUP_IP_MAX=1000
  out=$(mktemp)
  rc=0
  (
    cd e2e
    LATCHKEY_URL="$public_url" ACCESS_TTL="$ACCESS_TTL" E2E_SCREENSHOTS="$shots" \
      SMTP_PORT="$smtp_port" \
      timeout --kill-after=10 "$E2E_TIMEOUT" \
      node --test --test-concurrency=1 --test-reporter=spec page.test.js
  ) 2>&1 | tee "$out" || rc=$?
  # node's spec reporter closes with "ℹ pass N" and "ℹ fail N".
  passed=$(sed -nE 's/^ℹ pass ([0-9]+)$/\1/p' "$out" | tail -n 1)
  failed=$(sed -nE 's/^ℹ fail ([0-9]+)$/\1/p' "$out" | tail -n 1)
  rm -f "$out"
  total_passed=$((total_passed + ${passed:-0}))
  total_failed=$((total_failed + ${failed:-0}))
  if [ "$rc" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then
    echo "the browser tests exited with status $rc on $backend" >&2
    total_failed=$((total_failed + 1))
  fi
  if [ "$rc" -ne 0 ]; then
    echo "--- server log ($backend) ---" >&2
    cat "$LATCHKEY_WORKDIR/server.log" >&2 || true
  fi
  stop_latchkey
  timings+=("$backend $((SECONDS - started))s")
done

log "browser tests: ${timings[*]}; screenshots in target/e2e/"
echo "e2e: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
