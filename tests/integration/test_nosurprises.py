# SPDX-License-Identifier: MIT
"""No surprises (issue 13): a configuration mistake must never touch the
wrong mail.  Against Dovecot (checked with the independent oracle) and the
scripted server (whose transcript shows every command sent):

- a missing move target is not created without ``create: true``;
- a dry run opens its mailboxes with EXAMINE, never SELECT;
- the journal tells previews (ACTION=would_delete, DRY_RUN=1) from
  deletions, with the message's Message-ID, From and Subject as fields.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import binary  # noqa: E402
from harness.daemon import dovecot_sessions  # noqa: E402
from harness.fakeimap import SCENARIOS, FakeImap  # noqa: E402
from harness.mail import cron_mail, make_mail, ordinary_mail  # noqa: E402
from harness.sweepd import DovecotCase, SweepConfig, Sweepd, dovecot_account, fake_account, run_once  # noqa: E402
from harness.wait import Proc, tmp_root, wait_for  # noqa: E402

CRON = {"from": "Cron Daemon"}


def selects(commands: list[str]) -> list[str]:
    """The SELECT and EXAMINE commands of a transcript, in order."""
    return [c for c in commands if re.match(r"(SELECT|EXAMINE) ", c)]


# ---------------------------------------------------------------------------
class MissingTargetTest(DovecotCase):
    """A typo in a move target must not make a new folder for mail to vanish
    into: without ``create: true`` the action fails and the mail stays."""

    users = 4

    def test_no_create_without_create_true(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        uids = [im.append("INBOX", m) for m in (cron_mail(1), ordinary_mail(2), cron_mail(3))]
        before = sorted(n for _, n in im.list())
        cfg = self.config()
        cfg.account("w", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, {"move": "Archiv/Cron"})  # meant: Archive
        r = run_once(cfg, valgrind=True)
        # the action failed visibly: exit status, summary, log line
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr[-2000:])
        reason = ('target mailbox "Archiv/Cron" does not exist: nothing moved '
                  "(add create: true to the action to have it created)")  # fmt: skip
        self.assertIn(f"w/INBOX: failed: rule cron: {reason}", r.stdout)
        self.assertIn(f"w/INBOX: cron: {reason}", r.stderr)
        # and nothing happened: no new mailbox, every message where it was
        self.assertEqual(sorted(n for _, n in im.list()), before)
        self.assertEqual(im.uids("INBOX"), uids)
        self.assertEqual({u: f - {"\\Recent"} for u, f in im.flags("INBOX").items()}, {u: set() for u in uids})

    def test_create_true_creates_and_dry_run_says_so(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        uids = [im.append("INBOX", m) for m in (cron_mail(1), ordinary_mail(0))]  # Alice
        cfg = self.config()
        cfg.account("w", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, {"move": "Reports/Cron", "create": True})
        cfg.rule("typo", {"from": "alice@example.org"}, {"move": "Archiv"})
        # a preview says what would happen to each target, and changes nothing
        r = run_once(cfg, "--dry-run", valgrind=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr[-2000:])
        self.assertIn('w/INBOX: cron: would create mailbox "Reports/Cron"', r.stderr)
        self.assertRegex(r.stderr, r'w/INBOX: cron: would move uid \d+ message-id "<cron-1@')
        self.assertIn('w/INBOX: typo: target mailbox "Archiv" does not exist: the move would fail '
                      "(add create: true to the action to have it created)", r.stderr)  # fmt: skip
        self.assertNotIn("Reports/Cron", [n for _, n in im.list()])
        self.assertEqual(im.uids("INBOX"), uids)
        # for real: the target is created, the typo's mail stays
        r = run_once(cfg, valgrind=True)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("Reports/Cron", [n for _, n in im.list()])
        self.assertNotIn("Archiv", [n for _, n in im.list()])
        self.assertEqual(im.uids("INBOX"), [uids[1]])
        self.assertEqual(len(im.uids("Reports/Cron")), 1)


# ---------------------------------------------------------------------------
class DryRunExamineTest(unittest.TestCase):
    """A preview must not touch the mailbox: when every rule that applies is
    a dry run the mailbox is opened with EXAMINE (read-only)."""

    def run_variant(self, args: tuple[str, ...], daemon: dict, rules: list[dict]) -> list[str]:
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        with FakeImap(mix) as srv:
            cfg = SweepConfig(daemon=daemon)
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port, mailboxes=["INBOX", "Archive"]))
            for r in rules:
                cfg.rules.append(r)
            res = run_once(cfg, *args, valgrind=False)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr[-2000:])
            return selects(srv.client_commands())

    def test_every_rule_dry_examines(self) -> None:
        cron = {"name": "cron", "match": CRON, "action": "delete"}
        alice = {"name": "alice", "match": {"from": "alice@example.org"}, "action": "trash"}
        dry = {"dry_run": True}
        inbox_only = {"mailboxes": ["INBOX"]}
        variants = {
            "--dry-run": (("--dry-run",), {}, [cron, alice]),
            "daemon dry_run": ((), {"dry_run": True}, [cron, alice]),
            "every rule dry_run": ((), {}, [{**cron, **dry}, {**alice, **dry}]),
        }
        for name, (args, daemon, rules) in variants.items():
            with self.subTest(variant=name):
                self.assertEqual(sorted(self.run_variant(args, daemon, rules)), ["EXAMINE Archive", "EXAMINE INBOX"])
        # one rule acts in INBOX: SELECT there; Archive has only the preview
        with self.subTest(variant="one rule acts"):
            got = self.run_variant((), {}, [{**cron, **inbox_only}, {**alice, **dry}])
            self.assertEqual(sorted(got), ["EXAMINE Archive", "SELECT INBOX"])


    def test_reload_from_preview_to_acting_selects(self) -> None:
        """A reload that turns the preview into a real rule opens the mailbox
        again, now with SELECT, and acts; and back to EXAMINE."""
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        with FakeImap(mix) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("cron", CRON, "delete", dry_run=True)
            d = Sweepd(cfg)
            self.addCleanup(d.__exit__, None, None, None)
            d.wait_ready()
            self.assertEqual(selects(srv.client_commands()), ["EXAMINE INBOX"])
            self.assertEqual(srv.uids(), list(range(1, 9)))
            for dry, want, gone in ((False, "SELECT INBOX", True), (True, "EXAMINE INBOX", True)):
                cfg.rules[0]["dry_run"] = dry
                cfg.write()
                mark = d.mark()
                d.signal(signal.SIGHUP)
                d.wait_for_log(r"reloaded \(generation \d\)", since=mark)
                wait_for(lambda w=want: selects(srv.client_commands())[-1] == w, 10, what=want)
                d.wait_ready()
                if gone:
                    wait_for(lambda: srv.uids() == [2, 4, 6, 8], 10, what="the cron mail deleted")


class DryRunRecentTest(DovecotCase):
    """The same seen from Dovecot: \\Recent goes to the first session that
    SELECTs; after a dry run the oracle (which only EXAMINEs) still sees it."""

    users = 2

    def test_dry_run_leaves_recent(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        uids = [im.append("INBOX", m) for m in (cron_mail(1), ordinary_mail(2))]
        self.assertEqual({u: f for u, f in im.flags().items()}, {u: {"\\Recent"} for u in uids})
        cfg = self.config()
        cfg.account("d", dovecot_account(self.dc, user))
        cfg.rule("cron", CRON, "delete", dry_run=True)
        r = run_once(cfg)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("  cron: would delete 1", r.summary("d", "INBOX"))
        self.assertEqual(im.flags(), {u: {"\\Recent"} for u in uids})
        # the same rule for real SELECTs (and deletes): \Recent is claimed
        cfg.rules[0].pop("dry_run")
        r = run_once(cfg)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(im.flags(), {uids[1]: set()})


# ---------------------------------------------------------------------------
def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("imapsweepctl")), *args], capture_output=True, text=True, timeout=60)


ACTION_RE = re.compile(r"^(UID )?(STORE|MOVE|COPY|EXPUNGE)\b|^(CREATE|DELETE|RENAME|APPEND|SELECT)\b", re.I)
BACKUP = make_mail(from_="Backup <backup@example.org>", subject="Nightly backup 3 errors", body="3 errors\n",
                   message_id="<nightly-3@example.org>")  # fmt: skip


class ExplainTest(DovecotCase):
    """"Why was this deleted?" / "why does my rule never match?": which rule
    matches a message first and, for each rule before it, which part did
    not; read-only."""

    users = 4

    def rules(self, cfg: SweepConfig) -> None:
        cfg.rule("backups", {"from": "backup@example.org", "subject_regex": r"^nightly backup \d+ errors$",
                             "older_than": "14d"}, "delete")  # fmt: skip
        cfg.rule("cron", CRON, "delete")

    def test_explain_through_the_daemon(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        cron, backup, mail = (im.append("INBOX", m) for m in (cron_mail(1), BACKUP, ordinary_mail(0)))
        # a preview daemon: nothing may go while we ask
        cfg = self.config(daemon={"dry_run": True})
        cfg.account("w", dovecot_account(self.dc, user))
        self.rules(cfg)
        d = self.daemon(cfg)
        d.wait_ready()
        sock = str(cfg.socket)

        # the cron message: rule backups fails on every part, cron matches
        r = ctl("-s", sock, "--json", "explain", "w", "INBOX", str(cron))
        self.assertEqual(r.returncode, 0, r.stderr)
        x = json.loads(r.stdout)["explain"]
        self.assertEqual((x["found"], x["uid"], x["watched"]), (True, cron, True))
        self.assertEqual(x["message_id"], "<cron-1@host.imapsweep.test>")
        self.assertEqual([(ru["name"], ru["matches"]) for ru in x["rules"]], [("backups", False), ("cron", True)])
        self.assertEqual([(p["text"], p["server"], p["holds"]) for p in x["rules"][0]["parts"]], [
            ('whose From contains "backup@example.org"', True, False),
            (r"whose Subject matches /^nightly backup \d+ errors$/", False, False),
            ("older than 14d", True, False),
        ])  # fmt: skip
        self.assertEqual((x["verdict_rule"], x["acts"]), ("cron", True))
        self.assertIn("rule cron would delete it, but only previews (dry run)", x["verdict"])
        # the same for people
        r = ctl("-s", sock, "explain", "w", "INBOX", str(cron))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"w/INBOX UID {cron} (UIDVALIDITY ", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^rule cron: delete messages whose From contains \"Cron Daemon\" "
                                   r"\[dry run: only logged\]$")  # fmt: skip
        self.assertRegex(r.stdout, r'(?m)^  yes  whose From contains "Cron Daemon"  \[server\]$')
        self.assertRegex(r.stdout, r"(?m)^verdict: rule cron would delete it, but only previews")

        # "why does my rule never match?": two parts hold, the age does not
        r = ctl("-s", sock, "--json", "explain", "w", "INBOX", str(backup))
        self.assertEqual(r.returncode, 0, r.stderr)
        x = json.loads(r.stdout)["explain"]
        self.assertEqual([p["holds"] for p in x["rules"][0]["parts"]], [True, True, False])
        self.assertEqual([ru["matches"] for ru in x["rules"]], [False, False])
        self.assertEqual((x["verdict_rule"], x["acts"]), (None, False))
        self.assertEqual(x["verdict"], "no rule matches it: it is left alone")
        self.assertEqual(x["later_rules"], 0)

        # no such message; unknown account; not a UID
        r = ctl("-s", sock, "explain", "w", "INBOX", "999")
        self.assertEqual(r.returncode, 1)
        self.assertIn("INBOX has no message with UID 999", r.stdout)
        r = ctl("-s", sock, "explain", "nosuch", "INBOX", str(cron))
        self.assertEqual((r.returncode, r.stderr), (1, 'imapsweepctl: no account "nosuch"\n'))
        r = ctl("-s", sock, "explain", "w", "INBOX", "12x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a UID", r.stderr)
        r = ctl("-s", sock, "explain", "w", "INBOX")
        self.assertEqual(r.returncode, 64)

        # replies stay in order when requests are pipelined behind one
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(sock)
            c.sendall(f"explain w INBOX {mail}\nversion\nexplain w INBOX {cron}\n".encode())
            buf = b""
            while buf.count(b"\n") < 3:
                chunk = c.recv(65536)
                self.assertTrue(chunk, buf)
                buf += chunk
        replies = [json.loads(line) for line in buf.decode().splitlines()]
        self.assertEqual(replies[0]["explain"]["uid"], mail)
        self.assertIn("version", replies[1])
        self.assertEqual(replies[2]["explain"]["verdict_rule"], "cron")

        # read-only: every message there, and \Recent not even claimed
        self.assertEqual(im.uids("INBOX"), [cron, backup, mail])
        self.assertEqual(im.flags("INBOX"), {u: {"\\Recent"} for u in (cron, backup, mail)})

    def test_explain_without_a_daemon(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        cron, backup = (im.append("INBOX", m) for m in (cron_mail(1), BACKUP))
        cfg = self.config()
        cfg.account("w", dovecot_account(self.dc, user))
        self.rules(cfg)
        cfg.write()
        r = subprocess.run([str(binary("imapsweepd")), "-c", str(cfg.path), "--explain", "w", "INBOX", str(cron)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("verdict: rule cron deletes it (the first rule that matches)", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^  no   older than 14d  \[server\]$")
        r = subprocess.run([str(binary("imapsweepd")), "-c", str(cfg.path), "--explain", "w", "INBOX", str(backup)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^  yes  whose Subject matches /\^nightly backup \\d\+ errors\$/  \[client\]$")
        self.assertIn("verdict: no rule matches it: it is left alone", r.stdout)
        # it said "deletes", and deleted nothing
        self.assertEqual(im.uids("INBOX"), [cron, backup])
        self.assertEqual(im.flags("INBOX"), {cron: {"\\Recent"}, backup: {"\\Recent"}})
        # usage and unknown accounts
        for args, rc in ((["--explain", "w", "INBOX"], 64), (["--explain", "x", "INBOX", "1"], 64),
                         (["--explain", "w", "INBOX", "0"], 64)):  # fmt: skip
            r = subprocess.run([str(binary("imapsweepd")), "-c", str(cfg.path), *args], capture_output=True, text=True)
            self.assertEqual(r.returncode, rc, (args, r.stderr))


class ExplainReadOnlyTest(unittest.TestCase):
    """The transcript of an explanation: EXAMINE, BODY.PEEK, SEARCH; never
    SELECT, STORE, COPY, MOVE, EXPUNGE."""

    def test_transcript_is_read_only(self) -> None:
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        with FakeImap(mix) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("dups", {"from": "Cron Daemon", "duplicate": "body"}, "delete")
            cfg.rule("keep2", {"from": "Cron Daemon"}, "trash", keep_newest=2)
            cfg.rule("digest", {"body_md5": "0" * 32, "subject_regex": "x"}, "delete")
            cfg.rule("alice", {"from": "alice@example.org"}, {"move": "Archive"})
            cfg.write()
            r = subprocess.run([str(binary("imapsweepd")), "-c", str(cfg.path), "--explain", "f", "INBOX", "1"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # the oldest cron mail is no duplicate; keep2 trashes it (two are newer)
            self.assertIn("verdict: rule keep2 moves it to the Trash", r.stdout)
            cmds = srv.client_commands()
            self.assertIn("EXAMINE INBOX", cmds)
            self.assertFalse([c for c in cmds if ACTION_RE.match(c)], cmds)
            fetches = [c for c in cmds if re.match(r"UID FETCH", c)]
            self.assertTrue(fetches)
            self.assertFalse([c for c in fetches if re.search(r"BODY\[", c)], fetches)  # only BODY.PEEK[
            st = srv.state()
            self.assertEqual(len(st["mailboxes"]["INBOX"]["messages"]), 8)
            self.assertEqual(st["mailboxes"]["Trash"]["messages"], [])


    def test_stop_while_explaining(self) -> None:
        """SIGTERM while an explanation waits on the server: its client is
        told, the daemon still stops cleanly."""
        mix = json.loads((SCENARIOS / "cron_mix.json").read_text())
        mix["events"] = [{"command": "^EXAMINE", "action": "stall", "times": -1}]
        with FakeImap(mix) as srv:
            cfg = SweepConfig()
            self.addCleanup(cfg.cleanup)
            cfg.account("f", fake_account(srv.port))
            cfg.rule("alice", {"from": "alice@example.org"}, "delete", dry_run=False)
            d = Sweepd(cfg)
            self.addCleanup(d.__exit__, None, None, None)
            d.wait_ready()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(30)
                c.connect(str(cfg.socket))
                c.sendall(b"explain f INBOX 2\n")
                wait_for(lambda: "EXAMINE INBOX" in srv.client_commands(), 10, what="the explanation's EXAMINE")
                d.signal(signal.SIGTERM)
                reply = json.loads(c.makefile().readline())
            self.assertEqual(reply, {"ok": False, "error": "the daemon is stopping"})
            self.assertEqual(d.wait(10), 0, d.tail())


# ---------------------------------------------------------------------------
class TokenOncePerAccountTest(DovecotCase):
    """A token_command (or password_command) runs once per account, not once
    per connection; a refused kept token is replaced at once."""

    users = 3
    mailboxes = ("INBOX", "Archive", "Junk")

    def token_account(self, user: int, command: str, **extra) -> dict:  # type: ignore[no-untyped-def]
        acct = dovecot_account(self.dc, user, mailboxes=list(self.mailboxes), auth="xoauth2", **extra)
        del acct["password"]
        acct["token_command"] = command
        return acct

    def test_token_command_runs_once_per_account(self) -> None:
        user = self.take_user()
        cfg = self.config()
        runs = cfg.dir / "runs"
        token = self.dc.user(user).token
        cfg.account("t", self.token_account(user, f"echo run >> {runs}; echo {token}"))
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        im = self.oracle(user)
        uid = im.append("Junk", cron_mail(1))
        wait_for(lambda: uid not in im.uids("Junk"), 10, what="the cron mail in Junk deleted")
        self.assertEqual(runs.read_text().splitlines(), ["run"], "three connections, one run")
        # every connection is cut: three logins again, with the kept token
        before = len(dovecot_sessions(self.dc, user))
        self.dc.kick(user)
        wait_for(lambda: len(dovecot_sessions(self.dc, user)) >= before + 3, 10, what="three new logins")
        d.wait_ready()
        self.assertEqual(runs.read_text().splitlines(), ["run"])
        im = self.oracle(user)  # the kick cut the oracle's session too
        uid = im.append("INBOX", cron_mail(2))
        wait_for(lambda: uid not in im.uids("INBOX"), 10, what="the cron mail in INBOX deleted")

    def test_refused_token_is_replaced_at_once(self) -> None:
        """The server stops taking the kept token (it expired): the next
        login runs the command again at once, not after reconnect_max."""
        user = self.take_user()
        cfg = self.config()
        runs, current = cfg.dir / "runs", cfg.dir / "token"
        name, token = self.dc.user(user).name, self.dc.user(user).token
        current.write_text(token + "\n")
        cfg.account("t", self.token_account(user, f"echo run >> {runs}; cat {current}",
                                            reconnect_min="1s", reconnect_max="1m"))  # fmt: skip
        cfg.rule("cron", CRON, "delete")
        d = self.daemon(cfg)
        d.wait_ready()
        self.assertEqual(runs.read_text().splitlines(), ["run"])
        # the token server hands out a new token; the old one is refused
        tokens = self.dc.base / "tokens"
        lines = tokens.read_text().splitlines(keepends=True)
        tokens.write_text("".join(ln.replace(f"{{PLAIN}}{token}:", f"{{PLAIN}}{token}-new:")
                                  if ln.startswith(name + ":") else ln for ln in lines))  # fmt: skip
        current.write_text(token + "-new\n")
        before = len(dovecot_sessions(self.dc, user))
        self.dc.kick(user)
        # three reconnects, each refused once with the kept token: back at
        # work within seconds (a plain refusal would wait reconnect_max)
        wait_for(lambda: len(dovecot_sessions(self.dc, user)) >= before + 3, 10, what="three new logins")
        d.wait_ready(timeout=10)
        d.wait_for_log(r"t/\w+: the kept token_command was refused")
        self.assertLessEqual(len(runs.read_text().splitlines()), 3)
        self.assertGreaterEqual(len(runs.read_text().splitlines()), 2)
        im = self.oracle(user)
        uid = im.append("INBOX", cron_mail(3))
        wait_for(lambda: uid not in im.uids("INBOX"), 10, what="the cron mail deleted after the new token")

# ---------------------------------------------------------------------------
def parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol: FIELD=value lines, or FIELD, a 64-bit
    little-endian length and the value for values with newlines."""
    out: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode("utf-8", "replace")
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            out[line.decode()] = data[nl + 9:nl + 9 + n].decode("utf-8", "replace")
            i = nl + 9 + n + 1
    return out


class FakeJournal:
    """A datagram socket standing in for /run/systemd/journal/socket; the
    daemon sees it there in a mount namespace of its own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="imapsweep-journal-", dir=tmp_root()))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.dir / "socket"))
        os.chmod(self.dir / "socket", 0o666)
        self.sock.settimeout(0.2)
        self.entries: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.entries.append(parse_journal_datagram(data))

    def snapshot(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.entries)

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run with this socket as the journal's (a private mount
        namespace: nothing outside it changes)."""
        script = ("mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/journal && "
                  'mount --bind "$0" /run/systemd/journal && exec "$@"')  # fmt: skip
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.dir), *argv]

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SystemJournal:
    """The machine's own journald, for when no private mount namespace can
    be had (a container without CAP_SYS_ADMIN): the entries are read back
    with journalctl by the daemon's pid."""

    def __init__(self) -> None:
        self.pid: int | None = None

    @staticmethod
    def available() -> bool:
        if not os.path.exists("/run/systemd/journal/socket") or shutil.which("journalctl") is None:
            return False
        return subprocess.run(["journalctl", "-n", "0", "--no-pager"], capture_output=True).returncode == 0

    def wrap(self, argv: list[str]) -> list[str]:
        return argv

    def snapshot(self) -> list[dict[str, str]]:
        if self.pid is None:
            return []
        r = subprocess.run(["journalctl", "-o", "json", "--no-pager", f"_PID={self.pid}",
                            "SYSLOG_IDENTIFIER=imapsweepd"], capture_output=True, text=True)  # fmt: skip
        out = []
        for line in r.stdout.splitlines():
            e = json.loads(line)
            out.append({k: v for k, v in e.items() if isinstance(v, str)})
        return out

    def close(self) -> None:
        pass


def journal_for_test() -> "FakeJournal | SystemJournal":
    """A journal the daemon's entries can be read from: a private one when a
    mount namespace can be made (root), else the machine's journald."""
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode == 0 and os.path.isdir("/run/systemd"):
        return FakeJournal()
    if SystemJournal.available():
        return SystemJournal()
    raise AssertionError("no journal to test with: neither a private mount namespace (unshare: "
                         f"{probe.stderr.decode(errors='replace').strip()}) nor a running journald")  # fmt: skip


class JournalAuditTest(DovecotCase):
    """Under systemd the audit lines go to the journal with fields of their
    own: a preview must never look like a deletion there."""

    users = 2

    def test_preview_and_deletion_fields(self) -> None:
        user = self.take_user()
        im = self.oracle(user)
        cfg = self.config()
        cfg.account("j", dovecot_account(self.dc, user))
        cfg.rule("preview", {"from": "alice@example.org"}, "delete", dry_run=True)
        cfg.rule("cron", CRON, "delete")
        cfg.write()
        journal = journal_for_test()
        self.addCleanup(journal.close)
        workdir = cfg.dir / "run"
        workdir.mkdir()
        stderr = workdir / "imapsweepd.stderr"
        stderr.touch()  # Proc truncates it: the inode stays
        st = os.stat(stderr)
        argv = journal.wrap([str(binary("imapsweepd")), "-c", str(cfg.path)])
        with Proc(argv, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, workdir=workdir, name="imapsweepd") as d:
            if isinstance(journal, SystemJournal):
                journal.pid = d.pid
            wait_for(lambda: any("started" in e.get("MESSAGE", "") for e in journal.snapshot()), 10,
                     what=f"the daemon's first journal entry (stderr: {d.tail()})")  # fmt: skip
            alice = im.append("INBOX", ordinary_mail(0))  # Alice Example <alice@example.org>
            cron = im.append("INBOX", cron_mail(5))
            wait_for(lambda: cron not in im.uids("INBOX"), 10, what="the cron mail deleted")

            def audit() -> list[dict[str, str]]:
                return [e for e in journal.snapshot() if e.get("UID")]

            wait_for(lambda: len(audit()) >= 2, 10, what="two audit entries")
        by_rule = {e["RULE"]: e for e in audit()}
        self.assertEqual(set(by_rule), {"preview", "cron"}, audit())
        p, c = by_rule["preview"], by_rule["cron"]
        self.assertEqual((p["ACTION"], p.get("DRY_RUN"), p["UID"]), ("would_delete", "1", str(alice)))
        self.assertEqual(p["MAIL_MESSAGE_ID"], "<mail-0@imapsweep.test>")
        self.assertEqual(p["FROM"], '"Alice Example" <alice@example.org>')
        self.assertEqual(p["SUBJECT"], "Lunch on Friday?")
        self.assertEqual((c["ACTION"], c.get("DRY_RUN"), c["UID"]), ("delete", None, str(cron)))
        self.assertEqual(c["MAIL_MESSAGE_ID"], "<cron-5@host.imapsweep.test>")
        self.assertRegex(c["FROM"], r"Cron Daemon")
        self.assertEqual((c["ACCOUNT"], c["MAILBOX"], c["SYSLOG_IDENTIFIER"]), ("j", "INBOX", "imapsweepd"))
        # the preview's message is still there; nothing says it was deleted
        self.assertIn(alice, im.uids("INBOX"))
        self.assertFalse([e for e in journal.snapshot() if e.get("ACTION") == "delete" and e.get("UID") == str(alice)])


if __name__ == "__main__":
    unittest.main()
