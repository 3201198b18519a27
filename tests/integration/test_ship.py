# SPDX-License-Identifier: MIT
"""Operating imapsweepd: monitoring (`status --check`, `status ACCOUNT
[MAILBOX]`, `metrics` checked by promtool), a user's own daemon (XDG
paths, run as a throwaway unprivileged uid), instances (`--control-socket`,
`imapsweepctl -i NAME`).

Mailbox effects are checked with the independent imaplib oracle; the
metrics text is checked by Prometheus' own `promtool check metrics` and
its values against the oracle and the daemon's JSON status.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT, binary  # noqa: E402
from harness.daemon import (  # noqa: E402
    config_text,
    control_request,
    dovecot_account,
    wait_watching,
    watchers,
    without_systemd_env,
)
from harness.dovecot import Dovecot  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.wait import Proc, wait_for  # noqa: E402

setUpModule, tearDownModule = without_systemd_env()

CRON_RULE = {"name": "cron", "match": {"from": "Cron Daemon"}, "action": "delete"}
#: A uid and gid with no /etc/passwd entry: the user's own daemon.
USER_ID = 47123
#: A mailbox name that needs escaping in a Prometheus label.
ODD_MAILBOX = 'Say "hi" \\ now'


def promtool() -> str:
    """Prometheus' promtool: $IMAPSWEEP_PROMTOOL, PATH, or where
    scripts/install-deps unpacks it. A failure, never a skip, when absent."""
    for cand in (os.environ.get("IMAPSWEEP_PROMTOOL"), shutil.which("promtool"),
                 str(REPO_ROOT / "build" / "tools" / "promtool")):  # fmt: skip
        if cand and os.access(cand, os.X_OK):
            return cand
    raise AssertionError("promtool not found: run scripts/install-deps (it unpacks it into build/tools)")


def ctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("imapsweepctl")), *args], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **(env or {})))  # fmt: skip


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus text exposition: (name, labels) -> value."""
    label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(
            (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for k, v in label_re.findall(m.group(2) or "")
        )
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, frozenset(labels.items()))]


class MonitoringTest(unittest.TestCase):
    """One daemon: account ``main`` (user1: INBOX and a mailbox whose name
    needs escaping) is healthy, account ``bad`` (user2, a wrong password)
    backs off."""

    dc: Dovecot
    d: Proc
    sock: str
    work: Path

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=2)
        cls.dc.__enter__()
        try:
            cls.work = cls.dc.base / "ship"
            cls.work.mkdir(mode=0o755)
            (cls.work / "pass1").write_text(cls.dc.user(1).password + "\n")
            (cls.work / "wrong").write_text("not-the-password\n")
            with cls.dc.imap(1) as im:
                im.create_mailbox(ODD_MAILBOX)
            cls.sock = str(cls.work / "ship.sock")
            cfg = cls.work / "ship.yaml"
            cfg.write_text(config_text(
                [dovecot_account(cls.dc, "main", 1, cls.work / "pass1", ("INBOX", ODD_MAILBOX)),
                 dovecot_account(cls.dc, "bad", 2, cls.work / "wrong", reconnect_min="1s", reconnect_max="1s")],
                [CRON_RULE], daemon={"control_socket": cls.sock}))  # fmt: skip
            cls.d = Proc([str(binary("imapsweepd")), "-c", str(cfg)], name="imapsweepd-ship")
            wait_for(lambda: cls._settled(), 20, what="main idle and bad in backoff")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _settled(cls) -> bool:
        try:
            ws = watchers(cls.sock)
        except OSError:
            return False
        return (ws.get(("main", "INBOX"), {}).get("state") == "idle"
                and ws.get(("main", ODD_MAILBOX), {}).get("state") == "idle"
                and ws.get(("bad", "INBOX"), {}).get("last_error") is not None)  # fmt: skip

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            if getattr(cls, "d", None) is not None:
                rc = cls.d.stop(timeout=10)
                cls.d.cleanup()
                assert rc == 0, f"imapsweepd exited {rc}:\n{cls.d.tail()}"
        finally:
            cls.dc.cleanup()

    def setUp(self) -> None:
        self.assertTrue(self.d.running(), f"the daemon died:\n{self.d.tail()}")

    # -- status ACCOUNT [MAILBOX] ------------------------------------------------
    def test_status_filters(self) -> None:
        def listed(*args: str) -> list[tuple[str, str]]:
            r = ctl("-s", self.sock, "--json", "status", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            return [(w["account"], w["mailbox"]) for w in json.loads(r.stdout)["watchers"]]

        self.assertEqual(sorted(listed()), sorted([("main", "INBOX"), ("main", ODD_MAILBOX), ("bad", "INBOX")]))
        self.assertEqual(sorted(listed("main")), sorted([("main", "INBOX"), ("main", ODD_MAILBOX)]))
        self.assertEqual(listed("main", ODD_MAILBOX), [("main", ODD_MAILBOX)])
        self.assertEqual(listed("bad", "INBOX"), [("bad", "INBOX")])
        # the table too
        r = ctl("-s", self.sock, "status", "bad")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = r.stdout.splitlines()[2:]
        self.assertEqual([row.split()[:2] for row in rows if not row.startswith("note:")], [["bad", "INBOX"]])
        # names nothing watched: an error, exit 1, never an empty table
        for args, msg in ((["NOSUCH"], 'no account "NOSUCH"'),
                          (["main", "Nope"], 'account main watches no mailbox "Nope"')):  # fmt: skip
            with self.subTest(args=args):
                r = ctl("-s", self.sock, "status", *args)
                self.assertEqual((r.returncode, r.stdout), (1, ""))
                self.assertEqual(r.stderr, f"imapsweepctl: {msg}\n")
        r = ctl("-s", self.sock, "status", "a", "b", "c")
        self.assertEqual(r.returncode, 64)

    def test_completion_of_accounts_and_mailboxes(self) -> None:
        c = CompletionTest()
        c.setUp()
        try:
            self.assertEqual(c.complete("imapsweepctl", f"imapsweepctl -s {self.sock} status "), ["bad", "main"])
            self.assertEqual(c.complete("imapsweepctl", f"imapsweepctl -s {self.sock} sweep main I"), ["INBOX"])
            self.assertEqual(c.complete("imapsweepctl", f"imapsweepctl -s {self.sock} explain m"), ["main"])
            self.assertEqual(c.complete("imapsweepctl", f"imapsweepctl -s {self.sock} explain main I"), ["INBOX"])
        finally:
            c.doCleanups()

    # -- status --check --------------------------------------------------------
    def test_check_exit_codes(self) -> None:
        r = ctl("-s", self.sock, "status", "--check", "main")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^IMAPSWEEP OK: 2 mailboxes watched \(main\), \d+ messages? acted on "
                                   r"\| watchers=2 unhealthy=0 actions=\d+c\n$")  # fmt: skip
        r = ctl("--check", "-s", self.sock, "status", "main", "INBOX")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("1 mailbox watched (main/INBOX)", r.stdout)
        # the whole daemon: one account cannot log in
        r = ctl("-s", self.sock, "status", "--check")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"^IMAPSWEEP WARNING: 1 of 3 mailboxes unhealthy: bad/INBOX \w+ \(.*auth.*\) "
                                   r"\| watchers=3 unhealthy=1 actions=\d+c\n$")  # fmt: skip
        self.assertEqual(len(r.stdout.splitlines()), 1)
        r = ctl("-s", self.sock, "status", "--check", "bad")
        self.assertEqual(r.returncode, 1, r.stdout)
        # what is not watched, or no daemon at all: critical
        r = ctl("-s", self.sock, "status", "--check", "NOSUCH")
        self.assertEqual((r.returncode, r.stdout), (2, 'IMAPSWEEP CRITICAL: no account "NOSUCH"\n'))
        missing = str(self.work / "nobody.sock")
        r = ctl("-s", missing, "status", "--check")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, f"IMAPSWEEP CRITICAL: no daemon is listening on {missing}: "
                                   "No such file or directory\n")  # fmt: skip
        # --check belongs to status alone
        for args in (["--check", "version"], ["--check", "--json", "status"], ["--check", "metrics"]):
            with self.subTest(args=args):
                self.assertEqual(ctl("-s", self.sock, *args).returncode, 64)

    # -- metrics ------------------------------------------------------------------
    def test_metrics(self) -> None:
        im = self.dc.imap(1)
        self.addCleanup(im.logout)
        keep = im.append(ODD_MAILBOX, ordinary_mail(1))
        gone = im.append(ODD_MAILBOX, cron_mail(1))
        wait_for(lambda: gone not in im.uids(ODD_MAILBOX), 10, what="cron mail deleted")
        self.assertIn(keep, im.uids(ODD_MAILBOX))
        wait_for(lambda: watchers(self.sock)[("main", ODD_MAILBOX)]["actions"].get("cron", {}).get("delete") == 1,
                 5, what="the deletion counted")  # fmt: skip

        r = ctl("-s", self.sock, "metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout
        lint = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        self.assertEqual((lint.returncode, lint.stdout, lint.stderr), (0, "", ""), text)
        m = parse_metrics(text)
        st = control_request(self.sock, "status")
        ws = {(w["account"], w["mailbox"]): w for w in st["watchers"]}
        self.assertEqual(sample(m, "imapsweep_up"), 1)
        self.assertEqual(sample(m, "imapsweep_build_info", version=st["version"]), 1)
        self.assertEqual(sample(m, "imapsweep_actions_total", account="main", mailbox=ODD_MAILBOX, rule="cron",
                                action="delete"), 1)  # fmt: skip
        states = {dict(k[1])["state"]: v for k, v in m.items() if k[0] == "imapsweep_watchers"}
        self.assertEqual(set(states), {"connecting", "authenticating", "selecting", "sweeping", "idle", "polling",
                                       "backoff", "error"})  # fmt: skip
        self.assertEqual(sum(states.values()), 3)
        self.assertEqual(states["idle"], sum(1 for w in ws.values() if w["state"] == "idle"))
        for (acc, mb), w in ws.items():
            self.assertEqual(sample(m, "imapsweep_reconnects_total", account=acc, mailbox=mb), w["reconnects"])
            self.assertEqual(sample(m, "imapsweep_watcher_healthy", account=acc, mailbox=mb),
                             1 if w["last_error"] is None and w["state"] not in ("backoff", "error") else 0)
        self.assertEqual(sample(m, "imapsweep_watcher_healthy", account="bad", mailbox="INBOX"), 0)
        self.assertGreater(sample(m, "imapsweep_reconnects_total", account="bad", mailbox="INBOX"), 0)
        # the last sweep's time, as the status has it
        iso = ws[("main", ODD_MAILBOX)]["last_sweep"]
        self.assertEqual(sample(m, "imapsweep_last_sweep_timestamp_seconds", account="main", mailbox=ODD_MAILBOX),
                         calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))  # fmt: skip
        # the never-swept mailbox of "bad" has no timestamp
        self.assertNotIn(("imapsweep_last_sweep_timestamp_seconds",
                          frozenset({"account": "bad", "mailbox": "INBOX"}.items())), m)  # fmt: skip
        # sweeps: the two full sweeps after SELECT and one for the new mail
        # (full or incremental: the sweep of an empty mailbox's first UID on
        # is a full one)
        full = sample(m, "imapsweep_sweep_duration_seconds_count", type="full")
        incr = sample(m, "imapsweep_sweep_duration_seconds_count", type="incremental")
        self.assertGreaterEqual(full, 2)
        self.assertGreaterEqual(full + incr, 3)
        self.assertGreater(sample(m, "imapsweep_sweep_duration_seconds_sum", type="full"), 0)
        self.assertEqual(sample(m, "imapsweep_sweep_duration_seconds_bucket", type="full", le="+Inf"), full)
        buckets = [(float(dict(k[1])["le"]), v) for k, v in m.items()
                   if k[0] == "imapsweep_sweep_duration_seconds_bucket" and dict(k[1])["type"] == "incremental"]
        buckets.sort()
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets), "buckets are cumulative")
        self.assertEqual(buckets[-1], (float("inf"), incr))

    def test_metrics_file_for_node_exporter(self) -> None:
        out = self.work / "textfile" / "imapsweep.prom"
        out.parent.mkdir(exist_ok=True)
        r = ctl("-s", self.sock, "metrics", "-o", str(out))
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        self.assertEqual(stat.S_IMODE(out.stat().st_mode), 0o644)
        self.assertEqual(sample(parse_metrics(out.read_text()), "imapsweep_up"), 1)
        self.assertEqual(sorted(p.name for p in out.parent.iterdir()), ["imapsweep.prom"], "no temporary file left")
        # no daemon: the file says so (imapsweep_up 0) and the exit status too
        r = ctl("-s", str(self.work / "nobody.sock"), "metrics", "-o", str(out))
        self.assertEqual(r.returncode, 69)
        self.assertEqual(parse_metrics(out.read_text()), {("imapsweep_up", frozenset()): 0.0})
        lint = subprocess.run([promtool(), "check", "metrics"], input=out.read_text(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        # a folder that cannot be written: an error, exit 1
        r = ctl("-s", self.sock, "metrics", "-o", str(self.work / "no" / "such" / "dir.prom"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot write", r.stderr)


class UserDaemonTest(unittest.TestCase):
    """imapsweepd and imapsweepctl run as a throwaway unprivileged uid with no
    options: the XDG paths, both agree."""

    dc: Dovecot

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=1)
        cls.dc.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dc.cleanup()

    def setUp(self) -> None:
        # everything the user has lives under one 0755 folder it owns
        self.root = self.dc.base / f"user-{self._testMethodName}"
        self.root.mkdir(mode=0o755)
        self.bin = self.root / "bin"
        self.bin.mkdir()
        for name in ("imapsweepd", "imapsweepctl"):
            shutil.copy2(binary(name), self.bin / name)
        self.home = self.root / "home"
        self.run_dir = self.root / "run"
        self.home.mkdir()
        self.run_dir.mkdir(mode=0o700)
        os.chmod(self.root, 0o755)
        for p in (self.home, self.run_dir):
            os.chown(p, USER_ID, USER_ID)
        self.env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.run_dir), "PATH": "/usr/bin:/bin"}

    def as_user(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        e = dict(self.env, **(env or {}))
        return ["setpriv", f"--reuid={USER_ID}", f"--regid={USER_ID}", "--clear-groups", "env", "-i",
                *[f"{k}={v}" for k, v in e.items()], *argv]  # fmt: skip

    def run_user(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.as_user(list(argv), env), capture_output=True, text=True, timeout=30, cwd="/")

    def write_user_config(self, path: Path, **daemon: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pw = path.parent / "pass"
        pw.write_text(self.dc.user(1).password + "\n")
        path.write_text(config_text([dovecot_account(self.dc, "mine", 1, pw)], [CRON_RULE], daemon=daemon or None))
        for p in (path, pw):
            os.chmod(p, 0o600)
        for d in [path.parent, *path.parent.parents]:
            if d == self.home.parent:
                break
            os.chown(d, USER_ID, USER_ID)
        for p in (path, pw):
            os.chown(p, USER_ID, USER_ID)

    def start_user_daemon(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        d = Proc(self.as_user([str(self.bin / "imapsweepd"), *args], env), name="imapsweepd-user", cwd="/")
        self.addCleanup(d.__exit__, None, None, None)
        return d

    def test_defaults_follow_xdg(self) -> None:
        cfg = self.home / ".config" / "imapsweep" / "imapsweep.yaml"
        sock = self.run_dir / "imapsweep" / "control.sock"
        # before there is a file: the message names the path it looked for
        r = self.run_user(str(self.bin / "imapsweepd"), "--check-config")
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(str(cfg), r.stderr)
        r = self.run_user(str(self.bin / "imapsweepd"), "--help")
        self.assertIn(f"(default {cfg})", r.stdout)
        self.write_user_config(cfg)
        r = self.run_user(str(self.bin / "imapsweepd"), "--check-config")
        self.assertEqual((r.returncode, r.stdout.splitlines()[0]), (0, "ok: 1 account, 1 mailbox, 1 rule"), r.stderr)
        # then each rule in words (the password file in the home is fine: a
        # user's daemon is not sandboxed away from it)
        self.assertEqual(r.stdout.splitlines()[1:], ['rule cron: delete messages whose From contains "Cron Daemon" '
                                                     "in mine/INBOX"])  # fmt: skip
        self.assertEqual(r.stderr, "")

        d = self.start_user_daemon()
        wait_for(lambda: sock.exists(), 10, what=f"{sock}")
        wait_watching(str(sock), [("mine", "INBOX")])
        # the folder is the user's and private; the socket is the user's
        st = os.stat(sock.parent)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (USER_ID, 0o700))
        self.assertEqual(os.stat(sock).st_uid, USER_ID)
        # imapsweepctl finds it with no option
        r = self.run_user(str(self.bin / "imapsweepctl"), "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        obj = json.loads(r.stdout)
        self.assertEqual((obj["pid"], obj["config"]), (d.pid, str(cfg)))
        # and it works: mail is swept
        with self.dc.imap(1) as im:
            uid = im.append("INBOX", cron_mail(1))
            keep = im.append("INBOX", ordinary_mail(1))
            wait_for(lambda: uid not in im.uids("INBOX"), 10, what="cron mail deleted by the user's daemon")
            self.assertIn(keep, im.uids("INBOX"))
        r = self.run_user(str(self.bin / "imapsweepctl"), "status", "--check")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(d.stop(timeout=10), 0)
        self.assertFalse(sock.exists(), "the socket is removed at exit")

    def test_xdg_config_home_wins_over_home(self) -> None:
        xdg = self.root / "xdg-config"
        cfg = xdg / "imapsweep" / "imapsweep.yaml"
        self.write_user_config(cfg)
        os.chown(xdg, USER_ID, USER_ID)
        r = self.run_user(str(self.bin / "imapsweepd"), "--check-config", env={"XDG_CONFIG_HOME": str(xdg)})
        self.assertEqual(r.returncode, 0, r.stderr)
        # a relative XDG_CONFIG_HOME is ignored, as the XDG spec says
        r = self.run_user(str(self.bin / "imapsweepd"), "--check-config", env={"XDG_CONFIG_HOME": "xdg-config"})
        self.assertEqual(r.returncode, 78)
        self.assertIn(str(self.home / ".config" / "imapsweep" / "imapsweep.yaml"), r.stderr)

    def test_no_runtime_dir(self) -> None:
        cfg = self.home / ".config" / "imapsweep" / "imapsweep.yaml"
        self.write_user_config(cfg)
        e = {k: v for k, v in self.env.items() if k != "XDG_RUNTIME_DIR"}
        argv = ["setpriv", f"--reuid={USER_ID}", f"--regid={USER_ID}", "--clear-groups", "env", "-i",
                *[f"{k}={v}" for k, v in e.items()]]  # fmt: skip
        r = subprocess.run([*argv, str(self.bin / "imapsweepd")], capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(r.returncode, 1)
        self.assertIn("XDG_RUNTIME_DIR is not set", r.stderr)
        r = subprocess.run([*argv, str(self.bin / "imapsweepctl"), "status"], capture_output=True, text=True,
                           timeout=30, cwd="/")  # fmt: skip
        self.assertEqual(r.returncode, 64)
        self.assertIn("XDG_RUNTIME_DIR is not set", r.stderr)
        # --once needs no socket: it still runs
        r = subprocess.run([*argv, str(self.bin / "imapsweepd"), "--once"], capture_output=True, text=True,
                           timeout=60, cwd="/")  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_instances(self) -> None:
        """--control-socket overrides the configuration; -i NAME finds
        NAME.sock beside the default socket; a reload keeps the socket."""
        cfg = self.home / ".config" / "imapsweep" / "shard1.yaml"
        named = self.run_dir / "named-in-config.sock"
        self.write_user_config(cfg, control_socket=str(named))
        (self.run_dir / "imapsweep").mkdir(mode=0o700)
        os.chown(self.run_dir / "imapsweep", USER_ID, USER_ID)
        sock = self.run_dir / "imapsweep" / "shard1.sock"
        d = self.start_user_daemon("-c", str(cfg), "--control-socket", str(sock))
        wait_for(lambda: sock.exists(), 10, what=str(sock))
        wait_watching(str(sock), [("mine", "INBOX")])
        self.assertFalse(named.exists(), "the configuration's socket is overridden")
        r = self.run_user(str(self.bin / "imapsweepctl"), "-i", "shard1", "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["pid"], d.pid)
        r = self.run_user(str(self.bin / "imapsweepctl"), "-i", "shard1", "reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_user(str(self.bin / "imapsweepctl"), "--instance", "shard1", "status", "--check")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertFalse(named.exists())
        # -i names an instance, not a path; -s and -i exclude each other
        for args in (["-i", "../x", "status"], ["-i", "", "status"], ["-i", "a/b", "status"],
                     ["-i", "shard1", "-s", str(sock), "status"]):  # fmt: skip
            with self.subTest(args=args):
                r = self.run_user(str(self.bin / "imapsweepctl"), *args)
                self.assertEqual(r.returncode, 64, r.stderr)
        # --system: the system's folder even for a user
        r = self.run_user(str(self.bin / "imapsweepctl"), "--system", "-i", "nosuch-instance-xyz", "status")
        self.assertEqual(r.returncode, 69)
        self.assertIn("/run/imapsweep/nosuch-instance-xyz.sock", r.stderr)
        # "" disables the socket, whatever the configuration says
        cfg2 = self.home / ".config" / "imapsweep" / "nosock.yaml"
        self.write_user_config(cfg2, control_socket=str(named))
        d2 = self.start_user_daemon("-c", str(cfg2), "--control-socket", "")
        d2.wait_for_log(r"started", timeout=10)
        self.assertFalse(named.exists())
        self.assertTrue(d2.running())


class RootDefaultsTest(unittest.TestCase):
    def test_root_keeps_system_paths(self) -> None:
        env = dict(os.environ, XDG_CONFIG_HOME="/nonexistent-xdg", XDG_RUNTIME_DIR="/nonexistent-run")
        r = subprocess.run([str(binary("imapsweepd")), "--help"], capture_output=True, text=True, env=env, timeout=30)
        self.assertIn("(default /etc/imapsweep/imapsweep.yaml)", r.stdout)
        r = subprocess.run([str(binary("imapsweepctl")), "-i", "nosuch-instance-xyz", "version"],
                           capture_output=True, text=True, env=env, timeout=30)  # fmt: skip
        self.assertEqual(r.returncode, 69)
        self.assertIn("/run/imapsweep/nosuch-instance-xyz.sock", r.stderr)


if __name__ == "__main__":
    unittest.main()


class CompletionTest(unittest.TestCase):
    """The bash completions, run by bash with bash-completion's helpers."""

    def complete(self, prog: str, line: str, env: dict[str, str] | None = None) -> list[str]:
        words = line.split(" ")
        script = (
            "source /usr/share/bash-completion/bash_completion\n"
            f"source {REPO_ROOT}/completion/{prog}\n"
            'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
            f"COMP_LINE={json.dumps(line)}; COMP_POINT=${{#COMP_LINE}}\n"
            f"_{prog}\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        path = f"{binary('imapsweepctl').parent}:/usr/bin:/bin"
        r = subprocess.run(["bash", "-c", script, "bash", *words], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PATH=path, **(env or {})))  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(x for x in r.stdout.splitlines() if x)

    def test_imapsweepd(self) -> None:
        self.assertEqual(self.complete("imapsweepd", "imapsweepd --log-level t"), ["trace"])
        self.assertIn("--control-socket", self.complete("imapsweepd", "imapsweepd --c"))
        self.assertIn("--check-config", self.complete("imapsweepd", "imapsweepd --c"))
        self.assertEqual(self.complete("imapsweepd", "imapsweepd --ex"), ["--explain"])
        self.assertEqual(self.complete("imapsweepd", "imapsweepd --sy"), ["--syntax-only"])

    def test_imapsweepctl(self) -> None:
        self.assertEqual(self.complete("imapsweepctl", "imapsweepctl "),
                         ["explain", "metrics", "reload", "status", "sweep", "version"])  # fmt: skip
        self.assertIn("--check", self.complete("imapsweepctl", "imapsweepctl status --"))
        self.assertNotIn("--check", self.complete("imapsweepctl", "imapsweepctl sweep --"))
        self.assertIn("--output", self.complete("imapsweepctl", "imapsweepctl metrics --"))
        # instances: the sockets in the user's folder
        run = Path(tempfile.mkdtemp(prefix="imapsweep-compl-", dir="/tmp"))
        self.addCleanup(shutil.rmtree, run)
        os.chmod(run, 0o755)
        (run / "imapsweep").mkdir(mode=0o755)
        for name in ("shard1", "shard2"):
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(run / "imapsweep" / f"{name}.sock"))
            s.close()
        (run / "imapsweep" / "not-a-socket.sock").write_text("")
        # (root's folder is /run/imapsweep: this runs as a user)
        out = self.complete_as_user("imapsweepctl -i sh", {"XDG_RUNTIME_DIR": str(run)})
        self.assertEqual(out, ["shard1", "shard2"])
        self.assertEqual(self.complete_as_user("imapsweepctl -i ", {"XDG_RUNTIME_DIR": str(run)}),
                         ["shard1", "shard2"])  # fmt: skip

    def complete_as_user(self, line: str, env: dict[str, str]) -> list[str]:
        words = line.split(" ")
        script = (
            "source /usr/share/bash-completion/bash_completion\n"
            f"source {REPO_ROOT}/completion/imapsweepctl\n"
            'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
            f"COMP_LINE={json.dumps(line)}; COMP_POINT=${{#COMP_LINE}}\n"
            "_imapsweepctl\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        r = subprocess.run(["setpriv", f"--reuid={USER_ID}", f"--regid={USER_ID}", "--clear-groups", "bash", "-c",
                            script, "bash", *words], capture_output=True, text=True, timeout=30, cwd="/",
                           env=dict(os.environ, PATH="/usr/bin:/bin", **env))  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(x for x in r.stdout.splitlines() if x)


class InstallTest(unittest.TestCase):
    """make install with other directories, into a staging root, then make
    uninstall: what install adds is removed; a configuration the operator
    wrote stays. The build goes to its own folder (SYSCONFDIR is compiled
    in)."""

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def test_install_uninstall(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="imapsweep-install-"))
        self.addCleanup(shutil.rmtree, tmp)
        dest = tmp / "root"
        dirs = {"BUILD": str(tmp / "build"), "DESTDIR": str(dest), "PREFIX": "/opt/isw",
                "SYSCONFDIR": "/opt/isw/etc"}  # fmt: skip
        args = [f"{k}={v}" for k, v in dirs.items()]
        r = self.make("-j2", "install", *args)
        self.assertIn("it watches nothing until you write your own", r.stdout)
        files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        self.assertEqual(files, sorted([
            "opt/isw/sbin/imapsweepd", "opt/isw/bin/imapsweepctl",
            "opt/isw/share/man/man8/imapsweepd.8", "opt/isw/share/man/man1/imapsweepctl.1",
            "opt/isw/share/man/man5/imapsweep.yaml.5",
            *[f"opt/isw/lib/systemd/system/{p.name}" for p in (REPO_ROOT / "systemd").iterdir() if p.is_file()],
            "opt/isw/lib/systemd/user/imapsweepd.service",
            "opt/isw/share/bash-completion/completions/imapsweepd",
            "opt/isw/share/bash-completion/completions/imapsweepctl",
            "opt/isw/share/doc/imapsweep/README.md", "opt/isw/share/doc/imapsweep/NEWS.md",
            "opt/isw/share/doc/imapsweep/guide.md", "opt/isw/share/doc/imapsweep/examples/imapsweep.yaml",
            "opt/isw/etc/imapsweep/imapsweep.yaml", "opt/isw/etc/imapsweep/imapsweep.yaml.example",
        ]))  # fmt: skip
        # SYSCONFDIR everywhere: compiled in, in the units, in the inert file
        d = dest / "opt/isw/sbin/imapsweepd"
        out = subprocess.run([str(d), "--help"], capture_output=True, text=True, timeout=30).stdout
        self.assertIn("(default /opt/isw/etc/imapsweep/imapsweep.yaml)", out)
        unit = (dest / "opt/isw/lib/systemd/system/imapsweepd.service").read_text()
        self.assertIn("ExecStart=/opt/isw/sbin/imapsweepd -c /opt/isw/etc/imapsweep/imapsweep.yaml", unit)
        self.assertNotIn("/etc/imapsweep/imapsweep.yaml\n", unit.replace("/opt/isw/etc/imapsweep/imapsweep.yaml", ""))
        metrics = (dest / "opt/isw/lib/systemd/system/imapsweep-metrics.service").read_text()
        self.assertIn("ExecStart=/opt/isw/bin/imapsweepctl metrics", metrics)
        inert = dest / "opt/isw/etc/imapsweep/imapsweep.yaml"
        self.assertIn("/opt/isw/share/doc/imapsweep/examples/imapsweep.yaml", inert.read_text())
        r = subprocess.run([str(d), "--check-config", "-c", str(inert)], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 78, "the inert configuration is refused")
        self.assertIn("at least one account is required", r.stderr)

        # a second install keeps the configuration the operator wrote
        inert.write_text("# mine\n")
        r = self.make("install", *args)
        self.assertIn("kept existing", r.stdout)
        self.assertEqual(inert.read_text(), "# mine\n")
        # uninstall: everything but that file, and no empty folder of ours
        r = self.make("uninstall", *args)
        self.assertIn("kept", r.stdout)
        left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        self.assertEqual(left, ["opt/isw/etc/imapsweep/imapsweep.yaml"])
        self.assertFalse((dest / "opt/isw/share/doc/imapsweep").exists())
        # an untouched inert configuration goes with the rest
        inert.unlink()
        self.make("install", *args)
        self.make("uninstall", *args)
        self.assertEqual([p for p in dest.rglob("*") if p.is_file()], [])
        self.assertFalse((dest / "opt/isw/etc/imapsweep").exists())
