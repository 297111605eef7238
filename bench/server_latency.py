#!/usr/bin/env python3
"""The server's own latency histogram of one route over a wrk run, from two scrapes of
GET /metrics on its metrics listener (before and after), as JSON for results.jsonl:

  server_latency.py BEFORE AFTER METHOD ROUTE
  -> {"server_latency": {"le": [0.0005, ...], "cumulative": [n, ...]}}

Beside wrk's figures it tells time spent inside the server (arrival of the request to its
response) from time spent outside it: in the kernel's queues, in the client, or in wrk's
correction for coordinated omission. Prints {} when either scrape is empty (metrics off).
"""

import json
import re
import sys

SAMPLE = re.compile(r'^latchkey_http_request_duration_seconds_bucket\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def buckets(path, method, route):
    """{upper bound in seconds: cumulative count} of the route's successful requests."""
    found = {}
    with open(path) as scrape:
        for line in scrape:
            match = SAMPLE.match(line.strip())
            if not match:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if (labels.get("method"), labels.get("route"), labels.get("status")) != (method, route, "200"):
                continue
            bound = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            found[bound] = float(match["value"])
    return found


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    try:
        before, after = buckets(argv[1], argv[3], argv[4]), buckets(argv[2], argv[3], argv[4])
    except OSError:
        before, after = {}, {}
    # A failed first scrape would make the whole of the server's history look like this run.
    if not before or not after:
        print("{}")
        return
    bounds = sorted(bound for bound in after if bound != float("inf"))
    cumulative = [after[bound] - before.get(bound, 0.0) for bound in bounds]
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    print(json.dumps({"server_latency": {"le": bounds, "cumulative": cumulative, "count": total}}))


if __name__ == "__main__":
    main(sys.argv)
