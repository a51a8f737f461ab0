#!/usr/bin/env python3
"""Checks one wsbench-z --deflate run (bench/run.sh calls it after every such run).

usage: bench/deflate_check.py TARGET RUN.json
A *-z target must have negotiated permessage-deflate on every connection and (outside idle
mode) received compressed messages whose wire bytes are below their inflated bytes; any other
target must have declined the offer (no negotiation, nothing compressed, wire = plain bytes).
Prints what is wrong on one line (nothing when all is right); exit status 0 either way.
"""
import json
import sys


def problems(target, d):
    z = d.get("deflate")
    if z is None:
        return ["no deflate object in the JSON (not wsbench-z --deflate?)"]
    bad = []
    if target.endswith("-z"):
        if z["negotiated"] != d.get("connected"):
            bad.append("permessage-deflate negotiated on %s of %s connections" % (z["negotiated"], d.get("connected")))
        if d.get("mode") != "idle":
            if not z["compressed_messages"]:
                bad.append("no compressed message received")
            elif not z["wire_bytes"] < z["plain_bytes"]:
                bad.append("wire bytes %s not below plain bytes %s" % (z["wire_bytes"], z["plain_bytes"]))
    elif z["negotiated"] or z["compressed_messages"] or z["wire_bytes"] != z["plain_bytes"]:
        bad.append("uncompressed target, yet %s conns negotiated, %s compressed messages, wire %s / plain %s bytes" % (
            z["negotiated"], z["compressed_messages"], z["wire_bytes"], z["plain_bytes"]))
    if z.get("errors"):
        bad.append("%s inflate errors" % z["errors"])
    return bad


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        d = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
    except Exception:
        print("no JSON line from wsbench")
        return
    print("; ".join(problems(sys.argv[1], d)))


if __name__ == "__main__":
    main()
