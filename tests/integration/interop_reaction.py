#!/usr/bin/env python3
"""Reaction time of imapsweepd per interop server (a measurement, not a test).

    python3 tests/integration/interop_reaction.py [-n 20] [SERVER ...]

SERVER is a name from harness.interop.SERVERS (default: Dovecot, Cyrus,
CyrusAlt, Courier, CourierPolling, CyrusPolling).  For each server:

- push: a bare IDLE session (harness.mail.RawConn) is given 0.3 s to settle
  (so that no delayed ACK of the server's "+ idling" holds the EXISTS back),
  then one message is appended; the time from APPEND's tagged OK to the
  ``* n EXISTS`` it hears, over ``n`` deliveries.  "pushes" when p50 < 1 s.
- reaction: imapsweepd (build/imapsweepd, log level debug) watches INBOX
  with a delete rule for cron mail; ``n`` cron mails are appended one at a
  time, each once the previous one is gone; the time from APPEND's tagged
  OK to the message being gone as seen by the oracle (polled every 5 ms,
  EXAMINE + UID SEARCH, so add up to ~6 ms of resolution).
- share: the daemon's own part of each reaction, from its debug log
  ("incremental sweep done in N ms", timed from the EXISTS it received).
- segments: TCP segments the daemon's connection sent (all, and those
  without data: bare ACKs) per delivery, from the kernel's counters
  (``ss -tin``: segs_out, data_segs_out) read before and after the
  deliveries; what the quick ACKs of src/imap/transport_tcp.c cost.

Prints one table row per server (p50/p90, milliseconds).  Needs root and
the unpacked servers (scripts/interop-servers), like the interop tests.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.interop import DEFAULT_SERVERS, POLLING_SERVERS, SERVERS, account  # noqa: E402
from harness.mail import RawConn, cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd  # noqa: E402
from harness.wait import wait_for  # noqa: E402

SWEEP_RE = re.compile(r"a/INBOX: (?:incremental|full) sweep done in (\d+) ms")


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method."""
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def tcp_segments(pid: int) -> tuple[int, int]:
    """(segs_out, data_segs_out) summed over the TCP connections of process ``pid``."""
    out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    segs = data = 0
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"pid={pid}," in line and i + 1 < len(lines):
            info = lines[i + 1]
            m = re.search(r"\bsegs_out:(\d+)", info)
            d = re.search(r"\bdata_segs_out:(\d+)", info)
            segs += int(m.group(1)) if m else 0
            data += int(d.group(1)) if d else 0
    return segs, data


def push_ms(srv, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    u = srv.user(2)
    with srv.imap(2) as im, RawConn("127.0.0.1", srv.port("imap"), timeout=90) as raw:
        raw.greeting()
        raw.login(u.name, u.password)
        raw.command("SELECT INBOX")
        for i in range(n):
            raw.send(f"i{i} IDLE")
            raw.expect(r"^\+")
            time.sleep(0.3)
            im.append("INBOX", ordinary_mail(i))
            t0 = time.monotonic()
            raw.expect(r"^\* \d+ EXISTS", timeout=90)
            out.append((time.monotonic() - t0) * 1000)
            raw.send("DONE")
            raw.expect(rf"^i{i} ")
    return out


def reaction_ms(srv, n: int) -> tuple[list[float], list[float], tuple[float, float]]:  # type: ignore[no-untyped-def]
    cfg = SweepConfig(daemon={"log_level": "debug"})
    try:
        cfg.account("a", account(srv, 1))
        cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
        took = []
        with Sweepd(cfg) as d, srv.imap(1) as im:
            d.wait_ready(states=("idle",))
            mark = d.mark()
            keep = im.append("INBOX", ordinary_mail(0))
            d.wait_for_log(SWEEP_RE, 120, since=mark)  # the sweep it caused, not timed
            segs0 = tcp_segments(d.pid)
            for i in range(n):
                uid = im.append("INBOX", cron_mail(i))
                t0 = time.monotonic()
                wait_for(lambda: uid not in im.uids(), 120, interval=0.005, what=f"cron mail {i} gone")
                took.append((time.monotonic() - t0) * 1000)
                d.wait_for_log(SWEEP_RE, 5, since=mark, count=i + 2)
            segs1 = tcp_segments(d.pid)
            assert im.uids() == [keep] and not im.seen(), "ordinary mail lost or \\Seen"
            log = d.stderr_path.read_bytes()[mark:].decode("utf-8", "replace")
            shares = [float(m.group(1)) for m in SWEEP_RE.finditer(log)][1:]  # [0]: the ordinary mail
        all_out, data_out = segs1[0] - segs0[0], segs1[1] - segs0[1]
        return took, shares, (all_out / n, (all_out - data_out) / n)
    finally:
        cfg.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20, help="deliveries per server (default 20)")
    ap.add_argument("servers", nargs="*", default=[*DEFAULT_SERVERS, *POLLING_SERVERS])
    args = ap.parse_args()
    rows = []
    for name in args.servers:
        srv = SERVERS[name](3)
        with srv:
            n_poll = 3 if name in POLLING_SERVERS else args.n
            push = push_ms(srv, n_poll)
            took, shares, segs = reaction_ms(srv, n_poll)
        row = (f"| {name} | {'yes' if statistics.median(push) < 1000 else 'no (polls)'} "
               f"| {statistics.median(push):.0f} | {statistics.median(took):.0f} / {pct(took, 0.9):.0f} "
               f"| {statistics.median(shares):.0f} / {pct(shares, 0.9):.0f} | {segs[0]:.1f} / {segs[1]:.1f} | {len(took)} |")  # fmt: skip
        print(row, flush=True)
        rows.append(row)
    print("\n| server | IDLE pushes | push p50 ms | append -> gone p50 / p90 ms | daemon's share p50 / p90 ms"
          " | segments sent / of them bare ACKs, per delivery | n |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
