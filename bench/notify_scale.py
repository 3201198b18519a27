# SPDX-License-Identifier: MIT
"""NOTIFY at scale (issue 16): many accounts x many mailboxes on one Dovecot.

Two modes over the same layout (``--accounts`` users, ``--mailboxes`` each:
INBOX and f1..):

* ``idle``: today's way, ``notify: off`` and a budget that fits every
  mailbox: one IDLE connection per mailbox.
* ``notify``: ``notify: on``: INBOX keeps its IDLE connection, every other
  mailbox is covered by the account's one event connection.

For each: the time from exec until every mailbox is watched and swept once
(``ready``), the sessions Dovecot holds (``doveadm who``), its imap
processes, the daemon's RSS and Dovecot's (the master and every child), and
the reaction to ``--deliveries`` cron messages APPENDed to random mailboxes
(APPEND's OK until the file is unlinked, seen by inotify; reaction.py's
run, one watcher set; every 10th append is ordinary mail that must survive,
checked with doveadm afterwards).

``--rotation`` asks the question the issue left open: after Dovecot
rotates an account's dovecot.list.index.log, its NOTIFY reports to a
long-lived session were seen to slow to the 30-second mailbox check. Does
re-arming (NOTIFY NONE + NOTIFY SET, what the event connection does every
idle_refresh) restore prompt delivery? A small Dovecot whose index logs
rotate early (mail_index_log_rotate_min_size = 1k, min_age = 0) and a
daemon with idle_refresh at its 29m maximum: reaction before the rotation,
after it, and after a re-arm (forced with the control socket's `sweep`,
which re-arms the event connection the same way the timer does).

    python3 bench/notify_scale.py [--accounts 100 --mailboxes 100
        --deliveries 1000] [--modes notify,idle] [--rotation]

Raw results go to build/bench/notify-scale.json; run.py's `notify` section
runs the same functions.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lib
import procs
import reaction
from inotify import DeleteWatch


def layout(dc: lib.Dovecot, accounts: int, mailboxes: int) -> list[lib.Account]:
    out = []
    for u in range(1, accounts + 1):
        names = lib.folder_names(mailboxes)
        lib.make_folders(dc, u, names)
        out.append(lib.Account(u, names))
    return out


def account_settings(mode: str, mailboxes: int) -> dict[str, Any]:
    if mode == "notify":
        return {"notify": "on", "max_connections": mailboxes}
    return {"notify": "off", "max_connections": mailboxes}


def wait_ready(d: procs.Daemon, mode: str, timeout: float) -> float:
    """Seconds from exec until every mailbox is watched and swept once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = lib.control(d.sock)["watchers"]
        except OSError:  # the socket is not there yet
            ws = []
        if len(ws) == d.n and all(w["last_sweep"] is not None and w["state"] in ("idle", "polling")
                                  and (mode == "idle" or w["mailbox"] == "INBOX"
                                       or w["watched_by"] == "notify") for w in ws):  # fmt: skip
            return time.monotonic() - d.t0
        if d.p.poll() is not None:
            raise RuntimeError(f"imapsweepd exited with {d.p.returncode}")
        if time.monotonic() > deadline:
            states = sorted({(w["state"], w["watched_by"]) for w in ws})
            raise RuntimeError(f"not ready after {timeout:.0f}s: {states}")
        time.sleep(0.5)


def server_figures(dc: lib.Dovecot) -> dict[str, Any]:
    procs_by = dc.processes()
    assert dc.proc is not None
    return {"sessions": sum(dc.who().values()), "imap_processes": procs_by.get("imap", 0),
            "hibernate_processes": procs_by.get("imap-hibernate", 0),
            "server_rss_kib": lib.tree_rss_kib(dc.proc.pid)}  # fmt: skip


def scale_mode(mode: str, accounts: int, mailboxes: int, deliveries: int, workdir: Path,
               log=print) -> dict[str, Any]:  # fmt: skip
    # Hibernation only where it is needed (one IDLE session per mailbox);
    # the event connections never IDLE, and INBOX's 100 sessions fit.
    dc = lib.start_dovecot(users=accounts, hibernate=mode == "idle", extra=lib.SCALE_EXTRA)
    out: dict[str, Any] = {"mode": mode, "accounts": accounts, "mailboxes": mailboxes,
                           "hibernate": mode == "idle"}  # fmt: skip
    try:
        accs = layout(dc, accounts, mailboxes)
        boxes = [(a.user, m) for a in accs for m in a.mailboxes]
        holder: dict[str, procs.Daemon] = {}

        def start() -> Any:
            d = procs.Daemon(dc, accs, workdir / mode, name=f"notify-{mode}",
                             account_extra=account_settings(mode, mailboxes))  # fmt: skip
            holder["d"] = d
            return d.p

        def ready(ps: list) -> None:
            d = holder["d"]
            out["ready_s"] = wait_ready(d, mode, 900)
            time.sleep(5.0)  # past the heap trim and the hibernation timeout
            out["daemon_rss_kib"] = lib.rss_kib(d.pid)
            out.update(server_figures(dc))
            log(f"  {mode}: ready in {out['ready_s']:.1f}s, {out['sessions']} sessions, "
                f"{out['imap_processes']} imap processes, daemon RSS {out['daemon_rss_kib'] / 1024:.1f} MiB, "
                f"Dovecot RSS {out['server_rss_kib'] / 1024:.1f} MiB")

        s = reaction.WatcherSet(f"imapsweepd-{mode}", boxes, start, ready, n=len(boxes))
        old_lost = reaction.LOST_S
        reaction.LOST_S = 40.0  # the server's own ceiling is 30 s: report it, do not abort on it
        try:
            reaction.run_sets(dc, [s], deliveries, log=log)
        finally:
            reaction.LOST_S = old_lost
            if "d" in holder:
                holder["d"].notify.close()
                holder["d"].log.close()
        xs = s.samples_ms
        out.update({"samples": len(xs), "p50_ms": lib.percentile(xs, 50), "p99_ms": lib.percentile(xs, 99),
                    "max_ms": max(xs), "ordinary": sum(s.ordinary.values()), "cron": s.cron})  # fmt: skip
        log(f"  {mode}: {len(xs)} deliveries: p50 {out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms, "
            f"max {out['max_ms']:.0f} ms; none missed, ordinary mail intact (doveadm)")
        return out
    finally:
        dc.cleanup()


# ---------------------------------------------------------------------------
ROTATE_EXTRA = """
mail_index_log_rotate_min_size = 1k
mail_index_log_rotate_min_age = 0
mail_index_log_rotate_max_size = 4k
"""


def list_log(dc: lib.Dovecot, user: int) -> Path:
    return dc.maildir(user) / "dovecot.list.index.log"


def rotate(dc: lib.Dovecot, user: int, limit: int = 400) -> int:
    """Mailbox creations and deletions until the list index log rotated
    (dovecot.list.index.log.2 appears); returns how many it took."""
    name = dc.user(user).name
    old = list_log(dc, user).with_suffix(".log.2")
    before = old.stat().st_ino if old.exists() else None
    for i in range(limit):
        dc.doveadm("mailbox", "create", "-u", name, f"rot{i}")
        dc.doveadm("mailbox", "delete", "-u", name, f"rot{i}")
        if old.exists() and old.stat().st_ino != before:
            return i + 1
    raise RuntimeError(f"user{user}: dovecot.list.index.log did not rotate after {limit} rounds")


def timed_deliveries(dc: lib.Dovecot, boxes: list[tuple[int, str]], n: int, seed: int,
                     timeout: float = 60.0) -> list[float]:  # fmt: skip
    """n cron messages to n distinct random mailboxes, 0.1 s apart: ms from
    each APPEND's OK until its file is gone (all are waited for together, so
    a phase takes at most the slowest one)."""
    rng = random.Random(seed)
    watch = DeleteWatch()
    app = reaction.Appender(dc)
    pending: dict[tuple[int, str], int] = {}
    out: list[float] = []
    try:
        for u, m in boxes:
            watch.add(lib.folder_path(dc, u, m), (u, m))

        def drain(t: float) -> None:
            for t_ns, k, _ in watch.read(t):
                if k in pending:
                    out.append((t_ns - pending.pop(k)) / 1e6)

        for i, key in enumerate(rng.sample(boxes, n)):
            pending[key] = app.append(key[0], key[1], lib.cron_mail(20_000_000 + seed * 10_000 + i))
            drain(0.1)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            drain(0.2)
        if pending:
            raise RuntimeError(f"not swept within {timeout:.0f}s: {sorted(pending)}")
    finally:
        app.close()
        watch.close()
    return out


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": lib.percentile(xs, 50), "p90_ms": lib.percentile(xs, 90),
            "max_ms": max(xs)}  # fmt: skip


def rotation(accounts: int, mailboxes: int, per_phase: int, workdir: Path, log=print) -> dict[str, Any]:
    dc = lib.start_dovecot(users=accounts, extra=ROTATE_EXTRA)
    out: dict[str, Any] = {"accounts": accounts, "mailboxes": mailboxes, "per_phase": per_phase}
    d = None
    try:
        accs = layout(dc, accounts, mailboxes)
        boxes = [(a.user, m) for a in accs for m in a.mailboxes if m != "INBOX"]
        d = procs.Daemon(dc, accs, workdir / "rotation", name="notify-rotation",
                         defaults={"idle_refresh": "29m"},
                         account_extra=account_settings("notify", mailboxes))  # fmt: skip
        wait_ready(d, "notify", 300)
        time.sleep(2.0)
        out["before"] = summary(timed_deliveries(dc, boxes, per_phase, 1))
        out["rounds_to_rotate"] = [rotate(dc, a.user) for a in accs]
        out["after_rotation"] = summary(timed_deliveries(dc, boxes, per_phase, 2))
        lib.control(d.sock, "sweep")  # re-arms every event connection (NOTIFY NONE + NOTIFY SET)
        time.sleep(2.0)
        out["after_rearm"] = summary(timed_deliveries(dc, boxes, per_phase, 3))
        for k in ("before", "after_rotation", "after_rearm"):
            r = out[k]
            log(f"  rotation {k:<15} n={r['n']} p50 {r['p50_ms']:.0f} ms  p90 {r['p90_ms']:.0f} ms  "
                f"max {r['max_ms']:.0f} ms")
        return out
    finally:
        if d is not None:
            d.stop()
        dc.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--mailboxes", type=int, default=100)
    ap.add_argument("--deliveries", type=int, default=1000)
    ap.add_argument("--modes", default="notify,idle")
    ap.add_argument("--rotation", action="store_true", help="also the log rotation experiment")
    ap.add_argument("--rotation-accounts", type=int, default=10)
    ap.add_argument("--rotation-mailboxes", type=int, default=20)
    ap.add_argument("--rotation-deliveries", type=int, default=40)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="imapsweep-notify-", dir=lib.tmp_root()))
    results: dict[str, Any] = {"modes": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for mode in [m for m in args.modes.split(",") if m]:
        results["modes"][mode] = scale_mode(mode, args.accounts, args.mailboxes, args.deliveries, workdir)
    if args.rotation:
        results["rotation"] = rotation(args.rotation_accounts, args.rotation_mailboxes,
                                       args.rotation_deliveries, workdir)  # fmt: skip
    lib.BENCH_BIN.mkdir(parents=True, exist_ok=True)
    raw = lib.BENCH_BIN / "notify-scale.json"
    raw.write_text(json.dumps(results, indent=1))
    print(f"raw results: {raw}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
