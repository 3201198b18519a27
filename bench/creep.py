#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Memory across reconnects: does imapsweepd's resident size creep when the
server restarts again and again, and if so, is it a leak or the allocator?

    python3 bench/creep.py [--watchers 1000] [--restarts 14] [--tls]
                           [--out build/bench/creep.json]

One daemon watches N mailboxes (10 per Dovecot user, one connection each)
on a private, hibernating Dovecot. After warm-up, Dovecot is restarted R
times; after each restart, once every watcher is idle again and the
daemon's delayed malloc_trim has run, it records the daemon's RSS and what
glibc says about the heap (gdb calls malloc_stats() in the daemon, which
prints to the daemon's stderr): "in use" is the bytes the program holds,
"system" what the allocator got from the kernel. A leak shows as "in use"
growing with every restart; fragmentation as "in use" flat while RSS or
"system" grow. Python 3 standard library, gdb, the integration harness.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lib  # noqa: E402


def rss_parts(pid: int) -> dict[str, int]:
    """VmRSS split: anonymous memory (the heap, stacks) and file pages (code
    and data of the program and its libraries, resident once touched)."""
    st = lib.proc_status(pid)
    out = {}
    for key, name in (("RssAnon", "anon_kib"), ("RssFile", "file_kib")):
        if key in st:
            out[name] = int(st[key].split()[0])
    return out


def wait_all_idle(sock: Path, n: int, timeout: float, min_reconnects: int = 0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            ws = lib.control(sock)["watchers"]
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        idle = sum(1 for w in ws if w["state"] == "idle")
        reconnected = sum(1 for w in ws if w["reconnects"] >= min_reconnects)
        if len(ws) == n and idle == n and reconnected == n:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"not all {n} watchers idle within {timeout} s")


MASSIF_DIR: Path | None = None


def heap_stats(pid: int, err: Path) -> dict[str, int]:
    """gdb calls malloc_stats() in the daemon; parse the Total block it
    prints to the daemon's stderr. Under massif (--wrap 'valgrind
    --tool=massif'), a detailed snapshot instead: the exact bytes the
    program holds, with the allocation tree, in MASSIF_DIR."""
    if MASSIF_DIR is not None:
        n = len(list(MASSIF_DIR.glob("snap.*")))
        f = MASSIF_DIR / f"snap.{n}"
        subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", str(f)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, timeout=120)  # fmt: skip
        text = f.read_text() if f.exists() else ""
        m = re.search(r"mem_heap_B=(\d+)", text)
        x = re.search(r"mem_heap_extra_B=(\d+)", text)
        return {"heap": int(m.group(1)), "heap_extra": int(x.group(1)) if x else 0} if m else {}
    before = err.stat().st_size
    # gdb itself sometimes crashes on attach: never leave its core behind
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "call (void)malloc_stats()"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60,
                   cwd=tempfile.gettempdir(),
                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))  # fmt: skip
    for _ in range(50):
        text = err.read_bytes()[before:].decode(errors="replace")
        m = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", text)
        if m:
            arenas = len(re.findall(r"^Arena \d+:", text, re.M))
            return {"system": int(m.group(1)), "in_use": int(m.group(2)), "arenas": arenas}
        time.sleep(0.1)
    return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=14)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--out", default=str(lib.BENCH_BIN / "creep.json"))
    ap.add_argument("--wrap", default="", help="a command prefix for the daemon, e.g. 'heaptrack -o FILE'")
    ap.add_argument("--kill", action="store_true", help="end the daemon with SIGKILL (a heap profile then "
                    "shows everything it still held as not freed)")
    args = ap.parse_args()
    global MASSIF_DIR
    if "massif" in args.wrap:
        MASSIF_DIR = Path(tempfile.mkdtemp(prefix="imapsweep-massif-", dir="/tmp"))
        print(f"massif snapshots in {MASSIF_DIR}", flush=True)
    per_user = 10
    users = (args.watchers + per_user - 1) // per_user
    work = Path(tempfile.mkdtemp(prefix="imapsweep-creep-", dir=lib.tmp_root()))
    dc = lib.start_dovecot(users, hibernate=True)
    rows = []
    try:
        accounts = []
        left = args.watchers
        for u in range(1, users + 1):
            names = lib.folder_names(min(per_user, left))
            left -= len(names)
            lib.make_folders(dc, u, names)
            accounts.append(lib.Account(u, names))
        sock = work / "ctl.sock"
        cfg = lib.write_config(work / "creep.json", dc, accounts, tls=args.tls, control_socket=str(sock),
                               log_level="notice",
                               defaults={"reconnect_min": "1s", "reconnect_max": "2s"})  # fmt: skip
        out, err = work / "stdout", work / "stderr"
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen([*args.wrap.split(), str(lib.binary("imapsweepd")), "-c", str(cfg)], stdout=o,
                                 stderr=e,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_all_idle(sock, args.watchers, 300)
            time.sleep(3)  # the daemon trims 2 s after things settle
            row = {"restart": 0, "rss_kib": lib.rss_kib(p.pid), **rss_parts(p.pid), "fds": lib.fd_count(p.pid),
                   **heap_stats(p.pid, err)}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            for r in range(1, args.restarts + 1):
                dc.restart()
                took = wait_all_idle(sock, args.watchers, 300, min_reconnects=r)
                time.sleep(3)
                row = {"restart": r, "rss_kib": lib.rss_kib(p.pid), **rss_parts(p.pid),
                       "fds": lib.fd_count(p.pid), "reconnect_s": round(took, 1),
                       **heap_stats(p.pid, err)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            p.send_signal(signal.SIGKILL if args.kill else signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    finally:
        dc.cleanup()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"watchers": args.watchers, "tls": args.tls, "rows": rows}, indent=1))
    first, last = rows[0], rows[-1]
    print(f"RSS {first['rss_kib']} -> {last['rss_kib']} KiB; heap in use {first.get('in_use')} -> "
          f"{last.get('in_use')} B; system {first.get('system')} -> {last.get('system')} B")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
