"""Defects of imapsweepd that the interop servers show (issue 14): these tests
FAIL today and pass once the daemon is fixed.

Not run by default: run.py discovers ``test_*.py`` only, and this module is
named ``pending_*.py`` so that it stays out of ``make integration`` and
``make interop`` until the fixes land.  Run it by name:

    python3 tests/integration/run.py -m pending_interop_defects
    python3 tests/integration/run.py -m pending_interop_defects -k Courier

When a fix lands, move its cases into test_interop.py (or rename this file
to test_interop_defects.py once every case passes).

1. ``Stall``: after an EXISTS the daemon pipelines DONE, ``UID FETCH *
   (UID)`` and the search; Cyrus and Courier answer the first, then hold
   the next reply ~40 ms (their Nagle algorithm against the daemon's
   delayed ACK).  The daemon's own share of a reaction, from its debug log
   ("incremental sweep done in N ms", timed from the EXISTS), is ~44 ms
   there against ~3 ms on Dovecot.  Target (issue 14): <= 5 ms p50.
2. ``NoTrash`` (servers without SPECIAL-USE): with no \\Trash and no
   ``trash_mailbox`` the daemon reports "the server refused its action",
   though it sent nothing.
3. ``NoTrash``: no fallback to the folder named Trash (with the personal
   namespace prefix: ``INBOX.Trash`` on Courier) when the server has no
   SPECIAL-USE, as Thunderbird and most clients do.

Besides the three defects, a feature issue 14 asks for:

4. ``PollingDetection``: a server whose IDLE only polls (Courier's default,
   Cyrus without idled) is detected from the timing and reported once in
   the log and in status, with the ``idle_refresh`` setting that bounds
   the delay.  The wording is the implementer's; the test looks for
   "poll" and "idle_refresh".
"""

from __future__ import annotations

import re
import statistics
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.interop import (  # noqa: E402
    POLLING_IDLE_S,
    POLLING_SERVERS,
    ServerCase,
    for_each_server,
    load_tests_without_mixins,
)
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import run_once  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON = {"from": "Cron Daemon"}
#: Deliveries per share measurement.
DELIVERIES = 20
#: The daemon's share p50 must not exceed this (the issue's target is 5 ms;
#: a little slack for a loaded test machine, far below the 40 ms stall).
SHARE_P50_MS = 10.0
SWEEP_RE = re.compile(r"a/INBOX: (?:incremental|full) sweep done in (\d+) ms")


class Stall(ServerCase):
    """Defect 1: the daemon's own share of a reaction (EXISTS -> swept)."""

    users = 4

    def test_daemon_share_of_reaction(self) -> None:
        user = self.take_user()
        im = self.server.imap(user)
        self.addCleanup(im.logout)
        cfg = self.config(daemon={"log_level": "debug"})
        cfg.account("a", self.account(user))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready(states=("idle",))
        mark = d.mark()
        for i in range(DELIVERIES):
            uid = im.append("INBOX", cron_mail(i))
            wait_for(lambda: uid not in im.uids(), 10, interval=0.01, what=f"cron mail {i} gone")
            d.wait_for_log(SWEEP_RE, 5, since=mark, count=i + 1)
        keep = im.append("INBOX", ordinary_mail(1))
        log = d.stderr_path.read_bytes()[mark:].decode("utf-8", "replace")
        shares = [int(m.group(1)) for m in SWEEP_RE.finditer(log)][:DELIVERIES]
        p50 = statistics.median(shares)
        print(f"{self.server_name}: daemon's share p50 {p50:.0f} ms, all {shares}")
        self.assertIn(keep, im.uids())
        self.assertEqual(im.seen(), set())
        self.assertLessEqual(p50, SHARE_P50_MS, f"{self.server_name}: the daemon's share of a reaction"
                                                f" (EXISTS -> swept) is {p50:.0f} ms p50: {shares}")  # fmt: skip


class NoTrash(ServerCase):
    """Defects 2 and 3, on servers without SPECIAL-USE."""

    users = 6

    def test_no_trash_says_so_in_summary_and_status(self) -> None:
        user = self.take_user()
        im = self.server.imap(user)
        self.addCleanup(im.logout)
        self.server.remove_folder(user, "Trash")
        im.append("INBOX", cron_mail(1))
        im.append("INBOX", ordinary_mail(1))
        cfg = self.config(daemon={"log_level": "debug"})
        cfg.account("a", self.account(user))
        cfg.rule("cron-noise", CRON, "trash")
        r = run_once(cfg)
        summary = "\n".join(r.summary("a", "INBOX"))
        self.assertNotIn("refused", summary, "nothing was sent, so the server refused nothing")
        self.assertRegex(summary, r"no \\Trash", "the summary should say that there is no \\Trash mailbox")
        d = self.daemon(cfg)
        d.wait_ready()
        w = d.wait_watcher("a", "INBOX", lambda w: w.get("last_error") or w.get("notes"), 10,
                           what="an error or a note about the missing \\Trash")  # fmt: skip
        self.assertNotIn("refused", str(w.get("last_error", "")), w)
        self.assertEqual(len(im.uids()), 2, "mail was touched with no \\Trash to move it to")

    def test_trash_falls_back_to_the_folder_named_trash(self) -> None:
        user = self.take_user()
        im = self.server.imap(user)
        self.addCleanup(im.logout)
        trash = self.trash_name()
        self.assertIn(trash, [name for _, name in im.list()])
        im.append("INBOX", cron_mail(1))
        keep = im.append("INBOX", ordinary_mail(1))
        cfg = self.config(daemon={"log_level": "debug"})
        cfg.account("a", self.account(user))
        cfg.rule("cron-noise", CRON, "trash")
        r = run_once(cfg)
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}")
        self.assertEqual(im.uids(), [keep])
        self.assertEqual({h["message-id"] for h in im.headers(trash).values()}, {"<cron-1@host.imapsweep.test>"})
        self.assertEqual(im.seen("INBOX") | im.seen(trash), set())
        self.assertEqual(len(re.findall(re.escape(trash), r.stderr)), 1,
                         f"the fallback to {trash} should be said once in the log:\n{r.stderr}")  # fmt: skip


class PollingDetection(ServerCase):
    """Feature 4: a polling IDLE is noticed and reported."""

    users = 3

    def test_polling_idle_is_reported(self) -> None:
        user = self.take_user()
        im = self.server.imap(user)
        self.addCleanup(im.logout)
        cfg = self.config(daemon={"log_level": "debug"})
        cfg.account("a", self.account(user))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready(states=("idle",))
        for i in range(3):
            uid = im.append("INBOX", cron_mail(i))
            wait_for(lambda: uid not in im.uids(), POLLING_IDLE_S + 5, interval=0.05, what=f"cron mail {i} gone")
        notes = " ".join(d.watcher("a", "INBOX").get("notes", []))
        self.assertRegex(notes, r"(?i)poll", f"status notes say nothing of a polling IDLE: {notes!r}")
        self.assertIn("idle_refresh", notes)
        self.assertEqual(len(re.findall(r"(?i)idle.*poll.*idle_refresh", d.log_text())), 1,
                         "the polling IDLE should be reported once in the log")  # fmt: skip


globals().update(for_each_server(Stall))
globals().update(for_each_server(PollingDetection, POLLING_SERVERS))
globals().update(for_each_server(NoTrash, ["Courier"]))
load_tests = load_tests_without_mixins(globals())

if __name__ == "__main__":
    unittest.main()
