# SPDX-License-Identifier: MIT
"""imapsweepd through a misbehaving network path (harness/chaos.py).

One daemon, four watchers on a real Dovecot: "chaos"/INBOX goes through the
chaos proxy, "calm1"/INBOX, "calm1"/Work and "calm2"/INBOX connect directly.
Once every watcher is idle, the proxy turns on one behaviour for the
chaos watcher's connection (new connections pass through untouched), and
mail is delivered everywhere. For every behaviour:

- nothing lost: every ordinary message is still there, without \\Deleted;
- nothing wrongly deleted and nothing gained \\Seen (checked by imaplib);
- the chaos watcher's cron mail is removed within the bound its behaviour
  allows: at once for latency and trickle (no reconnect); after
  command_timeout + reconnect backoff for a stall of the client's bytes
  and a reset (a reset needs no timeout at all); after idle_refresh +
  command_timeout + backoff where the daemon can only learn of the fault
  by the DONE that ends its IDLE period (the server's bytes stalled, a
  blackhole);
- the calm watchers never notice: they keep removing cron mail while the
  fault lasts, and end with no reconnect and no error in status.
"""

from __future__ import annotations

import sys
import time
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.chaos import Behaviour, ChaosProxy  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import DovecotCase, Sweepd, daemon_alive, dovecot_account  # noqa: E402
from harness.wait import timeout_scale, wait_for  # noqa: E402

IDLE_REFRESH = 2
COMMAND_TIMEOUT = 2
RECONNECT_MAX = 2
#: reconnect, log in, select, sweep, on a loaded two-core machine
SLACK = 4.0
#: how long a calm watcher may take to remove new cron mail
CALM_REACTION = 5.0


def no_response(command: str) -> str:
    return rf"no response from the server within {COMMAND_TIMEOUT}s \(waiting for {command}\)"


NO_RESPONSE = no_response("DONE")
#: a reset reads as ECONNRESET, or as an end of stream when the error was
#: taken by a write first (the kernel reports a connection's error once)
RESET = r"(connection reset by peer|connection closed by 127\.0\.0\.1:\d+)"
WATCHERS = (("chaos", "INBOX"), ("calm1", "INBOX"), ("calm1", "Work"), ("calm2", "INBOX"))


class ChaosTest(DovecotCase):
    users = 27
    max_userip_connections = 20

    # -- set-up ---------------------------------------------------------------
    def start(self, first: dict[str, Any] | None = None) -> tuple[ChaosProxy, Sweepd]:
        """The proxy (its connections behaving as ``first`` says, a plain pipe
        by default), the three users with their mail, the daemon with every
        watcher idle and the seeded cron mail gone."""
        px = ChaosProxy(("127.0.0.1", self.dc.port("imap")))
        self.addCleanup(px.close)
        if first:
            px.default = Behaviour(**first)
        users = {"chaos": self.take_user(), "calm1": self.take_user(), "calm2": self.take_user()}
        self.im = {acct: self.oracle(u) for acct, u in users.items()}
        self.im["calm1"].create_mailbox("Work")
        self.cron: dict[tuple[str, str], set[int]] = {w: set() for w in WATCHERS}
        self.keep: dict[tuple[str, str], set[int]] = {w: set() for w in WATCHERS}
        self.n = 0
        for w in WATCHERS:
            self.deliver(w, cron=True)
            self.deliver(w, cron=False)
        cfg = self.config(defaults={"command_timeout": f"{COMMAND_TIMEOUT}s", "connect_timeout": "2s",
                                    "reconnect_min": "1s", "reconnect_max": f"{RECONNECT_MAX}s"})  # fmt: skip
        cfg.account("chaos", dovecot_account(self.dc, users["chaos"], port=px.port,
                                             idle_refresh=f"{IDLE_REFRESH}s"))  # fmt: skip
        cfg.account("calm1", dovecot_account(self.dc, users["calm1"], mailboxes=["INBOX", "Work"]))
        cfg.account("calm2", dovecot_account(self.dc, users["calm2"]))
        cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
        d = self.daemon(cfg)
        d.wait_ready(states=("idle",), timeout=40 if first else 20)
        px.default = Behaviour()
        for w in WATCHERS:
            self.wait_removed(w, 10)
        self.assertEqual(len(px.connections()), 1, "only the chaos watcher goes through the proxy")
        return px, d

    def deliver(self, w: tuple[str, str], cron: bool) -> int:
        """Append a cron or an ordinary message to watcher ``w``'s mailbox (directly, not through the proxy)."""
        self.n += 1
        uid = self.im[w[0]].append(w[1], cron_mail(self.n) if cron else ordinary_mail(self.n))
        (self.cron if cron else self.keep)[w].add(uid)
        return uid

    def wait_removed(self, w: tuple[str, str], timeout: float) -> float:
        """Wait until no cron mail is left in ``w``'s mailbox; the seconds it took."""
        t0 = time.monotonic()
        wait_for(lambda: not self.cron[w] & set(self.im[w[0]].uids(w[1])), timeout * timeout_scale(),
                 interval=0.05, what=f"cron mail removed from {w[0]}/{w[1]}")  # fmt: skip
        return time.monotonic() - t0

    # -- the case ---------------------------------------------------------------
    def run_case(self, behaviour: dict[str, Any], *, bound: float, why: str | None = None,
                 from_start: bool = False, after: str | None = None) -> ChaosProxy:  # fmt: skip
        """Turn ``behaviour`` on for the chaos watcher's connection (with
        ``from_start``, from its first byte; with ``after``, once the daemon
        has sent a command matching that), deliver mail everywhere, and
        check everything the module promises.
        ``why``: the daemon must drop that connection, saying so in a line
        that matches this, and reconnect; None: it must not reconnect.
        ``bound``: seconds from the fault to the chaos watcher's cron mail gone."""
        px, d = self.start(behaviour if from_start else None)
        mark = d.mark()
        conn = px.connections()[0]
        if after:
            conn.arm(after, **behaviour)
        else:
            conn.set(**behaviour)
        t0 = time.monotonic()
        chaos = WATCHERS[0]
        self.deliver(chaos, cron=False)
        self.deliver(chaos, cron=True)
        # the others keep reacting while the fault lasts
        for w in WATCHERS[1:]:
            self.deliver(w, cron=False)
            self.deliver(w, cron=True)
            took = self.wait_removed(w, CALM_REACTION)
            self.assertLess(took, CALM_REACTION, f"{w} slowed down")
        self.wait_removed(chaos, bound + 5)
        took = time.monotonic() - t0
        self.assertLessEqual(took, bound * timeout_scale(), f"{behaviour}: the chaos watcher took {took:.1f}s")
        if after:
            self.assertTrue(conn.triggered.is_set(), f"the daemon never sent {after}")
        if why is not None:
            # (after an EXPUNGE the mail is gone before the daemon knows)
            d.wait_for_log(rf"chaos/INBOX: (read from [0-9.:]+: )?{why}; reconnecting in", since=mark,
                           timeout=max(1.0, bound - (time.monotonic() - t0)))  # fmt: skip
            self.assertTrue(conn.closed, "the faulty connection closed by the daemon")
            st = d.wait_watcher(*chaos, lambda w: w["reconnects"] >= 1 and w["state"] == "idle",
                                timeout=max(1.0, bound - (time.monotonic() - t0)), what="reconnected, idle")  # fmt: skip
            took = time.monotonic() - t0
            self.assertLessEqual(took, bound * timeout_scale(), f"{behaviour}: the chaos watcher took {took:.1f}s")
            self.assertEqual(px.accepted(), 2, "one reconnect through the proxy")
        else:
            st = d.watcher(*chaos)
            self.assertEqual(st["reconnects"], 0, st)
            self.assertFalse(conn.closed)
            self.assertNotIn("reconnecting", d.log_text()[mark:])
        # and once more after the recovery, on a healthy path
        conn.set()
        self.deliver(chaos, cron=True)
        self.wait_removed(chaos, CALM_REACTION + (5 if behaviour.get("trickle") else 0))
        self.check_mailboxes()
        d.wait_ready(states=("idle",), timeout=10)
        for w in WATCHERS[1:]:
            st = d.watcher(*w)
            self.assertEqual((st["reconnects"], st["last_error"]), (0, None), f"{w} noticed: {st}")
        self.assertTrue(daemon_alive(d))
        return px

    def check_mailboxes(self) -> None:
        """Independent client: all ordinary mail there, unflagged; no cron mail; nothing \\Seen."""
        for w in WATCHERS:
            im = self.im[w[0]]
            flags = im.flags(w[1])
            self.assertLessEqual(self.keep[w], set(flags), f"{w}: ordinary mail lost")
            self.assertFalse(self.cron[w] & set(flags), f"{w}: cron mail left")
            self.assertEqual(set(flags) - self.keep[w], set(), f"{w}: unexpected messages")
            for uid, f in flags.items():
                self.assertFalse({"\\Seen", "\\Deleted"} & f, f"{w}: UID {uid} has {f}")

    # -- the behaviours ---------------------------------------------------------
    def test_latency(self) -> None:
        # 300 ms each way: slow round trips, well inside command_timeout
        self.run_case({"latency": 0.3}, bound=10)

    def test_trickle(self) -> None:
        # the server's bytes one at a time, 10 ms apart: every byte is life
        px = self.run_case({"trickle": 0.01}, bound=20)
        # the sweep's replies (an ESEARCH, a header literal, STORE and
        # EXPUNGE) came through one byte at a time
        self.assertGreater(px.connections(live=False)[0].bytes["s2c"], 300)

    def test_trickle_from_the_greeting(self) -> None:
        # greeting, LOGIN, SELECT, the first sweep: all in one-byte reads;
        # the LOGIN reply with its capabilities alone (~300 octets) takes
        # longer than command_timeout, and every byte is life
        px = self.run_case({"trickle": 0.01}, bound=20, from_start=True)
        self.assertGreater(px.connections(live=False)[0].bytes["s2c"], 1500)

    def test_stall_client_to_server(self) -> None:
        # the new mail's EXISTS gets through, the DONE that follows does not
        self.run_case({"stall": "c2s"}, bound=COMMAND_TIMEOUT + RECONNECT_MAX + SLACK, why=NO_RESPONSE)

    def test_stall_server_to_client(self) -> None:
        # the EXISTS is held: the daemon learns of it by the DONE of the IDLE period
        self.run_case({"stall": "s2c"}, bound=IDLE_REFRESH + COMMAND_TIMEOUT + RECONNECT_MAX + SLACK,
                      why=NO_RESPONSE)  # fmt: skip

    def test_reset_in_literal(self) -> None:
        # the sweep's header fetch (the audit, before the STORE) is cut inside its literal
        px = self.run_case({"reset_in_literal": True}, bound=RECONNECT_MAX + SLACK, why=RESET)
        self.assertEqual(len(px.resets), 1, px.resets)
        self.assertGreater(px.resets[0].literal, 100, "the audit's header literal")

    def test_blackhole_after_store(self) -> None:
        # the server flags the cron mail \Deleted, the reply never comes:
        # the next connection finds it flagged and finishes the job
        self.run_case({"blackhole": True}, bound=COMMAND_TIMEOUT + RECONNECT_MAX + SLACK,
                      why=no_response("UID STORE"), after=r"UID STORE")  # fmt: skip

    def test_blackhole_after_expunge(self) -> None:
        # the server expunges, the reply never comes: the next connection
        # finds the mail gone and sweeps the rest as usual
        self.run_case({"blackhole": True}, bound=COMMAND_TIMEOUT + RECONNECT_MAX + SLACK,
                      why=no_response("UID EXPUNGE"), after=r"UID EXPUNGE")  # fmt: skip

    def test_blackhole(self) -> None:
        # a NAT that lost the flow: no byte either way, no FIN, no RST
        self.run_case({"blackhole": True}, bound=IDLE_REFRESH + COMMAND_TIMEOUT + RECONNECT_MAX + SLACK,
                      why=NO_RESPONSE)  # fmt: skip


if __name__ == "__main__":
    unittest.main()
