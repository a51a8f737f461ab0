#!/usr/bin/env python3
"""Foreign CPU load during a run, from per-process CPU times (used by bench/run.sh).

  proc_cpu.py snap ROOT_PID > before.json    # every process's CPU ticks, except ROOT_PID's tree
  proc_cpu.py diff before.json after.json WINDOW_S
      # -> {"other_pct": x, "top": [[comm, pct], ...], "kthreads_pct": y}

Why not only /proc/stat: with tick-based accounting (this VM: HZ=250, NO_HZ_IDLE, no
VIRT_CPU_ACCOUNTING) its per-CPU busy jiffies are sampled at the tick while idle time is measured
exactly, so a server that runs in short bursts in phase with the tick can look idle: here a run
with the server at 53 % and wsbench at 28 % of a CPU showed the two CPUs "10 % and 8 % busy",
which hides any foreign load. /proc/PID/stat utime+stime are scaled to the scheduler's exact
runtime, so the sum of their increase over every process outside ROOT_PID's tree (bench/run.sh,
the server, wsbench) is the other processes' CPU. Not seen: processes that start and exit inside
the window (e.g. single compiler runs; reaped children's cutime is not used because a long-lived
child reaped inside the window would bring all of its past CPU with it) — bench/run.sh therefore
takes the larger of this and the /proc/stat estimate. other_pct is in % of one CPU, averaged over
WINDOW_S. Kernel threads are not in other_pct (kthreads_pct: ksoftirqd and kworkers do part of
the benchmark's own TCP work).
"""
import json
import os
import sys

TCK = os.sysconf("SC_CLK_TCK")


def read_all():
    procs = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            s = open("/proc/%s/stat" % p).read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        f = s[s.rindex(")") + 2:].split()
        # fields after comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17) starttime(22)
        procs[int(p)] = {"comm": comm, "ppid": int(f[1]), "ticks": int(f[11]) + int(f[12]), "start": int(f[19])}
    return procs


def snap(root):
    procs = read_all()
    kids = {}
    for pid, d in procs.items():
        kids.setdefault(d["ppid"], []).append(pid)
    mine, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p in mine:
            continue
        mine.add(p)
        todo.extend(kids.get(p, []))
    # kernel threads (children of kthreadd, pid 2) are listed apart: ksoftirqd and kworkers do
    # much of the benchmark's own loopback TCP work
    return {str(pid): [("[k] " if d["ppid"] == 2 or pid == 2 else "") + d["comm"], d["ticks"], d["start"]]
            for pid, d in procs.items() if pid not in mine}


def diff(a, b, window):
    per = {}
    for pid, (comm, ticks, start) in b.items():
        old = a.get(pid)
        if old and old[2] == start:
            d = ticks - old[1]
        elif old:          # pid reused
            d = ticks
        else:              # started during the window
            d = ticks
        if d > 0:
            per[comm] = per.get(comm, 0) + d
    pct = lambda t: round(100.0 * t / TCK / window, 1) if window > 0 else 0.0
    user = {c: t for c, t in per.items() if not c.startswith("[k] ")}
    top = sorted(user.items(), key=lambda kv: -kv[1])[:4]
    return {"other_pct": pct(sum(user.values())), "top": [[c, pct(t)] for c, t in top if pct(t) >= 0.5],
            "kthreads_pct": pct(sum(t for c, t in per.items() if c.startswith("[k] ")))}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "snap":
        json.dump(snap(int(sys.argv[2])), sys.stdout)
    elif len(sys.argv) == 5 and sys.argv[1] == "diff":
        print(json.dumps(diff(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4]))))
    else:
        sys.exit(__doc__)
