#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Purge cost (issue 16): `imapsweepd --once` against the lower bound.

    python3 bench/purge_cost.py [--size 100000] [--reps 5] [--trace]
                                [--variants V,V..] [--out build/bench/purge-cost.json]

One tuned private Dovecot (bench/lib.py), a fresh mailbox per run (half
cron noise, every other UID, as in section 1 of docs/benchmarks.md). The
lower bound (`floor purge`: one SEARCH, one STORE, one EXPUNGE) and
imapsweepd take turns, the one going first alternating, `reps` runs each.
Every outcome is checked with an independent client (run.py's oracle).

Per run: *wall* from fork to exit (bench/measure.c), and *server CPU*:
utime+stime of the session's imap process, read from /proc as the
cutime+cstime the Dovecot master gains when it reaps it (the run waits
until no imap process is left). Login, auth and the other long-lived
services are not in it. Prints each run, then the medians and the two
ratios (imapsweepd / lower bound) the issue's target is about.

--variants adds clients that run the lower bound's sequence with changes
(bench/purge_variants.py: the search form, the top's FETCH, chunk sizes,
pipelining) to the turns, to see what each costs the server; their wall
time includes a Python client's.

--trace runs imapsweepd with `log_level: trace` and prints, for the last
run of each, the commands sent and Dovecot's own time for each (from its
tagged replies; the floor prints those it gets). Tracing costs the daemon
client time: use it to see the command sequence, not for the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lib  # noqa: E402
import purge_variants  # noqa: E402

# bench/run.py under another name: lib puts tests/integration (and its
# own run.py) first on the path
_spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).resolve().parent / "run.py")
bench_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_run)  # type: ignore[union-attr]

TOOLS = ["floor", "imapsweepd"]


def reaped_cpu(pid: int) -> float:
    """cutime + cstime of a process: the CPU of its children that exited."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run_variant(dc: lib.Dovecot, user: int, mailbox: str, name: str) -> lib.Run:
    """A purge_variants client, timed in-process; its result as a lib.Run."""
    u = dc.user(user)
    t0 = time.monotonic()
    times = purge_variants.run(dc.port("imap"), u.name, u.password, mailbox, lib.CRON_FROM, name)
    wall = time.monotonic() - t0
    out = "".join(f"{k} OK ({v:.3f} + 0)\n" for k, v in times.items())
    return lib.Run([name], wall, 0.0, 0.0, 0, 0, out, "")


def commands_of(tool: str, out: str) -> list[str]:
    """The command lines and Dovecot's timing from a run's output."""
    rows = []
    if tool != "imapsweepd":
        for line in out.splitlines():
            m = re.match(r"^(\w+) OK .*?\(([0-9.]+) \+", line)
            if m:
                rows.append(f"{m.group(1)}: {m.group(2)} s")
        return rows
    for line in out.splitlines():
        m = re.search(r" C: (.*?)(?:\.\.\.\[\d+ more bytes\])?$", line)
        if m:
            # long UID sets shortened (the trace cuts them anyway)
            words = [w if len(w) < 40 else f"<set {w.split(',')[0]},..>" for w in m.group(1).split(" ")]
            rows.append(" ".join(words)[:100])
        m = re.search(r" S: (\S+) OK .*?\(([0-9.]+) \+", line)
        if m:
            rows.append(f"    {m.group(1)} OK: {m.group(2)} s")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="messages in the mailbox (half are deleted)")
    ap.add_argument("--reps", type=int, default=5, help="runs of each")
    ap.add_argument("--trace", action="store_true", help="log the daemon's commands (costs it time)")
    ap.add_argument("--variants", default="", help="comma-separated, see bench/purge_variants.py")
    ap.add_argument("--out", default=str(lib.BENCH_BIN / "purge-cost.json"))
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    bench_run.build_helpers()
    workdir = Path(tempfile.mkdtemp(prefix="imapsweep-purge-", dir=lib.tmp_root()))
    dc = lib.start_dovecot(users=2)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        purge_variants.parse(v)
    tools = TOOLS + variants
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    last_out: dict[str, str] = {}
    user = 1
    try:
        # warm-up, not measured: Dovecot's processes, the page cache
        lib.fill(dc, user, "warmup", 2000)
        lib.run_measured(bench_run.purge_argv("floor", dc, user, "warmup", workdir))
        lib.drop_mailbox(dc, user, "warmup")
        for rep in range(args.reps):
            for i, tool in enumerate(tools[rep % len(tools):] + tools[: rep % len(tools)]):
                mailbox = f"c{args.size}-{rep}-{i}"
                lib.fill(dc, user, mailbox, args.size)
                argv = bench_run.purge_argv(tool, dc, user, mailbox, workdir) if tool in TOOLS else []
                if tool == "imapsweepd" and args.trace:
                    cfg = Path(argv[2])
                    c = json.loads(cfg.read_text())
                    c["daemon"]["log_level"] = "trace"
                    cfg.write_text(json.dumps(c))
                bench_run.wait_sessions_gone(dc)
                imap0, tree0 = reaped_cpu(dc.proc.pid), lib.tree_cpu_seconds(dc.proc.pid)
                if argv:
                    r = lib.run_measured(argv)
                else:
                    r = run_variant(dc, user, mailbox, tool)
                bench_run.wait_sessions_gone(dc)
                imap = reaped_cpu(dc.proc.pid) - imap0
                tree = lib.tree_cpu_seconds(dc.proc.pid) - tree0
                if r.returncode != 0:
                    raise RuntimeError(f"{tool} exited {r.returncode}: {r.stderr[-2000:]}")
                bad = bench_run.verify_purge(dc, user, mailbox, args.size)
                if bad:
                    raise RuntimeError(f"{tool}: wrong outcome: {bad}")
                lib.drop_mailbox(dc, user, mailbox)
                last_out[tool] = r.stderr + r.stdout
                rows[tool].append({"wall": r.wall, "client_cpu": r.cpu, "server_cpu": imap, "tree_cpu": tree,
                                   "load1": os.getloadavg()[0]})  # fmt: skip
                print(f"run {rep + 1}/{args.reps} {tool:<12} wall {r.wall:6.3f} s  server {imap:6.2f} s  "
                      f"(all Dovecot {tree:6.2f} s)  client {r.cpu:5.3f} s  load {os.getloadavg()[0]:4.2f}  verified",
                      flush=True)  # fmt: skip
    finally:
        dc.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    med = {t: {k: lib.median([x[k] for x in rows[t]]) for k in ("wall", "server_cpu", "client_cpu")} for t in tools}
    for t in tools:
        ws = [x["wall"] for x in rows[t]]
        cs = [x["server_cpu"] for x in rows[t]]
        print(f"{t:<12} median of {len(ws)}: wall {med[t]['wall']:.3f} s ({min(ws):.3f}-{max(ws):.3f}), "
              f"server {med[t]['server_cpu']:.2f} s ({min(cs):.2f}-{max(cs):.2f}) = "
              f"{med[t]['server_cpu'] / med['floor']['server_cpu']:.3f}x the lower bound's")
    ratio_wall = med["imapsweepd"]["wall"] / med["floor"]["wall"]
    ratio_cpu = med["imapsweepd"]["server_cpu"] / med["floor"]["server_cpu"]
    print(f"imapsweepd / lower bound: wall {ratio_wall:.3f}x, server CPU {ratio_cpu:.3f}x "
          f"(targets: <= 1.05x, within 5%)")
    if args.trace:
        for t in tools:
            print(f"--- {t}, last run:")
            for line in commands_of(t, last_out.get(t, "")):
                print(f"  {line}")
    Path(args.out).write_text(json.dumps({"size": args.size, "reps": args.reps, "trace": args.trace,
                                          "started": started,
                                          "runs": rows, "median": med, "ratio_wall": ratio_wall,
                                          "ratio_server_cpu": ratio_cpu}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
