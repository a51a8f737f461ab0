#!/usr/bin/env python3
"""Reads wshubd's /metrics text on stdin and prints the server's own share of the fan-out
latency as JSON: percentiles of wshub_fanout_delivery_seconds (per delivery, publish -> write
into the subscriber's socket, so they compare with wsbench's per-delivery publish -> receive
latency), each the upper bound of the bucket it falls in.

    curl -s http://127.0.0.1:PORT/metrics | bench/fanout_metrics.py
    {"deliveries": 500000, "fanout_p50_ms": 1.0, "fanout_p99_ms": 2.0, "fanout_mean_ms": 0.61}
"""
import json
import re
import sys


def main():
    buckets, count, total = [], None, None
    for line in sys.stdin:
        m = re.match(r'wshub_fanout_delivery_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m and m.group(1) != "+Inf":
            buckets.append((float(m.group(1)), int(m.group(2))))
        m = re.match(r"wshub_fanout_delivery_seconds_count (\d+)", line)
        if m:
            count = int(m.group(1))
        m = re.match(r"wshub_fanout_delivery_seconds_sum ([0-9.eE+-]+)", line)
        if m:
            total = float(m.group(1))
    if not count:
        print(json.dumps({"deliveries": count or 0}))
        return
    out = {"deliveries": count}
    for q, key in ((0.5, "fanout_p50_ms"), (0.99, "fanout_p99_ms"), (0.999, "fanout_p999_ms")):
        # the bucket the q-th delivery falls in; above the last finite bound: null (unbounded)
        out[key] = next((le * 1e3 for le, c in sorted(buckets) if c >= q * count), None)
    out["fanout_mean_ms"] = round(total / count * 1e3, 3) if total is not None else None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
