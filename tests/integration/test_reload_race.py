# SPDX-License-Identifier: MIT
"""A reload in the middle of a sweep.

A reload during a sweep must not act on a set computed
under the old rules once the new ones are in force. The scripted server
holds the reply to the sweep's UID STORE open; the rules change meanwhile.
The messages the old rule had flagged \\Deleted must not be expunged, and
must not be left flagged either: the daemon takes the flag back.
"""

from __future__ import annotations

import json
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
