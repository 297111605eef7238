#!/usr/bin/env python3
"""Creates what the scenarios need on a running Latchkey, with the standard library only.

  prepare.py signup URL COUNT PREFIX DIR   # COUNT users: DIR/users.txt (emails) and
                                           # DIR/access_tokens.txt (one each)
  prepare.py sessions URL USERS COUNT FILE # COUNT fresh sessions by logging in the users
                                           # of USERS in turn: one refresh token a line

The password is BENCH_PASSWORD. Any answer other than the expected status stops the
harness with the status and the problem document: a benchmark over half-failed set-up
would measure nothing useful.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# Four at a time: enough to keep the hashing pool busy on a small machine, few enough
# that set-up never looks like a flood.
PARALLEL = 4


def post(url, path, body, expected, forwarded_for=None):
    headers = {"Content-Type": "application/json"}
    if forwarded_for:
        # The server trusts 127.0.0.1 as a proxy (bench/run.sh): each user signs up from an
        # address of its own, as real users do, within the per-address signup limit.
        headers["X-Forwarded-For"] = forwarded_for
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    if status != expected:
        sys.exit(f"prepare: POST {path} answered {status}, expected {expected}: "
                 f"{payload.decode(errors='replace')[:500]}")
    return json.loads(payload)


def signup(url, count, prefix, directory):
    password = os.environ["BENCH_PASSWORD"]
    emails = [f"{prefix}-{n:05d}@bench.example.com" for n in range(count)]

    def one(n):
        address = f"172.16.{n // 256 % 256}.{n % 256}"
        return post(url, "/signup", {"email": emails[n], "password": password}, 201, address)

    with ThreadPoolExecutor(PARALLEL) as pool:
        responses = list(pool.map(one, range(count)))
    with open(os.path.join(directory, "users.txt"), "w") as users:
        users.writelines(f"{email}\n" for email in emails)
    with open(os.path.join(directory, "access_tokens.txt"), "w") as tokens:
        tokens.writelines(f"{r['access_token']}\n" for r in responses)


def sessions(url, users_file, count, out):
    password = os.environ["BENCH_PASSWORD"]
    with open(users_file) as users:
        emails = [line.strip() for line in users if line.strip()]

    def one(n):
        body = {"email": emails[n % len(emails)], "password": password}
        return post(url, "/login", body, 200)["refresh_token"]

    with ThreadPoolExecutor(PARALLEL) as pool:
        tokens = list(pool.map(one, range(count)))
    with open(out, "w") as file:
        file.writelines(f"{token}\n" for token in tokens)


def main(argv):
    if len(argv) == 6 and argv[1] == "signup":
        signup(argv[2], int(argv[3]), argv[4], argv[5])
    elif len(argv) == 6 and argv[1] == "sessions":
        sessions(argv[2], argv[3], int(argv[4]), argv[5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
