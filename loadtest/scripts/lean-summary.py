#!/usr/bin/env python3
"""The lean-* scenarios of bench.sh: whether a fan-out point passes, and the summary table.

    lean-summary.py pass REPORT.json RATE SECONDS   # exit 0 when the point passes
    lean-summary.py summary RESULTS_DIR             # markdown, from RESULTS_DIR/lean-*.json
    lean-summary.py watch FILE ROOT_PID             # until killed: every 5 s, append to FILE the
                                                    # processes outside ROOT_PID's tree that used
                                                    # more than 3 % of a CPU

A fan-out point passes with p99 < 100 ms, nothing lost or duplicated, every stream open, no
publish error, every event published, and the asked rate reached (the tool published the
events in at most 5 % more than the asked time): the highest passing rate is a rate the
gateway kept up with, not one the publisher fell short of.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

P99_MS = 100.0
WHICH = ("before", "after")


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def passes(r, rate, secs):
    if r is None:
        return False
    return (
        r["latency_ms"]["p99"] < P99_MS
        and r["lost"] == 0
        and r["duplicated"] == 0
        and r["connections_failed"] == 0
        and r["connections_established"] > 0
        and r["publish_errors"] == 0
        and r["events_published"] == rate * secs
        and r["publish_seconds"] <= secs * 1.05
        and r["deliveries_received"] == r["deliveries_expected"]
    )


def busy(path):
    """'CPU0/CPU1 busy' from a cpu_busy file ('cpu0 busy 93%' lines), or '-'."""
    try:
        text = Path(path).read_text()
    except OSError:
        return "-"
    shares = re.findall(r"busy (\d+)%", text)
    return "/".join(shares) + " %" if shares else "-"


def gauges(path):
    """(connections_open, streams_lean) summed over the nodes probed, or None for a missing gauge."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None, None
    sums = {}
    for m in re.finditer(r"^sse_gateway_(connections_open|streams_lean) (\d+)", text, re.M):
        sums[m[1]] = sums.get(m[1], 0) + int(m[2])
    return sums.get("connections_open"), sums.get("streams_lean")


def lean_open(report):
    """'lean / open' streams from a report's -gauges.txt ('-' for a gauge the binary lacks)."""
    opened, lean = gauges(report.with_name(report.stem + "-gauges.txt"))
    return f"{'-' if lean is None else f'{lean:,}'} / {'-' if opened is None else f'{opened:,}'}"


def ms(v):
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def summary(out):
    out = Path(out)
    lines = []
    emit = lines.append

    # Idle: lean-idle-<which>-<bus>.json
    idle = {}
    for f in out.glob("lean-idle-*.json"):
        m = re.fullmatch(r"lean-idle-(before|after)-(\w+)\.json", f.name)
        if m:
            idle[(m[2], m[1])] = (load(f), f)
    if idle:
        emit("### Idle streams: gateway RSS per stream")
        emit("")
        emit("| bus | binary | streams open (failed) | RSS before → after | bytes per stream | lean gauge / open |")
        emit("|---|---|---|---|---|---|")
        for bus in sorted({b for b, _ in idle}):
            for which in WHICH:
                if (bus, which) not in idle:
                    continue
                r, f = idle[(bus, which)]
                if r is None:
                    emit(f"| {bus} | {which} | no report | | | |")
                    continue
                mem = r.get("memory") or {}
                emit(
                    f"| {bus} | {which} | {r['connections_established']:,} ({r['connections_failed']}) "
                    f"| {mem.get('rss_before_bytes', 0) / 2**20:.1f} → {mem.get('rss_after_bytes', 0) / 2**20:.1f} MiB "
                    f"| **{mem.get('per_connection_bytes', 0):,}** "
                    f"| {lean_open(f)} |"
                )
        emit("")

    # Fan-out sweep: lean-fanout-<which>-<bus>-<rate>.json
    sweep = {}
    for f in out.glob("lean-fanout-*.json"):
        m = re.fullmatch(r"lean-fanout-(before|after)-(\w+)-(\d+)\.json", f.name)
        if m:
            sweep[(m[2], int(m[3]), m[1])] = f
    if sweep:
        emit("### Fan-out sweep: 1,000 streams, 256 B events")
        emit("")
        emit("Cell: p99 ms, lost/dup, events sent per s, gateway CPU per delivery, CPU0/CPU1 busy; "
             "✓ passes (p99 < 100 ms, zero loss, asked rate reached), ✗ fails, blank: not run "
             "(the sweep stopped after a failure).")
        emit("")
        emit("| bus | events/s | before | after |")
        emit("|---|---|---|---|")
        best = {}
        for bus in sorted({b for b, _, _ in sweep}):
            for rate in sorted({r for b, r, _ in sweep if b == bus}):
                cells = []
                for which in WHICH:
                    f = sweep.get((bus, rate, which))
                    if f is None:
                        cells.append("")
                        continue
                    r = load(f)
                    if r is None:
                        cells.append("no report ✗")
                        continue
                    secs = round(r["events_published"] / rate) if r["events_published"] else 0
                    ok = passes(r, rate, secs) and secs > 0
                    sent = r["events_published"] / r["publish_seconds"] if r["publish_seconds"] else 0
                    cpu = r.get("gateway_cpu") or {}
                    cells.append(
                        f"{ms(r['latency_ms']['p99'])} ms, {r['lost']}/{r['duplicated']}, {sent:,.0f}/s, "
                        f"{cpu.get('us_per_delivery', 0):.2f} µs, {busy(f.with_name(f.stem + '-cpu.txt'))} "
                        f"{'✓' if ok else '✗'}"
                    )
                    key = (bus, which)
                    best.setdefault(key, [None, None, False])
                    if ok and (best[key][0] is None or rate > best[key][0]):
                        best[key][0], best[key][1] = rate, r["delivered_per_sec"]
                    if not ok:
                        best[key][2] = True
                emit(f"| {bus} | {rate:,} | {cells[0]} | {cells[1]} |")
        emit("")
        emit("| bus | binary | highest passing rate |")
        emit("|---|---|---|")
        for (bus, which), (rate, dps, failed) in sorted(best.items(), key=lambda kv: (kv[0][0], WHICH.index(kv[0][1]))):
            if rate is None:
                emit(f"| {bus} | {which} | none |")
            else:
                bound = "" if failed else " (no rate failed: at least this)"
                emit(f"| {bus} | {which} | **{rate:,} events/s** ({dps:,.0f} deliveries/s){bound} |")
        emit("")

    # CPU: lean-cpu-<which>-<bus>.json
    cpu = {}
    for f in out.glob("lean-cpu-*.json"):
        m = re.fullmatch(r"lean-cpu-(before|after)-(\w+)\.json", f.name)
        if m:
            cpu[(m[2], m[1])] = f
    if cpu:
        emit("### Gateway CPU per delivery: 1,000 streams, 256 B events")
        emit("")
        emit("| bus | binary | events/s × s | CPU per delivery | share of a core | p50 / p99 ms | lost/dup | RSS per stream (1,000) | CPU0/CPU1 busy | lean gauge / open |")
        emit("|---|---|---|---|---|---|---|---|---|---|")
        for bus in sorted({b for b, _ in cpu}):
            for which in WHICH:
                f = cpu.get((bus, which))
                if f is None:
                    continue
                r = load(f)
                if r is None:
                    emit(f"| {bus} | {which} | no report | | | | | | | |")
                    continue
                c = r.get("gateway_cpu") or {}
                mem = r.get("memory") or {}
                rate = r["events_published"] / r["publish_seconds"] if r["publish_seconds"] else 0
                emit(
                    f"| {bus} | {which} | {rate:.0f} × {r['publish_seconds']:.0f} "
                    f"| **{c.get('us_per_delivery', 0):.2f} µs** | {100 * c.get('cores', 0):.0f} % "
                    f"| {ms(r['latency_ms']['p50'])} / {ms(r['latency_ms']['p99'])} | {r['lost']}/{r['duplicated']} "
                    f"| {mem.get('per_connection_bytes', 0):,} B | {busy(f.with_name(f.stem + '-cpu.txt'))} "
                    f"| {lean_open(f)} |"
                )
        emit("")

    # Cross-node: lean-cross-node-<which>.json
    cross = {}
    for f in out.glob("lean-cross-node-*.json"):
        m = re.fullmatch(r"lean-cross-node-(before|after)\.json", f.name)
        if m:
            cross[m[1]] = f
    if cross:
        emit("### Cross-node: 3 nodes + Redis, 100 events/s over HTTP")
        emit("")
        emit("| binary | streams | deliveries | p50 / p90 / p99 / p99.9 / max ms | lost | dup | CPU per delivery (3 nodes) | CPU0/CPU1 busy | lean gauge / open |")
        emit("|---|---|---|---|---|---|---|---|---|")
        for which in WHICH:
            f = cross.get(which)
            if f is None:
                continue
            r = load(f)
            if r is None:
                emit(f"| {which} | no report | | | | | | | |")
                continue
            l = r["latency_ms"]
            c = r.get("gateway_cpu") or {}
            emit(
                f"| {which} | {r['connections_established']:,} | {r['deliveries_received']:,} of {r['deliveries_expected']:,} "
                f"| {ms(l['p50'])} / {ms(l['p90'])} / **{ms(l['p99'])}** / {ms(l['p999'])} / {ms(l['max'])} "
                f"| {r['lost']} | {r['duplicated']} | {c.get('us_per_delivery', 0):.2f} µs "
                f"| {busy(f.with_name(f.stem + '-cpu.txt'))} | {lean_open(f)} |"
            )
        emit("")

    if not lines:
        emit("(no lean-* results in " + str(out) + ")")
    else:
        w = watched(out)
        if w:
            emit(w)
    return "\n".join(lines)


WATCH_SECONDS = 5
WATCH_SHARE = 0.03


def processes():
    """{pid: (comm, ppid, CPU ticks)} from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        f = stat[stat.rindex(")") + 2 :].split()
        out[int(d)] = (comm, int(f[1]), int(f[11]) + int(f[12]))
    return out


def watch(path, root):
    hz = os.sysconf("SC_CLK_TCK")
    before = processes()
    while True:
        time.sleep(WATCH_SECONDS)
        now = processes()
        ours, grew = {root}, True
        while grew:
            n = len(ours)
            ours |= {p for p, (_, ppid, _) in now.items() if ppid in ours}
            grew = len(ours) > n
        lines = []
        for pid, (comm, _, ticks) in now.items():
            if pid in ours or pid not in before:
                continue
            share = (ticks - before[pid][2]) / hz / WATCH_SECONDS
            if share > WATCH_SHARE:
                lines.append(f"{time.strftime('%H:%M:%S')} {pid} {comm} {100 * share:.0f}%\n")
        if lines:
            with open(path, "a") as f:
                f.writelines(lines)
        before = now


def watched(out):
    """A line on the other processes busy during the runs, from lean-watch.txt."""
    try:
        text = Path(out, "lean-watch.txt").read_text()
    except OSError:
        return None
    busiest = {}
    samples = 0
    for line in text.splitlines():
        m = re.fullmatch(r"\S+ \d+ (.+) (\d+)%", line)
        if m:
            samples += 1
            busiest[m[1]] = max(busiest.get(m[1], 0), int(m[2]))
    if not busiest:
        return "Other processes during the runs: none above 3 % of a CPU (lean-watch.txt)."
    top = ", ".join(f"{c} (up to {p} %)" for c, p in sorted(busiest.items(), key=lambda kv: -kv[1])[:8])
    return (f"**Other processes were busy during the runs** ({samples} samples of 5 s above 3 % of a CPU, "
            f"see lean-watch.txt): {top}. Figures taken then are not clean.")


def main(argv):
    if len(argv) == 5 and argv[1] == "pass":
        return 0 if passes(load(argv[2]), int(argv[3]), int(argv[4])) else 1
    if len(argv) == 4 and argv[1] == "watch":
        watch(argv[2], int(argv[3]))
        return 0
    if len(argv) == 3 and argv[1] == "summary":
        print(summary(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
