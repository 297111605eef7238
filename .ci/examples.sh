#!/usr/bin/env bash
# Runs the README's token-verification examples against a live server: a fresh token must
# verify, a tampered one must not.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
python3 -c 'import jwt, cryptography' 2>/dev/null || pip install -q 'pyjwt[crypto]==2.15.1'
cargo build -q --example verify_token

start_latchkey sqlite
trap stop_latchkey EXIT
token=$(curl -fsS "$LATCHKEY_URL/signup" -H 'Content-Type: application/json' \
  -d '{"email": "verify@example.com", "password": "correct horse battery staple"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# Change one character inside the signature (not the last, whose low bits are padding).
tampered=$(python3 -c 'import sys; t = sys.argv[1]; i = len(t) - 10; print(t[:i] + ("B" if t[i] == "A" else "A") + t[i + 1:])' "$token")

for verifier in "target/debug/examples/verify_token" "python3 examples/verify_token.py"; do
  $verifier "$LATCHKEY_URL" "$token" | grep -q '^valid: user '
  if $verifier "$LATCHKEY_URL" "$tampered" >/dev/null; then
    echo "$verifier accepted a tampered token" >&2
    exit 1
  fi
  echo "ok: $verifier"
done
