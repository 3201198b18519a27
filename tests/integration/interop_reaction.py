#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reaction time of imapsweepd per server (a measurement, not a test).

    python3 tests/integration/interop_reaction.py [-n 20] [--poll-seconds 60] [SERVER ...]

SERVER is a name from harness.interop.SERVERS (Dovecot, Cyrus, CyrusAlt,
Courier), a polling one (CourierPolling, CyrusPolling: their IDLE polls
every --poll-seconds, Debian's default 60 s), a polling one with the
setting that bounds the wait (CourierPolling+refresh, CyrusPolling+refresh:
idle_refresh --refresh), or a scripted provider (Gmail, M365: the scripted
server playing Gmail or Microsoft 365, tests/integration/test_providers.py).
Default: all of them.  For each:

- push: a bare IDLE session (harness.mail.RawConn) is given 0.3 s to settle,
  then one message is appended; the time from APPEND's tagged OK to the
  ``* n EXISTS`` it hears (3 deliveries on the polling servers).
- reaction: imapsweepd (build/imapsweepd, log level debug) watches INBOX
  with a delete rule for cron mail; ``n`` cron mails are appended one at a
  time, each once the previous one is gone; the time from APPEND's tagged
  OK to the message being gone as seen by the oracle (polled every 5 ms,
  EXAMINE + UID SEARCH: up to ~6 ms of resolution).  On a polling server
  each delivery first waits a random part of the poll interval (seeded), as
  mail does not arrive in step with the server's poll.
- share: the daemon's own part of each reaction, from its debug log
  ("incremental sweep done in N ms", timed from the EXISTS it received).
- segments: TCP segments the daemon's connection sent per delivery (all, and
  those without data: bare ACKs), from the kernel's counters (``ss -tin``:
  segs_out, data_segs_out) read before and after the deliveries; what the
  quick ACKs of src/imap/transport_tcp.c cost.

Prints one table row per server: p50 and p99 in milliseconds (nearest rank:
with 20 deliveries p99 is the slowest).  Needs root and the unpacked servers
(scripts/interop-servers) for Cyrus and Courier, like the interop tests.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import FakeImap  # noqa: E402
from harness.interop import DEFAULT_SERVERS, SERVERS, account  # noqa: E402
from harness.mail import Imap, RawConn, cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd, fake_account  # noqa: E402
from harness.wait import wait_for  # noqa: E402

SWEEP_RE = re.compile(r"a/INBOX: (?:incremental|full) sweep done in (\d+) ms")
POLLING = ("CourierPolling", "CyrusPolling")


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


class Fake:
    """A scripted provider with the interface the measurement uses."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        scenario = dict(scenario)
        scenario["users"] = {f"user{i}": f"pass{i}" for i in range(1, 4)}
        scenario["mailboxes"] = {**scenario["mailboxes"], "INBOX": {}}
        self.scenario = scenario
        self.srv: FakeImap | None = None

    def __enter__(self) -> "Fake":
        self.srv = FakeImap(self.scenario)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.srv is not None
        self.srv.stop()

    def port(self, name: str = "imap") -> int:
        assert self.srv is not None
        return self.srv.port

    def user(self, n: int) -> Any:
        return type("U", (), {"name": f"user{n}", "password": f"pass{n}"})

    def imap(self, n: int) -> Imap:
        im = Imap("127.0.0.1", self.port())
        im.login(f"user{n}", f"pass{n}")
        return im

    def account(self, n: int, **kw: Any) -> dict[str, Any]:
        return fake_account(self.port(), user=f"user{n}", password=f"pass{n}", **kw)


def make_server(name: str, poll_s: int) -> Any:
    import test_providers as tp

    if name == "Gmail":
        return Fake(tp.gmail())
    if name == "M365":
        return Fake(tp.m365())
    base = name.split("+")[0]
    if base == "CourierPolling":
        from harness.courier import Courier

        return Courier(users=3, enhanced_idle=False, idle_timeout=poll_s)
    if base == "CyrusPolling":
        from harness.cyrus import Cyrus

        return Cyrus(users=3, idled=False, idle_poll=poll_s)
    return SERVERS[base](3)


def account_of(srv: Any, n: int, **kw: Any) -> dict[str, Any]:
    return srv.account(n, **kw) if isinstance(srv, Fake) else account(srv, n, **kw)


def push_ms(srv: Any, n: int) -> list[float]:
    out = []
    u = srv.user(2)
    im = srv.imap(2)
    try:
        with RawConn("127.0.0.1", srv.port("imap"), timeout=200) as raw:
            raw.greeting()
            raw.login(u.name, u.password)
            raw.command("SELECT INBOX")
            for i in range(n):
                raw.send(f"i{i} IDLE")
                raw.expect(r"^\+")
                time.sleep(0.3)
                im.append("INBOX", ordinary_mail(i))
                t0 = time.monotonic()
                raw.expect(r"^\* \d+ EXISTS", timeout=200)
                out.append((time.monotonic() - t0) * 1000)
                raw.send("DONE")
                raw.expect(rf"^i{i} ")
    finally:
        im.logout()
    return out


def reaction_ms(srv: Any, n: int, poll_s: float, refresh: str | None,
                rng: random.Random) -> tuple[list[float], list[float], tuple[float, float]]:  # fmt: skip
    cfg = SweepConfig(daemon={"log_level": "debug"})
    try:
        cfg.account("a", account_of(srv, 1, **({"idle_refresh": refresh} if refresh else {})))
        cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
        took = []
        im = srv.imap(1)
        try:
            with Sweepd(cfg) as d:
                d.wait_ready(states=("idle",))
                mark = d.mark()
                keep = im.append("INBOX", ordinary_mail(0))
                d.wait_for_log(SWEEP_RE, 300, since=mark)  # the sweep it caused, not timed
                kept = im.uids()  # (the scripted server's users share one INBOX: push's mail too)
                assert keep in kept
                segs0 = tcp_segments(d.pid)
                for i in range(n):
                    if poll_s:
                        time.sleep(rng.uniform(0, poll_s))  # mail comes at any point of the poll
                    uid = im.append("INBOX", cron_mail(i))
                    t0 = time.monotonic()
                    wait_for(lambda: uid not in im.uids(), 300, interval=0.005, what=f"cron mail {i} gone")
                    took.append((time.monotonic() - t0) * 1000)
                    d.wait_for_log(SWEEP_RE, 10, since=mark, count=i + 2)
                segs1 = tcp_segments(d.pid)
                assert im.uids() == kept and not im.seen(), "ordinary mail lost or \\Seen"
                log = d.stderr_path.read_bytes()[mark:].decode("utf-8", "replace")
                shares = [float(m.group(1)) for m in SWEEP_RE.finditer(log)][1:]  # [0]: the ordinary mail
        finally:
            im.logout()
        all_out, data_out = segs1[0] - segs0[0], segs1[1] - segs0[1]
        return took, shares, (all_out / n, (all_out - data_out) / n)
    finally:
        cfg.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20, help="deliveries per server (default 20)")
    ap.add_argument("--poll-seconds", type=int, default=60, help="the polling servers' interval (default 60)")
    ap.add_argument("--refresh", default="15s", help="idle_refresh for the +refresh rows (default 15s)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("servers", nargs="*", default=[*DEFAULT_SERVERS, "Gmail", "M365", *POLLING,
                                                   *(f"{p}+refresh" for p in POLLING)])  # fmt: skip
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for name in args.servers:
        polling = name.split("+")[0] in POLLING
        refresh = args.refresh if name.endswith("+refresh") else None
        with make_server(name, args.poll_seconds) as srv:
            push = push_ms(srv, 3 if polling else args.n)
            took, shares, segs = reaction_ms(srv, args.n, args.poll_seconds if polling else 0, refresh, rng)
        label = name + (f" (idle_refresh {refresh})" if refresh else "")
        row = (f"| {label} | {'yes' if statistics.median(push) < 1000 else 'no (polls)'} "
               f"| {statistics.median(push):.0f} | {statistics.median(took):.0f} / {pct(took, 0.99):.0f} "
               f"| {statistics.median(shares):.0f} / {pct(shares, 0.99):.0f} | {segs[0]:.1f} / {segs[1]:.1f} "
               f"| {len(took)} |")  # fmt: skip
        print(row, flush=True)
        rows.append(row)
    print("\n| server | IDLE pushes | push p50 ms | append -> gone p50 / p99 ms | daemon's share p50 / p99 ms"
          " | segments sent / of them bare ACKs, per delivery | n |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
