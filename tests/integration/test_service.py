# SPDX-License-Identifier: MIT
"""imapsweepd as a service: sd_notify as systemd
would see it, socket activation, reload by SIGHUP and over the control
socket, SIGTERM/SIGINT, and --check-config.

Mailbox effects are checked with the independent imaplib oracle; what the
daemon did to its connections is checked in Dovecot's own log (one
"Login:" line per login, and how each session ended: "Logged out" after a
LOGOUT, "Connection closed (...)" when the client just went away).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT, binary  # noqa: E402
from harness.daemon import (  # noqa: E402
    NotifySocket,
    config_text,
    control_request,
    dovecot_account,
    dovecot_sessions,
    wait_watching,
    watchers,
    without_systemd_env,
)
from harness.dovecot import Dovecot  # noqa: E402
from harness.fakeimap import FakeImap  # noqa: E402
from harness.mail import cron_mail, make_mail, ordinary_mail  # noqa: E402
from harness.wait import VALGRIND_ARGS, Proc, timeout_scale, tmp_root, valgrind_enabled, wait_for  # noqa: E402

setUpModule, tearDownModule = without_systemd_env()

CRON_RULE = {"name": "cron", "match": {"from": "Cron Daemon"}, "action": "delete"}
BACKUP_RULE = {"name": "backup", "match": {"subject": "Nightly backup report"}, "action": "delete"}
STATUS_RE = r"^watching (\d+)/(\d+) mailbox(?:es)?"


def backup_mail(i: int) -> bytes:
    """Machine mail that only BACKUP_RULE matches (not from Cron Daemon)."""
    return make_mail(from_="Backup <backup@host.imapsweep.test>", subject=f"Nightly backup report {i}",
                     body=f"backup {i} ok\n", message_id=f"<backup-{i}@imapsweep.test>")  # fmt: skip


def imapsweepd(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("imapsweepd")), *args], capture_output=True, text=True, timeout=timeout)


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("imapsweepctl")), *args], capture_output=True, text=True, timeout=30)


class ServiceCase(unittest.TestCase):
    """One Dovecot per class; each test uses its own users."""

    users = 4
    dc: Dovecot
    work: Path

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=cls.users)
        cls.dc.__enter__()
        try:
            cls.work = cls.dc.base / "service"
            cls.work.mkdir(mode=0o755)
            for i in range(1, cls.users + 1):
                (cls.work / f"pass{i}").write_text(cls.dc.user(i).password + "\n")
                (cls.work / f"pass{i}").chmod(0o600)  # others reading it would be warned about
        except BaseException:
            cls.dc.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dc.cleanup()

    def oracle(self, user: int):
        """The independent client of ``user``, returned once Dovecot has
        logged its login: its log lags, and the tests tell the daemon's
        sessions from the oracle's by what the log held before."""
        before = len(self.logins(user))
        im = self.dc.imap(user)
        self.addCleanup(im.logout)
        wait_for(lambda: len(self.logins(user)) > before, 5, what="Dovecot to log the oracle's login")
        return im

    def account(self, name: str, user: int, mailboxes: tuple[str, ...] = ("INBOX",), **extra: Any) -> dict[str, Any]:
        extra.setdefault("idle_refresh", "2s")
        return dovecot_account(self.dc, name, user, self.work / f"pass{user}", mailboxes, **extra)

    def write_config(self, name: str, accounts: list[dict[str, Any]], rules: list[dict[str, Any]],
                     **daemon: Any) -> tuple[Path, str]:  # fmt: skip
        """Write work/NAME.yaml with its own control socket; returns (path, socket)."""
        sock = str(self.work / f"{name}.sock")
        cfg = self.work / f"{name}.yaml"
        cfg.write_text(config_text(accounts, rules, daemon={"control_socket": sock, **daemon}))
        return cfg, sock

    def start(self, cfg: Path, env: dict[str, str] | None = None, name: str = "imapsweepd") -> Proc:
        d = Proc([str(binary("imapsweepd")), "-c", str(cfg)], env=env, name=name)
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def logins(self, user: int) -> list[str]:
        return [s.id for s in dovecot_sessions(self.dc, user)]

    def session_end(self, session_id: str) -> str | None:
        return next(s.end for s in dovecot_sessions(self.dc) if s.id == session_id)


# ---------------------------------------------------------------------------
class NotifyTest(ServiceCase):
    """sd_notify: the test plays systemd with a datagram socket."""

    users = 3

    def test_notify_sequence(self) -> None:
        im = self.oracle(1)
        cfg, sock = self.write_config("notify", [self.account("n", 1)], [CRON_RULE])
        with NotifySocket(self.work, "notify1.sock") as ns:
            d = self.start(cfg, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "200000"})
            # READY=1, with STATUS=, before anything else; the control
            # socket already listens by then
            ready = ns.wait(lambda m: m.kind() == "READY", what="READY=1")
            self.assertEqual(control_request(sock, "version")["ok"], True)
            first = ns.snapshot()[0]
            self.assertEqual(first.kind(), "READY", first.text)
            self.assertRegex(first.fields.get("STATUS", ""), r"^watching [01]/1 mailbox\b")
            # STATUS= follows the watcher once it is connected
            ns.wait(lambda m: m.kind() == "STATUS" and m.fields["STATUS"] == "watching 1/1 mailbox",
                    since=ready + 1, what="STATUS=watching 1/1 mailbox")  # fmt: skip
            # and counts what was done
            uid = im.append("INBOX", cron_mail(1))
            wait_for(lambda: uid not in im.uids("INBOX"), 10, what="cron mail deleted")
            ns.wait(lambda m: m.fields.get("STATUS") == "watching 1/1 mailbox, 1 deleted", what="STATUS with 1 deleted")

            # WATCHDOG=1 every WATCHDOG_USEC/2 = 100 ms, from the loop
            n0 = len(ns.snapshot())
            ns.wait(lambda m: m.kind() == "WATCHDOG", since=n0 + 8, timeout=5, what="8 more WATCHDOG=1")
            pings = [m.t for m in ns.snapshot()[n0:] if m.kind() == "WATCHDOG"]
            gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
            median = gaps[len(gaps) // 2]
            self.assertTrue(0.05 <= median <= 0.15, f"watchdog period {median:.3f}s, expected ~0.1s: {gaps}")
            self.assertLess(gaps[-1], 1.0, f"a watchdog gap of {gaps[-1]:.3f}s")

            # SIGHUP with a good config: RELOADING=1 + MONOTONIC_USEC, then READY=1
            v2 = config_text([self.account("n", 1)], [CRON_RULE, BACKUP_RULE], daemon={"control_socket": sock})
            cfg.write_text(v2)
            n1 = len(ns.snapshot())
            sent = time.monotonic()
            d.signal(signal.SIGHUP)
            rel = ns.wait(lambda m: m.kind() in ("RELOADING", "READY"), since=n1, what="RELOADING=1")
            m = ns.snapshot()[rel]
            self.assertEqual(m.kind(), "RELOADING", m.text)
            usec = int(m.fields["MONOTONIC_USEC"])
            # CLOCK_MONOTONIC, like time.monotonic() on Linux
            self.assertLess(abs(usec / 1e6 - sent), 5.0 * timeout_scale(), (usec, sent))
            rdy = ns.wait(lambda m: m.kind() == "READY", since=rel + 1, what="READY=1 after the reload")
            self.assertRegex(ns.snapshot()[rdy].fields.get("STATUS", ""), STATUS_RE)
            d.wait_for_log(r"reloaded \(generation 2\)")
            self.assertEqual(control_request(sock, "status")["generation"], 2)

            # SIGHUP with a bad config: RELOADING=1, then READY=1 again
            cfg.write_text("daemon:\n  control_socket: [\n")
            n2 = len(ns.snapshot())
            mark = d.mark()
            d.signal(signal.SIGHUP)
            rel = ns.wait(lambda m: m.kind() in ("RELOADING", "READY"), since=n2, what="RELOADING=1 (bad config)")
            self.assertEqual(ns.snapshot()[rel].kind(), "RELOADING")
            self.assertIn("MONOTONIC_USEC", ns.snapshot()[rel].fields)
            rdy = ns.wait(lambda m: m.kind() == "READY", since=rel + 1, what="READY=1 after the failed reload")
            self.assertRegex(ns.snapshot()[rdy].fields.get("STATUS", ""), STATUS_RE)
            d.wait_for_log(r"reload failed", since=mark)
            self.assertTrue(d.running())
            self.assertEqual(control_request(sock, "status")["generation"], 2)
            # still working, under generation 2's rules, and still pinging
            uid = im.append("INBOX", backup_mail(1))
            wait_for(lambda: uid not in im.uids("INBOX"), 10, what="backup mail deleted after the failed reload")
            n3 = len(ns.snapshot())
            ns.wait(lambda m: m.kind() == "WATCHDOG", since=n3 + 3, timeout=5, what="WATCHDOG=1 after the reloads")

            # STATUS-only messages are coalesced: at most one per 0.5 s
            status_times = [m.t for m in ns.snapshot() if m.kind() == "STATUS"]
            for a, b in zip(status_times, status_times[1:]):
                self.assertGreater(b - a, 0.4, f"STATUS= sent twice within {b - a:.3f}s")

            # SIGTERM: STOPPING=1, exit 0
            n4 = len(ns.snapshot())
            d.signal(signal.SIGTERM)
            ns.wait(lambda m: m.kind() == "STOPPING", since=n4, what="STOPPING=1")
            self.assertEqual(d.wait(10), 0)
            after = [m.kind() for m in ns.snapshot()[n4:]]
            self.assertNotIn("READY", after)
            self.assertEqual(after.count("STOPPING"), 1, after)
            kinds = [m.kind() for m in ns.snapshot()]
            self.assertEqual(kinds.count("READY"), 3, kinds)
            self.assertEqual(kinds.count("RELOADING"), 2, kinds)
            self.assertNotIn("OTHER", kinds)

    def test_watchdog_pid_of_another_process(self) -> None:
        """WATCHDOG_PID names another process: the watchdog is not ours."""
        cfg, sock = self.write_config("wdpid", [self.account("w", 2)], [CRON_RULE])
        with NotifySocket(self.work, "notify2.sock") as ns:
            self.start(cfg, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"})
            # The first STATUS-only message comes >= 0.5 s after the start
            # (coalescing); a 10 ms watchdog would have pinged ~50 times by then.
            ns.wait(lambda m: m.kind() == "STATUS", timeout=10, what="a STATUS= update")
            kinds = [m.kind() for m in ns.snapshot()]
            self.assertEqual(kinds[0], "READY")
            self.assertNotIn("WATCHDOG", kinds)

    def test_journal_stream_log_format(self) -> None:
        """JOURNAL_STREAM naming stderr: priority prefixes (<6>) instead of
        timestamps (or the journal itself, when journald is reachable)."""
        cfg, sock = self.write_config("journal", [self.account("j", 2)], [CRON_RULE])
        im = self.oracle(2)
        uid = im.append("INBOX", cron_mail(7))
        for once, name in ((True, "once"), (False, "daemon")):
            with self.subTest(mode=name):
                workdir = self.work / f"journal-{name}"
                workdir.mkdir()
                stderr = workdir / "imapsweepd.stderr"
                stderr.touch()  # Proc truncates it: the inode stays
                st = os.stat(stderr)
                args = [str(binary("imapsweepd")), "-c", str(cfg)] + (["--once"] if once else [])
                with Proc(args, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, workdir=workdir) as d:
                    if once:
                        self.assertEqual(d.wait(20), 0, d.tail())
                    else:
                        wait_watching(sock, [("j", "INBOX")])
                    lines = d.log_lines()
                self.assertFalse([ln for ln in lines if re.match(r"^\d{4}-\d\d-\d\dT", ln)], lines)
                if once:
                    # --once logs to stderr itself
                    self.assertIn("<6>j/INBOX: cron: delete uid", "\n".join(lines))
                    self.assertTrue(all(re.match(r"^<[3-7]>", ln) for ln in lines), lines)
                elif not os.path.exists("/run/systemd/journal/socket"):
                    # the journal is unreachable: the same lines on stderr
                    self.assertTrue(any(re.match(r"^<6>imapsweepd \S+ started", ln) for ln in lines), lines)
        self.assertNotIn(uid, im.uids("INBOX"))
        # a JOURNAL_STREAM that names another file changes nothing
        uid = im.append("INBOX", cron_mail(8))
        with Proc([str(binary("imapsweepd")), "-c", str(cfg), "--once"], env={"JOURNAL_STREAM": "1:1"}) as d:
            self.assertEqual(d.wait(20), 0)
            self.assertRegex(d.log_lines()[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info +j/INBOX: cron: delete")
        self.assertNotIn(uid, im.uids("INBOX"))

    def test_socket_activation(self) -> None:
        """LISTEN_FDS=1 with LISTEN_PID = the daemon's pid: fd 3 is the control
        socket; the configured path is not created, and the socket systemd
        owns is not removed at exit."""
        activated = str(self.work / "activated.sock")
        configured = str(self.work / "configured.sock")
        cfg = self.work / "activation.yaml"
        cfg.write_text(config_text([self.account("act", 3)], [CRON_RULE], daemon={"control_socket": configured}))
        # systemd's part: a listening socket at fd 3 and LISTEN_PID/WATCHDOG_PID
        # naming the process that then becomes the daemon (execve keeps the pid)
        wrapper = (
            "import os, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "s.bind(sys.argv[1])\n"
            "s.listen(16)\n"
            "if s.fileno() != 3:\n"
            "    os.dup2(s.fileno(), 3)\n"
            "os.set_inheritable(3, True)\n"
            "pid = str(os.getpid())\n"
            "env = dict(os.environ, LISTEN_FDS='1', LISTEN_PID=pid, WATCHDOG_PID=pid)\n"
            "os.execve(sys.argv[2], sys.argv[2:], env)\n"
        )
        daemon = [str(binary("imapsweepd")), "-c", str(cfg)]
        if valgrind_enabled():
            daemon = ["/usr/bin/valgrind", *VALGRIND_ARGS[1:], f"--log-file={self.work}/activation.valgrind.log",
                      *daemon]  # fmt: skip
        with NotifySocket(self.work, "notify3.sock") as ns:
            d = Proc([sys.executable, "-c", wrapper, activated, *daemon], name="imapsweepd-activated",
                     env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "200000"}, valgrind=False)  # fmt: skip
            self.addCleanup(d.__exit__, None, None, None)
            ns.wait(lambda m: m.kind() == "READY", what="READY=1")
            d.wait_for_log(r"control socket from systemd")
            st = wait_watching(activated, [("act", "INBOX")])
            self.assertEqual(st[("act", "INBOX")]["state"], "idle")
            self.assertEqual(control_request(activated, "status")["pid"], d.pid)
            self.assertFalse(os.path.exists(configured), "the configured socket was created too")
            # WATCHDOG_PID equal to the daemon's pid: pings
            ns.wait(lambda m: m.kind() == "WATCHDOG", what="WATCHDOG=1")
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait(10), 0)
            self.assertTrue(os.path.exists(activated), "the daemon removed the socket systemd passed it")
            if valgrind_enabled():
                self.assertNotEqual(d.returncode, 99, (self.work / "activation.valgrind.log").read_text())


# ---------------------------------------------------------------------------
class ReloadTest(ServiceCase):
    """Reload: the new configuration is applied as a difference."""

    users = 4

    def test_reload_over_the_control_socket(self) -> None:
        """user1: account "keep", unchanged but for the new rule; user2:
        account "change", whose command_timeout changes."""
        keep_im, change_im = self.oracle(1), self.oracle(2)
        backup1 = keep_im.append("INBOX", backup_mail(1))
        mail1 = keep_im.append("INBOX", ordinary_mail(1))
        backup2 = change_im.append("INBOX", backup_mail(2))
        v1 = [self.account("keep", 1), self.account("change", 2, command_timeout="60s")]
        cfg, sock = self.write_config("reload", v1, [CRON_RULE])
        before_start = set(self.logins(1)) | set(self.logins(2))
        d = self.start(cfg)
        wait_watching(sock, [("keep", "INBOX"), ("change", "INBOX")])
        # the first sweeps are done and left the backup mail alone
        cron = keep_im.append("INBOX", cron_mail(1))
        wait_for(lambda: cron not in keep_im.uids("INBOX"), 10, what="cron mail deleted")
        self.assertIn(backup1, keep_im.uids("INBOX"))
        self.assertIn(backup2, change_im.uids("INBOX"))
        wait_for(lambda: len(self.logins(1)) == 2 and len(self.logins(2)) == 2, 5, what="the daemon's two logins")
        keep_session = next(s for s in self.logins(1) if s not in before_start)
        change_session = next(s for s in self.logins(2) if s not in before_start)
        logins1 = self.logins(1)

        # a good reload: a new rule for everyone, a new timeout for "change"
        v2 = [self.account("keep", 1), self.account("change", 2, command_timeout="30s")]
        cfg.write_text(config_text(v2, [CRON_RULE, BACKUP_RULE], daemon={"control_socket": sock}))
        r = ctl("-s", sock, "reload")
        self.assertEqual((r.returncode, r.stdout), (0, "reloaded (configuration generation 2)\n"), r.stderr)
        wait_for(lambda: backup1 not in keep_im.uids("INBOX"), 10, what="the new rule to act in keep/INBOX")
        wait_for(lambda: backup2 not in change_im.uids("INBOX"), 10, what="the new rule to act in change/INBOX")
        self.assertIn(mail1, keep_im.uids("INBOX"))
        self.assertEqual(keep_im.seen("INBOX"), set())
        # "change" logged out and in again, once
        wait_for(lambda: self.session_end(change_session) is not None, 10, what="the old change session to end")
        self.assertTrue(self.session_end(change_session).startswith("Logged out"), self.session_end(change_session))
        wait_watching(sock, [("keep", "INBOX"), ("change", "INBOX")])
        wait_for(lambda: len(self.logins(2)) == 3, 5, what="one new login of change")
        # "keep" kept its connection: no new login, its session still open
        self.assertEqual(self.logins(1), logins1)
        self.assertIsNone(self.session_end(keep_session))
        st = control_request(sock, "status")
        self.assertEqual(st["generation"], 2)
        logins1, logins2 = self.logins(1), self.logins(2)

        # a bad reload (semantic errors): every error with its position, exit 1
        bad = (
            "daemon:\n"
            f'  control_socket: "{sock}"\n'
            "  log_levle: info\n"
            "accounts:\n"
            "  - name: keep\n"
            "    host: 127.0.0.1\n"
            f"    port: {self.dc.port('imap')}\n"
            "    tls: none\n"
            "    user: user1\n"
            f'    password_file: "{self.work / "pass1"}"\n'
            "    mailboxes: [INBOX]\n"
            "    idle_refresh: 2x\n"
            "    rules: [cron, nosuch]\n"
            "rules:\n"
            "  - name: cron\n"
            '    match: {from: "Cron Daemon"}\n'
            "    action: delete\n"
        )
        cfg.write_text(bad)
        r = ctl("-s", sock, "reload")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines(), [
            f'{cfg}:3:3: unknown key "log_levle" in daemon (did you mean "log_level"?)',
            f'{cfg}:12:19: invalid duration "2x" (expected e.g. 30s, 5m, 2h, 14d)',
            f'{cfg}:13:19: unknown rule "nosuch" (defined rules: cron)',
            "imapsweepctl: configuration has 3 errors; the previous one stays in force",
        ])  # fmt: skip
        # a YAML syntax error: its position, exit 1
        cfg.write_text(bad.replace("    tls: none\n", "    tls: [none\n"))
        r = ctl("-s", sock, "reload")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, rf"^{re.escape(str(cfg))}:9:9: YAML syntax error")  # where libyaml notices
        self.assertRegex(r.stderr.splitlines()[-1], r"^imapsweepctl: configuration has 1 error\b")
        self.assertEqual(control_request(sock, "status")["generation"], 2)
        # still generation 2's rules: cron and backup mail go, other mail stays
        cron = keep_im.append("INBOX", cron_mail(2))
        backup3 = keep_im.append("INBOX", backup_mail(3))
        mail2 = keep_im.append("INBOX", ordinary_mail(2))
        wait_for(lambda: not {cron, backup3} & set(keep_im.uids("INBOX")), 10, what="old rules still acting")
        self.assertIn(mail2, keep_im.uids("INBOX"))
        # a failed reload touches no connection
        self.assertEqual((self.logins(1), self.logins(2)), (logins1, logins2))
        self.assertTrue(d.running())

    def test_reload_by_sighup(self) -> None:
        """user3: SIGHUP adds a mailbox (a new connection), a syntax error
        changes nothing, and removing the mailbox logs its watcher out."""
        im = self.oracle(3)
        cfg, sock = self.write_config("hup", [self.account("solo", 3)], [CRON_RULE])
        before_start = set(self.logins(3))
        d = self.start(cfg)
        wait_watching(sock, [("solo", "INBOX")])
        wait_for(lambda: len(self.logins(3)) == len(before_start) + 1, 5, what="the daemon's login")
        inbox_session = next(s for s in self.logins(3) if s not in before_start)

        # add Archive
        cfg.write_text(config_text([self.account("solo", 3, ("INBOX", "Archive"))], [CRON_RULE],
                                   daemon={"control_socket": sock}))  # fmt: skip
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reloaded \(generation 2\)", since=mark)
        wait_watching(sock, [("solo", "INBOX"), ("solo", "Archive")])
        wait_for(lambda: len(self.logins(3)) == len(before_start) + 2, 5, what="one new login for Archive")
        archive_session = self.logins(3)[-1]
        uid = im.append("Archive", cron_mail(3))
        wait_for(lambda: uid not in im.uids("Archive"), 10, what="cron mail deleted in the new mailbox")
        self.assertIsNone(self.session_end(inbox_session))

        # a syntax error: logged with its position, nothing changes
        good = cfg.read_text()
        broken = good.replace('"accounts": [', '"accounts": [ {"name": [oops', 1)
        self.assertNotEqual(broken, good)
        cfg.write_text(broken)
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reload failed: 1 error; still running the previous configuration", since=mark)
        self.assertRegex(d.log_text()[mark:], rf"{re.escape(str(cfg))}:\d+:\d+: YAML syntax error")
        self.assertEqual(set(watchers(sock)), {("solo", "INBOX"), ("solo", "Archive")})
        self.assertEqual(control_request(sock, "status")["generation"], 2)
        uid = im.append("INBOX", cron_mail(4))
        wait_for(lambda: uid not in im.uids("INBOX"), 10, what="cron mail deleted after the failed reload")

        # remove Archive: its watcher logs out; INBOX keeps its connection
        logins = self.logins(3)
        cfg.write_text(config_text([self.account("solo", 3)], [CRON_RULE], daemon={"control_socket": sock}))
        mark = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_for_log(r"reloaded \(generation 3\)", since=mark)
        wait_for(lambda: self.session_end(archive_session) is not None, 10, what="the Archive session to end")
        self.assertTrue(self.session_end(archive_session).startswith("Logged out"), self.session_end(archive_session))
        self.assertEqual(set(watchers(sock)), {("solo", "INBOX")})
        self.assertIsNone(self.session_end(inbox_session))
        self.assertEqual(self.logins(3), logins)
        self.assertEqual(control_request(sock, "status")["generation"], 3)


# ---------------------------------------------------------------------------
class SignalTest(ServiceCase):
    """SIGTERM and SIGINT: IDLE ended, LOGOUT, exit 0."""

    users = 3

    def test_secrets_stay_out_of_core_files(self) -> None:
        """No core file (its limit is 0) and a warning, with the mode, for a
        password file others can read: when the file is read for a login,
        and by --check-config (issue 12, defect 5)."""
        pw = self.work / "pass3"
        pw.chmod(0o644)
        self.addCleanup(pw.chmod, 0o600)
        cfg, sock = self.write_config("core3", [self.account("c", 3)], [CRON_RULE])
        d = self.start(cfg)
        wait_watching(sock, [("c", "INBOX")])
        limits = Path(f"/proc/{d.pid}/limits").read_text()
        self.assertRegex(limits, r"Max core file size\s+0\s+0\s", limits)
        mode = re.escape(f"password_file {pw} is readable by group or others (mode 0644): make it mode 600, "
                         "owned by the user imapsweepd runs as, or use password_credential")  # fmt: skip
        d.wait_for_log(rf"c/INBOX: {mode}")
        chk = subprocess.run([str(binary("imapsweepd")), "--check-config", "-c", str(cfg)], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
        self.assertEqual(chk.returncode, 0, chk.stderr)
        self.assertRegex(chk.stderr, rf"warning: {re.escape(str(cfg))}:\d+:\d+: {mode}")

    def stop_cleanly(self, user: int, sig: int) -> None:
        cfg, sock = self.write_config(f"sig{user}", [self.account("s", user, ("INBOX", "Archive"))], [CRON_RULE])
        d = self.start(cfg)
        wait_watching(sock, [("s", "INBOX"), ("s", "Archive")])
        wait_for(lambda: len(self.logins(user)) == 2, 5, what="two logins")
        sessions = self.logins(user)
        self.assertEqual([self.session_end(s) for s in sessions], [None, None])
        t0 = time.monotonic()
        d.signal(sig)
        rc = d.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, d.tail())
        self.assertLess(took, 10)
        d.wait_for_log(rf"{'SIGTERM' if sig == signal.SIGTERM else 'SIGINT'}: stopping")
        wait_for(lambda: all(self.session_end(s) for s in sessions), 5, what="Dovecot to log both session ends")
        for s in sessions:
            # "Disconnected: Logged out ..." after LOGOUT, not
            # "Disconnected: Connection closed (IDLE running ...)"
            self.assertTrue(self.session_end(s).startswith("Logged out"), self.session_end(s))
        self.assertFalse(os.path.exists(sock), "control socket left behind")

    def test_sigterm_logs_out_and_exits_0(self) -> None:
        self.stop_cleanly(1, signal.SIGTERM)

    def test_sigint_logs_out_and_exits_0(self) -> None:
        self.stop_cleanly(2, signal.SIGINT)

    def stalled_logout(self) -> tuple[FakeImap, Proc]:
        """A daemon whose server never answers LOGOUT (fakeimap)."""
        srv = FakeImap({"users": {"user": "pass"}, "mailboxes": {"INBOX": {"uidvalidity": 7}},
                        "events": [{"command": "^LOGOUT", "action": "stall", "times": -1}]})  # fmt: skip
        self.addCleanup(srv.stop)
        (self.work / "fake.pass").write_text("pass\n")
        (self.work / "fake.pass").chmod(0o600)
        acc = {"name": "f", "host": "127.0.0.1", "port": srv.port, "tls": "none", "user": "user",
               "password_file": str(self.work / "fake.pass"), "mailboxes": ["INBOX"]}  # fmt: skip
        cfg, sock = self.write_config(f"stall{srv.port}", [acc], [CRON_RULE])
        d = self.start(cfg)
        wait_watching(sock, [("f", "INBOX")])
        srv.wait_idle(1)
        return srv, d

    def test_second_sigterm_ends_shutdown_at_once(self) -> None:
        srv, d = self.stalled_logout()
        d.signal(signal.SIGTERM)
        wait_for(lambda: "LOGOUT" in srv.client_commands(), 5, what="the daemon to send LOGOUT")
        # the daemon now waits (up to 5 s) for the LOGOUT that never comes
        self.assertTrue(d.running(), "exited without waiting for the LOGOUT in flight")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(3), 0)
        self.assertLess(time.monotonic() - t0, 2.0 * timeout_scale())

    def test_stalled_logout_is_abandoned_after_the_grace(self) -> None:
        srv, d = self.stalled_logout()
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(10), 0)
        took = time.monotonic() - t0
        self.assertIn("LOGOUT", srv.client_commands())
        d.wait_for_log(r"giving up on 1 connection")
        # in-flight commands get 5 s; the whole stop stays within 10 s
        self.assertGreater(took, 4.0)
        self.assertLess(took, 10.0 * timeout_scale())


# ---------------------------------------------------------------------------
class CheckConfigTest(unittest.TestCase):
    """--check-config and command-line usage; no server needed."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="imapsweep-check-", dir=tmp_root()))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_example_config(self) -> None:
        example = REPO_ROOT / "conf" / "imapsweep.yaml"
        text = example.read_text()
        # counted from the file's text: "- name:" entries of the two lists,
        # and the entries of each account's mailboxes
        accounts_part = text[text.index("\naccounts:"):text.index("\nrules:")]
        rules_part = text[text.index("\nrules:"):]
        n_accounts = len(re.findall(r"^  - name: ", accounts_part, re.M))
        n_rules = len(re.findall(r"^  - name: ", rules_part, re.M))
        n_mailboxes = 0
        for value in re.findall(r"^    mailboxes: *([^#\n]*)", accounts_part, re.M):
            value = re.sub(r"\{[^}]*\}", "M", value.strip())  # {name: X, idle: B}
            n_mailboxes += len(value.strip("[]").split(",")) if value.startswith("[") else 1
        # the example names secret files that do not exist here: the file alone
        r = imapsweepd("--check-config", "--syntax-only", "-c", str(example))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], f"ok: {n_accounts} accounts, {n_mailboxes} mailboxes, {n_rules} rules")
        # then each rule in words, with where it applies
        names = re.findall(r"^  - name: (\S+)", rules_part, re.M)
        self.assertEqual([line.split(":")[0] for line in lines[1:]], [f"rule {n}" for n in names])
        self.assertIn('rule cron-noise: delete messages whose From contains "Cron Daemon"', r.stdout)
        self.assertGreater(n_accounts, 1)
        # and without --syntax-only the missing password files are errors
        r = imapsweepd("--check-config", "-c", str(example))
        self.assertEqual(r.returncode, 78, r.stdout)
        self.assertRegex(r.stderr, rf"(?m)^{re.escape(str(example))}:\d+:\d+: password_file /etc/imapsweep/"
                                   r"\S+: No such file or directory$")  # fmt: skip

    def test_several_errors_with_positions(self) -> None:
        cfg = self.dir / "bad.yaml"
        cfg.write_text(
            "daemon:\n"
            "  log_levle: info\n"
            "  control_mode: \"0999\"\n"
            "accounts:\n"
            "  - name: a\n"
            "    host: imap.example.org\n"
            "    user: me\n"
            "    password_file: /dev/null\n"
            "    password_env: ALSO\n"
            "    mailboxes: [INBOX]\n"
            "    idle_refresh: 2x\n"
            "    rules: [cron, nosuch]\n"
            "rules:\n"
            "  - name: cron\n"
            "    match: {from: Cron Daemon}\n"
            "    action: delete\n"
            "  - name: empty\n"
            "    match: {}\n"
            "    action: delete\n"
            "  - name: cron\n"
            "    match: {subject_regex: \"(\"}\n"
            "    action: {move: }\n"
        )  # fmt: skip
        r = imapsweepd("--check-config", "-c", str(cfg))
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        positions = [tuple(map(int, m)) for m in re.findall(rf"^{re.escape(str(cfg))}:(\d+):(\d+): ", r.stderr, re.M)]
        lines = r.stderr.splitlines()
        self.assertEqual(len(positions), len(lines), r.stderr)
        expect = [
            ((2, 3), 'unknown key "log_levle"'),
            ((3, 17), "control_mode"),
            ((9, 5), "two secret sources"),
            ((11, 19), 'invalid duration "2x"'),
            ((12, 19), 'unknown rule "nosuch"'),
            ((18, 12), "empty match"),
            ((20, 11), 'rule "cron" is defined twice'),
            ((21, 28), "invalid regular expression"),
            ((22, 20), "move needs a target"),
        ]
        self.assertEqual(positions, [pos for pos, _ in expect], r.stderr)
        for line, (pos, words) in zip(lines, expect):
            self.assertIn(words, line)

    def test_syntax_error_position(self) -> None:
        cfg = self.dir / "syntax.yaml"
        cfg.write_text("accounts:\n  - name: keep\n    host: [127.0.0.1\nrules: []\n")
        r = imapsweepd("--check-config", "-c", str(cfg))
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stderr, rf"^{re.escape(str(cfg))}:4:6: YAML syntax error")

    def test_unreadable_file(self) -> None:
        missing = self.dir / "missing.yaml"
        for path in (missing, self.dir):
            with self.subTest(path=path):
                r = imapsweepd("--check-config", "-c", str(path))
                self.assertEqual(r.returncode, 78)
                self.assertRegex(r.stderr, rf"^{re.escape(str(path))}:1:1: cannot read")
        # the daemon itself refuses to start the same way
        r = imapsweepd("-c", str(missing))
        self.assertEqual(r.returncode, 78)

    def test_usage_errors(self) -> None:
        for args in (["--bogus"], ["--check-config", "-c", "x.yaml", "extra"], ["--check-config", "--once"],
                     ["--log-level", "loud", "--check-config"], ["-c"], ["--syntax-only"]):  # fmt: skip
            with self.subTest(args=args):
                r = imapsweepd(*args)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertEqual(r.stdout, "")
        r = imapsweepd("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)
        r = imapsweepd("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^imapsweepd \d+\.\d+\.\d+\n$")


if __name__ == "__main__":
    unittest.main()
