# SPDX-License-Identifier: MIT
"""Self-tests of the integration harness: prove the tools tests rely on work.

Dovecot: listeners, TLS certificates, the oracle client, bulk loading,
doveadm, restart, connection limits.  fakeimap: serves imaplib, pushes IDLE
updates, records a transcript, and every fault kind is observable.
"""

from __future__ import annotations

import base64
import imaplib
import socket
import ssl
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import mail  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from harness.fakeimap import FakeImap  # noqa: E402
from harness.mail import Imap, RawConn, bulk_fill, cron_mail, encode_b, encode_q, ordinary_mail  # noqa: E402
from harness.wait import Proc, wait_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakeimap"))
import fakeimap as fakeimap_module  # noqa: E402


class DovecotHarnessTest(unittest.TestCase):
    """One Dovecot for the class; each test uses its own user or mailbox.

    user1: general, user2: bulk loads, user3: IDLE, user4: kick and RFC 2047,
    user5: the connection limit (nothing else may hold its sessions).
    """

    dc: Dovecot

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=5)
        cls.dc.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dc.cleanup()

    # -- listeners and TLS ---------------------------------------------------
    def test_all_listeners_greet(self) -> None:
        names = set(self.dc.listeners)
        self.assertEqual(
            names,
            {"imap", "imaps", "imap_wrong_name", "imaps_wrong_name", "imap_expired", "imaps_expired",
             "imap_self_signed", "imaps_self_signed"},
        )  # fmt: skip
        for lst in self.dc.iter_listeners():
            ctx = mail.tls_context(None, verify=False) if lst.tls else None
            with RawConn(lst.address, lst.port, ssl_context=ctx) as c:
                self.assertTrue(c.greeting().startswith(b"* OK"), lst.name)

    def test_login_plain_starttls_and_implicit_tls(self) -> None:
        for mode in ("plain", "starttls", "tls"):
            with self.subTest(mode=mode), self.dc.imap(1, mode=mode) as c:
                self.assertIn("IMAP4rev1", c.capabilities)
                self.assertEqual(isinstance(c.conn.sock, ssl.SSLSocket), mode != "plain")
                c.uids("INBOX")

    def test_plain_listener_offers_starttls(self) -> None:
        with self.dc.imap(None, mode="plain") as c:
            self.assertIn("STARTTLS", c.conn.capabilities)
        with self.dc.imap(None, mode="tls") as c:
            self.assertNotIn("STARTTLS", c.conn.capabilities)

    def _tls_refused(self, listener: str, reason: str) -> None:
        addr, port = self.dc.address(listener), self.dc.port(listener)
        mode = "tls" if listener.startswith("imaps") else "starttls"
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            Imap(addr, port, mode, ca_file=self.dc.ca_file)
        self.assertIn(reason, str(cm.exception))
        # The same listener is fine when verification is off: only the certificate is wrong.
        with Imap(addr, port, mode, verify=False) as c:
            c.login("user1", "pass1")

    def test_wrong_name_certificate_refused(self) -> None:
        for listener in ("imaps_wrong_name", "imap_wrong_name"):
            with self.subTest(listener=listener):
                self._tls_refused(listener, "Hostname mismatch")

    def test_expired_certificate_refused(self) -> None:
        for listener in ("imaps_expired", "imap_expired"):
            with self.subTest(listener=listener):
                self._tls_refused(listener, "certificate has expired")

    def test_self_signed_certificate_refused(self) -> None:
        for listener in ("imaps_self_signed", "imap_self_signed"):
            with self.subTest(listener=listener):
                self._tls_refused(listener, "self-signed certificate")

    def test_valid_certificate_also_verifies_by_ip(self) -> None:
        with Imap("127.0.0.1", self.dc.port("imaps"), "tls", ca_file=self.dc.ca_file, server_hostname="127.0.0.1") as c:
            c.login("user1", "pass1")

    def test_cert_files_exposed(self) -> None:
        for kind in ("server", "wrong_name", "expired", "self_signed"):
            self.assertTrue(Path(self.dc.cert_file(kind)).is_file(), kind)
            self.assertTrue(Path(self.dc.key_file(kind)).is_file(), kind)
        self.assertTrue(Path(self.dc.ca_file).is_file())

    # -- the oracle client ---------------------------------------------------
    def test_append_uids_flags_roundtrip_without_seen(self) -> None:
        with self.dc.imap(1) as c:
            c.create_mailbox("Roundtrip")
            msg = cron_mail(7)
            uid1 = c.append("Roundtrip", msg)
            uid2 = c.append("Roundtrip", ordinary_mail(8), flags=["\\Flagged"])
            self.assertEqual(c.uids("Roundtrip"), [uid1, uid2])
            self.assertEqual(c.message("Roundtrip", uid1), msg)
            hdrs = c.headers("Roundtrip")
            self.assertEqual(hdrs[uid1]["from"], '"Cron Daemon" <root@host>')
            self.assertEqual(hdrs[uid1]["subject"], "Cron <root@host> /usr/local/bin/backup.sh")
            self.assertEqual(hdrs[uid1]["message-id"], "<cron-7@host.imapsweep.test>")
            flags = c.flags("Roundtrip")
            self.assertIn("\\Flagged", flags[uid2])
            self.assertEqual(c.seen("Roundtrip"), set(), "reading must never set \\Seen")
            c.set_flags("Roundtrip", [uid1], ["\\Deleted"])
            c.expunge("Roundtrip")
            self.assertEqual(c.uids("Roundtrip"), [uid2])
        # An independent second oracle agrees: doveadm, not IMAP.
        self.assertEqual(self.dc.search(1, "Roundtrip"), [uid2])
        self.assertEqual(self.dc.search(1, "Roundtrip", "seen"), [])

    def test_special_use_mailboxes_listed(self) -> None:
        with self.dc.imap(1) as c:
            self.assertEqual(c.special_use("\\Trash"), "Trash")
            self.assertEqual(c.special_use("\\Junk"), "Junk")
            self.assertEqual(c.special_use("\\Sent"), "Sent")
            self.assertEqual(c.special_use("\\Archive"), "Archive")

    def test_rfc2047_subjects_decode_and_search(self) -> None:
        subj_b = "Sicherung fehlgeschlagen – Server Süd"
        subj_q = "Résumé du café"
        with self.dc.imap(4) as c:
            u1 = c.append("INBOX", ordinary_mail(1, subject=encode_b(subj_b)))
            u2 = c.append("INBOX", ordinary_mail(2, subject=encode_q(subj_q, "ISO-8859-1")))
            hdrs = c.headers("INBOX")
            self.assertEqual(hdrs[u1]["subject"], subj_b)
            self.assertEqual(hdrs[u2]["subject"], subj_q)
            self.assertIn("=?ISO-8859-1?Q?R=E9sum=E9_du_caf=E9?=", c.message("INBOX", u2).decode())
            # Dovecot decodes encoded words for SEARCH: the builder produced valid ones.
            self.assertEqual(c.search("INBOX", "CHARSET", "UTF-8", "SUBJECT", '"Süd"'.encode()), [u1])

    def test_builders_are_deterministic_and_crlf(self) -> None:
        self.assertEqual(cron_mail(3), cron_mail(3))
        self.assertNotEqual(cron_mail(3), cron_mail(4))
        big = cron_mail(1, body_size=3 * 1024 * 1024)
        self.assertGreater(len(big), 3 * 1024 * 1024)
        for m in (cron_mail(1), ordinary_mail(5), big):
            self.assertNotIn(b"\n", m.replace(b"\r\n", b""), "bare LF in message")
        same_body = cron_mail(1, body="same\n")
        self.assertEqual(same_body.split(b"\r\n\r\n", 1)[1], cron_mail(2, body="same\n").split(b"\r\n\r\n", 1)[1])

    def test_bulk_fill_10000_messages(self) -> None:
        msgs = [cron_mail(i) if i % 2 else ordinary_mail(i) for i in range(10_000)]
        t0 = time.monotonic()
        added = bulk_fill(self.dc, 2, "Bulk", msgs)
        elapsed = time.monotonic() - t0
        self.assertEqual(added, 10_000)
        # Reported, not asserted: wall time depends on the disk and the load.
        print(f"bulk_fill: 10,000 messages in {elapsed:.2f}s")
        with self.dc.imap(2) as c:
            self.assertEqual(c.count("Bulk"), 10_000)
            self.assertEqual(c.uids("Bulk"), list(range(1, 10_001)))
            self.assertEqual(c.seen("Bulk"), set())
            hdrs = c.headers("Bulk", ("Message-ID",))
        # UIDs follow the order of the input.
        self.assertEqual(hdrs[1]["message-id"], "<mail-0@imapsweep.test>")
        self.assertEqual(hdrs[2]["message-id"], "<cron-1@host.imapsweep.test>")
        self.assertEqual(hdrs[10_000]["message-id"], "<cron-9999@host.imapsweep.test>")
        self.assertEqual(len(self.dc.search(2, "Bulk", "from", "Cron Daemon")), 5_000)

    def test_bulk_fill_internaldate(self) -> None:
        when = 1_600_000_000
        bulk_fill(self.dc, 2, "Dated", [(cron_mail(1), when), cron_mail(2)])
        with self.dc.imap(2) as c:
            self.assertEqual(c.search("Dated", "BEFORE", "1-Jan-2021"), [1])

    def test_doveadm(self) -> None:
        boxes = self.dc.doveadm("mailbox", "list", "-u", "user1").split()
        self.assertTrue({"INBOX", "Trash", "Archive", "Junk", "Sent"} <= set(boxes))
        self.assertEqual(self.dc.mailbox_path(1, "Trash").name, ".Trash")

    def test_oauth_static_token(self) -> None:
        with RawConn("127.0.0.1", self.dc.port("imap")) as c:
            c.greeting()
            tok = base64.b64encode(b"user=user1\x01auth=Bearer token1\x01\x01").decode()
            self.assertIn(b" OK ", c.command(f"AUTHENTICATE XOAUTH2 {tok}")[-1])
        with RawConn("127.0.0.1", self.dc.port("imap")) as c:
            c.greeting()
            self.assertIn(b" NO ", c.command("LOGIN user1 token1")[-1], "a token is not a password")

    def test_idle_notification_arrives(self) -> None:
        with RawConn("127.0.0.1", self.dc.port("imap")) as idle, self.dc.imap(3) as writer:
            idle.greeting()
            idle.login("user3", "pass3")
            idle.command("SELECT INBOX")
            idle.send("i IDLE")
            idle.expect(rb"^\+ ")
            t0 = time.monotonic()
            writer.append("INBOX", cron_mail(1))
            idle.expect(rb"^\* \d+ EXISTS", timeout=5)
            # Reported, not asserted: Dovecot 2.3 announces a change ~0.5 s after it.
            print(f"IDLE notification {time.monotonic() - t0:.3f}s after APPEND returned")
            idle.send("DONE")
            idle.expect(rb"^i OK")

    def test_max_userip_connections_enforced(self) -> None:
        conns = []
        try:
            for _ in range(10):
                conns.append(self.dc.imap(5))
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                self.dc.imap(5)
            self.assertIn("[LIMIT]", str(cm.exception))
        finally:
            for c in conns:
                c.logout()

    def test_kick_disconnects(self) -> None:
        c = self.dc.imap(4)
        wait_for(lambda: self.dc.who().get("user4"), 5, what="doveadm who to list user4")
        self.dc.kick("user4")

        def disconnected() -> bool:
            try:
                c.noop()
                return False
            except (imaplib.IMAP4.abort, OSError):
                return True

        wait_for(disconnected, 5, what="the kicked session to be disconnected")
        c.logout()

    def test_log_text(self) -> None:
        self.assertIn("starting up", self.dc.log_text())


class DovecotRestartTest(unittest.TestCase):
    def test_restart_keeps_ports_and_data(self) -> None:
        with Dovecot(users=1, tls_variants=False) as dc:
            ports = {n: lst.port for n, lst in dc.listeners.items()}
            with dc.imap(1) as c:
                uid = c.append("INBOX", cron_mail(1))
                validity = c.uidvalidity("INBOX")
            old = dc.imap(1)
            dc.restart()
            self.assertEqual({n: lst.port for n, lst in dc.listeners.items()}, ports)
            with self.assertRaises((imaplib.IMAP4.abort, OSError)):
                old.noop()  # the restart dropped existing sessions
            with dc.imap(1, mode="tls") as c:
                self.assertEqual(c.uids("INBOX"), [uid])
                self.assertEqual(c.uidvalidity("INBOX"), validity)
            base = dc.base
        self.assertFalse(base.exists(), "temporary directory removed")

    def test_hibernate_option_starts(self) -> None:
        with Dovecot(users=1, tls_variants=False, hibernate="1s") as dc:
            with RawConn("127.0.0.1", dc.port("imap")) as idle:
                idle.greeting()
                idle.login("user1", "pass1")
                idle.command("SELECT INBOX")
                idle.send("i IDLE")
                idle.expect(rb"^\+ ")
                wait_for(lambda: dc.processes().get("imap-hibernate") and not dc.processes().get("imap"), 10,
                         what="the IDLE session to move to imap-hibernate")  # fmt: skip
                with dc.imap(1) as w:
                    w.append("INBOX", cron_mail(1))
                idle.expect(rb"^\* 1 EXISTS", timeout=5)


class ProcHelperTest(unittest.TestCase):
    def test_proc_log_wait_signal_exit(self) -> None:
        script = (
            "import signal,sys,time\n"
            "signal.signal(signal.SIGHUP, lambda *a: print('reloaded', file=sys.stderr, flush=True))\n"
            "print('ready', file=sys.stderr, flush=True)\n"
            "signal.pause()\n"
            "time.sleep(30)\n"
        )
        with Proc([sys.executable, "-c", script], name="toy", valgrind=False) as p:
            p.wait_for_log(r"^ready$", 5)
            mark = p.mark()
            p.signal(1)
            p.wait_for_log(r"reloaded", 5, since=mark)
            p.signal(15)
            self.assertEqual(p.wait(5), -15)

    def test_wait_for_reports_what(self) -> None:
        with self.assertRaises(AssertionError) as cm:
            wait_for(lambda: False, 0.05, what="the moon")
        self.assertIn("the moon", str(cm.exception))


def _basic_scenario() -> dict:
    return {
        "users": {"user": "pass"},
        "mailboxes": {
            "INBOX": {
                "uidvalidity": 100,
                "messages": [
                    {"from": '"Cron Daemon" <root@host>', "subject": "Cron <root@host> backup", "body": "run 1\n",
                     "internaldate": "2024-01-02T00:00:00Z"},
                    {"from": "Alice <alice@example.org>", "subject": "Lunch", "body": "hello there\n",
                     "flags": ["\\Flagged"], "internaldate": "2024-02-02T00:00:00Z"},
                    {"from": '"Cron Daemon" <root@host>', "subject": "=?UTF-8?B?Q3JvbiDDvGJlcg==?=",
                     "body": "run 2 " + "x" * 3000 + "\n", "age": "10s",
                     "headers": {"X-Auto-Response": "yes"}},
                ],
            },
            "Trash": {"special_use": "\\Trash"},
        },
    }  # fmt: skip


class FakeImapTest(unittest.TestCase):
    """A fresh fakeimap per test (≈0.1 s each) keeps tests independent."""

    def setUp(self) -> None:
        self.srv = FakeImap(_basic_scenario())
        self.addCleanup(self.srv.stop)

    def raw(self, login: bool = True, select: bool = False) -> RawConn:
        c = RawConn("127.0.0.1", self.srv.port, timeout=5)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting().startswith(b"* OK [CAPABILITY"))
        if login:
            c.login("user", "pass")
        if select:
            c.command("SELECT INBOX")
        return c

    # -- normal service --------------------------------------------------------
    def test_serves_imaplib(self) -> None:
        c = imaplib.IMAP4("127.0.0.1", self.srv.port)
        c.login("user", "pass")
        typ, data = c.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"3"]))
        typ, data = c.uid("SEARCH", None, "FROM", '"cron daemon"')
        self.assertEqual(data, [b"1 3"])
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], b"Subject: Cron <root@host> backup\r\n\r\n")
        self.assertEqual(data[1][1], b"run 1\r\n")
        self.assertEqual(self.srv.state()["seen_by_fetch"], [], "PEEK must not set \\Seen")
        c.uid("STORE", "1,3", "+FLAGS.SILENT", "(\\Deleted)")
        typ, _ = c.uid("EXPUNGE", "1:3")
        self.assertEqual(typ, "OK")
        self.assertEqual(self.srv.uids(), [2])
        self.assertFalse(self.srv.messages()[0]["seen"])
        typ, data = c.append("INBOX", None, None, cron_mail(1))
        self.assertIn(b"APPENDUID 100 4", data[0])
        c.logout()
        cmds = self.srv.client_commands()
        self.assertIn("UID STORE 1,3 +FLAGS.SILENT (\\Deleted)", cmds)
        self.assertEqual(self.srv.connections()["logins"], 1)

    def test_oracle_client_against_fake(self) -> None:
        with Imap("127.0.0.1", self.srv.port) as c:
            c.login("user", "pass")
            self.assertEqual(c.uids(), [1, 2, 3])
            self.assertEqual(c.flags()[2], {"\\Flagged"})
            self.assertEqual(c.headers()[3]["subject"], "Cron über")
            self.assertEqual(c.special_use("\\Trash"), "Trash")
            uid = c.append("Trash", ordinary_mail(1))
            self.assertEqual(c.uids("Trash"), [uid])
            self.assertEqual(c.status("INBOX")["UIDNEXT"], 4)

    def test_body_fetch_without_peek_sets_seen_and_is_recorded(self) -> None:
        c = self.raw(select=True)
        reply = c.command("UID FETCH 1 (BODY[TEXT])")
        self.assertTrue(any(b"FLAGS (\\Seen)" in line for line in reply))
        st = self.srv.state()
        self.assertEqual(st["seen_by_fetch"], [{"conn": 1, "mailbox": "INBOX", "uid": 1}])
        self.assertTrue(st["mailboxes"]["INBOX"]["messages"][0]["seen"])

    def test_search_grammar(self) -> None:
        c = self.raw(select=True)

        def search(crit: str) -> list[int]:
            lines = c.command(f"UID SEARCH {crit}")
            self.assertTrue(lines[-1].split()[1] == b"OK", lines)
            return [int(x) for x in lines[0].split()[2:]]

        self.assertEqual(search("ALL"), [1, 2, 3])
        self.assertEqual(search('FROM "Cron Daemon"'), [1, 3])
        self.assertEqual(search("OR FLAGGED SUBJECT über"), [2, 3])
        self.assertEqual(search("NOT (FROM cron SUBJECT backup)"), [2, 3])
        self.assertEqual(search("HEADER X-Auto-Response yes"), [3])
        self.assertEqual(search("BODY \"hello there\""), [2])
        self.assertEqual(search("LARGER 1000"), [3])
        self.assertEqual(search("SMALLER 1000 UNFLAGGED"), [1])
        self.assertEqual(search("BEFORE 1-Feb-2024"), [1])
        self.assertEqual(search("SINCE 1-Feb-2024 UNDELETED UNSEEN"), [2, 3])
        self.assertEqual(search("OLDER 3600"), [1, 2])
        self.assertEqual(search("YOUNGER 3600"), [3])
        self.assertEqual(search("UID 2:*"), [2, 3])
        self.assertEqual(search("1,3"), [1, 3])
        c.send("s1 UID SEARCH CHARSET UTF-8 SUBJECT {5}")
        c.expect(rb"^\+ ")
        c.send("über".encode() + b"\r\n")
        self.assertEqual(c.expect(rb"^\* SEARCH")[0].split()[2:], [b"3"])
        c.expect(rb"^s1 OK")
        c.send(b"s2 UID SEARCH FROM {4+}\r\nCRON\r\n")  # LITERAL+: no continuation
        self.assertEqual(c.expect(rb"^\* SEARCH")[0].split()[2:], [b"1", b"3"])
        c.expect(rb"^s2 OK")
        esearch = c.command("UID SEARCH RETURN (MIN MAX COUNT ALL) FROM cron")
        self.assertRegex(esearch[0].strip(), rb'^\* ESEARCH \(TAG "r\d+"\) UID MIN 1 MAX 3 COUNT 2 ALL 1,3$')
        self.assertIn(b"BAD", c.command("UID SEARCH BOGUS")[-1])

    def test_authenticate_plain_ir_and_continuation(self) -> None:
        cred = base64.b64encode(b"\0user\0pass").decode()
        c = self.raw(login=False)
        self.assertIn(b"OK", c.command(f"AUTHENTICATE PLAIN {cred}")[-1])
        c = self.raw(login=False)
        c.send("a AUTHENTICATE PLAIN")
        c.expect(rb"^\+ ")
        c.send(cred)
        self.assertIn(b"a OK", c.expect(rb"^a ")[0])
        c = self.raw(login=False)
        bad = base64.b64encode(b"\0user\0wrong").decode()
        self.assertIn(b"AUTHENTICATIONFAILED", c.command(f"AUTHENTICATE PLAIN {bad}")[-1])
        self.assertEqual(self.srv.connections()["logins"], 2)

    def test_idle_push_of_appended_message(self) -> None:
        c = self.raw(select=True)
        c.send("i IDLE")
        c.expect(rb"^\+ idling")
        self.srv.wait_idle(1)
        uid = self.srv.append("INBOX", {"from": "Cron Daemon <root@host>", "subject": "new"})
        self.assertEqual(uid, 4)
        c.expect(rb"^\* 4 EXISTS", timeout=2)
        self.srv.expunge("INBOX", [2])
        c.expect(rb"^\* 2 EXPUNGE", timeout=2)
        c.send("DONE")
        c.expect(rb"^i OK")

    def test_transcript_records_both_directions(self) -> None:
        c = self.raw(select=True)
        c.command("NOOP")
        entries = self.srv.transcript()
        dirs = {(e.conn, e.direction) for e in entries}
        self.assertTrue({("1", "C:"), ("1", "S:"), ("1", "--")} <= dirs)
        texts = [e.text for e in entries if e.conn == "1"]
        self.assertIn("r1 LOGIN user pass", texts)
        self.assertTrue(any(t.startswith("* OK [UIDVALIDITY 100]") for t in texts))
        self.assertEqual(self.srv.client_commands(), ["LOGIN user pass", "SELECT INBOX", "NOOP"])

    # -- faults ----------------------------------------------------------------
    def test_fault_drop(self) -> None:
        self.srv.fault(command="^UID FETCH", action="drop")
        c = self.raw(select=True)
        c.send("f UID FETCH 1 (FLAGS)")
        self.assertEqual(c.read_all(timeout=2), b"")

    def test_fault_drop_mid_response(self) -> None:
        self.srv.fault(command="^UID FETCH", action="drop", after_bytes=10)
        c = self.raw(select=True)
        c.send("f UID FETCH 1 (FLAGS)")
        self.assertEqual(c.read_all(timeout=2), b"* 1 FETCH ")

    def test_fault_drop_with_reset(self) -> None:
        self.srv.fault(command="^NOOP", action="drop", reset=True)
        c = self.raw()
        c.send("n NOOP")
        with self.assertRaises(ConnectionResetError):
            c.read_all(timeout=2)

    def test_fault_done_never_answered(self) -> None:
        self.srv.fault(command="^DONE$", action="stall")
        c = self.raw(select=True)
        c.send("i IDLE")
        c.expect(rb"^\+ ")
        c.send("DONE")
        with self.assertRaises(socket.timeout):
            c.readline(timeout=0.3)

    def test_fault_stall(self) -> None:
        self.srv.fault(command="^NOOP", action="stall")
        c = self.raw()
        c.send("n NOOP")
        with self.assertRaises(socket.timeout):
            c.readline(timeout=0.3)
        sessions = self.srv.connections()["sessions"]
        self.assertEqual([(s["id"], s["stalled"]) for s in sessions], [(1, True)])

    def test_fault_bye(self) -> None:
        self.srv.fault(command="^SELECT", action="bye", text="maintenance")
        c = self.raw()
        c.send("s SELECT INBOX")
        self.assertEqual(c.read_all(timeout=2), b"* BYE maintenance\r\n")

    def test_fault_malformed(self) -> None:
        self.srv.fault(command="^NOOP", action="malformed", line="* 1 FETCH (UID \x01 garbage (((")
        c = self.raw()
        c.send("n NOOP")
        self.assertEqual(c.readline(), b"* 1 FETCH (UID \x01 garbage (((\r\n")
        self.assertEqual(c.readline(), b"n OK NOOP completed.\r\n")

    def test_fault_literal_bomb(self) -> None:
        self.srv.fault(command="^UID FETCH", action="literal_bomb")
        c = self.raw(select=True)
        c.send("f UID FETCH 1 (BODY.PEEK[])")
        self.assertEqual(c.readline(), b"* 1 FETCH (UID 1 BODY[] {99999999999}\r\n")

    def test_fault_long_line(self) -> None:
        self.srv.fault(command="^NOOP", action="long_line")
        c = self.raw()
        c.send("n NOOP")
        line = c.readline(limit=4 * 1024 * 1024)
        self.assertEqual(len(line), 2 * 1024 * 1024 + 2)
        self.assertEqual(c.readline(), b"n OK NOOP completed.\r\n")

    def test_fault_delay(self) -> None:
        self.srv.fault(command="^NOOP", action="delay", ms=300)
        c = self.raw()
        t0 = time.monotonic()
        c.command("NOOP")
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_fault_reply(self) -> None:
        self.srv.fault(command="^LOGIN", action="reply", response="NO [UNAVAILABLE] try later")
        c = self.raw(login=False)
        self.assertEqual(c.command("LOGIN user pass")[-1], b"r1 NO [UNAVAILABLE] try later\r\n")
        self.assertEqual(self.srv.connections()["logins"], 0)

    def test_fault_on_connect_and_nth(self) -> None:
        self.srv.fault(on="connect", connection=2, action="bye", text="go away")
        self.srv.fault(command="^NOOP", nth=2, action="drop")
        c1 = self.raw()
        c2 = RawConn("127.0.0.1", self.srv.port, timeout=5)
        self.addCleanup(c2.close)
        self.assertEqual(c2.read_all(), b"* BYE go away\r\n")
        self.assertIn(b"OK", c1.command("NOOP")[-1])
        c1.send("n2 NOOP")
        self.assertEqual(c1.read_all(), b"")

    def test_fault_uidvalidity_change(self) -> None:
        c = self.raw(select=True)
        c.send("i IDLE")
        c.expect(rb"^\+ ")
        self.srv.wait_idle(1)
        res = self.srv.uidvalidity_change("INBOX", notify="untagged")
        self.assertEqual(res["uidvalidity"], 101)
        c.expect(rb"^\* OK \[UIDVALIDITY 101\]", timeout=2)
        c.send("DONE")
        c.expect(rb"^i OK")
        before = c.command("SELECT INBOX")
        self.assertTrue(any(b"[UIDVALIDITY 101]" in line for line in before))
        msgs = self.srv.messages()
        # Renumbered in reverse: the first message (cron run 1) now has the highest UID.
        self.assertEqual([m["uid"] for m in msgs], [1, 2, 3])
        self.assertEqual(msgs[-1]["subject"], "Cron <root@host> backup")

    def test_fault_uidvalidity_change_on_next_select(self) -> None:
        self.srv.fault(command="^SELECT", nth=2, action="uidvalidity_change", mailbox="INBOX")
        c = self.raw()
        self.assertTrue(any(b"[UIDVALIDITY 100]" in x for x in c.command("SELECT INBOX")))
        self.assertTrue(any(b"[UIDVALIDITY 101]" in x for x in c.command("SELECT INBOX")))

    def test_timed_append_event(self) -> None:
        self.srv.fault(at_ms=50, action="append", mailbox="INBOX", message={"subject": "timed"})
        wait_for(lambda: len(self.srv.uids()) == 4, 5, what="the timed append")

    def test_delayed_fault_during_idle(self) -> None:
        self.srv.fault(command="^IDLE$", action="bye", delay_ms=100, text="idle timeout")
        c = self.raw(select=True)
        c.send("i IDLE")
        c.expect(rb"^\+ ")
        self.assertEqual(c.read_all(timeout=3), b"* BYE idle timeout\r\n")

    def test_bad_for_unknown_command(self) -> None:
        c = self.raw()
        self.assertIn(b"BAD", c.command("FROBNICATE")[-1])

    def test_synchronizing_literal_gets_continuation(self) -> None:
        c = self.raw(login=False)
        c.send("a LOGIN {4}")
        c.expect(rb"^\+ ")
        c.send(b"user {4}\r\n")
        c.expect(rb"^\+ ")
        c.send(b"pass\r\n")
        self.assertIn(b"a OK", c.expect(rb"^a ")[0])


class FakeImapCapabilityTest(unittest.TestCase):
    def test_no_uidplus_makes_uid_expunge_bad(self) -> None:
        with FakeImap("no_uidplus") as srv:
            c = RawConn("127.0.0.1", srv.port)
            self.addCleanup(c.close)
            c.greeting()
            c.login("user", "pass")
            caps = c.command("CAPABILITY")[0].split()
            self.assertNotIn(b"UIDPLUS", caps)
            c.command("SELECT INBOX")
            c.command("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
            self.assertIn(b"BAD", c.command("UID EXPUNGE 1")[-1])
            self.assertIn(1, srv.uids())
            append = c.command("APPEND INBOX {5+}\r\nx\r\n\r\n")
            self.assertNotIn(b"APPENDUID", append[-1])

    def test_no_idle(self) -> None:
        with FakeImap("no_idle") as srv:
            c = RawConn("127.0.0.1", srv.port)
            self.addCleanup(c.close)
            self.assertNotIn(b"IDLE", c.greeting().split())
            c.login("user", "pass")
            c.command("SELECT INBOX")
            self.assertIn(b"BAD", c.command("IDLE")[-1])

    def test_example_scenarios_load(self) -> None:
        for name in ("basic", "faults_example"):
            with FakeImap(name) as srv, Imap("127.0.0.1", srv.port) as c:
                c.login("user", "pass")
                self.assertEqual(len(c.uids("INBOX")), 5)

    def test_starttls_with_test_ca(self) -> None:
        with Dovecot(users=1, tls_variants=False) as dc:  # borrow its PKI
            cert, key = dc.cert_file(), dc.key_file()
            with FakeImap("basic", tls_cert=cert, tls_key=key) as srv:
                with Imap("127.0.0.1", srv.port, "starttls", ca_file=dc.ca_file) as c:
                    c.login("user", "pass")
                    self.assertEqual(len(c.uids()), 5)
            with FakeImap("basic", tls_cert=cert, tls_key=key, implicit_tls=True) as srv:
                with Imap("127.0.0.1", srv.port, "tls", ca_file=dc.ca_file) as c:
                    c.login("user", "pass")
                    self.assertEqual(srv.connections()["sessions"][0]["tls"], True)

    def test_in_process_server(self) -> None:
        srv = fakeimap_module.run_in_thread({"users": {"u": "p"}})
        try:
            with Imap("127.0.0.1", srv.port) as c:
                c.login("u", "p")
                self.assertEqual(c.uids(), [])
            self.assertEqual(srv.control({"cmd": "connections"})["logins"], 1)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
