# SPDX-License-Identifier: MIT
"""imapsweepd against a misbehaving server.

One daemon watches two accounts: "fake", on the scripted server
(tests/fakeimap), which misbehaves on cue, and "real", on a real Dovecot.
Whatever the fake server does, the daemon must keep running (its process
alive, its control socket answering), the Dovecot account must keep working
(cron mail delivered there during and after the fault is still removed), the
fake account must recover once the fault is over, and the transcript must
show that no STORE was ever sent for a UID the rule does not match.

The fake server's INBOX (scenarios/cron_mix.json) interleaves cron mail
(UIDs 1 3 5 7) with mail no rule matches (2 4 6 8: a person, a person's
mail about cron, another client's \\Deleted message, a \\Seen one).
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import SCENARIOS, FakeImap  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.sweepd import DovecotCase, Sweepd, daemon_alive, dovecot_account, fake_account  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON_RULE = {"from": "Cron Daemon", "subject": "Cron <"}
FAKE_CRON = {1, 3, 5, 7}
FAKE_OTHERS = {2: "<mail-2@example.org>", 4: "<mail-4@example.net>", 6: "<mail-6@example.com>",
               8: "<mail-8@example.org>"}  # fmt: skip
NO_UIDPLUS = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "CHILDREN",
              "MOVE", "ESEARCH", "SPECIAL-USE", "WITHIN"]  # fmt: skip
NO_IDLE = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "NAMESPACE", "UNSELECT", "CHILDREN", "UIDPLUS",
           "MOVE", "ESEARCH", "SPECIAL-USE", "WITHIN"]  # fmt: skip
#: Gmail's own capabilities after login, as far as the fake server knows them
GMAIL = ["IMAP4rev1", "UNSELECT", "IDLE", "NAMESPACE", "ID", "CHILDREN", "X-GM-EXT-1", "UIDPLUS", "ENABLE", "MOVE",
         "ESEARCH", "SPECIAL-USE"]  # fmt: skip
_SET_RE = re.compile(r"^UID (STORE|MOVE|COPY|EXPUNGE) ([0-9:,*]+)")


def scenario(**overrides: Any) -> dict[str, Any]:
    data = json.loads((SCENARIOS / "cron_mix.json").read_text())
    data.update(overrides)
    return data


def uid_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def gmail_scenario(trash_messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """cron_mix with Gmail's capabilities and its Trash named as Gmail names it."""
    scen = scenario(capabilities={"post": GMAIL})
    trash = scen["mailboxes"].pop("Trash")
    if trash_messages:
        trash["messages"] = trash_messages
    scen["mailboxes"]["[Gmail]/Trash"] = trash
    return scen


def fake_cron_mail(i: int) -> dict[str, Any]:
    return {"from": '"Cron Daemon" <root@host>', "subject": "Cron <root@host> /usr/local/bin/backup.sh",
            "body": f"late run {i}\n", "message_id": f"<late-{i}@host>"}  # fmt: skip


def fake_other_mail(i: int) -> dict[str, Any]:
    return {"from": "Erin <erin@example.org>", "subject": f"Cron <question> {i}", "body": "hi\n",
            "message_id": f"<other-{i}@example.org>"}  # fmt: skip


class FaultTest(DovecotCase):
    users = 18

    # -- set-up -------------------------------------------------------------
    def start(self, scen: dict[str, Any], faults: tuple[dict[str, Any], ...] = (), match: dict[str, Any] = CRON_RULE,
              dry_run: bool = False, **fake_settings: Any) -> tuple[FakeImap, Sweepd, Any]:  # fmt: skip
        """The fake server with ``faults`` armed, a Dovecot user of its own, and
        a daemon watching both; returns (server, daemon, oracle)."""
        srv = FakeImap(scen)
        self.addCleanup(srv.stop)
        for f in faults:
            srv.fault(**f)
        self.srv = srv
        self.cron_uids = set(FAKE_CRON)       # every UID that ever held cron mail on the fake server
        self.other_uids = dict(FAKE_OTHERS)   # UID -> Message-ID of mail no rule matches
        user = self.take_user()
        self.im = self.oracle(user)
        cfg = self.config()
        cfg.account("fake", fake_account(srv.port, **fake_settings))
        cfg.account("real", dovecot_account(self.dc, user))
        cfg.rule("cron", match, "delete", **({"dry_run": True} if dry_run else {}))
        # under valgrind: error paths are where memory errors hide
        self.d = self.daemon(cfg, valgrind=True)
        self.real_n = 0
        return srv, self.d, self.im

    def fake_append(self, msg: dict[str, Any], cron: bool) -> int:
        uid = self.srv.append("INBOX", msg)
        if cron:
            self.cron_uids.add(uid)
        else:
            self.other_uids[uid] = msg["message_id"]
        return uid

    # -- checks -------------------------------------------------------------
    def real_account_works(self, what: str) -> None:
        """Cron mail delivered to Dovecot now is removed; ordinary mail stays."""
        self.real_n += 1
        keep = self.im.append("INBOX", ordinary_mail(self.real_n))
        uid = self.im.append("INBOX", cron_mail(self.real_n))
        wait_for(lambda: uid not in self.im.uids(), 5, what=f"Dovecot cron mail removed {what}")
        self.assertIn(keep, self.im.uids())
        self.assertTrue(daemon_alive(self.d), "daemon died")

    def fake_recovered(self, timeout: float = 10.0) -> None:
        """Every cron mail on the fake server is gone, the rest is all there, untouched."""
        def done() -> bool:
            return set(self.srv.uids()) & self.cron_uids == set()

        wait_for(done, timeout, what=f"cron mail removed from the fake server (log tail:\n{self.d.tail(12)})")
        msgs = {m["uid"]: m for m in self.srv.messages()}
        self.assertEqual({u: m["message_id"] for u, m in msgs.items()}, self.other_uids)
        # only the other client's own \Deleted and \Seen marks, nothing new
        for uid, m in msgs.items():
            expected = {6: {"\\Deleted"}, 8: {"\\Seen"}}.get(uid, set())
            self.assertEqual(set(m["flags"]) - {"\\Recent"}, expected, f"flags of UID {uid}")

    def no_stray_commands(self) -> None:
        """No STORE/MOVE/COPY/EXPUNGE named a UID that is not cron mail; never a plain EXPUNGE."""
        for cmd in self.srv.client_commands():
            m = _SET_RE.match(cmd)
            if m:
                stray = uid_set(m.group(2)) - self.cron_uids
                self.assertFalse(stray, f"{cmd!r} names UIDs no rule matches: {sorted(stray)}")
            self.assertNotRegex(cmd, r"^(EXPUNGE|STORE|COPY|MOVE)\b", "sequence-number command or plain EXPUNGE")

    def fake_watcher(self) -> dict[str, Any]:
        return self.d.watcher("fake", "INBOX")

    def wait_reconnected(self, at_least: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        return self.d.wait_watcher("fake", "INBOX", lambda w: w["reconnects"] >= at_least and w["state"] == "idle",
                                   timeout, what=f"fake account reconnected ({at_least}x) and idle")  # fmt: skip

    def finish(self) -> None:
        self.real_account_works("after the fault")
        self.fake_recovered()
        self.no_stray_commands()
        w = self.d.watcher("real", "INBOX")
        self.assertEqual(w["reconnects"], 0, "the Dovecot account was disturbed")
        self.assertIsNone(w["last_error"])
        # protocol lines logged on errors are redacted: no AUTHENTICATE PLAIN payload
        log = self.d.log_text()
        self.assertNotIn(base64.b64encode(b"\0user\0pass").decode(), log)

    # -- capabilities ---------------------------------------------------------
    def test_no_uidplus_leaves_matches_flagged(self) -> None:
        srv, d, im = self.start(scenario(capabilities={"post": NO_UIDPLUS}))
        d.wait_ready()
        w = d.wait_watcher("fake", "INBOX", lambda w: w["actions"].get("cron", {}).get("delete") == 4,
                           what="4 cron mails flagged")  # fmt: skip
        msgs = {m["uid"]: set(m["flags"]) - {"\\Recent"} for m in srv.messages()}
        self.assertEqual(set(msgs), FAKE_CRON | set(FAKE_OTHERS), "a message was expunged without UIDPLUS")
        for uid in FAKE_CRON:
            self.assertEqual(msgs[uid], {"\\Deleted"})
        self.assertEqual({u: msgs[u] for u in FAKE_OTHERS}, {2: set(), 4: set(), 6: {"\\Deleted"}, 8: {"\\Seen"}})
        cmds = srv.client_commands()
        self.assertFalse([c for c in cmds if "EXPUNGE" in c], cmds)
        self.assertTrue(any("lacks UIDPLUS" in n for n in w["notes"]), w["notes"])
        self.assertEqual(len(re.findall(r"lacks UIDPLUS", d.log_text())), 1, "the note is logged once")
        self.no_stray_commands()
        self.real_account_works("next to a server without UIDPLUS")

    def test_no_idle_polls(self) -> None:
        srv, d, im = self.start(scenario(capabilities={"post": NO_IDLE}))
        d.wait_ready()
        self.assertEqual(self.fake_watcher()["state"], "polling")
        self.fake_recovered()
        waits = []
        for i in range(3):
            t0 = time.monotonic()
            uid = self.fake_append(fake_cron_mail(i), cron=True)
            self.fake_append(fake_other_mail(i), cron=False)
            wait_for(lambda: uid not in srv.uids(), 1 + 3, what="polled cron mail removed (poll_interval 1s + 3s)")
            waits.append(time.monotonic() - t0)
        print("no IDLE: new mail removed after " + ", ".join(f"{w * 1000:.0f} ms" for w in waits))
        self.assertFalse([c for c in srv.client_commands() if c.upper().startswith("IDLE")])
        self.finish()

    def test_gmail_delete_moves_to_trash(self) -> None:
        # On Gmail EXPUNGE only archives (the message stays in All Mail), so
        # delete is a move to the \\Trash mailbox, found by SPECIAL-USE.
        srv, d, im = self.start(gmail_scenario())
        d.wait_ready()
        self.fake_recovered()
        trashed = {m["message_id"]: set(m["flags"]) - {"\\Recent"} for m in srv.messages("[Gmail]/Trash")}
        self.assertEqual(trashed, {f"<cron-{u}@host>": set() for u in FAKE_CRON}, "cron mail not in Trash, or flagged")
        cmds = srv.client_commands()
        self.assertTrue([c for c in cmds if c.startswith("UID MOVE ")], cmds)
        self.assertFalse([c for c in cmds if c.startswith(("UID STORE", "UID EXPUNGE"))], cmds)
        self.assertEqual(self.fake_watcher()["actions"].get("cron"), {"delete": 4})
        self.assertEqual(len(re.findall(r"fake/INBOX: cron: trash uid [1357] ", d.log_text())), 4, "audit lines")
        self.no_stray_commands()
        self.real_account_works("next to a Gmail account")

    def test_gmail_delete_in_trash_expunges(self) -> None:
        # In Gmail's Trash itself EXPUNGE deletes for good: a delete rule
        # sweeping it deletes, rather than moving messages onto themselves.
        kept = {"uid": 2, "from": "Alice Example <alice@example.org>", "subject": "Lunch on Friday?",
                "body": "Hi\n", "message_id": "<trash-2@example.org>"}  # fmt: skip
        cron = [{"uid": u, "from": '"Cron Daemon" <root@host>', "subject": "Cron <root@host> /usr/bin/true",
                 "body": f"run {u}\n", "message_id": f"<trash-{u}@host>"} for u in (1, 3)]  # fmt: skip
        srv, d, im = self.start(gmail_scenario([cron[0], kept, cron[1]]), mailboxes=["[Gmail]/Trash"])
        d.wait_ready()
        wait_for(lambda: srv.uids("[Gmail]/Trash") == [2], 10,
                 what=f"cron mail deleted from Gmail's Trash (log tail:\n{d.tail(12)})")  # fmt: skip
        (msg,) = srv.messages("[Gmail]/Trash")
        self.assertEqual((msg["message_id"], set(msg["flags"]) - {"\\Recent"}), ("<trash-2@example.org>", set()))
        cmds = srv.client_commands()
        self.assertFalse([c for c in cmds if c.startswith(("UID MOVE", "UID COPY"))], cmds)
        self.assertIn("UID EXPUNGE 1,3", cmds)
        self.assertEqual(d.watcher("fake", "[Gmail]/Trash")["actions"].get("cron"), {"delete": 2})
        self.assertEqual([c for c in cmds if c.startswith("UID STORE")], ["UID STORE 1,3 +FLAGS.SILENT (\\Deleted)"])
        self.assertEqual(len(srv.messages("INBOX")), 8, "INBOX is not watched and must be untouched")
        self.real_account_works("next to a Gmail account")

    def test_gmail_dry_run_in_trash_previews_delete(self) -> None:
        # the preview says what the real run would do there: delete, not trash
        cron = {"uid": 1, "from": '"Cron Daemon" <root@host>', "subject": "Cron <root@host> /usr/bin/true",
                "body": "run\n", "message_id": "<trash-1@host>"}  # fmt: skip
        srv, d, im = self.start(gmail_scenario([cron]), dry_run=True, mailboxes=["[Gmail]/Trash"])
        d.wait_ready()
        wait_for(lambda: "cron: would " in d.log_text(), 10, what="the dry-run audit line")
        self.assertRegex(d.log_text(), r"fake/\[Gmail\]/Trash: cron: would delete uid 1 ")
        self.assertEqual(srv.uids("[Gmail]/Trash"), [1])
        cmds = srv.client_commands()
        self.assertFalse([c for c in cmds if re.match(r"(UID )?(STORE|MOVE|COPY|EXPUNGE)", c)], cmds)

    def test_new_mail_gone_before_the_sweep(self) -> None:
        # The new message is expunged by another client between the EXISTS
        # and the sweep. The incremental search over "UID n:*" then names the
        # highest older UID (n:* past the end means *:n); that message is
        # not new, so only a full sweep may act on it. Here it has come to
        # match since the last sweep: another client flagged it.
        srv, d, im = self.start(scenario(), match={**CRON_RULE, "flagged": True})
        d.wait_ready()
        idles = srv.client_commands().count("IDLE")
        uid = self.fake_append(fake_cron_mail(9), cron=True)
        # swept (not flagged yet: no match) and idle again
        wait_for(lambda: srv.client_commands().count("IDLE") > idles, 10, what=f"the sweep of UID {uid}")
        idles = srv.client_commands().count("IDLE")
        srv.do(action="set_flags", mailbox="INBOX", uids=[uid], flags=["\\Flagged"], mode="+")
        srv.fault(command="^DONE$", action="expunge", mailbox="INBOX", uids=[uid + 1])
        self.assertEqual(srv.append("INBOX", fake_other_mail(10)), uid + 1)
        # the EXISTS woke the watcher: DONE, the sweep, and IDLE again
        wait_for(lambda: srv.client_commands().count("IDLE") > idles, 10, what="the sweep after the EXISTS")
        cmds = srv.client_commands()
        self.assertTrue([c for c in cmds if "SEARCH" in c and f" UID {uid + 1}:* " in c], cmds)
        self.assertEqual([m["uid"] for m in srv.messages()], sorted(FAKE_CRON | set(FAKE_OTHERS) | {uid}))
        self.assertFalse([c for c in cmds if _SET_RE.match(c)], "an incremental sweep acted on an old message")
        # the next full sweep does
        self.assertTrue(d.request("sweep")["ok"])
        wait_for(lambda: uid not in srv.uids(), 10, what="the full sweep to delete the flagged cron mail")
        self.assertEqual(set(srv.uids()) & self.cron_uids, FAKE_CRON, "unflagged cron mail was deleted")
        self.no_stray_commands()

    # -- connection faults ----------------------------------------------------------
    def test_drop_mid_command(self) -> None:
        # the first UID STORE is carried out, but its reply is cut after 5
        # octets and the connection closed; the first UID SEARCH of the
        # second connection gets no reply at all
        srv, d, im = self.start(scenario(), faults=(
            {"command": "^UID STORE", "action": "drop", "after_bytes": 5},
            {"command": "^UID SEARCH", "action": "drop", "min_connection": 2},
        ))  # fmt: skip
        self.wait_reconnected(2)
        self.finish()
        log = d.log_text()
        self.assertRegex(log, r"fake/INBOX: .*reconnecting in")

    def test_stall_hits_command_timeout(self) -> None:
        srv, d, im = self.start(scenario(), faults=({"command": "^UID SEARCH", "action": "stall"},),
                                command_timeout="4s")  # fmt: skip
        # while the fake connection hangs, the other account is served
        wait_for(lambda: any(s["stalled"] for s in srv.connections()["sessions"]), 5, what="the fake session stalls")
        t0 = time.monotonic()
        self.real_account_works("while the fake server stalls")
        self.assertEqual(self.fake_watcher()["reconnects"], 0, "the stall should still be going on")
        self.wait_reconnected(1)
        print(f"stall detected and reconnected {time.monotonic() - t0:.1f}s after it was seen (command_timeout 4s)")
        self.assertRegex(d.log_text(), r"fake/INBOX: no response from the server within 4s \(waiting for UID SEARCH\)")
        self.finish()

    def test_stall_in_idle_found_by_refresh(self) -> None:
        # IDLE is refreshed every 2s; a DONE that is never answered must be
        # noticed within idle_refresh + command_timeout
        srv, d, im = self.start(scenario(), idle_refresh="2s", command_timeout="2s")
        d.wait_ready()
        self.fake_recovered()
        srv.fault(command="^DONE$", action="stall")
        t0 = time.monotonic()
        self.wait_reconnected(1, timeout=10)
        took = time.monotonic() - t0
        print(f"dead IDLE connection replaced after {took:.1f}s (idle_refresh 2s + command_timeout 2s)")
        self.assertLess(took, 2 + 2 + 3)
        self.fake_append(fake_cron_mail(1), cron=True)
        self.finish()

    def test_bye_while_idle(self) -> None:
        srv, d, im = self.start(scenario())
        d.wait_ready()
        self.fake_recovered()
        srv.do(action="bye", text="Server shutting down")
        self.wait_reconnected(1)
        self.fake_append(fake_cron_mail(1), cron=True)
        self.fake_append(fake_other_mail(1), cron=False)
        self.finish()

    def test_malformed_search_response(self) -> None:
        # a SEARCH line that starts well (with UIDs of mail no rule matches)
        # and then breaks: no UID of it may ever be acted on
        srv, d, im = self.start(scenario(), faults=(
            {"command": "^UID SEARCH", "action": "malformed", "line": "* SEARCH 2 4 6 8 ((( \x01garbage"},))
        self.wait_reconnected(1)
        self.assertRegex(d.log_text(), r"fake/INBOX: .*(pars|malformed|unexpected|syntax)")
        self.finish()

    def test_malformed_while_idle(self) -> None:
        srv, d, im = self.start(scenario())
        d.wait_ready()
        self.fake_recovered()
        srv.do(action="malformed", line="* 9 FETCH (UID 2 FLAGS (\\Deleted", then="nothing")
        self.wait_reconnected(1)
        self.fake_append(fake_cron_mail(1), cron=True)
        self.finish()

    def test_literal_bomb(self) -> None:
        srv, d, im = self.start(scenario(), faults=({"command": "^UID FETCH", "action": "literal_bomb"},))
        t0 = time.monotonic()
        self.wait_reconnected(1)
        took = time.monotonic() - t0
        print(f"literal of 99999999999 octets refused; reconnected after {took:.1f}s")
        # refused on sight, not after waiting command_timeout (5s) for the octets
        self.assertNotIn("no response from the server", d.log_text())
        self.assertLess(took, 5)
        self.assertRegex(d.log_text(), r"fake/INBOX: .*(literal|too large|too long|limit)")
        self.finish()

    def test_two_mebibyte_line(self) -> None:
        srv, d, im = self.start(scenario(), faults=(
            {"command": "^UID SEARCH", "action": "long_line", "size": 2 * 1024 * 1024},))
        self.wait_reconnected(1)
        self.assertRegex(d.log_text(), r"fake/INBOX: .*(line|too long|limit)")
        self.finish()

    def test_uidvalidity_change_between_search_and_store(self) -> None:
        # UIDs are renumbered in reverse after the SEARCH, before the STORE:
        # the stale UIDs now name the mail no rule matches.  The server says
        # so with an untagged OK [UIDVALIDITY]; nothing of the old set may be
        # acted on, and the mailbox is swept again under the new numbers.
        srv, d, im = self.start(scenario(), faults=(
            {"command": "^UID FETCH .*HEADER", "action": "uidvalidity_change", "mailbox": "INBOX",
             "notify": "untagged"},))  # fmt: skip
        wait_for(lambda: srv.state()["mailboxes"]["INBOX"]["uidvalidity"] == 1700000002, 10,
                 what="the UIDVALIDITY change")  # fmt: skip
        # reverse order: message k of 8 now has UID 9 - k
        self.cron_uids = {9 - u for u in FAKE_CRON}
        self.other_uids = {9 - u: mid for u, mid in FAKE_OTHERS.items()}
        try:
            wait_for(lambda: set(srv.uids()) & self.cron_uids == set(), 10, what="cron mail removed after renumbering")
        finally:
            # every action command came after the change and names new cron UIDs only
            change_seen = False
            for e in srv.transcript():
                if e.direction == "S:" and "[UIDVALIDITY 1700000002]" in e.text:
                    change_seen = True
                if e.direction == "C:":
                    m = _SET_RE.match(e.text.split(" ", 1)[1])
                    if m:
                        self.assertTrue(change_seen, f"{e.text!r} sent before the daemon heard of the change")
                        stray = uid_set(m.group(2)) - self.cron_uids
                        self.assertFalse(stray, f"{e.text!r} names UIDs that are not cron mail after the change")
        msgs = {m["uid"]: m for m in srv.messages()}
        self.assertEqual({u: m["message_id"] for u, m in msgs.items()}, self.other_uids)
        for uid, m in msgs.items():
            expected = {FAKE_OTHERS[6]: {"\\Deleted"}, FAKE_OTHERS[8]: {"\\Seen"}}.get(m["message_id"], set())
            self.assertEqual(set(m["flags"]) - {"\\Recent"}, expected, f"flags of UID {uid}")
        self.assertTrue(change_seen)
        self.assertTrue(daemon_alive(d))
        self.real_account_works("after the renumbering")


if __name__ == "__main__":
    unittest.main()
