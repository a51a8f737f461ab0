#!/usr/bin/env python3
"""CPU of every process of a multi-process target (wshub-B-redis: node A, node B, redis-server,
the observer) over wsbench's publish window, from /proc/PID/stat (used by bench/run.sh).

  cluster_cpu.py sample OUT NAME=PID...   # appends {"t": epoch_s, "NAME": ticks, ...} every 0.2 s
                                          # to OUT until killed (SIGTERM)
  cluster_cpu.py window OUT T0 WSBENCH_JSON
      # -> {"window_s": w, "NAME": {"pct": % of one CPU, "cpu_s": s}, ...}

The publish window is [T0 + connect_s + sub_ack_s, + duration_s] (T0 = the wall time wsbench
was started; its own start-up before connecting is a few ms). utime+stime are in clock ticks
(1/100 s) and interpolated linearly between samples, so a figure is good to ~1 % of a CPU over
a 10 s window.
"""
import json
import os
import signal
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    try:
        s = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])


def sample(out, pairs):
    procs = [(n, int(p)) for n, p in (a.split("=", 1) for a in pairs)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(out, "a") as f:
        while True:
            row = {"t": time.time()}
            for n, p in procs:
                row[n] = ticks(p)
            f.write(json.dumps(row) + "\n")
            f.flush()
            time.sleep(0.2)


def at(rows, name, t):
    pts = [(r["t"], r[name]) for r in rows if r.get(name) is not None]
    if not pts or t < pts[0][0] or t > pts[-1][0]:
        return None
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0)
    return pts[-1][1]


def window(out, t0, wjson):
    rows = [json.loads(l) for l in open(out) if l.strip()]
    d = json.loads(open(wjson).read().strip().splitlines()[-1])
    a = float(t0) + d.get("connect_s", 0) + d.get("sub_ack_s", 0)
    w = d.get("duration_s", 0)
    res = {"window_s": round(w, 3)}
    names = [k for k in (rows[0] if rows else {}) if k != "t"]
    for n in names:
        x, y = at(rows, n, a), at(rows, n, a + w)
        if x is None or y is None or w <= 0:
            res[n] = None
            continue
        cpu = (y - x) / TCK
        res[n] = {"pct": round(100 * cpu / w, 1), "cpu_s": round(cpu, 3)}
    print(json.dumps(res))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 5 and sys.argv[1] == "window":
        window(*sys.argv[2:])
    else:
        sys.exit(__doc__)
