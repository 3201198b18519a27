# SPDX-License-Identifier: MIT
"""The IMAP engine (transport, TLS, parser, session) against a real Dovecot.

The engine is driven by build/tests/imapc, a small program over imap_conn;
every effect on the mailbox is checked with the independent imaplib client
of the harness, never with the code under test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import binary  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.wait import Proc, wait_for  # noqa: E402


class EngineTest(unittest.TestCase):
    """One Dovecot for the class; each test works in its own user's INBOX
    or mailbox so that tests do not see each other's mail."""

    dc: Dovecot

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=8, max_userip_connections=100)
        cls.dc.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dc.cleanup()

    def imapc(self, *args: str, user: int = 1, listener: str = "imap", tls: str = "none",
              host: str | None = None, ca: bool = True, timeout: float = 30,
              auth: str = "auto") -> subprocess.CompletedProcess[str]:
        u = self.dc.user(user)
        argv = [str(binary("tests/imapc")), "--host", host or self.dc.address(listener),
                "--port", str(self.dc.port(listener)), "--tls", tls, "--user", u.name,
                "--auth", auth, "--timeout", "10000"]
        if ca:
            argv += ["--ca", self.dc.ca_file]
        argv += list(args)
        env = dict(os.environ, IMAPC_PASSWORD=u.password)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    def oracle(self, user: int):
        """An independent imaplib client, logged out at the end of the test."""
        im = self.dc.imap(user)
        self.addCleanup(im.logout)
        return im

    def assert_ok(self, r: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(r.returncode, 0, f"imapc failed:\n{r.stdout}\n{r.stderr}")

    # -- authentication -------------------------------------------------------
    def test_login_command_and_plain(self) -> None:
        for auth, user in (("login", 1), ("plain", 2)):
            with self.subTest(auth=auth):
                r = self.imapc("run", "NOOP", user=user, auth=auth)
                self.assert_ok(r)
                self.assertIn("= LOGIN OK", r.stdout)
                # capabilities were refreshed after login (Dovecot lists
                # more after authentication than in its greeting)
                caps = re.search(r"^= CAPS (.*)$", r.stdout, re.M).group(1).split()
                self.assertIn("IDLE", caps)
                self.assertIn("UIDPLUS", caps)
                self.assertIn("= CLOSED OK logged out", r.stdout)

    def test_wrong_password(self) -> None:
        u = self.dc.user(3)
        argv = [str(binary("tests/imapc")), "--host", "127.0.0.1", "--port", str(self.dc.port("imap")),
                "--user", u.name, "run", "NOOP"]
        r = subprocess.run(argv, env=dict(os.environ, IMAPC_PASSWORD="wrong"), capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"= LOGIN NO .*[Aa]uthentication failed")

    # -- commands -----------------------------------------------------------
    def test_select_search_fetch_peek_store_expunge(self) -> None:
        im = self.oracle(4)
        uids = [im.append("INBOX", cron_mail(i)) for i in range(3)]
        keep = im.append("INBOX", ordinary_mail(0))
        # another client's \\Deleted mark must survive a UID EXPUNGE
        im.set_flags("INBOX", [keep], ["\\Deleted"])
        r = self.imapc("run", "SELECT INBOX", "UID SEARCH FROM \"Cron Daemon\"",
                       f"UID FETCH {uids[0]}:{uids[-1]} (UID FLAGS BODY.PEEK[TEXT])",
                       f"UID STORE {uids[1]} +FLAGS.SILENT (\\Deleted)",
                       f"UID EXPUNGE {uids[1]}", user=4)
        self.assert_ok(r)
        self.assertIn("* SEARCH " + " ".join(map(str, uids)), r.stdout)
        self.assertEqual(len(re.findall(r"^\* \d+ FETCH \(UID", r.stdout, re.M)), 3)
        left = im.uids("INBOX")
        self.assertNotIn(uids[1], left)
        self.assertIn(keep, left)
        self.assertIn(uids[0], left)
        self.assertIn(uids[2], left)
        # BODY.PEEK set no \\Seen
        self.assertEqual(im.seen("INBOX"), set())

    def test_uid_move(self) -> None:
        im = self.oracle(5)
        uid = im.append("INBOX", cron_mail(7))
        before = im.count("Archive")
        r = self.imapc("run", "SELECT INBOX", f"UID MOVE {uid} Archive", user=5)
        self.assert_ok(r)
        self.assertNotIn(uid, im.uids("INBOX"))
        self.assertEqual(im.count("Archive"), before + 1)
        ids = [h.get("message-id") for h in im.headers("Archive").values()]
        self.assertIn("<cron-7@host.imapsweep.test>", ids)

    # -- IDLE -----------------------------------------------------------------
    def test_idle_gets_exists_and_done_ends_it(self) -> None:
        u = self.dc.user(6)
        argv = [str(binary("tests/imapc")), "--host", "127.0.0.1", "--port", str(self.dc.port("imap")),
                "--user", u.name, "idle", "INBOX", "20000"]
        with Proc(argv, env={"IMAPC_PASSWORD": u.password}, name="imapc-idle") as p:
            p.wait_for_log(r"^= SELECTED", stream="stdout", timeout=10)
            im = self.oracle(6)
            start = time.monotonic()
            im.append("INBOX", cron_mail(1))
            p.wait_for_log(r"^= EXISTS \d+", stream="stdout", timeout=10)
            waited = time.monotonic() - start
            # a queued NOOP left IDLE with DONE and was answered
            p.wait_for_log(r"^= NOOP-AFTER-IDLE OK", stream="stdout", timeout=10)
            self.assertEqual(p.wait(timeout=10), 0)
        # Dovecot announces a change after about half a second
        self.assertLess(waited, 5.0)

    # -- TLS --------------------------------------------------------------------
    def test_starttls_and_implicit_tls(self) -> None:
        r = self.imapc("run", "NOOP", tls="starttls", host="localhost", user=7)
        self.assert_ok(r)
        self.assertRegex(r.stdout, r"= GREETING TLSv1\.[23]")
        r = self.imapc("run", "NOOP", listener="imaps", tls="implicit", host="localhost", user=7)
        self.assert_ok(r)
        self.assertRegex(r.stdout, r"= GREETING TLSv1\.[23]")

    def test_tls_refusals(self) -> None:
        cases = (
            ("imaps_self_signed", "self-signed"),
            ("imaps_wrong_name", "mismatch"),
            ("imaps_expired", "expired"),
        )
        for listener, why in cases:
            with self.subTest(listener=listener):
                r = self.imapc("run", "NOOP", listener=listener, tls="implicit", user=7)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stdout, rf"= CLOSED ERR_TLS_VERIFY .*{why}")
                self.assertNotIn("= LOGIN", r.stdout)
        # the system store does not know the test CA either
        r = self.imapc("run", "NOOP", listener="imaps", tls="implicit", host="localhost", ca=False, user=7)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ERR_TLS_VERIFY", r.stdout)

    # -- tunnel -----------------------------------------------------------------
    def test_tunnel_preauth(self) -> None:
        im = self.oracle(8)
        uid = im.append("INBOX", ordinary_mail(3))
        u = self.dc.user(8)
        cmd = f"/usr/lib/dovecot/imap -c {self.dc.conf_path} -u {u.name}"
        r = subprocess.run([str(binary("tests/imapc")), "--tunnel", cmd, "run", "SELECT INBOX",
                            "UID SEARCH ALL"], capture_output=True, text=True, timeout=30)
        self.assert_ok(r)
        self.assertIn("= LOGIN OK PREAUTH", r.stdout)
        self.assertRegex(r.stdout, rf"\* SEARCH( \d+)* {uid}\b")

    # -- many connections on one loop ------------------------------------------
    def test_many_sessions_one_loop(self) -> None:
        r = self.imapc("hold", "50", "INBOX", "1", listener="imaps", tls="implicit", host="localhost",
                       user=1, timeout=60)
        self.assert_ok(r)
        self.assertIn("= READY 50 idle sessions", r.stdout)
        self.assertIn("= DONE 50 sessions, 50 ready", r.stdout)
        wait_for(lambda: self.dc.who().get(self.dc.user(1).name, 0) == 0, timeout=10,
                 what="all 50 sessions logged out")


if __name__ == "__main__":
    unittest.main()
