# SPDX-License-Identifier: MIT
"""Where `trash` goes when the account names no trash_mailbox (issue 14).

The folder marked \\Trash (SPECIAL-USE) if there is one; otherwise, as
Thunderbird and most clients do, the one folder named Trash at the top of
the personal namespace, whose prefix and separator come from the server's
NAMESPACE answer (``INBOX.Trash`` on Courier and Cyrus, ``Trash`` where the
prefix is empty); none, or several, and the daemon refuses, says why (not
"the server refused its action": it sent nothing), and leaves the mail
alone.  Said once, at start-up, before any mail matches.

Against the scripted server (tests/fakeimap), whose capabilities and
namespace each case chooses; test_interop.py has the same against Courier
and Cyrus.  Mailbox contents are read from the server's own state, never
from the daemon's report.
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import SCENARIOS, FakeImap  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd, fake_account, run_once  # noqa: E402
from harness.wait import wait_for  # noqa: E402

#: Courier-IMAP 5.0's capabilities after login (no SPECIAL-USE, MOVE,
#: ESEARCH, WITHIN, LIST-EXTENDED)
COURIER = ["IMAP4rev1", "UIDPLUS", "CHILDREN", "NAMESPACE", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "SORT",
           "QUOTA", "IDLE", "ENABLE", "UTF8=ACCEPT", "ACL", "ACL2=UNION"]  # fmt: skip
#: A server with SPECIAL-USE and LIST-EXTENDED (the daemon then lists only
#: the special-use folders first)
WITH_SPECIAL_USE = ["IMAP4rev1", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "ESEARCH", "SPECIAL-USE", "LIST-EXTENDED",
                    "ENABLE", "CHILDREN"]  # fmt: skip
CRON = {"from": "Cron Daemon"}
_ACTION_RE = re.compile(r"^UID (STORE|MOVE|COPY|EXPUNGE)\b")


def scenario(caps: list[str], prefix: str, sep: str, folders: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """basic.json's INBOX (3 cron mails among ordinary ones) with these folders only."""
    base = json.loads((SCENARIOS / "basic.json").read_text())
    mailboxes = {"INBOX": base["mailboxes"]["INBOX"]}
    for i, (name, spec) in enumerate(folders.items()):
        mailboxes[name] = {"uidvalidity": 1700000100 + i, **spec}
    return {"users": base["users"], "capabilities": {"post": caps}, "namespace": {"prefix": prefix, "separator": sep},
            "mailboxes": mailboxes}  # fmt: skip


class TrashCase(unittest.TestCase):
    def server(self, scen: dict[str, Any]) -> FakeImap:
        srv = FakeImap(scen)
        self.addCleanup(srv.stop)
        self.cron = {m["uid"] for m in srv.messages() if "Cron Daemon" in m["from"]}
        self.others = {m["uid"]: m["message_id"] for m in srv.messages() if m["uid"] not in self.cron}
        self.assertEqual(len(self.cron), 3)
        return srv

    def config(self, srv: FakeImap, **account: Any) -> SweepConfig:
        cfg = SweepConfig()
        self.addCleanup(cfg.cleanup)
        cfg.account("a", fake_account(srv.port, **account))
        cfg.rule("cron-noise", CRON, "trash")
        return cfg

    def daemon(self, cfg: SweepConfig) -> Sweepd:
        d = Sweepd(cfg)
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def assert_inbox_untouched(self, srv: FakeImap) -> None:
        msgs = {m["uid"]: m for m in srv.messages()}
        self.assertEqual(set(msgs), self.cron | set(self.others), "INBOX changed")
        for uid in self.cron:
            self.assertEqual(set(msgs[uid]["flags"]) - {"\\Recent"}, set(), f"flags of cron mail {uid}")
        self.assertFalse([c for c in srv.client_commands() if _ACTION_RE.match(c)], "an action was sent")

    def assert_trashed_to(self, srv: FakeImap, folder: str) -> None:
        self.assertEqual({m["uid"]: m["message_id"] for m in srv.messages()}, self.others, "INBOX after the sweep")
        moved = srv.messages(folder)
        self.assertEqual(len(moved), 3, f"{folder} should hold the 3 cron mails")
        self.assertTrue(all("Cron Daemon" in m["from"] for m in moved))
        self.assertFalse([m for m in moved if "\\Seen" in m["flags"]], "trashed mail gained \\Seen")

    # -- the fallback --------------------------------------------------------
    def test_no_special_use_uses_the_folder_named_trash_under_the_prefix(self) -> None:
        for prefix, sep in (("INBOX.", "."), ("", "/")):
            with self.subTest(prefix=prefix, sep=sep):
                trash = f"{prefix}Trash"
                # decoys: Trash deeper down, and Trash-like names
                folders = {trash: {}, f"{prefix}Archive{sep}Trash": {}, f"{prefix}Trash-old": {}}
                if prefix:
                    folders["Trash"] = {}  # outside the personal namespace
                srv = self.server(scenario(COURIER, prefix, sep, folders))
                d = self.daemon(self.config(srv))
                d.wait_ready(states=("idle",))
                wait_for(lambda: not set(srv.uids()) & self.cron, 10, what="cron mail trashed")
                self.assert_trashed_to(srv, trash)
                for decoy in folders:
                    if decoy != trash:
                        self.assertEqual(srv.uids(decoy), [], f"{decoy} got mail")
                w = d.watcher("a", "INBOX")
                self.assertIsNone(w["last_error"])
                self.assertTrue([n for n in w["notes"] if f'"{trash}"' in n and "no SPECIAL-USE" in n], w["notes"])
                self.assertEqual(len(re.findall(re.escape(f'"{trash}"'), d.log_text())), 1,
                                 "the fallback is said once in the log")  # fmt: skip
                self.assertNotIn("MOVE", " ".join(srv.client_commands()), "Courier has no MOVE")
                d.__exit__(None, None, None)

    def test_special_use_wins_over_the_name(self) -> None:
        srv = self.server(scenario(WITH_SPECIAL_USE, "", "/", {"Trash": {}, "Bin": {"special_use": "\\Trash"}}))
        r = run_once(self.config(srv))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assert_trashed_to(srv, "Bin")
        self.assertEqual(srv.uids("Trash"), [])
        self.assertNotIn("folder named", r.stderr)
        # LIST (SPECIAL-USE) found it: no second LIST by name
        self.assertEqual([c for c in srv.client_commands() if c.startswith("LIST")], ['LIST (SPECIAL-USE) "" "*"'])

    def test_special_use_without_a_marked_trash_falls_back_to_the_name(self) -> None:
        srv = self.server(scenario(WITH_SPECIAL_USE, "", "/", {"Trash": {}, "Junk": {"special_use": "\\Junk"}}))
        r = run_once(self.config(srv))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assert_trashed_to(srv, "Trash")
        self.assertIn('no folder is marked \\Trash (SPECIAL-USE): trash goes to "Trash"', r.stdout)
        self.assertEqual([c for c in srv.client_commands() if c.startswith("LIST")],
                         ['LIST (SPECIAL-USE) "" "*"', 'LIST "" "%"'])  # fmt: skip

    # -- refused: none, several ----------------------------------------------
    def test_two_folders_named_trash_are_refused(self) -> None:
        srv = self.server(scenario(COURIER, "INBOX.", ".", {"INBOX.Trash": {}, "INBOX.trash": {}}))
        r = run_once(self.config(srv))
        self.assertEqual(r.returncode, 1, "matching mail left alone is a failure of --once")
        self.assert_inbox_untouched(srv)
        summary = "\n".join(r.summary("a", "INBOX"))
        self.assertIn('2 folders are named Trash ("INBOX.Trash", "INBOX.trash"); set trash_mailbox', summary)
        self.assertNotIn("refused", summary)
        self.assertIn("cron-noise: 3 matching messages left alone", r.stderr)
        self.assertEqual(srv.uids("INBOX.Trash") + srv.uids("INBOX.trash"), [])

    def test_no_trash_is_said_at_start_up_and_a_later_one_is_used(self) -> None:
        srv = self.server(scenario(COURIER, "INBOX.", ".", {"INBOX.Archive.Trash": {}}))
        for uid in sorted(self.cron):  # nothing matches at start-up
            srv.expunge("INBOX", [uid])
        self.cron = set()
        d = self.daemon(self.config(srv))
        d.wait_ready(states=("idle",))
        note = ('no \\Trash mailbox: the server has no SPECIAL-USE and no folder is named "INBOX.Trash";'
                " set trash_mailbox")  # fmt: skip
        w = d.watcher("a", "INBOX")
        self.assertIn(note, w["notes"], "said at start-up, with nothing to trash yet")
        self.assertIsNone(w["last_error"])
        # mail that matches now is left alone, and status says why
        uid = srv.append("INBOX", {"from": '"Cron Daemon" <root@host>', "subject": "Cron <root@host> x",
                                   "body": "late\n", "message_id": "<late@host>"})  # fmt: skip
        self.cron = {uid}
        w = d.wait_watcher("a", "INBOX", lambda w: w["last_error"], 10, what="the refusal in status")
        self.assertEqual(w["last_error"], f"rule cron-noise: {note}")
        self.assert_inbox_untouched(srv)
        self.assertEqual(len(re.findall(re.escape(note), d.log_text())), 2,
                         "the note once, and the rule's refusal once")  # fmt: skip
        # the user creates the Trash: the next full sweep uses it
        srv.create("INBOX.Trash")
        self.assertTrue(d.request("sweep").get("ok"))
        wait_for(lambda: uid not in srv.uids(), 10, what="cron mail trashed after INBOX.Trash appeared")
        self.assertEqual([m["message_id"] for m in srv.messages("INBOX.Trash")], ["<late@host>"])
        w = d.wait_watcher("a", "INBOX", lambda w: w["last_error"] is None, 10, what="the error cleared")
        self.assertNotIn(note, w["notes"], "the note no longer holds")
        self.assertTrue([n for n in w["notes"] if '"INBOX.Trash"' in n], w["notes"])

    def test_a_refused_list_is_the_reason_not_a_failed_sweep(self) -> None:
        srv = self.server(scenario(COURIER, "INBOX.", ".", {"INBOX.Trash": {}}))
        srv.fault(command="^LIST", action="reply", response="NO [UNAVAILABLE] try later", times=-1)
        d = self.daemon(self.config(srv))
        d.wait_ready(states=("idle",))
        w = d.wait_watcher("a", "INBOX", lambda w: w["last_error"], 10, what="the refusal in status")
        self.assertIn("no \\Trash mailbox: cannot list the folders (LIST: NO try later)", w["last_error"])
        self.assertEqual(w["reconnects"], 0, "a refused LIST does not fail the session")
        self.assert_inbox_untouched(srv)

    def test_trash_mailbox_set_lists_nothing(self) -> None:
        srv = self.server(scenario(COURIER, "INBOX.", ".", {"INBOX.Trash": {}, "INBOX.Bin": {}}))
        r = run_once(self.config(srv, trash_mailbox="INBOX.Bin"))
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assert_trashed_to(srv, "INBOX.Bin")
        self.assertFalse([c for c in srv.client_commands() if c.startswith(("LIST", "NAMESPACE"))])


if __name__ == "__main__":
    unittest.main()
