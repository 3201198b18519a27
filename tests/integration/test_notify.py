# SPDX-License-Identifier: MIT
"""NOTIFY (RFC 5465): mailboxes without a connection of their own are
watched by the account's event connection against the suite's Dovecot
(2.3.19 offers NOTIFY).

Mail is delivered with ``doveadm save`` and mailbox contents are checked with
``doveadm search``; connections are counted with ``doveadm who``.  The
refusal of ``notify: on`` runs against the scripted server (fakeimap), which
has no NOTIFY.
"""

from __future__ import annotations

import imaplib
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import FakeImap  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import DovecotCase, fake_account  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON = {"from": "Cron Daemon"}
#: Dovecot reports a change to a NOTIFY session at once through inotify, or
#: within its own 30-second check where inotify is not to be had (a machine
#: whose test instances share uids may run out of inotify instances).
SERVER_CEILING = 40.0


def cron_id(n: int) -> str:
    return f"<cron-{n}@host.imapsweep.test>"


def other_id(n: int) -> str:
    return f"<mail-{n}@imapsweep.test>"


class NotifyTest(DovecotCase):
    #: Dovecot watches a NOTIFY session's mailbox list with inotify, whose
    #: instances are counted per uid, and user N has uid 40000+N in every
    #: test instance: these tests take users 41-48, which no other class
    #: uses, clear of sessions that earlier instances may still hold (once
    #: in make check a rename was not reported within 40 s).
    users = 48

    def take_user(self) -> int:
        return super().take_user() + 40

    def deliver(self, user: int, mailbox: str, msg: bytes) -> None:
        self.dc.doveadm("save", "-u", self.dc.user(user).name, "-m", mailbox, input=msg)

    def has(self, user: int, mailbox: str, message_id: str) -> bool:
        return bool(self.dc.search(user, mailbox, "header", "message-id", message_id))

    def count(self, user: int, mailbox: str) -> int:
        return len(self.dc.search(user, mailbox, "all"))

    def create(self, user: int, *mailboxes: str) -> None:
        for mb in mailboxes:
            self.dc.doveadm("mailbox", "create", "-u", self.dc.user(user).name, mb)

    def start(self, user: int, mailboxes: list, **account: object):  # type: ignore[no-untyped-def]
        cfg = self.config()
        cfg.account("a", {**self._account(user, mailboxes), **account})
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.__enter__()
        self.wait_armed(d)
        return d

    def park(self, user: int) -> None:
        """Make sure the event connection has not got a mailbox under test
        selected: RFC 5465 allows only message events for the selected
        mailbox, so Dovecot reports no rename or deletion of it. A cron
        message delivered to Spare (watched by NOTIFY) makes the connection
        SELECT Spare to sweep it; once it is gone, Spare or nothing is
        selected."""
        self.deliver(user, "Spare", cron_mail(99))
        self.wait_gone(user, "Spare", cron_id(99))

    @staticmethod
    def wait_armed(d) -> None:  # type: ignore[no-untyped-def]
        """Every mailbox swept once, and those on the event connection armed
        (watched_by turns notify when NOTIFY SET is answered OK)."""
        d.wait_ready()
        wait_for(lambda: all(w["last_sweep"] is not None and (w["watched_by"] != "poll") for w in d.watchers()),
                 10, what="NOTIFY armed, every mailbox swept once")  # fmt: skip

    def _account(self, user: int, mailboxes: list) -> dict:
        from harness.sweepd import dovecot_account

        return dovecot_account(self.dc, user, mailboxes=mailboxes)

    def wait_gone(self, user: int, mailbox: str, message_id: str, timeout: float = SERVER_CEILING) -> float:
        t0 = time.monotonic()
        wait_for(lambda: not self.has(user, mailbox, message_id), timeout,
                 what=f"user{user}/{mailbox}: {message_id} swept")  # fmt: skip
        return time.monotonic() - t0

    def test_covered_mailbox_swept_after_delivery(self) -> None:
        u = self.take_user()
        self.create(u, "Lists", "Archive")
        d = self.start(u, ["INBOX", {"name": "Lists", "idle": False}, {"name": "Archive", "idle": False}])
        by = {w["mailbox"]: w["watched_by"] for w in d.watchers()}
        self.assertEqual(by, {"INBOX": "idle", "Lists": "notify", "Archive": "notify"})
        # INBOX's IDLE connection and the event connection, no more
        self.assertEqual(self.dc.who().get(self.dc.user(u).name, 0), 2)
        self.deliver(u, "Lists", ordinary_mail(1))
        self.deliver(u, "Lists", cron_mail(1))
        self.wait_gone(u, "Lists", cron_id(1))
        self.assertTrue(self.has(u, "Lists", other_id(1)), "ordinary mail left alone")
        w = d.watcher("a", "Lists")
        self.assertEqual(w["actions"], {"cron": {"delete": 1}})
        self.assertIsNotNone(w["last_event_s"])
        self.assertEqual(d.watcher("a", "Archive")["actions"], {})

    def test_rename_and_delete_while_armed(self) -> None:
        u = self.take_user()
        self.create(u, "Lists", "Old", "Target", "Spare")
        cfg = self.config()
        cfg.account("a", self._account(u, ["INBOX", {"name": "Lists", "idle": False},
                                            {"name": "Old", "idle": False},
                                            {"name": "Spare", "idle": False}]))  # fmt: skip
        cfg.rule("cron", CRON, "delete")
        cfg.rule("keep", {"subject": "archive me"}, {"move": "Target"})
        d = self.daemon(cfg)
        d.__enter__()
        self.wait_armed(d)
        self.park(u)
        name = self.dc.user(u).name
        self.dc.doveadm("mailbox", "rename", "-u", name, "Lists", "Lists2")
        w = d.wait_watcher("a", "Lists", lambda w: w["state"] == "stopped", timeout=SERVER_CEILING,
                           what="stopped after the rename")  # fmt: skip
        self.assertIn("renamed to Lists2", w["last_error"])
        self.dc.doveadm("mailbox", "delete", "-u", name, "Old")
        w = d.wait_watcher("a", "Old", lambda w: w["state"] == "stopped", timeout=SERVER_CEILING,
                           what="stopped after the deletion")  # fmt: skip
        self.assertEqual(w["last_error"], "deleted on the server; not watched")
        self.dc.doveadm("mailbox", "delete", "-u", name, "Target")
        d.wait_for_log(r"Target, where rule keep moves messages, was deleted on the server", SERVER_CEILING)
        # the renamed mailbox is not swept under either name; INBOX still is
        self.deliver(u, "Lists2", cron_mail(2))
        self.deliver(u, "INBOX", cron_mail(3))
        self.wait_gone(u, "INBOX", cron_id(3))
        self.assertTrue(self.has(u, "Lists2", cron_id(2)))
        self.assertEqual(d.watcher("a", "INBOX")["state"], "idle")

    def test_rename_followed(self) -> None:
        u = self.take_user()
        self.create(u, "Lists", "Spare")
        d = self.start(u, ["INBOX", {"name": "Lists", "idle": False}, {"name": "Spare", "idle": False}],
                       on_rename="follow")  # fmt: skip
        self.park(u)
        self.dc.doveadm("mailbox", "rename", "-u", self.dc.user(u).name, "Lists", "Lists2")
        d.wait_for_log(r"Lists was renamed to Lists2 on the server: watching Lists2", SERVER_CEILING)
        self.deliver(u, "Lists2", cron_mail(4))
        self.wait_gone(u, "Lists2", cron_id(4))
        self.assertEqual(d.watcher("a", "Lists2")["watched_by"], "notify")

    def test_one_connection_listens_and_sweeps(self) -> None:
        u = self.take_user()
        self.create(u, "Lists")
        d = self.start(u, ["INBOX", "Lists"], max_connections=1)
        self.assertEqual({w["watched_by"] for w in d.watchers()}, {"notify"})
        self.assertEqual(self.dc.who().get(self.dc.user(u).name, 0), 1)
        for i, mb in enumerate(["INBOX", "Lists", "INBOX"], start=10):
            self.deliver(u, mb, ordinary_mail(i))
            self.deliver(u, mb, cron_mail(i))
            self.wait_gone(u, mb, cron_id(i))
            self.assertTrue(self.has(u, mb, other_id(i)))
        self.assertEqual(self.dc.who().get(self.dc.user(u).name, 0), 1)

    def test_deliveries_during_a_sweep_none_missed(self) -> None:
        u = self.take_user()
        boxes = [f"Box{i}" for i in range(6)]
        self.create(u, "Big", *boxes)
        # Big's first sweep takes a while: 1,000 cron messages of 48 KiB whose
        # bodies a first rule digests (it matches none of them: the second
        # rule deletes them)
        im = imaplib.IMAP4("127.0.0.1", self.dc.port("imap"))
        im.login(self.dc.user(u).name, self.dc.user(u).password)
        for i in range(1000):
            im.append("Big", None, None, cron_mail(1000 + i, body_size=49152))
        im.logout()
        cfg = self.config()
        cfg.account("a", self._account(u, ["INBOX", {"name": "Big", "idle": False}]
                                       + [{"name": b, "idle": False} for b in boxes]))  # fmt: skip
        cfg.rule("slow", {"from": "Cron Daemon", "body_sha256": "0" * 64}, "delete", mailboxes=["Big"])
        cfg.rule("cron", CRON, "delete")
        im = imaplib.IMAP4("127.0.0.1", self.dc.port("imap"))
        im.login(self.dc.user(u).name, self.dc.user(u).password)
        self.addCleanup(im.logout)
        d = self.daemon(cfg)
        d.__enter__()
        # the event connection sweeps one mailbox at a time: while it is
        # busy with Big, mail arrives in the others
        d.wait_watcher("a", "Big", lambda w: w["state"] == "sweeping", timeout=20, what="sweeping Big")
        n = 100
        for rnd in range(3):
            for b in boxes:
                n += 1
                im.append(b, None, None, cron_mail(n))
                im.append(b, None, None, ordinary_mail(n))
        self.assertEqual(d.watcher("a", "Big")["state"], "sweeping", "Big's sweep still running")
        wait_for(lambda: self.count(u, "Big") == 0, 30, what="Big swept")
        for b in boxes:
            wait_for(lambda b=b: self.count(u, b) == 3, SERVER_CEILING, what=f"{b}: the cron mail swept")
            for k in range(3):
                self.assertTrue(self.has(u, b, other_id(101 + k * len(boxes) + boxes.index(b))))
        total = sum(d.count("a", b, "cron") for b in boxes)
        self.assertEqual(total, 3 * len(boxes))


class NotifyRefusedTest(unittest.TestCase):
    def test_notify_on_without_notify(self) -> None:
        from harness.sweepd import SweepConfig, Sweepd

        with FakeImap("basic") as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port, mailboxes=[{"name": "INBOX", "idle": False}], notify="on"))
            cfg.rule("cron", CRON, "delete")
            before = srv.uids("INBOX")
            with Sweepd(cfg) as d:
                d.wait_for_log(r"notify: on, but the server does not offer NOTIFY \(RFC 5465\)")
                w = d.wait_watcher("f", "INBOX", lambda w: w["state"] == "error", what="error")
                self.assertIn("does not offer NOTIFY", w["last_error"])
                # no retry: one login, LOGOUT, and nothing after a whole
                # reconnect_max (2s) has passed: absence can only be waited out
                wait_for(lambda: "LOGOUT" in srv.client_commands(), 5, what="LOGOUT")
                time.sleep(2.5)
                logins = [c for c in srv.client_commands() if c.upper().startswith(("LOGIN", "AUTHENTICATE"))]
                self.assertEqual(len(logins), 1, srv.client_commands())
            self.assertEqual(srv.uids("INBOX"), before, "nothing touched")


if __name__ == "__main__":
    unittest.main()
