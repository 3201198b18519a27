# SPDX-License-Identifier: MIT
"""Gmail and Microsoft 365, as the scripted server plays them (issue 14).

Each behaviour comes from the providers' documentation or, where they
publish none, from what clients report; docs/servers.md says which, with
the page.  The scripted server (tests/fakeimap) plays:

Gmail
  - its capabilities (X-GM-EXT-1, SPECIAL-USE, MOVE, ...) and folders
    (``[Gmail]/All Mail`` \\All, ``[Gmail]/Trash`` \\Trash);
  - labels (``"gmail": true``): a message in a label folder is also in All
    Mail; \\Deleted there expunges at once (auto-expunge, Gmail's default)
    and the message stays in All Mail: archived, not deleted;
    what enters the Trash leaves All Mail;
  - its connection limit: the 16th session of an account is refused
    with ``NO [ALERT] Too many simultaneous connections. (Failure)``;
  - ``* BYE Session expired, please login again.`` ending a long IDLE.
Microsoft 365
  - its capabilities (no SPECIAL-USE, ESEARCH, WITHIN, CONDSTORE) and
    folders, ``Deleted Items`` marked \\Trash in LIST all the same;
  - throttling: ``NO Request is throttled. Suggested Backoff Time: N
    milliseconds`` (also at login), or ``BAD`` with it and ``* BYE
    Connection closed. 14``;
  - the end of a long IDLE from its side.

Every case checks that the daemon recovers and acts only on what its rule
matched: the other mail stays where it was, unflagged and unseen (from the
server's own state, not the daemon's report).
"""

from __future__ import annotations

import imaplib
import re
import sys
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import FakeImap  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd, fake_account, run_once  # noqa: E402
from harness.wait import wait_for  # noqa: E402

#: Gmail after login, as it answers (a transcript in zone-eu/wildduck#91)
GMAIL_CAPS = ["IMAP4rev1", "UNSELECT", "IDLE", "NAMESPACE", "QUOTA", "ID", "XLIST", "CHILDREN", "X-GM-EXT-1",
              "UIDPLUS", "COMPRESS=DEFLATE", "ENABLE", "MOVE", "CONDSTORE", "ESEARCH", "UTF8=ACCEPT",
              "LIST-EXTENDED", "LIST-STATUS", "LITERAL-", "SPECIAL-USE", "APPENDLIMIT=35651584"]  # fmt: skip
GMAIL_PRE = ["IMAP4rev1", "UNSELECT", "IDLE", "NAMESPACE", "QUOTA", "ID", "XLIST", "CHILDREN", "X-GM-EXT-1", "XYZZY",
             "SASL-IR", "AUTH=XOAUTH2", "AUTH=PLAIN", "AUTH=PLAIN-CLIENTTOKEN", "AUTH=OAUTHBEARER",
             "AUTH=XOAUTH"]  # fmt: skip
GMAIL_LIMIT = "NO [ALERT] Too many simultaneous connections. (Failure)"
GMAIL_BYE = "Session expired, please login again."
#: Microsoft 365 before and after login (ImapFlow's Exchange transcripts)
M365_PRE = ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "ID", "UNSELECT", "CHILDREN",
            "IDLE", "NAMESPACE", "LITERAL+"]  # fmt: skip
M365_CAPS = ["IMAP4", "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT",
             "CLIENTACCESSRULES", "CLIENTNETWORKPRESENCELOCATION", "BACKENDAUTHENTICATE", "CHILDREN", "IDLE",
             "NAMESPACE", "LITERAL+"]  # fmt: skip
M365_THROTTLED = "Request is throttled. Suggested Backoff Time: 200 milliseconds"
M365_BYE = "Connection closed. 14"
CRON = {"from": "Cron Daemon"}


def cron(i: int) -> dict[str, str]:
    return {"from": '"Cron Daemon" <root@host>', "subject": f"Cron <root@host> job {i}", "body": f"run {i}\n",
            "message_id": f"<cron-{i}@host>"}  # fmt: skip


def person(i: int) -> dict[str, str]:
    return {"from": "Erin <erin@example.org>", "subject": f"about cron {i}", "body": "Cron Daemon mail, sorry\n",
            "message_id": f"<erin-{i}@example.org>"}  # fmt: skip


def mixed(n: int = 3, first: int = 0) -> list[dict[str, str]]:
    out = []
    for i in range(first, first + n):
        out += [cron(i), person(i)]
    return out


def gmail(labels: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    boxes: dict[str, Any] = {"INBOX": {"messages": mixed()}}
    for label in labels:
        boxes[label] = {}
    boxes.update({"[Gmail]/All Mail": {"special_use": "\\All"}, "[Gmail]/Trash": {"special_use": "\\Trash"},
                  "[Gmail]/Spam": {"special_use": "\\Junk"}, "[Gmail]/Sent Mail": {"special_use": "\\Sent"}})  # fmt: skip
    return {"users": {"user": "pass"}, "capabilities": {"pre": GMAIL_PRE, "post": GMAIL_CAPS}, "gmail": True,
            "max_sessions": 15, "max_sessions_response": GMAIL_LIMIT, "mailboxes": boxes, **extra}  # fmt: skip


def m365(**extra: Any) -> dict[str, Any]:
    boxes = {"INBOX": {"messages": mixed()}, "Deleted Items": {"special_use": "\\Trash"},
             "Sent Items": {"special_use": "\\Sent"}, "Junk Email": {"special_use": "\\Junk"}, "Drafts": {},
             "Archive": {"special_use": "\\Archive"}}  # fmt: skip
    return {"users": {"user": "pass"}, "capabilities": {"pre": M365_PRE, "post": M365_CAPS},
            "special_use_in_list": True, "max_sessions": 16, "mailboxes": boxes, **extra}  # fmt: skip


class Provider(unittest.TestCase):
    def server(self, scen: dict[str, Any]) -> FakeImap:
        srv = FakeImap(scen)
        self.addCleanup(srv.stop)
        return srv

    def config(self, srv: FakeImap, rule_action: Any = "delete", **account: Any) -> SweepConfig:
        cfg = SweepConfig(daemon={"log_level": "debug"})
        self.addCleanup(cfg.cleanup)
        cfg.account("a", fake_account(srv.port, **account))
        cfg.rule("cron", CRON, rule_action)
        return cfg

    def daemon(self, cfg: SweepConfig) -> Sweepd:
        d = Sweepd(cfg)
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def ids(self, srv: FakeImap, mailbox: str) -> set[str]:
        return {m["message_id"] for m in srv.messages(mailbox)}

    def assert_people_untouched(self, srv: FakeImap, mailbox: str, numbers: range) -> None:
        msgs = {m["message_id"]: m for m in srv.messages(mailbox)}
        for i in numbers:
            m = msgs.get(f"<erin-{i}@example.org>")
            self.assertIsNotNone(m, f"{mailbox}: Erin's mail {i} is gone")
            assert m is not None
            self.assertEqual(set(m["flags"]) - {"\\Recent"}, set(), f"{mailbox}: flags of Erin's mail {i}")
        self.assertFalse([m for m in msgs.values() if "\\Seen" in m["flags"]], f"{mailbox}: mail gained \\Seen")


class Gmail(Provider):
    def test_delete_goes_to_trash_not_all_mail(self) -> None:
        """An EXPUNGE in INBOX only archives; delete moves to [Gmail]/Trash,
        so the mail leaves All Mail too."""
        srv = self.server(gmail())
        self.assertEqual(len(srv.messages("[Gmail]/All Mail")), 6, "INBOX's mail is in All Mail")
        r = run_once(self.config(srv))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        crons = {f"<cron-{i}@host>" for i in range(3)}
        people = {f"<erin-{i}@example.org>" for i in range(3)}
        self.assertEqual(self.ids(srv, "INBOX"), people)
        self.assertEqual(self.ids(srv, "[Gmail]/Trash"), crons)
        self.assertEqual(self.ids(srv, "[Gmail]/All Mail"), people, "deleted cron mail still in All Mail")
        self.assert_people_untouched(srv, "INBOX", range(3))
        cmds = srv.client_commands()
        self.assertTrue([c for c in cmds if c.startswith("UID MOVE") and "[Gmail]/Trash" in c], cmds)
        self.assertFalse([c for c in cmds if c.startswith("UID STORE")], "nothing was flagged \\Deleted")

    def test_the_emulation_archives_on_expunge(self) -> None:
        """The scripted server's own check: what a plain client deletes from
        INBOX (STORE \\Deleted, auto-expunged) stays in All Mail."""
        srv = self.server(gmail())
        im = imaplib.IMAP4("127.0.0.1", srv.port)
        self.addCleanup(im.logout)
        im.login("user", "pass")
        im.select("INBOX")
        im.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        self.assertNotIn("<cron-0@host>", self.ids(srv, "INBOX"), "auto-expunge")
        self.assertIn("<cron-0@host>", self.ids(srv, "[Gmail]/All Mail"), "archived, not deleted")

    def test_fifteen_connections_then_recovers(self) -> None:
        """Other clients hold 13 of Gmail's 15 sessions: two of the daemon's
        four logins are refused.  That is said as it is (not as a wrong
        password, which would hold off for reconnect_max), retried, and once
        the others log out every label is watched and swept."""
        labels = ("Work", "Lists", "Alerts")
        srv = self.server(gmail(labels))
        others = []
        for _ in range(13):
            im = imaplib.IMAP4("127.0.0.1", srv.port)
            im.login("user", "pass")
            others.append(im)
        cfg = self.config(srv, mailboxes=["INBOX", *labels], max_connections=4, reconnect_max="3s")
        d = self.daemon(cfg)

        def split() -> list[dict[str, Any]] | None:
            ws = d.watchers()
            idle = [w for w in ws if w["state"] == "idle"]
            refused = [w for w in ws if w["last_error"] and "Too many simultaneous connections" in w["last_error"]]
            return ws if len(idle) == 2 and len(refused) == 2 else None

        ws = wait_for(split, 15, what="two watchers idle, two refused by the connection limit")
        for w in ws:
            if w["last_error"]:
                self.assertIn("not the password", w["last_error"])
                self.assertNotIn("authentication failed", w["last_error"])
        self.assertNotRegex(d.log_text(), r"authentication failed")
        for im in others:
            im.logout()
        d.wait_ready(states=("idle",), timeout=15)
        for n, label in enumerate(labels, 1):
            srv.append(label, cron(10 * n))
            srv.append(label, person(10 * n))
        wait_for(lambda: all(f"<cron-{10 * n}@host>" not in self.ids(srv, label) for n, label in enumerate(labels, 1)),
                 10, what="cron mail gone from every label")  # fmt: skip
        for n, label in enumerate(labels, 1):
            self.assert_people_untouched(srv, label, range(10 * n, 10 * n + 1))
        self.assertTrue({f"<cron-{10 * n}@host>" for n in range(1, 4)} <= self.ids(srv, "[Gmail]/Trash"))
        self.assertLessEqual(srv.connections()["open"], 15)

    def test_session_expired_during_idle(self) -> None:
        ends_idle(self, self.server(gmail(idle_limit_ms=1500, idle_limit_bye=GMAIL_BYE)), "[Gmail]/Trash", GMAIL_BYE)


class Microsoft365(Provider):
    def test_trash_is_deleted_items_without_special_use(self) -> None:
        srv = self.server(m365())
        r = run_once(self.config(srv, "trash"))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(self.ids(srv, "Deleted Items"), {f"<cron-{i}@host>" for i in range(3)})
        self.assert_people_untouched(srv, "INBOX", range(3))
        self.assertNotIn("folder named", r.stdout + r.stderr)
        self.assertIn('LIST "" "*"', srv.client_commands(), "no SPECIAL-USE: a plain LIST")

    def test_throttled_search_is_retried(self) -> None:
        """NO Request is throttled on the searches of the sweep that new mail
        started: the sweep fails, IDLE goes on, and the mailbox is swept
        again after a backoff (not at the next mail or the next
        full_sweep_interval, an hour away), without reconnecting."""
        srv = self.server(m365())
        d = self.daemon(self.config(srv))
        d.wait_ready(states=("idle",))
        wait_for(lambda: not {f"<cron-{i}@host>" for i in range(3)} & self.ids(srv, "INBOX"), 10, what="first sweep")
        srv.fault(command="^UID SEARCH", action="reply", response=f"NO {M365_THROTTLED}", times=2)
        srv.append("INBOX", cron(3))
        srv.append("INBOX", person(3))
        wait_for(lambda: "<cron-3@host>" not in self.ids(srv, "INBOX"), 15,
                 what=f"cron mail deleted after the throttling (log tail:\n{d.tail(12)})")  # fmt: skip
        self.assertEqual(len(re.findall(r"sweep failed: UID SEARCH failed: NO Request is throttled.*; sweeping again in",
                                        d.log_text())), 2)  # fmt: skip
        self.assert_people_untouched(srv, "INBOX", range(4))
        w = d.wait_watcher("a", "INBOX", lambda w: w["last_error"] is None and w["state"] == "idle", 10,
                           what="recovered")  # fmt: skip
        self.assertEqual(w["reconnects"], 0)

    def test_throttled_and_closed_during_the_move(self) -> None:
        """BAD Request is throttled, then * BYE: the daemon reconnects, sweeps
        again, and moves each cron mail once."""
        srv = self.server(m365())
        srv.fault(command="^UID MOVE", action="reply", response=f"BAD {M365_THROTTLED}", bye=M365_BYE, times=1)
        d = self.daemon(self.config(srv, "trash"))
        wait_for(lambda: len(srv.messages("Deleted Items")) == 3, 15,
                 what=f"cron mail in Deleted Items (log tail:\n{d.tail(12)})")  # fmt: skip
        self.assertEqual(self.ids(srv, "Deleted Items"), {f"<cron-{i}@host>" for i in range(3)})
        self.assert_people_untouched(srv, "INBOX", range(3))
        self.assertGreaterEqual(d.watcher("a", "INBOX")["reconnects"], 1)
        moves = [c for c in srv.client_commands() if c.startswith("UID MOVE")]
        self.assertEqual(len(moves), 2, moves)

    def test_throttled_login_is_not_a_wrong_password(self) -> None:
        srv = self.server(m365())
        srv.fault(command="^AUTHENTICATE", action="reply", response=f"NO {M365_THROTTLED}", times=2)
        d = self.daemon(self.config(srv))
        d.wait_ready(states=("idle",), timeout=15)
        self.assertRegex(d.log_text(), r"the server refuses the login for now \(not the password\): NO Request is")
        self.assertNotRegex(d.log_text(), r"authentication failed")
        wait_for(lambda: not {f"<cron-{i}@host>" for i in range(3)} & self.ids(srv, "INBOX"), 10,
                 what="cron mail deleted")  # fmt: skip
        self.assert_people_untouched(srv, "INBOX", range(3))

    def test_idle_ended_by_the_server(self) -> None:
        ends_idle(self, self.server(m365(idle_limit_ms=1500, idle_limit_bye=M365_BYE)), None, M365_BYE)


def ends_idle(case: Provider, srv: FakeImap, trash: str | None, bye: str) -> None:
    """The server ends each IDLE after 1.5 s with * BYE: mail delivered
    across several of those ends is swept all the same, the rest stays."""
    d = case.daemon(case.config(srv))
    wait_for(lambda: not {f"<cron-{i}@host>" for i in range(3)} & case.ids(srv, "INBOX"), 10, what="first sweep")
    for i in range(3, 6):
        before = d.watcher("a", "INBOX")["reconnects"]
        d.wait_watcher("a", "INBOX", lambda w, b=before: w["reconnects"] > b and w["state"] == "idle", 10,
                       what="IDLE ended by the server and resumed")  # fmt: skip
        srv.append("INBOX", cron(i))
        srv.append("INBOX", person(i))
        wait_for(lambda i=i: f"<cron-{i}@host>" not in case.ids(srv, "INBOX"), 10, what=f"cron mail {i} gone")
    case.assert_people_untouched(srv, "INBOX", range(6))
    if trash is not None:
        case.assertEqual(case.ids(srv, trash), {f"<cron-{i}@host>" for i in range(6)})
    case.assertGreaterEqual(len(re.findall(re.escape(bye), d.log_text())), 3, "the server's BYE is logged")
    case.assertTrue(d.watcher("a", "INBOX")["reconnects"] >= 3)


if __name__ == "__main__":
    unittest.main()
