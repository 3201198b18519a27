# SPDX-License-Identifier: MIT
"""The control socket and imapsweepctl, against a running
imapsweepd watching a real Dovecot.

Every effect on a mailbox is checked with the independent imaplib oracle;
the daemon's own replies are only trusted for what they are about (their
shape, their values compared with the oracle).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import binary  # noqa: E402
from harness.daemon import (  # noqa: E402
    Control,
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

NOBODY = 65534
#: A Python that uid 65534 can run (sys.executable may live in a private home).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CRON_RULE = {"name": "cron", "match": {"from": "Cron Daemon"}, "action": "delete"}
# A message is acted on only when it is flagged: flagging does not raise
# EXISTS, so only a full sweep notices it.
FLAGGED_RULE = {"name": "flagged-sweep", "match": {"subject": "sweep-me", "flagged": True}, "action": "delete"}


@functools.lru_cache(maxsize=None)
def daemon_version() -> str:
    out = subprocess.run([str(binary("imapsweepd")), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def ctl(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("imapsweepctl")), *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))  # fmt: skip


class ControlSocketTest(unittest.TestCase):
    """One Dovecot and one daemon for the class (account ``main`` = user1,
    INBOX, socket mode left at its default).  Tests that need another
    socket mode or peer start their own daemon on user2/user3."""

    dc: Dovecot
    d: Proc
    sock: str
    cfg: Path
    work: Path
    started: float

    @classmethod
    def setUpClass(cls) -> None:
        cls.dc = Dovecot(users=3)
        cls.dc.__enter__()
        try:
            # reachable by uid 65534 (the peer-credential tests)
            cls.work = cls.dc.base / "control"
            cls.work.mkdir(mode=0o755)
            os.chmod(cls.work, 0o755)
            for i in (1, 2, 3):
                (cls.work / f"pass{i}").write_text(cls.dc.user(i).password + "\n")
                (cls.work / f"pass{i}").chmod(0o600)  # others reading it would be warned about
            cls.sock = str(cls.work / "main.sock")
            cls.cfg = cls.work / "main.yaml"
            cls.cfg.write_text(cls.config())
            cls.started = time.monotonic()
            cls.d = Proc([str(binary("imapsweepd")), "-c", str(cls.cfg)], name="imapsweepd-main")
            wait_watching(cls.sock, [("main", "INBOX")])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def config(cls, **daemon: object) -> str:
        return config_text(
            [dovecot_account(cls.dc, "main", 1, cls.work / "pass1", idle_refresh="2s")],
            [CRON_RULE, FLAGGED_RULE],
            daemon={"control_socket": cls.sock, **daemon},
        )

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            if getattr(cls, "d", None) is not None:
                rc = cls.d.stop(timeout=10)
                cls.d.cleanup()
                assert rc == 0, f"imapsweepd exited {rc}:\n{cls.d.tail()}"
                cls.d.assert_valgrind_clean()
        finally:
            cls.dc.cleanup()

    def setUp(self) -> None:
        self.assertTrue(self.d.running(), f"the class daemon died:\n{self.d.tail()}")

    def oracle(self, user: int = 1):
        im = self.dc.imap(user)
        self.addCleanup(im.logout)
        return im

    def status(self) -> dict:
        st = control_request(self.sock, "status")
        self.assertTrue(st["ok"], st)
        return st

    def main_watcher(self) -> dict:
        return watchers(self.sock)[("main", "INBOX")]

    def other_daemon(self, name: str, user: int, **daemon: object) -> tuple[Proc, str]:
        """A second daemon on ``user`` with its own socket and ``daemon`` settings."""
        sock = str(daemon.get("control_socket", self.work / f"{name}.sock"))
        cfg = self.work / f"{name}.yaml"
        cfg.write_text(config_text([dovecot_account(self.dc, name, user, self.work / f"pass{user}")], [CRON_RULE],
                                   daemon={"control_socket": sock, **daemon}))  # fmt: skip
        d = Proc([str(binary("imapsweepd")), "-c", str(cfg)], name=f"imapsweepd-{name}")
        self.addCleanup(d.__exit__, None, None, None)
        wait_watching(sock, [(name, "INBOX")])
        return d, sock

    def run_as_nobody(self, sock: str) -> list[str]:
        """Connect as uid/gid 65534 (no supplementary groups), send "status",
        then "version" on the same connection; returns both reply lines
        ("EOF" where the connection was closed instead)."""
        script = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.settimeout(10)\n"
            "s.connect(sys.argv[1])\n"
            "f = s.makefile('rb')\n"
            "for req in (b'status\\n', b'version\\n'):\n"
            "    try:\n"
            "        s.sendall(req)\n"
            "    except (BrokenPipeError, ConnectionResetError):\n"
            "        pass  # a refusal may already be waiting to be read\n"
            "    try:\n"
            "        line = f.readline().decode().strip()\n"
            "    except ConnectionResetError:\n"
            "        line = ''\n"
            "    print(line or 'EOF')\n"
        )
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            SYSTEM_PYTHON, "-c", script, sock],
                           capture_output=True, text=True, timeout=30, cwd="/")  # fmt: skip
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.splitlines()

    # -- status ---------------------------------------------------------------
    def test_status_fields(self) -> None:
        im = self.oracle()
        for i in range(2):
            im.append("INBOX", ordinary_mail(100 + i))
        top = max(im.uids("INBOX"))

        def counted() -> bool:
            w = self.main_watcher()
            return w["messages"] == im.count("INBOX") and w["uid_swept"] >= top

        wait_for(counted, 10, what="status to count the oracle's messages")
        st = self.status()
        self.assertLessEqual({"ok", "version", "pid", "uptime_s", "config", "generation", "dry_run", "watchers"},
                             set(st))  # fmt: skip
        self.assertIs(st["ok"], True)
        self.assertEqual(st["version"], daemon_version())
        self.assertEqual(st["pid"], self.d.pid)
        self.assertIsInstance(st["uptime_s"], int)
        self.assertLessEqual(st["uptime_s"], time.monotonic() - self.started + 1)
        self.assertGreaterEqual(st["uptime_s"], 0)
        self.assertEqual(st["config"], str(self.cfg))
        self.assertIsInstance(st["generation"], int)
        self.assertNotIsInstance(st["generation"], bool)
        self.assertGreaterEqual(st["generation"], 1)
        self.assertIs(st["dry_run"], False)
        self.assertEqual(len(st["watchers"]), 1)
        w = st["watchers"][0]
        types = {"account": str, "mailbox": str, "state": str, "state_s": int, "shared": bool, "capabilities": list,
                 "uidvalidity": int, "messages": int, "uid_swept": int, "actions": dict, "last_sweep": str,
                 "last_sweep_ms": int, "reconnects": int, "notes": list}  # fmt: skip
        for key, typ in types.items():
            with self.subTest(key=key):
                self.assertIn(key, w)
                self.assertIsInstance(w[key], typ)
                if typ is int:
                    self.assertNotIsInstance(w[key], bool)
        self.assertIn("last_error", w)
        self.assertIsNone(w["last_error"])
        self.assertEqual((w["account"], w["mailbox"], w["state"]), ("main", "INBOX", "idle"))
        self.assertIs(w["shared"], False)
        self.assertGreaterEqual(w["state_s"], 0)
        self.assertEqual(w["uidvalidity"], im.uidvalidity("INBOX"))
        self.assertEqual(w["messages"], im.count("INBOX"))
        self.assertGreaterEqual(w["uid_swept"], top)
        self.assertEqual(w["reconnects"], 0)
        self.assertRegex(w["last_sweep"], ISO_RE)
        self.assertGreaterEqual(w["last_sweep_ms"], 0)
        caps = {c.upper() for c in w["capabilities"]}
        self.assertIn("IDLE", caps)
        self.assertIn("UIDPLUS", caps)
        self.assertLessEqual(caps, {c.upper() for c in im.capabilities})
        # uptime counts up
        wait_for(lambda: self.status()["uptime_s"] > st["uptime_s"], 3, what="uptime_s to grow")

    def test_status_counts_actions(self) -> None:
        im = self.oracle()
        before = self.main_watcher()["actions"].get("cron", {}).get("delete", 0)
        uids = [im.append("INBOX", cron_mail(200 + i)) for i in range(2)]
        keep = im.append("INBOX", ordinary_mail(200))
        wait_for(lambda: not set(uids) & set(im.uids("INBOX")), 10, what="cron mail deleted")
        wait_for(lambda: self.main_watcher()["actions"].get("cron", {}).get("delete") == before + 2, 5,
                 what="status to count 2 more deletions")  # fmt: skip
        self.assertIn(keep, im.uids("INBOX"))
        self.assertEqual(self.main_watcher()["messages"], im.count("INBOX"))

    def test_version(self) -> None:
        with Control(self.sock) as c:
            self.assertEqual(c.request("version"), {"ok": True, "version": daemon_version()})
            self.assertEqual(c.request({"cmd": "version"}), {"ok": True, "version": daemon_version()})
            self.assertEqual(c.request({"cmd": "version", "args": []})["ok"], True)

    # -- malformed requests ------------------------------------------------------
    def test_unknown_and_malformed_requests_keep_the_connection(self) -> None:
        with Control(self.sock) as c:
            r = c.request("frobnicate now")
            self.assertIs(r["ok"], False)
            self.assertIn("frobnicate", r["error"])
            for bad in ("status extra", 'sweep "unbalanced', '{"cmd": 5}', '{"cmd": "sweep", "args": [1]}',
                        "{not json", '{"cmd": "sweep", "args": "main"}', "version\tx"):  # fmt: skip
                with self.subTest(request=bad):
                    r = c.request(bad)
                    self.assertIs(r["ok"], False)
                    self.assertIsInstance(r["error"], str)
                    self.assertTrue(r["error"])
            # an empty line gets no reply; the next request is answered
            c.send(b"\n\r\n")
            self.assertEqual(c.request("version")["ok"], True)
            # CRLF line ends and quoting work
            self.assertEqual(c.request(b'"version"\r')["ok"], True)
            # valid UTF-8 beyond ASCII is fine (and no such account)
            r = c.request('sweep "Zürich"')
            self.assertIs(r["ok"], False)
            self.assertIn("Zürich", r["error"])
            self.assertEqual(c.request("status")["ok"], True)

    def test_pipelined_requests(self) -> None:
        """Many short requests sent at once (well over 4 KiB together) are
        each answered: the limit is per request, not per read."""
        with Control(self.sock) as c:
            c.send(b"version\n" * 1000 + b'{"cmd":"status"}\n')
            for i in range(1000):
                self.assertEqual(c.reply(), {"ok": True, "version": daemon_version()}, f"reply {i}")
            self.assertEqual(c.reply()["watchers"][0]["account"], "main")

    def test_oversized_request_closes(self) -> None:
        with Control(self.sock) as c:
            # under the limit: an ordinary unknown request
            r = c.request("x" * 4000)
            self.assertIs(r["ok"], False)
            self.assertEqual(c.request("version")["ok"], True)
            c.send(b"y" * 5000 + b"\n")
            r = c.reply()
            self.assertIs(r["ok"], False)
            self.assertIn("4096", r["error"])
            self.assertTrue(c.closed(), "connection still open after an oversized request")
        with Control(self.sock) as c:
            # the same without a newline, in pieces
            c.send(b"status " + b"z" * 3000)
            c.send(b"z" * 3000)
            r = c.reply()
            self.assertIs(r["ok"], False)
            self.assertTrue(c.closed())
        self.assertEqual(control_request(self.sock, "version")["ok"], True)

    def test_request_size_limit_is_4096_bytes(self) -> None:
        with Control(self.sock) as c:
            r = c.request(b"v" * 4096)  # exactly 4 KiB (plus the newline): allowed
            self.assertIs(r["ok"], False)
            self.assertNotIn("4096", r["error"])
            self.assertEqual(c.request("version")["ok"], True)
            c.send(b"w" * 4097 + b"\n")
            self.assertIn("4096", c.reply()["error"])
            self.assertTrue(c.closed())

    def test_non_utf8_request_closes(self) -> None:
        for raw in (b"status \xff\xfe\n", b"sweep \xc3\x28\n", b"stat\x00us\n"):
            with self.subTest(raw=raw), Control(self.sock) as c:
                c.send(raw)
                r = c.reply()
                self.assertIs(r["ok"], False)
                self.assertIn("UTF-8", r["error"])
                self.assertTrue(c.closed(), "connection still open after a non-UTF-8 request")
        self.assertEqual(control_request(self.sock, "version")["ok"], True)

    # -- many clients -------------------------------------------------------------
    def test_100_concurrent_clients_while_mail_is_handled(self) -> None:
        im = self.oracle()
        clients = [Control(self.sock, timeout=20) for _ in range(100)]
        self.addCleanup(lambda: [c.close() for c in clients])
        errors: list[str] = []
        go = threading.Barrier(101)

        def storm(c: Control, rounds: int = 5) -> None:
            try:
                go.wait(10)
                for _ in range(rounds):
                    r = c.request("status")
                    if r.get("ok") is not True or r["watchers"][0]["account"] != "main" or r["pid"] != self.d.pid:
                        errors.append(f"bad reply {r!r}")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=storm, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        go.wait(10)
        uid = im.append("INBOX", cron_mail(300))
        t0 = time.monotonic()
        wait_for(lambda: uid not in im.uids("INBOX"), 5, what="cron mail deleted during the storm")
        took = time.monotonic() - t0
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads))
        # Dovecot itself waits ~0.5 s before announcing new mail.
        self.assertLess(took, 5)
        # all 100 connections are still usable
        for c in clients:
            self.assertEqual(c.request("version")["ok"], True)

    def test_client_limit(self) -> None:
        """256 clients are served; the 257th is told so and closed; a slot
        comes back when a client leaves.  (Its own daemon: clients that
        leave are counted out asynchronously, which must not leak into the
        other tests.)"""
        d, sock = self.other_daemon("limit", 2)
        clients: list[Control] = []
        self.addCleanup(lambda: [c.close() for c in clients])

        def connect_served() -> Control:
            def attempt() -> Control | None:
                c = Control(sock)
                try:
                    if c.request("version")["ok"]:
                        return c
                except (BrokenPipeError, ConnectionResetError, AssertionError):
                    pass
                c.close()
                return None

            return wait_for(attempt, 5, what="a control connection to be served")

        for _ in range(256):
            clients.append(connect_served())
        with Control(sock) as extra:
            r = extra.reply()  # said at once, before any request
            self.assertEqual(r, {"ok": False, "error": "too many clients"})
            self.assertTrue(extra.closed())
        # imapsweepctl is refused the same way: the daemon's answer, exit 1
        r = ctl("-s", sock, "version")
        self.assertEqual((r.returncode, r.stderr), (1, "imapsweepctl: too many clients\n"))
        # the 256 are all still served
        for c in clients:
            self.assertEqual(c.request("version")["ok"], True)
        clients.pop().close()
        clients.append(connect_served())
        self.assertTrue(d.running())

    def test_client_that_does_not_read_is_dropped(self) -> None:
        mark = self.d.mark()
        lazy = Control(self.sock, timeout=10)
        self.addCleanup(lazy.close)
        # ~1.4 KiB of reply per request: 3000 replies are far beyond what the
        # daemon may buffer for one client (1 MiB) plus the socket buffers.
        lazy.send(b"status\n" * 3000)
        self.d.wait_for_log(r"dropping a client that does not read", since=mark, timeout=10)
        self.assertTrue(lazy.closed(), "the client that does not read was not disconnected")
        self.assertEqual(control_request(self.sock, "version")["ok"], True)

    # -- sweep ------------------------------------------------------------------------
    def test_sweep_command_runs_a_full_sweep(self) -> None:
        im = self.oracle()
        target = im.append("INBOX", ordinary_mail(400, subject="sweep-me please"))
        wait_for(lambda: self.main_watcher()["uid_swept"] >= target, 10, what="daemon to sweep past the new mail")
        im.set_flags("INBOX", [target], ["\\Flagged"])
        # New mail after the flag change: its incremental sweep covers only
        # UIDs above those already swept, so the flagged message stays.
        cron = im.append("INBOX", cron_mail(400))
        wait_for(lambda: cron not in im.uids("INBOX"), 10, what="incremental sweep of the new cron mail")
        self.assertIn(target, im.uids("INBOX"))
        r = control_request(self.sock, "sweep main INBOX")
        self.assertEqual(r, {"ok": True, "swept": [{"account": "main", "mailbox": "INBOX"}]})
        wait_for(lambda: target not in im.uids("INBOX"), 10, what="full sweep to delete the flagged message")
        self.assertEqual(self.main_watcher()["actions"]["flagged-sweep"], {"delete": 1})

    def test_sweep_arguments(self) -> None:
        with Control(self.sock) as c:
            self.assertEqual(c.request("sweep"), {"ok": True, "swept": [{"account": "main", "mailbox": "INBOX"}]})
            self.assertEqual(c.request("sweep main"), {"ok": True, "swept": [{"account": "main", "mailbox": "INBOX"}]})
            self.assertEqual(c.request({"cmd": "sweep", "args": ["main", "INBOX"]})["ok"], True)
            r = c.request("sweep NOSUCH")
            self.assertIs(r["ok"], False)
            self.assertIn("NOSUCH", r["error"])
            r = c.request("sweep main NoSuchBox")
            self.assertIs(r["ok"], False)
            self.assertIn("NoSuchBox", r["error"])
            r = c.request("sweep main INBOX extra")
            self.assertIs(r["ok"], False)
        wait_watching(self.sock, [("main", "INBOX")])

    # -- access ---------------------------------------------------------------------
    def test_socket_mode_default_0600(self) -> None:
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_socket_mode_0660_and_group(self) -> None:
        d, sock = self.other_daemon("grp", 2, control_mode="0660", control_group="nogroup")
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, NOBODY)  # nogroup
        # a member of control_group (here by its primary group) is served
        reply, after = self.run_as_nobody(sock)
        r = json.loads(reply)
        self.assertIs(r["ok"], True, r)
        self.assertEqual(r["watchers"][0]["account"], "grp")
        self.assertEqual(json.loads(after), {"ok": True, "version": daemon_version()})

    def test_peer_of_another_uid_refused(self) -> None:
        d, sock = self.other_daemon("open", 3, control_mode="0666")
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o666)
        mark = d.mark()
        reply, after = self.run_as_nobody(sock)
        self.assertEqual(json.loads(reply), {"ok": False, "error": "permission denied"})
        self.assertEqual(after, "EOF")
        d.wait_for_log(rf"refused a client with uid {NOBODY}", since=mark, timeout=5)
        # imapsweepctl run by that user says so and exits 1
        # (a copy: the build directory need not be reachable by that user)
        ctl_copy = self.work / "imapsweepctl"
        shutil.copy2(binary("imapsweepctl"), ctl_copy)
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            str(ctl_copy), "-s", sock, "status"],
                           capture_output=True, text=True, timeout=30, cwd="/")  # fmt: skip
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, "imapsweepctl: permission denied\n")
        self.assertEqual(r.stdout, "")
        # root (and the daemon's own uid) still are served
        self.assertEqual(control_request(sock, "version")["ok"], True)

    def test_socket_in_use_or_stale(self) -> None:
        """A second daemon on the same socket path refuses to start and the
        first keeps its socket; a socket file nobody listens on is reused."""
        cfg = self.work / "second.yaml"
        cfg.write_text(config_text([dovecot_account(self.dc, "second", 2, self.work / "pass2")], [CRON_RULE],
                                   daemon={"control_socket": self.sock}))  # fmt: skip
        with Proc([str(binary("imapsweepd")), "-c", str(cfg)], name="imapsweepd-second") as second:
            self.assertEqual(second.wait(10), 1)
            self.assertIn("in use by a running daemon", second.log_text())
        self.assertEqual(control_request(self.sock, "status")["pid"], self.d.pid)
        stale = str(self.work / "stale-reuse.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        d, _ = self.other_daemon("stale", 2, control_socket=stale)
        self.assertEqual(control_request(stale, "status")["pid"], d.pid)

    # -- imapsweepctl -------------------------------------------------------------------
    def test_ctl_status_table(self) -> None:
        for args, env in (
            (["-s", self.sock, "status"], None),
            (["--socket", self.sock, "status"], None),
            (["status"], {"IMAPSWEEP_SOCKET": self.sock}),
        ):  # fmt: skip
            with self.subTest(args=args, env=env):
                r = ctl(*args, env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                lines = r.stdout.splitlines()
                m = re.match(r"^imapsweepd (\S+), pid (\d+), up \S+, configuration generation (\d+)$", lines[0])
                self.assertIsNotNone(m, lines[0])
                self.assertEqual(m.group(1), daemon_version())
                self.assertEqual(int(m.group(2)), self.d.pid)
                self.assertRegex(lines[1], r"^ACCOUNT +MAILBOX +STATE +WATCHED BY +MESSAGES +ACTED +LAST SWEEP +LAST ERROR *$")
                row = lines[2].split()
                self.assertEqual(row[:3], ["main", "INBOX", "idle"], lines[2])
                at = lines[1].index("WATCHED BY")
                self.assertEqual(lines[2][at:].split()[0], "idle", lines[2])
                at = lines[1].index("MESSAGES")
                self.assertEqual(int(lines[2][at:].split()[0]), self.main_watcher()["messages"])

    def test_ctl_json(self) -> None:
        r = ctl("-s", self.sock, "--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        obj = json.loads(r.stdout)
        self.assertIs(obj["ok"], True)
        self.assertEqual(obj["pid"], self.d.pid)
        self.assertEqual([(w["account"], w["mailbox"]) for w in obj["watchers"]], [("main", "INBOX")])
        r = ctl("--json", "-s", self.sock, "version")
        self.assertEqual(json.loads(r.stdout), {"ok": True, "version": daemon_version()})
        r = ctl("--json", "-s", self.sock, "sweep", "NOSUCH")
        self.assertEqual(r.returncode, 1)
        self.assertIs(json.loads(r.stdout)["ok"], False)

    def test_ctl_version_and_sweep(self) -> None:
        r = ctl("-s", self.sock, "version")
        self.assertEqual((r.returncode, r.stdout), (0, f"imapsweepd {daemon_version()}\n"))
        r = ctl("-s", self.sock, "sweep", "main", "INBOX")
        self.assertEqual((r.returncode, r.stdout), (0, "sweeping main/INBOX\n"), r.stderr)
        r = ctl("-s", self.sock, "sweep")
        self.assertEqual((r.returncode, r.stdout), (0, "sweeping main/INBOX\n"), r.stderr)
        r = ctl("-s", self.sock, "sweep", "NOSUCH")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NOSUCH", r.stderr)
        r = ctl("-s", self.sock, "sweep", "main", "No Such Box")
        self.assertEqual(r.returncode, 1)
        self.assertIn("No Such Box", r.stderr)

    def test_ctl_no_daemon(self) -> None:
        missing = str(self.work / "nobody-here.sock")
        r = ctl("-s", missing, "status")
        self.assertEqual(r.returncode, 69)
        self.assertIn(missing, r.stderr)
        r = ctl("status", env={"IMAPSWEEP_SOCKET": missing})
        self.assertEqual(r.returncode, 69)
        self.assertIn(missing, r.stderr)
        # a socket file left behind, nothing listening
        stale = str(self.work / "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        self.addCleanup(os.unlink, stale)
        r = ctl("-s", stale, "version")
        self.assertEqual(r.returncode, 69)
        self.assertIn(stale, r.stderr)

    def test_ctl_usage(self) -> None:
        # the socket does not exist: usage is checked before connecting
        missing = str(self.work / "nobody-here.sock")
        for args in ([], ["frobnicate"], ["status", "a", "b", "c"], ["version", "x"], ["reload", "x"],
                     ["sweep", "a", "b", "c"], ["--bogus", "status"], ["-s"]):  # fmt: skip
            with self.subTest(args=args):
                r = ctl(*(["-s", missing] if args != ["-s"] else []), *args)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn("usage:", r.stderr)
        r = ctl("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage:", r.stdout)
        # a mailbox argument that is not UTF-8 is refused, never dropped
        # (which would turn "sweep ACCOUNT MAILBOX" into "sweep ACCOUNT")
        r = subprocess.run([str(binary("imapsweepctl")), "-s", missing, "sweep", "work", b"Entw\xfcrfe"],
                           capture_output=True, timeout=30)  # fmt: skip
        self.assertEqual((r.returncode, r.stderr), (64, b"imapsweepctl: arguments are not valid UTF-8\n"))

    def test_ctl_reload(self) -> None:
        self.addCleanup(self.cfg.write_text, self.cfg.read_text())
        gen = self.status()["generation"]
        r = ctl("-s", self.sock, "reload")
        self.assertEqual((r.returncode, r.stdout), (0, f"reloaded (configuration generation {gen + 1})\n"), r.stderr)
        self.assertEqual(self.status()["generation"], gen + 1)
        # two errors, each with its position
        text = self.config(log_levle="info").replace('"idle_refresh": "2s"', '"idle_refresh": "2x"')
        self.cfg.write_text(text)
        lines = text.splitlines()
        line_key = next(i for i, s in enumerate(lines, 1) if "log_levle" in s)
        line_dur = next(i for i, s in enumerate(lines, 1) if '"2x"' in s)
        col_dur = lines[line_dur - 1].index('"2x"') + 1
        r = ctl("-s", self.sock, "reload")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        err = r.stderr.splitlines()
        self.assertRegex(err[0], rf"^{re.escape(str(self.cfg))}:{line_key}:3: unknown key \"log_levle\"")
        self.assertRegex(err[1], rf"^{re.escape(str(self.cfg))}:{line_dur}:{col_dur}: invalid duration \"2x\"")
        self.assertRegex(err[2], r"^imapsweepctl: configuration has 2 errors")
        self.assertEqual(len(err), 3, r.stderr)
        self.assertEqual(self.status()["generation"], gen + 1)
        r = ctl("-s", self.sock, "--json", "reload")
        self.assertEqual(r.returncode, 1)
        obj = json.loads(r.stdout)
        self.assertIs(obj["ok"], False)
        self.assertEqual(len(obj["errors"]), 2)
        # still working under the previous rules
        im = self.oracle()
        uid = im.append("INBOX", cron_mail(500))
        wait_for(lambda: uid not in im.uids("INBOX"), 10, what="cron mail deleted after the failed reload")


if __name__ == "__main__":
    unittest.main()
