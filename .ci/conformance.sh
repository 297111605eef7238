#!/usr/bin/env bash
# API conformance: Schemathesis drives a live server from the committed openapi.yaml, every
# operation, with its default checks (no 5xx, documented status codes, response schemas,
# content types and headers, acceptance of valid and rejection of invalid data, auth), on
# SQLite and then on PostgreSQL. Settings and the few per-operation adjustments, with their
# reasons, are in .ci/schemathesis.toml.
#
# Run from the repository root after `cargo build` (it uses target/debug/latchkey, or
# LATCHKEY_BIN) with PostgreSQL listening as .ci/lib.sh expects. Exits non-zero when any
# check fails on either backend, or a run overruns its time cap.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Test cases per operation and phase, and the wall-clock cap of one backend's run: about
# half a minute each on 2 cores, well inside the cap.
MAX_EXAMPLES=${CONFORMANCE_MAX_EXAMPLES:-200}
TIME_CAP=${CONFORMANCE_TIME_CAP:-150}
# A fixed seed: the same requests every run, so a failure reproduces.
SEED=${CONFORMANCE_SEED:-20261127}

if [ "$(python3 -m pip show schemathesis 2>/dev/null | sed -n 's/^Version: //p')" != "$SCHEMATHESIS_VERSION" ]; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# shellcheck source=.ci/lib.sh
source .ci/lib.sh
if [ ! -x "$LATCHKEY_BIN" ]; then
  echo "$LATCHKEY_BIN is missing: run cargo build first" >&2
  exit 1
fi

repo=$PWD
scratch=$(mktemp -d)
trap 'stop_latchkey; rm -rf "$scratch"' EXIT

# Signs up EMAIL with PASSWORD and prints the access token.
signup() {
  curl -fsS -X POST "$LATCHKEY_URL/signup" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"$2\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

failed=()
for backend in sqlite postgres; do
  echo "==> schemathesis against $backend"
  # Argon2 at 8 MiB and one pass instead of the defaults, for this run only: the fuzzer
  # signs up and logs in hundreds of times, and at full cost that alone would take minutes.
  # Hashing is the same code path either way; the parameters are configuration. All those
  # signups come from one address: its hourly limit is raised so that they reach the rules
  # behind it (its `429` is documented and pinned by the integration tests); so is each
  # address's hourly count of mails, which the fuzzer's few addresses would use up at once,
  # each refusal then waiting its second.
  start_latchkey "$backend" LATCHKEY_ARGON2_MEMORY_KIB=8192 LATCHKEY_ARGON2_ITERATIONS=1 \
    LATCHKEY_SIGNUP_IP_MAX=1000000 LATCHKEY_MAIL_RECIPIENT_MAX=1000000

  # Real tokens, of users whose password the fuzzer cannot know. .ci/schemathesis.toml says
  # which operation uses which token.
  password="conformance-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  LATCHKEY_TOKEN=$(signup "conformance@example.com" "$password")
  LATCHKEY_LOGOUT_TOKEN=$(signup "conformance-logout@example.com" "$password")
  LATCHKEY_SESSIONS_TOKEN=$(signup "conformance-sessions@example.com" "$password")
  # POST /me/email asks for the password: its user has the password of the schema's example,
  # so that the example reaches the 202 before the fuzzer's guesses lock the account.
  LATCHKEY_EMAIL_TOKEN=$(signup "conformance-email@example.com" "correct horse battery staple")
  # So does the user that sets up TOTP (POST /me/mfa/totp asks for the password too).
  LATCHKEY_MFA_TOKEN=$(signup "conformance-mfa@example.com" "correct horse battery staple")
  export LATCHKEY_TOKEN LATCHKEY_LOGOUT_TOKEN LATCHKEY_SESSIONS_TOKEN LATCHKEY_EMAIL_TOKEN \
    LATCHKEY_MFA_TOKEN

  started=$SECONDS
  status=0
  # From a scratch directory: Schemathesis keeps its files in the working directory.
  (cd "$scratch" && timeout --kill-after=10 "$TIME_CAP" \
    python3 -m schemathesis.cli --config-file "$repo/.ci/schemathesis.toml" --no-color \
    run "$repo/openapi.yaml" --url "$LATCHKEY_URL" \
    --max-examples "$MAX_EXAMPLES" --seed "$SEED") || status=$?
  echo "==> $backend: schemathesis exited $status after $((SECONDS - started)) s"
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "the run overran its cap of $TIME_CAP s" >&2
  fi
  if [ "$status" != 0 ]; then
    failed+=("$backend")
    echo "--- server log ($backend) ---" >&2
    tail -n 50 "$LATCHKEY_WORKDIR/server.log" >&2 || true
  fi
  stop_latchkey
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "conformance failed on: ${failed[*]}" >&2
  exit 1
fi
echo "conformance passed on sqlite and postgres"
