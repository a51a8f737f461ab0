#!/usr/bin/env python3
"""Tables for bench/run.sh: one Markdown table per scenario (median (min..max) over the
repetitions), ratio tables (wshub vs node-ws measured in the same run; wshub vs uWebSockets
QUOTED from ../shared/bench/RESULTS.md) and a list of anomalies.

usage: bench/summarize.py RESULTS_DIR        (or: bench/summarize.sh [RESULTS_DIR])
Reads RESULTS_DIR/<target>-<scenario>-<rep>.json (wsbench's JSON line), the .run.json beside
it (exit codes, written by run.sh) and RESULTS_DIR/meta.md. *.rejectedN files are only counted.
wshub-B-redis runs also have .cluster.json (CPU of node A, node B, redis-server and the observer
over the publish window, bench/cluster_cpu.py) and .redis-stats.txt (Redis's commandstats).
"""
import collections
import glob
import json
import os
import re
import statistics
import sys

TARGET_ORDER = ["wshub-B", "wshub-B-z", "wshub-E", "wshub-C", "wshub-B-2w", "wshub-B-hist", "wshub-B-redis", "node-ws",
                "uws", "uws-z"]
SC_ORDER = ["S1", "S1Z", "S2", "S2M", "S2L", "S3", "SP", "SPF"]
SC_TITLE = {
    "S1": "S1 — fan-out: 1 channel × 1000 subscribers, saturate (W=16) via HTTP publish, 10 s",
    "S1Z": "S1Z — S1 with a ~1 KB compressible publish body, wsbench-z --deflate (offered to every target; "
           "the *-z targets compress)",
    "S2": "S2 — 100 channels × 100 subscribers (N=10,000), 2000 publishes/s, 10 s",
    "S2M": "S2M — 100 × 100 (N=10,000), 1000 publishes/s, 10 s",
    "S2L": "S2L — 100 × 100 (N=10,000), 500 publishes/s (50k deliveries/s), 10 s",
    "S3": "S3 — idle: 10,000 connections (100 channels), 10 s hold",
    "SP": "SP — publish-heavy: ~6.6 KB JSON publishes via HTTP (16 connections) to 100 channels × 1 subscriber, saturate, 10 s",
    "SPF": "SPF — SP's shape at a fixed rate (SPF_RATE publishes/s, 32 publisher connections), 10 s",
}
STD_CONNS = {"S1": 1000, "S1Z": 1000, "S2": 10000, "S2M": 10000, "S2L": 10000, "S3": 10000, "SP": 100,
             "SPF": 100}
# uWebSockets and node-ws medians QUOTED from ../shared/bench/RESULTS.md (not measured here)
QUOTED = {
    "uWebSockets": {"S1.dps": 846216, "S1.p50": 6.97, "S1.p99": 13.37, "S2L.p50": 0.53, "S2L.p99": 1.82,
                    "S3.kb": 0.46, "S3.hs": 28372},
    "node-ws": {"S1.dps": 121223, "S1.p50": 28.28, "S1.p99": 47.45, "S2L.p50": 1.14, "S2L.p99": 173.02,
                "S3.kb": 7.85, "S3.hs": 5632},
}


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def load(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except Exception:
        return None


def other_load(d):
    """CPU % of the two CPUs not explained by server + bench during the measured phase"""
    c = get(d, "cpu.publish") or get(d, "cpu.connect")
    if not c or len(c.get("machine_busy_pct", [])) < 2:
        return None
    return max(sum(c["machine_busy_pct"]) - max(c.get("server_pct", 0), 0) - max(c.get("bench_pct", 0), 0), 0)


def fmt(vals, digits=0, scale=1.0):
    vals = [v * scale for v in vals if v is not None and not (isinstance(v, (int, float)) and v < 0)]
    if not vals:
        return "-"
    f = "{:,.%df}" % digits
    med = statistics.median(vals)
    if len(vals) == 1:
        return f.format(med)
    return "%s (%s..%s)" % (f.format(med), f.format(min(vals)), f.format(max(vals)))


def med(vals):
    vals = [v for v in vals if v is not None and v >= 0]
    return statistics.median(vals) if vals else None


# (header, json path or callable, digits, scale)
FLOW = [("deliveries/s", "deliveries_per_s", 0, 1), ("publishes/s", "publishes_per_s", 0, 1),
        ("lat p50 ms", "latency_us.p50", 2, 1e-3), ("lat p99 ms", "latency_us.p99", 2, 1e-3),
        ("lat max ms", "latency_us.max", 1, 1e-3), ("lost", "lost", 0, 1), ("dup", "dup", 0, 1),
        ("errors", "errors.total", 0, 1),
        ("server CPU %", "cpu.publish.server_pct", 0, 1), ("bench CPU %", "cpu.publish.bench_pct", 0, 1),
        ("frames/read", "frames_per_read", 2, 1), ("bench ceiling dps est", "bench_ceiling_dps_est", 0, 1),
        ("server's share p50 ms ≤", "server.fanout_p50_ms", 2, 1),
        ("server's share p99 ms ≤", "server.fanout_p99_ms", 2, 1)]
FIXED_EXTRA = [("late publishes", "late_publishes", 0, 1)]
IDLE = [("handshakes/s", "handshakes_per_s", 0, 1), ("KB/conn (after hold)", "kb_per_conn", 2, 1),
        ("KB/conn (connected only)", "kb_per_conn_connected", 2, 1), ("RSS end MB", "rss_kb.end", 1, 1 / 1024),
        ("sub-ack s", "sub_ack_s", 3, 1), ("server CPU % (connect)", "cpu.connect.server_pct", 0, 1),
        ("bench CPU % (connect)", "cpu.connect.bench_pct", 0, 1), ("syn_retrans", "syn_retrans", 0, 1),
        ("errors", "errors.total", 0, 1)]


def deflate_table(sc, present, runs, meta):
    """wsbench-z --deflate runs: what went over the wire against what the subscribers read, and the
    compressed targets beside their uncompressed twins (wshub-B-z / wshub-B, uws-z / uws)"""
    zt = [t for t in present if any("deflate" in d for d in runs[(t, sc)])]
    if not zt:
        return
    print("\n%s, permessage-deflate (subscriber connections, whole run): *negotiated* = connections "
          "whose handshake agreed on it; *wire B/msg* = payload bytes as received, *plain B/msg* = after "
          "inflating (equal when uncompressed); *check* = bench/deflate_check.py (a *-z target must compress, "
          "the others must not).\n" % sc)
    print("| target | runs | negotiated | compressed msgs / msgs | wire B/msg | plain B/msg | wire ÷ plain "
          "| wire MB/s | deliveries/s | server CPU % | lat p50 ms | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in zt:
        ds = [d for d in runs[(t, sc)] if "deflate" in d]
        z = [d["deflate"] for d in ds]
        per = lambda k: [x[k] / x["messages"] if x["messages"] else None for x in z]  # noqa: E731
        dur = [d.get("duration_s") or 0 for d in ds]
        checks = sorted({str(meta.get(d.get("label"), {}).get("deflate_check")) for d in ds})
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            t, len(ds), fmt([x["negotiated"] for x in z]),
            "%s / %s" % (fmt([x["compressed_messages"] for x in z]), fmt([x["messages"] for x in z])),
            fmt(per("wire_bytes")), fmt(per("plain_bytes")),
            fmt([x["wire_bytes"] / x["plain_bytes"] if x["plain_bytes"] else None for x in z], 3),
            # whole-run bytes over the publish window: an approximation (acks and the drain are in it)
            fmt([x["wire_bytes"] / 1e6 / s_ if s_ else None for x, s_ in zip(z, dur)], 1),
            fmt([d.get("deliveries_per_s") for d in ds]), fmt([get(d, "cpu.publish.server_pct") for d in ds]),
            fmt([get(d, "latency_us.p50") for d in ds], 2, 1e-3), ", ".join(checks)))
    pairs = [(a, b) for a, b in (("wshub-B-z", "wshub-B"), ("uws-z", "uws")) if a in zt and b in zt]
    if not pairs:
        return
    print("\nCompressed ÷ uncompressed, same payload, same wsbench-z (medians; < 1 for wire bytes means "
          "compression saved bytes, deliveries/s < 1 means it cost throughput):\n")
    print("| pair | deliveries/s | server CPU % | lat p50 | wire bytes/msg |")
    print("|---|---|---|---|---|")

    def m(t, f):
        v = med([f(d) for d in runs[(t, sc)]])
        return v

    def wire(d):
        z = d.get("deflate") or {}
        return z["wire_bytes"] / z["messages"] if z.get("messages") else None
    for a, b in pairs:
        row = []
        for f in (lambda d: d.get("deliveries_per_s"), lambda d: get(d, "cpu.publish.server_pct"),
                  lambda d: get(d, "latency_us.p50"), wire):
            va, vb = m(a, f), m(b, f)
            row.append("%.2f×" % (va / vb) if va is not None and vb else "-")
        print("| %s ÷ %s | %s |" % (a, b, " | ".join(row)))


def columns(sc, runs):
    if any(d.get("mode") == "idle" for d in runs):
        return IDLE
    if any(d.get("mode") == "fixed" for d in runs):
        return FLOW + FIXED_EXTRA
    return FLOW


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__)
    out = sys.argv[1]
    runs = collections.defaultdict(list)   # (target, sc) -> [json]
    meta = {}                              # label -> run.json
    rejected = collections.Counter()
    bad_files = []
    for path in sorted(glob.glob(os.path.join(out, "*-S*-*.json*"))):
        name = os.path.basename(path)
        m = re.match(r"(.+)-(S\w+)-(\d+)\.json(\.rejected\d+)?$", name)
        if not m:
            continue
        if m.group(4):
            rejected[(m.group(1), m.group(2))] += 1
            continue
        d = load(path)
        if d is None:
            bad_files.append(name)
            continue
        cj = os.path.join(out, "%s-%s-%s.cluster.json" % m.group(1, 2, 3))
        if os.path.exists(cj):
            d["cluster"] = load(cj) or {}
        rs = os.path.join(out, "%s-%s-%s.redis-stats.txt" % m.group(1, 2, 3))
        if os.path.exists(rs):
            mm = re.search(r"cmdstat_publish:calls=(\d+),usec=(\d+)", open(rs).read())
            if mm:
                d["redis_publish"] = {"calls": int(mm.group(1)), "usec": int(mm.group(2)),
                                      "usec_per_call": int(mm.group(2)) / max(int(mm.group(1)), 1)}
        fo = os.path.join(out, "%s-%s-%s.fanout.json" % m.group(1, 2, 3))
        if os.path.exists(fo):
            d["server"] = load(fo) or {}
        runs[(m.group(1), m.group(2))].append(d)
        rj = os.path.join(out, "%s-%s-%s.run.json" % m.group(1, 2, 3))
        if os.path.exists(rj):
            meta[d.get("label", "")] = json.load(open(rj))
    for rj in sorted(glob.glob(os.path.join(out, "*.run.json"))):
        r = json.load(open(rj))
        if r.get("start_failed"):
            bad_files.append("%s (the server did not start)" % os.path.basename(rj))

    targets = sorted({t for t, _ in runs}, key=lambda t: (TARGET_ORDER.index(t) if t in TARGET_ORDER else 99, t))
    scs = sorted({s for _, s in runs}, key=lambda s: (SC_ORDER.index(s) if s in SC_ORDER else 99, s))

    mp = os.path.join(out, "meta.md")
    if os.path.exists(mp):
        print(open(mp).read().rstrip())
        print()
    print("Every cell: median (min..max) over the runs; one value when there was one run. "
          "*other load %* = CPU used by other processes during the run, in % of one CPU (the larger of the "
          "per-process count of bench/proc_cpu.py and wsbench's /proc/stat estimate; > 10 % makes the run "
          "suspect).")

    nonstd = set()
    for sc in scs:
        present = [t for t in targets if (t, sc) in runs]
        allruns = [d for t in present for d in runs[(t, sc)]]
        cols = columns(sc, allruns)
        title = SC_TITLE.get(sc, sc)
        if any(d.get("conns") != STD_CONNS.get(sc) or abs(d.get("duration_s", 10) - 10) > 0.5 for d in allruns):
            nonstd.add(sc)
            d0 = allruns[0]
            title = "%s — REDUCED/NON-STANDARD SCALE: %s conns, %s channel(s), %s, %s s (not comparable with RESULTS.md)" % (
                sc, d0.get("conns"), d0.get("channels"),
                d0.get("mode") + (" %s publishes/s" % d0.get("rate") if d0.get("mode") == "fixed" else ""),
                d0.get("duration_s"))
        print("\n### %s\n" % title)
        print("| target | runs | " + " | ".join(c[0] for c in cols) + " | other load % |")
        print("|---|---|" + "---|" * (len(cols) + 1))
        for t in present:
            ds = runs[(t, sc)]
            cells = [fmt([get(d, c[1]) for d in ds], c[2], c[3]) for c in cols]
            cells.append(fmt([meta.get(d.get("label"), {}).get("other_load_pct", other_load(d)) for d in ds], 0))
            print("| %s | %d | %s |" % (t, len(ds), " | ".join(cells)))
        deflate_table(sc, present, runs, meta)

    # ----------------------------------------------------------- ratios
    def m_of(t, sc, path, scale=1.0):
        v = med([get(d, path) for d in runs.get((t, sc), [])])
        return None if v is None else v * scale

    metrics = [("S1 deliveries/s", "S1", "deliveries_per_s", 1, "S1.dps", True, 0),
               ("S1 lat p50 ms", "S1", "latency_us.p50", 1e-3, "S1.p50", False, 2),
               ("S1 lat p99 ms", "S1", "latency_us.p99", 1e-3, "S1.p99", False, 2),
               ("S2L lat p50 ms", "S2L", "latency_us.p50", 1e-3, "S2L.p50", False, 2),
               ("S2L lat p99 ms", "S2L", "latency_us.p99", 1e-3, "S2L.p99", False, 2),
               ("S3 KB/conn", "S3", "kb_per_conn", 1, "S3.kb", False, 2),
               ("S3 handshakes/s", "S3", "handshakes_per_s", 1, "S3.hs", True, 0)]
    metrics = [x for x in metrics if x[1] in scs and x[1] not in nonstd]
    wshub = [t for t in targets if t.startswith("wshub") and not t.endswith("-z")]

    def cell(a, b, digits):
        if a is None or b is None or b == 0:
            return "-"
        f = "{:,.%df}" % digits
        return "%.2f× (%s vs %s)" % (a / b, f.format(a), f.format(b))

    if wshub and metrics:
        legend = ("ratio = wshub ÷ peer; higher is better for deliveries/s and handshakes/s, lower is better "
                  "for latency and KB/conn. Medians.")
        for peer, name in (("node-ws", "node-ws"), ("uws", "uWebSockets (uws)")):
            if peer not in targets:
                continue
            print("\n### Ratios: wshub vs %s, both measured in this run (same machine, same wsbench)\n" % name)
            print(legend + "\n")
            print("| target | " + " | ".join(x[0] for x in metrics) + " |")
            print("|---|" + "---|" * len(metrics))
            for t in wshub:
                print("| %s vs %s | %s |" % (t, peer, " | ".join(
                    cell(m_of(t, x[1], x[2], x[3]), m_of(peer, x[1], x[2], x[3]), x[6]) for x in metrics)))
        print("\n### Ratios: wshub vs uWebSockets — uWebSockets figures QUOTED from ../shared/bench/RESULTS.md, "
              "NOT measured in this run\n")
        print("Its medians (3 runs, same wsbench, same pinning, this machine type, an earlier session) are copied "
              "from RESULTS.md: S1 846,216 deliveries/s, p50 6.97 / p99 "
              "13.37 ms (bench-co-limited: wsbench at 95 %); S2L p50 0.53 / p99 1.82 ms; S3 0.46 KB/conn, "
              "28,372 handshakes/s (wsbench-limited). " +
              ("The uws target above is the same build measured now; the calibration below compares the two. "
               if "uws" in targets else "The uws target (bench/build-uws.sh) measures it in this run. ") +
              legend + "\n")
        print("| target | " + " | ".join(x[0] for x in metrics) + " |")
        print("|---|" + "---|" * len(metrics))
        for t in wshub:
            print("| %s vs uWS (quoted) | %s |" % (t, " | ".join(
                cell(m_of(t, x[1], x[2], x[3]), QUOTED["uWebSockets"][x[4]], x[6]) for x in metrics)))
    # ----------------------------------------------------------- issue 13: through Redis
    if "wshub-B-redis" in targets and "wshub-B" in targets:
        print("\n### Issue 13: two nodes through Redis (wshub-B-redis) vs the embedded hub (wshub-B), this run\n")
        print("Goals (issue 13): S1 deliveries/s through Redis ≥ 0.7× embedded; S2L p50 ≤ embedded + 0.5 ms. Medians.\n")
        print("| metric | embedded (wshub-B) | through Redis (wshub-B-redis) | ratio / difference | goal | met? |")
        print("|---|---|---|---|---|---|")
        a, b = m_of("wshub-B", "S1", "deliveries_per_s"), m_of("wshub-B-redis", "S1", "deliveries_per_s")
        if a and b:
            print("| S1 deliveries/s | {:,.0f} | {:,.0f} | {:.2f}× | ≥ 0.70× | {} |".format(a, b, b / a, "yes" if b / a >= 0.7 else "**no**"))
        for lab, path in (("S1 lat p50 ms", "latency_us.p50"), ("S1 lat p99 ms", "latency_us.p99"),
                          ("S1 frames/read", "frames_per_read")):
            a, b = m_of("wshub-B", "S1", path), m_of("wshub-B-redis", "S1", path)
            if a is not None and b is not None:
                sc_ = 1e-3 if "lat" in lab else 1
                print("| {} | {:.2f} | {:.2f} | {:.2f}× | | |".format(lab, a * sc_, b * sc_, b / a if a else 0))
        a, b = m_of("wshub-B", "S2L", "latency_us.p50", 1e-3), m_of("wshub-B-redis", "S2L", "latency_us.p50", 1e-3)
        if a is not None and b is not None:
            print("| S2L lat p50 ms | {:.2f} | {:.2f} | {:+.2f} ms | ≤ +0.50 ms | {} |".format(a, b, b - a, "yes" if b - a <= 0.5 else "**no**"))
        a, b = m_of("wshub-B", "S2L", "latency_us.p99", 1e-3), m_of("wshub-B-redis", "S2L", "latency_us.p99", 1e-3)
        if a is not None and b is not None:
            print("| S2L lat p99 ms | {:.2f} | {:.2f} | {:+.2f} ms | | |".format(a, b, b - a))
        print("\nWhere the time goes (wshub-B-redis): CPU % of one core over the publish window, from "
              "/proc/PID/stat (bench/cluster_cpu.py); Redis's own time in PUBLISH from INFO commandstats.\n")
        print("| scenario | runs | node A % | node B % | redis-server % | observer % | wsbench % | Redis µs per PUBLISH |")
        print("|---|---|---|---|---|---|---|---|")
        for sc in scs:
            ds = runs.get(("wshub-B-redis", sc), [])
            if not ds:
                continue
            def cl(n, ds=ds):
                return fmt([get(d, "cluster.%s.pct" % n) for d in ds], 1)
            print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
                sc, len(ds), cl("nodeA"), cl("nodeB"), cl("redis"), cl("observer"),
                fmt([get(d, "cpu.publish.bench_pct") for d in ds], 0),
                fmt([get(d, "redis_publish.usec_per_call") for d in ds], 2)))
    calib = [(p, q) for p, q in (("node-ws", "node-ws"), ("uws", "uWebSockets")) if p in targets]
    if calib and metrics:
        print("\n### Calibration: the peers in this run vs the same peers QUOTED from RESULTS.md\n")
        print("The same peer on the same machine type; a large drift means the machine (or the load on it) "
              "differs from when RESULTS.md was measured, and the quoted uWS ratios above drift with it.\n")
        print("| | " + " | ".join(x[0] for x in metrics) + " |")
        print("|---|" + "---|" * len(metrics))
        for p, q in calib:
            print("| %s this run ÷ RESULTS.md | %s |" % (p, " | ".join(
                cell(m_of(p, x[1], x[2], x[3]), QUOTED[q][x[4]], x[6]) for x in metrics)))

    # ----------------------------------------------------------- anomalies
    notes = []
    for (t, sc), ds in sorted(runs.items()):
        for d in ds:
            lab = d.get("label", "%s-%s-?" % (t, sc))
            r = meta.get(lab, {})
            e = d.get("errors", {})
            if e.get("total"):
                notes.append("%s: errors.total %d (%s)" % (lab, e["total"], ", ".join(
                    "%s=%s" % (k, v) for k, v in e.items() if v and k != "total")))
            if d.get("connected", 0) < d.get("conns", 0):
                notes.append("%s: connected %s of %s" % (lab, d.get("connected"), d.get("conns")))
            if d.get("subscribed", 0) < d.get("connected", 0):
                notes.append("%s: subscribed %s of %s connected" % (lab, d.get("subscribed"), d.get("connected")))
            if d.get("mode") != "idle":
                if d.get("lost"):
                    notes.append("%s: lost %d of %d expected (after_drain %s)" % (
                        lab, d["lost"], d.get("expected_deliveries", 0), d.get("after_drain")))
                if d.get("dup"):
                    notes.append("%s: dup %d" % (lab, d["dup"]))
                bp = get(d, "cpu.publish.bench_pct") or 0
                if bp >= 90:
                    notes.append("%s: wsbench at %.0f %% CPU during the publish window — bench-(co-)limited "
                                 "(bench_ceiling_dps_est %s, %.2f frames/read)" % (
                                     lab, bp, format(int(d.get("bench_ceiling_dps_est", 0)), ","),
                                     d.get("frames_per_read", 0)))
                if d.get("mode") == "fixed" and d.get("publishes_per_s", 0) < 0.99 * d.get("rate", 0):
                    notes.append("%s: fixed rate not sustained: %.0f of %s publishes/s (backlog_max %s, late %s)" % (
                        lab, d.get("publishes_per_s", 0), d.get("rate"), d.get("backlog_max"), d.get("late_publishes")))
            else:
                bp = get(d, "cpu.connect.bench_pct") or 0
                if bp >= 90:
                    notes.append("%s: wsbench at %.0f %% CPU during the connect phase — handshakes/s is "
                                 "bench-(co-)limited" % (lab, bp))
            if d.get("syn_retrans") or d.get("paws_timewait"):
                notes.append("%s: syn_retrans %s, paws_timewait %s (handshake figures include 1 s stalls)" % (
                    lab, d.get("syn_retrans"), d.get("paws_timewait")))
            ol = r.get("other_load_pct", other_load(d))
            if ol is not None and ol > 10:
                procs = r.get("other_procs")
                if procs is None:
                    why = "/proc/stat estimate"
                else:
                    why = "top: %s; per-process count %s %%, /proc/stat estimate %s %%" % (
                        ", ".join("%s %s %%" % (c, p) for c, p in procs.get("top", [])) or "short-lived processes",
                        procs.get("other_pct"), r.get("other_machine_pct"))
                notes.append("%s: other processes used %.0f %% of a CPU during the run (%s)" % (lab, ol, why))
            if r and r.get("bench_rc") not in (0, None):
                notes.append("%s: wsbench exit status %s" % (lab, r.get("bench_rc")))
            if r and r.get("deflate_check") not in (None, "ok"):
                notes.append("%s: DEFLATE CHECK FAILED: %s" % (lab, r["deflate_check"]))
            if r and r.get("server_rc") is not None and r.get("server_rc") not in r.get("server_rc_normal", [0]):
                notes.append("%s: server exit status %s after SIGTERM" % (lab, r.get("server_rc")))
    for k, n in sorted(rejected.items()):
        notes.append("%s-%s: %d run(s) rejected for foreign CPU load and repeated" % (k[0], k[1], n))
    for b in bad_files:
        notes.append("%s: no usable wsbench JSON line" % b)
    print("\n### Anomalies\n")
    if notes:
        for n in notes:
            print("- " + n)
    else:
        print("- none: every run connected and subscribed every connection, no errors, no lost or duplicate "
              "deliveries, wsbench below 90 % CPU, no SYN retransmits, other load ≤ 10 %, clean exits")
    print("\n(unmatched_msgs is not an anomaly for wshub-C: the Action Cable welcome and the 3 s pings "
          "carry no \"ts\".)")


if __name__ == "__main__":
    main()
