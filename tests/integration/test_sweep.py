# SPDX-License-Identifier: MIT
"""imapsweepd end to end against a real Dovecot: rules, actions, expunge
modes, continuous mode, UIDVALIDITY changes, restarts, dry runs.

Every effect is checked with the harness's independent imaplib client (the
oracle, which only EXAMINEs and PEEKs) or with doveadm, never with the
daemon's own report alone.  Each test works with Dovecot users of its own,
so the tests of a class share one Dovecot without seeing each other's mail.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import sys
import time
import unittest
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.fakeimap import SCENARIOS, FakeImap  # noqa: E402
from harness.mail import CRLF, bulk_fill, cron_mail, encode_b, encode_q, make_mail, ordinary_mail  # noqa: E402
from harness.sweepd import DovecotCase, SweepConfig, dovecot_account, fake_account, run_once  # noqa: E402
from harness.wait import wait_for  # noqa: E402

CRON = {"from": "Cron Daemon"}


def message_ids(oracle, mailbox: str = "INBOX") -> set[str]:  # type: ignore[no-untyped-def]
    return {h.get("message-id", "") for h in oracle.headers(mailbox).values()}


def flags(oracle, mailbox: str = "INBOX") -> dict[int, set[str]]:  # type: ignore[no-untyped-def]
    """{uid: flags} without \\Recent, which belongs to whichever session saw a message first."""
    return {u: f - {"\\Recent"} for u, f in oracle.flags(mailbox).items()}


def body_of(raw: bytes) -> bytes:
    """The octets of BODY[TEXT]: everything after the first empty line."""
    return raw.split(CRLF + CRLF, 1)[1]


def report(i: int, body: str, **kw) -> bytes:  # type: ignore[no-untyped-def]
    """A machine report from backup@example.org (a sender no person uses)."""
    return make_mail(from_="Backup <backup@example.org>", subject=kw.pop("subject", f"Nightly backup {i}"),
                     body=body, message_id=kw.pop("message_id", f"<report-{i}@example.org>"), **kw)  # fmt: skip


class OnceTest(DovecotCase):
    """--once sweeps: the seed scenario, every kind of match key, actions and expunge modes."""

    def once(self, cfg: SweepConfig, *args: str, expect_rc: int = 0, **kw):  # type: ignore[no-untyped-def]
        # under valgrind: a --once run costs under a second that way, and
        # every rule path gets checked for memory errors and leaks
        kw.setdefault("valgrind", True)
        r = run_once(cfg, *args, **kw)
        self.assertEqual(r.returncode, expect_rc, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}")
        return r

    def setup_user(self, messages, mailbox: str = "INBOX"):  # type: ignore[no-untyped-def]
        """A fresh user with ``messages`` appended in order; returns (user, oracle, uids)."""
        user = self.take_user()
        im = self.oracle(user)
        uids = [im.append(mailbox, m) for m in messages]
        return user, im, uids

    # -- 1. the seed scenario ------------------------------------------------
    def test_seed_50_cron_50_ordinary_once_under_valgrind(self) -> None:
        user = self.take_user()
        msgs, cron_ids, kept_ids = [], set(), set()
        for i in range(50):  # interleaved, so the matches form no single UID range
            msgs += [cron_mail(i), ordinary_mail(i)]
            cron_ids.add(f"<cron-{i}@host.imapsweep.test>")
            kept_ids.add(f"<mail-{i}@imapsweep.test>")
        bulk_fill(self.dc, user, "INBOX", msgs)
        im = self.oracle(user)
        self.assertEqual(len(im.uids()), 100)
        cfg = self.config()
        cfg.account("seed", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, "delete")
        r = self.once(cfg, timeout=120)
        print(f"--once under valgrind: {r.seconds:.1f}s")
        self.assertEqual(message_ids(im), kept_ids)
        self.assertEqual(len(im.uids()), 50)
        self.assertEqual(im.seen(), set(), "a sweep set \\Seen")
        self.assertEqual(r.summary("seed", "INBOX"),
                         ["seed/INBOX: ok, 50 messages, swept up to UID 100", "  cron: delete 50"])  # fmt: skip
        audited = set(re.findall(r'seed/INBOX: cron: delete uid \d+ message-id "(<[^"]+>)"', r.stderr))
        self.assertEqual(audited, cron_ids)

    # -- 2. match keys ---------------------------------------------------------
    def test_body_md5_and_sha256(self) -> None:
        x = "disk usage: 42%\nall filesystems ok\n"
        y = "backup finished\n1234 files\n"
        msgs = [
            report(1, x),                      # md5 target
            report(2, x[:-2] + "X\n"),         # one octet differs: kept
            report(3, y),                      # sha256 target
            report(4, y.replace("1234", "1235")),  # one octet differs: kept
            report(5, x),                      # an identical copy: also matches
            report(6, x + "\n"),               # one line more: kept
        ]
        # large bodies stream through the digest: 3 MiB, and a copy whose last octet differs
        big = cron_mail(7, body_size=3 * 1024 * 1024, subject="big report")
        msgs += [big, big[:-3] + b"!\r\n"]
        user, im, uids = self.setup_user(msgs)
        md5 = hashlib.md5(body_of(msgs[0])).hexdigest()
        sha = hashlib.sha256(body_of(msgs[2])).hexdigest()
        big_md5 = hashlib.md5(body_of(big)).hexdigest()
        cfg = self.config()
        cfg.account("d", dovecot_account(self.dc, user))
        cfg.rule("by-md5", {"body_md5": md5}, "delete")
        cfg.rule("by-sha", {"from": "backup@example.org", "body_sha256": sha.upper()}, "delete")
        cfg.rule("big", {"subject": "big report", "body_md5": big_md5}, "delete")
        r = self.once(cfg)
        self.assertEqual(im.uids(), [uids[1], uids[3], uids[5], uids[7]])
        summary = r.summary("d", "INBOX")
        self.assertIn("  by-md5: delete 2", summary)
        self.assertIn("  by-sha: delete 1", summary)
        self.assertIn("  big: delete 1", summary)
        self.assertEqual(im.seen(), set())

    def test_subject_regex_on_rfc2047_subjects(self) -> None:
        subjects = {
            "b_utf8": encode_b("Über Sicherung: fehlgeschlagen"),          # matches once decoded
            "q_latin1": encode_q("ÜBER Backup gestern", "ISO-8859-1"),     # upper case, Latin-1
            "mixed": "Re: " + encode_q("über", "UTF-8") + " sicherung",    # encoded word within text
            "no_umlaut": "Uber Sicherung",                                 # not the same letter: kept
            "raw_only": encode_b("nothing to see"),                        # raw text has "UTF-8": kept
            "plain": "über sicherung",                                     # raw 8-bit UTF-8 header
        }
        msgs = [make_mail(from_="Monitor <mon@example.org>", subject=s, body=f"{k}\n", message_id=f"<{k}@x>")
                for k, s in subjects.items()]  # fmt: skip
        user, im, uids = self.setup_user(msgs)
        by_key = dict(zip(subjects, uids))
        cfg = self.config()
        cfg.account("r", dovecot_account(self.dc, user))
        # case-insensitive on non-ASCII too: the pattern says ÜBER, the text über
        cfg.rule("umlaut", {"subject_regex": "^(re: )?ÜBER (sicherung|backup)"}, "delete")
        # would match the raw header (=?UTF-8?B?...) but not the decoded text
        cfg.rule("raw", {"subject_regex": "utf-8|\\?b\\?"}, "delete")
        self.once(cfg)
        left = set(im.uids())
        self.assertEqual(left, {by_key["no_umlaut"], by_key["raw_only"]},
                         {k: (u in left) for k, u in by_key.items()})  # fmt: skip
        self.assertEqual(im.seen(), set(), "a header fetch set \\Seen")

    def test_duplicate_by_message_id(self) -> None:
        msgs = [
            ordinary_mail(1, message_id="<a@x>"),          # same id, but does not match the rest of the rule
            report(1, "a1\n", message_id="<a@x>"),          # oldest matching copy of <a>: kept
            report(2, "b1\n", message_id="<b@x>"),          # oldest <b>: kept
            report(3, "a2\n", message_id="<a@x>"),          # duplicate
            report(4, "none\n", headers={"Message-ID": None}),  # no Message-ID: never a duplicate
            report(5, "none\n", headers={"Message-ID": None}),
            report(6, "b2\n", message_id="<b@x>"),          # duplicate
            report(7, "a3\n", message_id="<a@x>"),          # duplicate
        ]
        user, im, uids = self.setup_user(msgs)
        cfg = self.config()
        cfg.account("m", dovecot_account(self.dc, user))
        cfg.rule("dup-id", {"from": "backup@example.org", "duplicate": "message_id"}, "delete")
        r = self.once(cfg)
        self.assertEqual(im.uids(), [uids[0], uids[1], uids[2], uids[4], uids[5]])
        self.assertIn("  dup-id: delete 3", r.summary("m", "INBOX"))
        self.assertEqual(im.seen(), set())

    def test_duplicate_by_body(self) -> None:
        same = "report: all green\n"
        msgs = [
            report(1, same),                      # oldest copy: kept
            report(2, "report: all green!\n"),    # near-identical: kept
            report(3, same),                      # duplicate (other Message-ID, same body)
            ordinary_mail(4, body=same),          # same body, does not match the rest: kept
            report(5, same),                      # duplicate
        ]
        user, im, uids = self.setup_user(msgs)
        cfg = self.config()
        cfg.account("b", dovecot_account(self.dc, user))
        cfg.rule("dup-body", {"from": "backup@example.org", "duplicate": "body"}, "delete")
        self.once(cfg)
        self.assertEqual(im.uids(), [uids[0], uids[1], uids[3]])
        self.assertEqual(im.seen(), set())

    def test_keep_newest_by_uid(self) -> None:
        # Dates run backwards, so "newest" by date would pick the opposite end.
        now = datetime.now(timezone.utc)
        msgs = [report(i, f"run {i}\n", subject="Disk usage report", date=now - timedelta(days=i)) for i in range(6)]
        user, im, uids = self.setup_user([])
        for i, m in enumerate(msgs):
            uids.append(im.append("INBOX", m, date=now - timedelta(days=i)))
        keep = im.append("INBOX", ordinary_mail(9))
        cfg = self.config()
        cfg.account("k", dovecot_account(self.dc, user))
        cfg.rule("keep3", {"subject": "Disk usage report"}, "delete", keep_newest=3)
        r = self.once(cfg)
        self.assertEqual(im.uids(), uids[3:] + [keep])
        self.assertIn("  keep3: delete 3", r.summary("k", "INBOX"))

    def test_older_than_and_newer_than_by_internaldate(self) -> None:
        now = time.time()
        day = 86400
        user, im, _ = self.setup_user([])
        old_t = {
            "old_30d": now - 30 * day,
            "old_14d_plus": now - 14 * day - 120,     # just over 14 days: matches
            "old_14d_minus": now - 14 * day + 120,    # just under: kept
            "recent": now - 3600,
        }
        uid = {}
        for k, t in old_t.items():
            # the Date: header says the opposite of the INTERNALDATE: only the latter counts
            hdr_date = datetime.fromtimestamp(now - 40 * day if k == "recent" else now, timezone.utc)
            uid[k] = im.append("INBOX", report(0, k, subject=f"age {k}", message_id=f"<{k}@x>", date=hdr_date),
                               date=t)  # fmt: skip
        for k, t in {"new_1h": now - 3600, "new_3h": now - 3 * 3600, "new_3d": now - 3 * day}.items():
            uid[k] = im.append("INBOX", ordinary_mail(1, subject=f"fresh {k}", message_id=f"<{k}@x>"), date=t)
        cfg = self.config()
        cfg.account("t", dovecot_account(self.dc, user))
        cfg.rule("old", {"subject": "age ", "older_than": "14d"}, "delete")
        cfg.rule("young", {"subject": "fresh ", "newer_than": "2h"}, "delete")
        self.once(cfg)
        left = {k for k, u in uid.items() if u in set(im.uids())}
        self.assertEqual(left, {"old_14d_minus", "recent", "new_3h", "new_3d"})

    def test_any_and_not(self) -> None:
        msgs = {
            "alert": make_mail(from_="mon@example.org", subject="ALERT disk full", body="x\n"),
            "nagios": make_mail(from_="ops@example.org", subject="status", body="x\n",
                                headers={"X-Monitor": "nagios 4.4"}),  # fmt: skip
            "alert_flagged": make_mail(from_="mon@example.org", subject="ALERT cpu", body="x\n"),
            "other": make_mail(from_="ops@example.org", subject="status", body="x\n", headers={"X-Monitor": "zabbix"}),
            "person": ordinary_mail(2),
        }
        user, im, uids = self.setup_user(list(msgs.values()))
        uid = dict(zip(msgs, uids))
        im.set_flags("INBOX", [uid["alert_flagged"]], ["\\Flagged"])
        cfg = self.config()
        cfg.account("n", dovecot_account(self.dc, user))
        cfg.rule("noise", {"any": [{"subject": "ALERT"}, {"header": {"X-Monitor": "nagios"}}],
                           "not": {"flagged": True}}, "delete")  # fmt: skip
        self.once(cfg)
        left = {k for k, u in uid.items() if u in set(im.uids())}
        self.assertEqual(left, {"alert_flagged", "other", "person"})
        self.assertEqual(flags(im)[uid["alert_flagged"]], {"\\Flagged"})

    def test_client_side_keys_inside_any_and_not(self) -> None:
        msgs = {
            "nagios_subject": make_mail(from_="ops@example.org", subject="[Nagios] PROBLEM disk", body="x\n"),
            "alerts_from": make_mail(from_="alerts@example.org", subject="hello", body="x\n"),
            "plain_ops": make_mail(from_="ops@example.org", subject="lunch", body="x\n"),
            "ops_keep": make_mail(from_="ops@example.org", subject="[Nagios] keep this one", body="x\n"),
            "list_ok": make_mail(from_="news@lists.example.net", subject="digest", body="x\n",
                                 headers=[("List-Id", "<other.example.net>"), ("List-Id", "<news.lists.example.net>")]),
            "list_other": make_mail(from_="news@lists.example.net", subject="digest", body="x\n",
                                    headers={"List-Id": "<other.example.net>"}),
        }  # fmt: skip
        user, im, uids = self.setup_user(list(msgs.values()))
        uid = dict(zip(msgs, uids))
        cfg = self.config()
        cfg.account("cs", dovecot_account(self.dc, user))
        cfg.rule("mixed", {"any": [{"from": "alerts@example.org"}, {"subject_regex": "^\\[nagios\\] "}],
                           "not": {"subject_regex": "keep"}}, "delete")  # fmt: skip
        # one matching occurrence of a repeated field is enough
        cfg.rule("lists", {"header_regex": {"List-Id": "^<news\\.lists\\.example\\.net>$"}}, "delete")
        self.once(cfg)
        left = {k for k, u in uid.items() if u in set(im.uids())}
        self.assertEqual(left, {"plain_ops", "ops_keep", "list_other"})

    def test_larger_than_and_smaller_than(self) -> None:
        sizes = {"s5k": 5 * 1024, "s20k": 20 * 1024, "s50k": 50 * 1024}
        msgs = [cron_mail(i, body_size=n, subject=f"size {k}") for i, (k, n) in enumerate(sizes.items())]
        user, im, uids = self.setup_user(msgs)
        cfg = self.config()
        cfg.account("z", dovecot_account(self.dc, user))
        cfg.rule("mid", {"subject": "size ", "larger_than": "10k", "smaller_than": "30k"}, "delete")
        self.once(cfg)
        self.assertEqual(im.uids(), [uids[0], uids[2]])

    def test_seen_and_flagged(self) -> None:
        kinds = ["unseen", "seen", "seen_flagged", "flagged"]
        user, im, uids = self.setup_user([cron_mail(i) for i in range(len(kinds))])
        uid = dict(zip(kinds, uids))
        im.set_flags("INBOX", [uid["seen"], uid["seen_flagged"]], ["\\Seen"])
        im.set_flags("INBOX", [uid["seen_flagged"], uid["flagged"]], ["\\Flagged"])
        cfg = self.config()
        cfg.account("f", dovecot_account(self.dc, user))
        cfg.rule("read-cron", {**CRON, "seen": True, "flagged": False}, "delete")
        self.once(cfg)
        self.assertEqual(im.uids(), [uid["unseen"], uid["seen_flagged"], uid["flagged"]])
        # and nothing gained or lost a flag
        self.assertEqual(flags(im), {uid["unseen"]: set(), uid["seen_flagged"]: {"\\Seen", "\\Flagged"},
                                      uid["flagged"]: {"\\Flagged"}})  # fmt: skip

    def test_first_matching_rule_decides_and_flag_action(self) -> None:
        user, im, uids = self.setup_user([cron_mail(0), cron_mail(1, subject="Cron <root@host> keep me"),
                                          ordinary_mail(2)])  # fmt: skip
        im.set_flags("INBOX", [uids[1]], ["$Cron"])  # already has one of the flags
        cfg = self.config()
        cfg.account("o", dovecot_account(self.dc, user))
        cfg.rule("mark", {"subject": "keep me"}, {"flag": ["$Cron", "\\Flagged"]})
        cfg.rule("cron", CRON, "delete")
        r = self.once(cfg)
        self.assertEqual(im.uids(), [uids[1], uids[2]])
        self.assertEqual(flags(im), {uids[1]: {"$Cron", "\\Flagged"}, uids[2]: set()})
        self.assertIn("  mark: flag 1", r.summary("o", "INBOX"))

    def test_keep_newest_survivors_belong_to_their_rule(self) -> None:
        # The first matching rule decides: the reports it keeps are not left
        # for a later, broader rule to delete.
        reports = [cron_mail(i, subject="Disk usage report") for i in range(5)]
        user, im, uids = self.setup_user(reports + [cron_mail(9)])
        cfg = self.config()
        cfg.account("kn", dovecot_account(self.dc, user))
        cfg.rule("last-reports", {"subject": "Disk usage report"}, "trash", keep_newest=2)
        cfg.rule("cron", CRON, "delete")
        self.once(cfg)
        self.assertEqual(im.uids(), uids[3:5])
        self.assertEqual(len(im.uids("Trash")), 3)

    # -- 3. expunge modes --------------------------------------------------------
    def expunge_case(self, mode: str):  # type: ignore[no-untyped-def]
        user, im, uids = self.setup_user([cron_mail(0), ordinary_mail(1), cron_mail(2), ordinary_mail(3)])
        other_deleted = uids[1]
        im.set_flags("INBOX", [other_deleted], ["\\Deleted"])  # another client's mark; no rule matches it
        cfg = self.config()
        cfg.account("x", dovecot_account(self.dc, user, expunge=mode))
        cfg.rule("cron", CRON, "delete")
        self.once(cfg)
        return im, uids

    def test_expunge_uid_spares_other_clients_deleted_mail(self) -> None:
        im, uids = self.expunge_case("uid")
        self.assertEqual(im.uids(), [uids[1], uids[3]])
        self.assertEqual(flags(im), {uids[1]: {"\\Deleted"}, uids[3]: set()})

    def test_expunge_mailbox_removes_every_deleted_message(self) -> None:
        im, uids = self.expunge_case("mailbox")
        # documented meaning: a plain EXPUNGE also takes the other client's \Deleted mail
        self.assertEqual(im.uids(), [uids[3]])
        self.assertEqual(flags(im), {uids[3]: set()})

    def test_expunge_none_only_flags(self) -> None:
        im, uids = self.expunge_case("none")
        self.assertEqual(im.uids(), uids)
        self.assertEqual(flags(im), {uids[0]: {"\\Deleted"}, uids[1]: {"\\Deleted"}, uids[2]: {"\\Deleted"},
                                      uids[3]: set()})  # fmt: skip

    # -- 4. trash and move ----------------------------------------------------------
    def test_trash_via_special_use(self) -> None:
        cron = [cron_mail(i) for i in range(3)]
        user, im, uids = self.setup_user([cron[0], ordinary_mail(0), cron[1], cron[2]])
        self.assertEqual(im.special_use("\\Trash"), "Trash")
        cfg = self.config()
        cfg.account("t", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, "trash")
        r = self.once(cfg)
        self.assertEqual(im.uids(), [uids[1]])
        trash = {h["message-id"]: uid for uid, h in im.headers("Trash").items()}
        self.assertEqual(set(trash), {f"<cron-{i}@host.imapsweep.test>" for i in range(3)})
        for i in range(3):  # intact: the very same octets
            self.assertEqual(im.message("Trash", trash[f"<cron-{i}@host.imapsweep.test>"]), cron[i])
        self.assertEqual(im.seen("Trash"), set())
        self.assertIn("  cron: trash 3", r.summary("t", "INBOX"))

    def test_move_to_named_and_to_new_mailbox(self) -> None:
        msgs = [report(1, "a\n", subject="to archive 1"), report(2, "b\n", subject="to new 1"), ordinary_mail(3),
                report(4, "c\n", subject="to archive 2"), report(5, "d\n", subject="to new 2")]  # fmt: skip
        user, im, uids = self.setup_user(msgs)
        self.assertNotIn("Reports/2024", [n for _, n in im.list()])
        cfg = self.config()
        cfg.account("v", dovecot_account(self.dc, user))
        cfg.rule("archive", {"subject": "to archive"}, {"move": "Archive"})
        cfg.rule("new", {"subject": "to new"}, {"move": "Reports/2024", "create": True})
        self.once(cfg)
        self.assertEqual(im.uids(), [uids[2]])
        self.assertIn("Reports/2024", [n for _, n in im.list()])
        self.assertEqual(message_ids(im, "Archive"), {"<report-1@example.org>", "<report-4@example.org>"})
        self.assertEqual(message_ids(im, "Reports/2024"), {"<report-2@example.org>", "<report-5@example.org>"})
        got = {h["message-id"]: u for u, h in im.headers("Reports/2024").items()}
        self.assertEqual(im.message("Reports/2024", got["<report-5@example.org>"]), msgs[4])

    # -- 9. dry run leaves Dovecot untouched -------------------------------------------
    def snapshot(self, im) -> dict:  # type: ignore[no-untyped-def]
        return {
            "mailboxes": sorted(n for _, n in im.list()),
            **{mb: flags(im, mb) for mb in ("INBOX", "Trash", "Archive")},
        }

    def test_dry_run_leaves_mailboxes_unchanged(self) -> None:
        variants = {  # (command line, daemon settings, rule settings)
            "--dry-run": (("--dry-run",), {}, {}),
            "daemon dry_run": ((), {"dry_run": True}, {}),
            "rule dry_run": ((), {}, {"dry_run": True}),
        }
        for name, (args, daemon, rule_extra) in variants.items():
            with self.subTest(variant=name):
                msgs = [cron_mail(0), ordinary_mail(1), cron_mail(2), report(3, "x\n", subject="to new"),
                        cron_mail(4, subject="trash me")]  # fmt: skip
                user, im, uids = self.setup_user(msgs)
                before = self.snapshot(im)
                cfg = self.config(daemon=daemon)
                cfg.account("dry", dovecot_account(self.dc, user))
                cfg.rule("trash", {"subject": "trash me"}, "trash", **rule_extra)
                cfg.rule("cron", CRON, "delete", **rule_extra)
                cfg.rule("new", {"subject": "to new"}, {"move": "Brand/New", "create": True}, **rule_extra)
                r = self.once(cfg, *args)
                self.assertEqual(self.snapshot(im), before)
                summary = r.summary("dry", "INBOX")
                self.assertIn("  cron: would delete 2", summary)
                self.assertIn("  trash: would trash 1", summary)
                self.assertIn("  new: would move 1", summary)
                for mid in ("<cron-0@host.imapsweep.test>", "<cron-2@host.imapsweep.test>"):
                    self.assertRegex(r.stderr, rf'dry/INBOX: cron: would delete uid \d+ message-id "{re.escape(mid)}"')
                self.assertRegex(r.stderr, r'dry/INBOX: new: would create mailbox "Brand/New"')


ACTION_RE = re.compile(r"^(UID )?(STORE|MOVE|COPY|EXPUNGE)\b|^CREATE\b|^APPEND\b|^DELETE\b|^RENAME\b", re.I)


class FakeServerTest(unittest.TestCase):
    """Against the scripted server, whose transcript shows exactly what was
    sent: fallbacks for servers without MOVE or WITHIN, and dry runs."""

    def run_fake(self, cfg: SweepConfig):  # type: ignore[no-untyped-def]
        r = run_once(cfg, valgrind=True)
        self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr[-3000:]}")
        return r

    def test_trash_without_move_is_copy_store_uid_expunge(self) -> None:
        post = ["IMAP4rev1", "IDLE", "UIDPLUS", "ESEARCH", "SPECIAL-USE", "LITERAL+", "NAMESPACE"]
        scenario = {
            "capabilities": {"post": post},
            "mailboxes": {
                "INBOX": {"messages": [
                    {"from": "Cron Daemon <root@h>", "subject": "c1", "body": "1\n", "message_id": "<c1@h>"},
                    {"from": "Alice <a@example.org>", "subject": "hi", "body": "hi\n", "message_id": "<m1@x>"},
                    {"from": "Cron Daemon <root@h>", "subject": "c2", "body": "2\n", "message_id": "<c2@h>"},
                    {"from": "Bob <b@example.org>", "subject": "yo", "body": "yo\n", "message_id": "<m2@x>",
                     "flags": ["\\Deleted"]},
                ]},
                "Bin": {"special_use": "\\Trash"},
            },
        }
        with FakeImap(scenario) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("cron", CRON, "trash")
            self.run_fake(cfg)
            state = srv.state()["mailboxes"]
            self.assertEqual([m["message_id"] for m in state["INBOX"]["messages"]], ["<m1@x>", "<m2@x>"])
            self.assertEqual(sorted(m["message_id"] for m in state["Bin"]["messages"]), ["<c1@h>", "<c2@h>"])
            cmds = srv.client_commands()
            self.assertFalse([c for c in cmds if re.match(r"(UID )?MOVE", c)], cmds)
            self.assertTrue([c for c in cmds if re.fullmatch(r'UID COPY 1,3 "?Bin"?', c)], cmds)
            self.assertIn("UID STORE 1,3 +FLAGS.SILENT (\\Deleted)", cmds)
            self.assertIn("UID EXPUNGE 1,3", cmds)
            self.assertNotIn("EXPUNGE", cmds)  # never a plain EXPUNGE with expunge: uid

    def test_failed_copy_never_leads_to_deleted(self) -> None:
        # no MOVE: a move is COPY + STORE \Deleted + UID EXPUNGE.  The target
        # does not exist and cannot be created: nothing may be flagged.
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        mix["capabilities"] = {"post": ["IMAP4rev1", "IDLE", "UIDPLUS", "ESEARCH", "SPECIAL-USE", "LITERAL+"]}
        mix["events"] = [{"command": "^CREATE", "action": "reply", "response": "NO [NOPERM] not here",
                          "times": -1}]  # fmt: skip
        before = {m["uid"]: sorted(m.get("flags", [])) for m in mix["mailboxes"]["INBOX"]["messages"]}
        with FakeImap(mix) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("cron", CRON, {"move": "Cron/Archive", "create": True})
            r = run_once(cfg, valgrind=True)
            cmds = srv.client_commands()
            self.assertTrue([c for c in cmds if c.startswith("UID COPY 1,3,5,7 ")], cmds)
            self.assertTrue([c for c in cmds if c.startswith("CREATE ")], cmds)
            self.assertFalse([c for c in cmds if re.match(r"(UID )?(STORE|EXPUNGE)\b|EXPUNGE", c)], cmds)
            self.assertEqual({m["uid"]: sorted(set(m["flags"]) - {"\\Recent"}) for m in srv.messages()}, before)
            self.assertRegex(r.stderr, r'"Cron/Archive" does not exist and could not be created')
            # a refused action fails the run: cron users go by the status
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertRegex(r.stdout, r'f/INBOX: failed: rule cron: target mailbox "Cron/Archive" does not exist '
                                       r"and could not be created")

    def test_dry_run_sends_no_action(self) -> None:
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        before = {m["uid"]: (m["message_id"], sorted(m.get("flags", [])))
                  for m in mix["mailboxes"]["INBOX"]["messages"]}  # fmt: skip
        cron_ids = {"<cron-1@host>", "<cron-3@host>", "<cron-5@host>", "<cron-7@host>"}
        # (command line, daemon settings, every rule's own dry_run or None)
        variants = {
            "--dry-run": (["--dry-run"], {}, None),
            "daemon dry_run": ([], {"dry_run": True}, None),
            "rule dry_run": ([], {}, True),
            "--dry-run beats rule dry_run false": (["--dry-run"], {}, False),
        }
        for name, (args, daemon, rule_dry) in variants.items():
            with self.subTest(variant=name), FakeImap(mix) as srv:
                cfg = SweepConfig(daemon=daemon)
                self.addCleanup(cfg.cleanup)
                cfg.account("f", fake_account(srv.port))
                extra = {} if rule_dry is None else {"dry_run": rule_dry}
                cfg.rule("cron", CRON, "delete", **extra)
                cfg.rule("alice", {"from": "alice@example.org"}, "trash", **extra)
                cfg.rule("bob", {"from": "bob@example.net"}, {"move": "New/Box", "create": True}, **extra)
                cfg.rule("dan", {"from": "dan@example.org"}, {"flag": "\\Flagged"}, **extra)
                r = run_once(cfg, *args, valgrind=True)
                self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr[-3000:]}")
                cmds = srv.client_commands()
                self.assertFalse([c for c in cmds if ACTION_RE.match(c)], cmds)
                st = srv.state()["mailboxes"]
                self.assertEqual(sorted(st), ["Archive", "INBOX", "Trash"])
                self.assertEqual({m["uid"]: (m["message_id"], sorted(set(m["flags"]) - {"\\Recent"}))
                                  for m in st["INBOX"]["messages"]}, before)  # fmt: skip
                logged = set(re.findall(r'f/INBOX: cron: would delete uid \d+ message-id "(<[^"]+>)"', r.stderr))
                self.assertEqual(logged, cron_ids)
                self.assertRegex(r.stderr, r'f/INBOX: alice: would trash uid 2 message-id "<mail-2@example.org>"')
                self.assertRegex(r.stderr, r'f/INBOX: bob: would create mailbox "New/Box"')
                self.assertRegex(r.stderr, r'f/INBOX: bob: would move uid 4 message-id "<mail-4@example.net>"')
                self.assertRegex(r.stderr, r'f/INBOX: dan: would flag uid 8 message-id "<mail-8@example.org>"')
                self.assertIn("  cron: would delete 4", r.summary("f", "INBOX"))

    def test_rule_dry_run_false_overrides_daemon_dry_run(self) -> None:
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        with FakeImap(mix) as srv:
            cfg = SweepConfig(daemon={"dry_run": True})
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("cron", CRON, "delete", dry_run=False)
            cfg.rule("alice", {"from": "alice@example.org"}, "trash")
            r = run_once(cfg, valgrind=True)
            self.assertEqual(r.returncode, 0, f"{r.stdout}\n{r.stderr[-3000:]}")
            self.assertEqual(srv.uids(), [2, 4, 6, 8])
            self.assertEqual(srv.uids("Trash"), [])
            self.assertEqual(r.summary("f", "INBOX")[1:], ["  cron: delete 4", "  alice: would trash 1"])
            cmds = [c for c in srv.client_commands() if ACTION_RE.match(c)]
            self.assertEqual(cmds, ["UID STORE 1,3,5,7 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 1,3,5,7"])

    def test_older_than_without_within(self) -> None:
        post = ["IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "ESEARCH", "LITERAL+"]
        day = 86400
        ages = {"a30d": 30 * day, "a14d_plus": 14 * day + 120, "a14d_minus": 14 * day - 120, "a1h": 3600}
        scenario = {
            "capabilities": {"post": post},
            "mailboxes": {"INBOX": {"messages": [
                {"from": "alerts@example.org", "subject": k, "body": "x\n", "message_id": f"<{k}@x>", "age": a}
                for k, a in ages.items()
            ]}},
        }
        with FakeImap(scenario) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("w", fake_account(srv.port))
            cfg.rule("old", {"from": "alerts@example.org", "older_than": "14d"}, "delete")
            self.run_fake(cfg)
            left = [m["message_id"] for m in srv.messages()]
            self.assertEqual(left, ["<a14d_minus@x>", "<a1h@x>"])
            searches = [c for c in srv.client_commands() if c.startswith("UID SEARCH")]
            self.assertTrue(searches and not any("OLDER" in c for c in searches), searches)


class ContinuousTest(DovecotCase):
    """The daemon running: IDLE, UIDVALIDITY changes, a Dovecot restart."""

    users = 6

    def test_idle_removes_cron_mail_on_arrival(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        cfg = self.config()
        cfg.account("live", dovecot_account(self.dc, user, tls="implicit"))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        latencies, kept = [], []
        for i in range(12):
            t0 = time.monotonic()
            uid = im.append("INBOX", cron_mail(i))
            if i % 3 == 0:
                kept.append(im.append("INBOX", ordinary_mail(i)))
            wait_for(lambda: uid not in im.uids(), 5, what=f"cron mail {i} (UID {uid}) removed")
            latencies.append(time.monotonic() - t0)
        print(f"APPEND -> gone over {len(latencies)} cron mails: p50 {statistics.median(latencies) * 1000:.0f} ms,"
              f" max {max(latencies) * 1000:.0f} ms")  # fmt: skip
        self.assertEqual(im.uids(), kept)
        # a burst: new mail arriving during a sweep is picked up by the next one
        burst = []
        for i in range(20):
            burst.append(im.append("INBOX", cron_mail(100 + i)))
            if i % 4 == 0:
                kept.append(im.append("INBOX", ordinary_mail(100 + i)))
        wait_for(lambda: im.uids() == kept, 10, what="a burst of 20 cron mails removed")
        self.assertEqual(im.seen(), set())
        d.wait_watcher("live", "INBOX", lambda w: w["actions"].get("cron", {}).get("delete") == 32,
                       what="32 deletions counted")  # fmt: skip
        self.assertTrue(d.running())

    def test_full_sweep_catches_mail_that_ages(self) -> None:
        # older_than is decided at each sweep: mail too young on arrival is
        # caught by the next full sweep (every full_sweep_interval) once old
        user = self.take_user()
        im = self.oracle(user)
        cfg = self.config(defaults={"full_sweep_interval": "2s"})
        cfg.account("age", dovecot_account(self.dc, user))
        cfg.rule("stale", {"subject": "status report", "older_than": "4s"}, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        t0 = time.time()
        uid = im.append("INBOX", report(1, "x\n", subject="status report"), date=t0 - 1)
        keep = im.append("INBOX", report(2, "x\n", subject="other report"), date=t0 - 3600)
        d.wait_watcher("age", "INBOX", lambda w: w["uid_swept"] >= keep, what="the new mail swept")
        self.assertIn(uid, im.uids(), "deleted while younger than 4s")
        wait_for(lambda: uid not in im.uids(), 10, what="aged mail removed by a full sweep")
        took = time.time() - t0
        print(f"removed {took:.1f}s after arrival (INTERNALDATE 1s before; older_than 4s, full sweeps every 2s)")
        self.assertGreaterEqual(took, 4 - 1 - 1)  # to the second: never before it was 4s old
        self.assertEqual(im.uids(), [keep])

    def test_incremental_sweep_keeps_first_match_order(self) -> None:
        # Junk: mail from the boss is flagged by the first rule; everything
        # else is purged but for the 2 newest.  New mail starts incremental
        # sweeps, in which the purge rule (keep_newest) looks at the whole
        # mailbox: it must still leave the boss's mail to the first rule.
        user = self.take_user()
        im = self.oracle(user)
        boss = im.append("Junk", make_mail(from_="Boss <boss@example.org>", subject="really not spam", body="b\n"))
        spam = [im.append("Junk", ordinary_mail(i, subject=f"spam {i}")) for i in range(3)]
        cfg = self.config()
        cfg.account("j", dovecot_account(self.dc, user, mailboxes=["Junk"]))
        cfg.rule("boss", {"from": "boss@example.org"}, {"flag": "\\Flagged"})
        cfg.rule("purge-junk", {"all": True}, "delete", keep_newest=2, mailboxes=["Junk"])
        d = self.daemon(cfg)
        d.wait_ready()
        # the full sweep: boss flagged, the oldest spam purged
        self.assertEqual(im.uids("Junk"), [boss] + spam[1:])
        newest = spam[1:]
        for i in range(3, 6):
            new = im.append("Junk", ordinary_mail(i, subject=f"spam {i}"))
            d.wait_watcher("j", "Junk", lambda w: w["uid_swept"] >= new and w["state"] == "idle",
                           what=f"spam {i} (UID {new}) swept")  # fmt: skip
            newest = newest[1:] + [new]
            self.assertEqual(im.uids("Junk"), [boss] + newest, f"after spam {i} arrived (boss is UID {boss})")
        self.assertEqual(flags(im, "Junk")[boss], {"\\Flagged"})

    def test_uidvalidity_change_while_idle(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        im.create_mailbox("Cron")
        cfg = self.config()
        cfg.account("u", dovecot_account(self.dc, user, mailboxes=["Cron"]))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        old = [im.append("Cron", cron_mail(i)) for i in range(3)]
        old.append(im.append("Cron", ordinary_mail(0)))
        self.assertEqual(old, [1, 2, 3, 4])
        wait_for(lambda: im.uids("Cron") == [4], 5, what="old cron mail removed")
        d.wait_watcher("u", "Cron", lambda w: w["uid_swept"] == 4 and w["state"] == "idle", what="swept to UID 4")
        validity = im.uidvalidity("Cron")
        mark = d.mark()
        # Delete and re-create the mailbox: UIDs start again at 1, and
        # Dovecot answers the daemon's IDLE with "* NO".  (Dovecot 2.3.19
        # then rebuilds the new mailbox's index under the feet of the session
        # that created it, whose next APPEND fails with [SERVERBUG]: so the
        # mail is appended by a fresh session once the daemon selected again.)
        im.delete_mailbox("Cron")
        im.create_mailbox("Cron")
        new_validity = im.uidvalidity("Cron")
        self.assertNotEqual(validity, new_validity)
        d.wait_watcher("u", "Cron", lambda w: w["uidvalidity"] == new_validity and w["state"] == "idle", 15,
                       what="re-selected under the new UIDVALIDITY")  # fmt: skip
        im.logout()
        im = self.oracle(user)
        kept = [im.append("Cron", ordinary_mail(10 + i)) for i in range(3)]
        self.assertEqual(kept, [1, 2, 3])  # the UIDs the old cron mails had
        # UID 4 is at or below the old uid_swept: an incremental sweep from a
        # stale high-water mark would never look at it
        late = im.append("Cron", cron_mail(99))
        self.assertEqual(late, 4)
        wait_for(lambda: late not in im.uids("Cron"), 5, what="cron mail after the UIDVALIDITY change removed")
        self.assertEqual(im.uids("Cron"), kept)
        self.assertEqual(message_ids(im, "Cron"), {f"<mail-{10 + i}@imapsweep.test>" for i in range(3)})
        self.assertEqual(im.seen("Cron"), set())
        print("daemon log after the change:\n" + d.text()[mark:][-1500:])

    def test_dovecot_restart(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        cfg = self.config()
        cfg.account("rs", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        first = im.append("INBOX", cron_mail(1))
        wait_for(lambda: first not in im.uids(), 5, what="cron mail removed before the restart")
        im.logout()
        self.dc.restart()
        d.wait_watcher("rs", "INBOX", lambda w: w["reconnects"] >= 1 and w["state"] == "idle", 15,
                       what="reconnected and idle")  # fmt: skip
        im2 = self.oracle(user)
        kept = im2.append("INBOX", ordinary_mail(2))
        late = im2.append("INBOX", cron_mail(3))
        wait_for(lambda: late not in im2.uids(), 5, what="cron mail after the restart removed")
        self.assertEqual(im2.uids(), [kept])
        self.assertEqual(im2.seen(), set())


if __name__ == "__main__":
    unittest.main()
