# SPDX-License-Identifier: MIT
"""A reload in the middle of a sweep, and in the middle of a poll.

A reload during a sweep must not act on a set computed
under the old rules once the new ones are in force. The scripted server
holds the reply to the sweep's UID STORE open; the rules change meanwhile.
The messages the old rule had flagged \\Deleted must not be expunged, and
must not be left flagged either: the daemon takes the flag back.

A reload that removes a mailbox polled on the account's shared connection
while its STATUS or SELECT is unanswered (issue 12, defect 1: the late
reply used to run on the freed watcher and kill the daemon) must leave the
daemon running, under valgrind without an error, and polling the rest.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import SCENARIOS, FakeImap  # noqa: E402
from harness.sweepd import SweepConfig, Sweepd, fake_account  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON = {1, 3, 5, 7}


class ReloadDuringSweepTest(unittest.TestCase):
    def test_rules_change_between_store_and_expunge(self) -> None:
        scen = json.loads((SCENARIOS / "cron_mix.json").read_text())
        # the first UID STORE is answered 2 s late: the reload lands then
        scen["events"] = [{"command": "^UID STORE", "action": "delay", "ms": 2000, "times": 1}]
        with FakeImap(scen) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("fake", fake_account(srv.port))
            cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
            with Sweepd(cfg, valgrind=True) as d:
                wait_for(lambda: any(c.startswith("UID STORE") for c in srv.client_commands()), 10,
                         what="the sweep's UID STORE was sent")  # fmt: skip
                # new rules: cron mail no longer matches anything
                cfg.rules[0]["match"] = {"from": "nobody@example.invalid"}
                cfg.write()
                mark = d.mark()
                d.signal(signal.SIGHUP)
                d.wait_for_log(r"reloaded \(generation 2\)", since=mark, timeout=10)
                d.wait_for_log(r"\\Deleted taken back from 4 messages", since=mark, timeout=10)
                d.wait_ready(timeout=10)
                cmds = srv.client_commands()
                stores = [c for c in cmds if c.startswith("UID STORE")]
                self.assertEqual(stores, ["UID STORE 1,3,5,7 +FLAGS.SILENT (\\Deleted)",
                                          "UID STORE 1,3,5,7 -FLAGS.SILENT (\\Deleted)"])  # fmt: skip
                self.assertFalse([c for c in cmds if "EXPUNGE" in c], cmds)
                msgs = {m["uid"]: set(m["flags"]) - {"\\Recent"} for m in srv.messages()}
                self.assertTrue(CRON <= set(msgs), "a cron mail was expunged after the rules changed")
                for uid in CRON:
                    self.assertNotIn("\\Deleted", msgs[uid], f"UID {uid} left flagged \\Deleted")
                # the other client's own \Deleted mark (UID 6) is not ours to touch
                self.assertIn("\\Deleted", msgs[6])
                w = d.watcher("fake", "INBOX")
                self.assertEqual(w["state"], "idle")
                self.assertEqual(d.status()["generation"], 2)


if __name__ == "__main__":
    unittest.main()


class ReloadDuringPollTest(unittest.TestCase):
    """Three mailboxes on one connection (max_connections: 1): every one is
    polled with STATUS and visited with SELECT on the shared connection."""

    def run_case(self, command: str, mailboxes: tuple[str, ...]) -> None:
        scen = json.loads((SCENARIOS / "cron_mix.json").read_text())
        for name in mailboxes:
            scen["mailboxes"][name] = {"uidvalidity": 1700000010 + len(name)}
        # the first such command is answered 4 s late: the reload lands then
        scen["events"] = [{"command": command, "action": "delay", "ms": 4000, "times": 1}]
        with FakeImap(scen) as srv:
            cfg = SweepConfig(defaults={"poll_interval": "2s"})
            self.addCleanup(cfg.cleanup)
            cfg.account("fake", fake_account(srv.port, mailboxes=["INBOX", "Cron", "Other"], max_connections=1))
            cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
            with Sweepd(cfg, valgrind=True) as d:
                wait_for(lambda: any(re.search(command, c) for c in srv.client_commands()), 20,
                         what=f"a command matching {command} was sent")  # fmt: skip
                cfg.accounts[0]["mailboxes"] = ["INBOX", "Other"]
                cfg.write()
                mark = d.mark()
                d.signal(signal.SIGHUP)
                d.wait_for_log(r"reloaded \(generation 2\)", since=mark, timeout=10)
                d.wait_for_log(r"Cron: no longer watched", since=mark, timeout=10)
                # the late reply arrives; the poll goes on with the others
                uid = srv.append("Other", {"from": "Cron Daemon <root@host>", "subject": "Cron x", "body": "x"})
                wait_for(lambda: uid not in srv.uids("Other"), 30, what="new cron mail in Other removed")
                self.assertEqual(sorted(w["mailbox"] for w in d.watchers()), ["INBOX", "Other"])
                self.assertTrue(d.running())
                # nothing but cron mail was touched in INBOX
                self.assertEqual(srv.uids("INBOX"), [2, 4, 6, 8])

    def test_status_in_flight(self) -> None:
        # Cron does not exist on the server: its STATUS is refused (NO),
        # 4 s late, and the refusal names the watcher it was for
        self.run_case("^STATUS Cron ", ("Other",))

    def test_select_in_flight(self) -> None:
        self.run_case("^SELECT Cron$", ("Cron", "Other"))
