# SPDX-License-Identifier: MIT
"""The connection budget: an account never holds more than max_connections
sessions, and every watched mailbox is still swept on new mail.

With N watched mailboxes and a budget of B: N <= B gives N dedicated IDLE
connections; N > B gives B-1 dedicated ones plus one shared connection that
polls the rest with STATUS every poll_interval.  The session count is
sampled all through each test from the server's side: ``doveadm who`` for
Dovecot (whose own limit is set to the budget too, so that a login beyond it
would be refused and logged), the scripted server's connection table for
the fake one.  Mail is delivered and checked with doveadm, so the test opens
no IMAP session of its own that would count against the user.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.dovecot import Dovecot  # noqa: E402
from harness.fakeimap import FakeImap  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd, dovecot_account, fake_account, run_once  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON = {"from": "Cron Daemon"}


class Sampler:
    """Calls ``probe()`` in a thread every ``interval`` s and keeps the maximum."""

    def __init__(self, probe: Callable[[], int], interval: float = 0.03) -> None:
        self.probe = probe
        self.interval = interval
        self.max = 0
        self.samples = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max = max(self.max, self.probe())
                self.samples += 1
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)


class DovecotBudgetTest(unittest.TestCase):
    BUDGET = 2

    def setUp(self) -> None:
        # Dovecot itself refuses a login beyond the budget (and logs it)
        self.dc = Dovecot(users=2, max_userip_connections=self.BUDGET, tls_variants=False)
        self.dc.__enter__()
        self.addCleanup(self.dc.cleanup)

    def deliver(self, user: int, mailbox: str, msg: bytes) -> None:
        self.dc.doveadm("save", "-u", self.dc.user(user).name, "-m", mailbox, input=msg)

    def has(self, user: int, mailbox: str, message_id: str) -> bool:
        return bool(self.dc.search(user, mailbox, "header", "message-id", message_id))

    def test_more_mailboxes_than_connections(self) -> None:
        big = ["INBOX", "Archive", "Junk", "Sent", "Cron"]      # user1: 5 mailboxes, budget 2
        small = ["INBOX", "Junk"]                                # user2: 2 mailboxes, budget 2
        self.dc.doveadm("mailbox", "create", "-u", "user1", "Cron")
        n = 0
        for user, boxes in ((1, big), (2, small)):
            for mb in boxes:
                n += 1
                self.deliver(user, mb, cron_mail(n))
                self.deliver(user, mb, ordinary_mail(n))
        cfg = SweepConfig(defaults={"max_connections": self.BUDGET, "poll_interval": "1s"})
        self.addCleanup(cfg.cleanup)
        cfg.account("big", dovecot_account(self.dc, 1, mailboxes=big))
        cfg.account("small", dovecot_account(self.dc, 2, mailboxes=small))
        cfg.rule("cron", CRON, "delete")
        with Sampler(lambda: self.dc.who().get("user1", 0)) as s1, \
                Sampler(lambda: self.dc.who().get("user2", 0)) as s2, Sweepd(cfg) as d:  # fmt: skip
            ws = d.wait_ready()
            shared = {w["mailbox"]: w["shared"] for w in ws if w["account"] == "big"}
            # B-1 dedicated connections, the rest shares one
            expected = [False] * (self.BUDGET - 1) + [True] * (len(big) - self.BUDGET + 1)
            self.assertEqual(sorted(shared.values()), expected, shared)
            self.assertEqual([w["shared"] for w in ws if w["account"] == "small"], [False, False])
            # the full sweeps at start reached every mailbox
            for user, boxes, first in ((1, big, 1), (2, small, len(big) + 1)):
                for k, mb in enumerate(boxes):
                    wait_for(lambda: not self.has(user, mb, f"<cron-{first + k}@host.imapsweep.test>"), 5,
                             what=f"user{user}/{mb}: seeded cron mail removed")  # fmt: skip
            # new mail: the dedicated watchers at once, the shared ones within poll_interval + slack
            for rnd in range(2):
                t0 = time.monotonic()
                pending: dict[tuple[int, str], str] = {}
                for user, boxes in ((1, big), (2, small)):
                    for mb in boxes:
                        n += 1
                        self.deliver(user, mb, cron_mail(n))
                        pending[(user, mb)] = f"<cron-{n}@host.imapsweep.test>"
                took: dict[str, float] = {}

                def all_swept() -> bool:
                    for (user, mb), mid in list(pending.items()):
                        if not self.has(user, mb, mid):
                            took[f"user{user}/{mb}"] = time.monotonic() - t0
                            del pending[(user, mb)]
                    return not pending

                wait_for(all_swept, 1 + 5, what=f"round {rnd}: new cron mail removed everywhere ({pending})")
                print(f"round {rnd}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(took.items())))
            self.assertTrue(d.running())
        self.assertFalse(s1.errors + s2.errors, "doveadm who failed")
        print(f"sessions seen: user1 max {s1.max} ({s1.samples} samples), user2 max {s2.max} ({s2.samples} samples)")
        self.assertGreater(s1.samples, 10)
        self.assertEqual(s1.max, self.BUDGET, "user1 exceeded (or never used) its budget")
        self.assertLessEqual(s2.max, self.BUDGET)
        log = self.dc.log_text()
        self.assertNotIn("Maximum number of connections", log)
        # every ordinary message is still there
        for user, boxes, first in ((1, big, 1), (2, small, len(big) + 1)):
            for k, mb in enumerate(boxes):
                self.assertTrue(self.has(user, mb, f"<mail-{first + k}@imapsweep.test>"), f"user{user}/{mb}")


    def test_once_sweeps_every_mailbox_within_budget(self) -> None:
        boxes = ["INBOX", "Archive", "Junk", "Sent", "Cron"]
        self.dc.doveadm("mailbox", "create", "-u", "user1", "Cron")
        for i, mb in enumerate(boxes):
            self.deliver(1, mb, cron_mail(i))
            self.deliver(1, mb, ordinary_mail(i))
        cfg = SweepConfig(defaults={"max_connections": self.BUDGET})
        self.addCleanup(cfg.cleanup)
        cfg.account("once", dovecot_account(self.dc, 1, mailboxes=boxes))
        cfg.rule("cron", CRON, "delete")
        with Sampler(lambda: self.dc.who().get("user1", 0)) as s:
            r = run_once(cfg, valgrind=True)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr[-3000:]}")
        for i, mb in enumerate(boxes):
            self.assertEqual(r.summary("once", mb),
                             [f"once/{mb}: ok, 1 message, swept up to UID 2", "  cron: delete 1"])  # fmt: skip
            self.assertFalse(self.has(1, mb, f"<cron-{i}@host.imapsweep.test>"), mb)
            self.assertTrue(self.has(1, mb, f"<mail-{i}@imapsweep.test>"), mb)
        self.assertLessEqual(s.max, self.BUDGET)
        self.assertNotIn("Maximum number of connections", self.dc.log_text())


def fake_sessions(port: int) -> Callable[[], int]:
    """A probe of the fake server's open connections over a control connection of its own."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    reader = sock.makefile("rb")

    def probe() -> int:
        sock.sendall(b'{"cmd": "connections"}\n')
        reply: dict[str, Any] = json.loads(reader.readline())
        return int(reply["open"])

    probe.close = sock.close  # type: ignore[attr-defined]
    return probe


class FakeBudgetTest(unittest.TestCase):
    def test_budget_holds_through_reconnects(self) -> None:
        boxes = ["INBOX", "A", "B", "C", "D", "E"]
        scenario = {"mailboxes": {mb: {"uidvalidity": 1700000000 + i, "messages": [
            {"from": "Cron Daemon <root@h>", "subject": "c", "body": "x\n", "message_id": f"<seed-{mb}@h>"},
            {"from": "Alice <a@example.org>", "subject": "hi", "body": "x\n", "message_id": f"<keep-{mb}@x>"},
        ]} for i, mb in enumerate(boxes)}}  # fmt: skip
        budget = 3
        with FakeImap(scenario) as srv:
            cfg = SweepConfig(defaults={"max_connections": budget, "poll_interval": "1s"})
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port, mailboxes=boxes))
            cfg.rule("cron", CRON, "delete")
            probe = fake_sessions(srv.control_port)
            self.addCleanup(probe.close)  # type: ignore[attr-defined]
            with Sampler(probe) as s, Sweepd(cfg, valgrind=True) as d:
                d.wait_ready()
                for rnd in range(2):
                    # the server drops every connection: all reconnect at once
                    srv.control({"cmd": "kick", "bye": "maintenance"})
                    d.wait_ready(where=lambda w: not w["shared"])
                    wait_for(lambda: all(w["reconnects"] > rnd for w in d.watchers() if not w["shared"]), 10,
                             what="dedicated watchers reconnected")  # fmt: skip
                    uids = {mb: srv.append(mb, {"from": "Cron Daemon <root@h>", "subject": "late", "body": f"{rnd}\n",
                                                "message_id": f"<late-{rnd}-{mb}@h>"}) for mb in boxes}  # fmt: skip
                    wait_for(lambda: all(u not in srv.uids(mb) for mb, u in uids.items()), 1 + 5,
                             what=f"round {rnd}: new cron mail removed from every mailbox")  # fmt: skip
                self.assertTrue(d.running())
                # run under valgrind: the poller and reconnect paths, checked for memory errors and leaks
                self.assertEqual(d.stop(), 0)
                d.assert_valgrind_clean()
                self.assertIn("ERROR SUMMARY: 0 errors", "\n".join(d.valgrind_reports()))
            state = srv.state()
            print(f"fake server: max {s.max} open connections ({s.samples} samples), {state['connections']['total']}"
                  f" accepted in all")  # fmt: skip
            self.assertFalse(s.errors)
            self.assertEqual(s.max, budget)
            for mb in boxes:
                self.assertEqual([m["message_id"] for m in state["mailboxes"][mb]["messages"]], [f"<keep-{mb}@x>"])


if __name__ == "__main__":
    unittest.main()
