# SPDX-License-Identifier: MIT
"""Run imapsweepd in tests: write its config, start it, ask its control socket.

>>> cfg = SweepConfig(workdir)
>>> cfg.account("a", dovecot_account(dc, 1, mailboxes=["INBOX"]))
>>> cfg.rule("cron", {"from": "Cron Daemon"}, "delete")
>>> with Sweepd(cfg) as d:                      # continuous mode
...     d.wait_ready()                          # every watcher idle or polling
...     d.watcher("a", "INBOX")["actions"]
>>> r = run_once(cfg)                           # --once: CompletedProcess-like

The config is written as JSON, which is valid YAML (flow style); every
string is quoted, so nothing is reinterpreted as a boolean or a number.
Status comes from the control socket (one ``status`` line in, one JSON line
out), which is what ``imapsweepctl --json status`` prints.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from . import binary
from .wait import Proc, keep_tmp, timeout_scale, tmp_root, wait_for

if TYPE_CHECKING:
    from .dovecot import Dovecot

#: Short timers so that failures, reconnects and polls happen within seconds
#: (the timeouts still leave a loaded test machine, or valgrind, plenty of time).
FAST = {
    "idle_refresh": "5m",
    "poll_interval": "1s",
    "full_sweep_interval": "1h",
    "command_timeout": "5s",
    "connect_timeout": "5s",
    "reconnect_min": "1s",
    "reconnect_max": "2s",
}


def config_text(accounts: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]],
                daemon: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None) -> str:  # fmt: skip
    """A configuration file, written as JSON (valid YAML, flow style): every
    string is quoted, so nothing is reinterpreted as a boolean or a number."""
    out: dict[str, Any] = {}
    if daemon:
        out["daemon"] = dict(daemon)
    if defaults:
        out["defaults"] = dict(defaults)
    out["accounts"] = [dict(a) for a in accounts]
    out["rules"] = [dict(r) for r in rules]
    return json.dumps(out, indent=1, ensure_ascii=False) + "\n"


def dovecot_account(dc: "Dovecot", user: int, *, mailboxes: Sequence[str] = ("INBOX",), tls: str = "none",
                    password_file: str | os.PathLike[str] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """Account settings for Dovecot user ``user`` (plain port unless tls says
    otherwise); the password inline, or read from ``password_file``."""
    u = dc.user(user)
    listener = "imaps" if tls == "implicit" else "imap"
    acct: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": dc.port(listener),
        "tls": tls,
        "user": u.name,
        "mailboxes": list(mailboxes),
    }
    if password_file is None:
        acct["password"] = u.password
    else:
        acct["password_file"] = str(password_file)
    if tls != "none":
        acct["ca_file"] = dc.ca_file
        acct["host"] = "localhost"
    acct.update(extra)
    return acct


def fake_account(port: int, *, user: str = "user", password: str = "pass",
                 mailboxes: Sequence[str] = ("INBOX",), **extra: Any) -> dict[str, Any]:  # fmt: skip
    """Account settings for a fakeimap server on ``port`` (no TLS, user/pass)."""
    acct: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "user": user,
        "password": password,
        "mailboxes": list(mailboxes),
    }
    acct.update(extra)
    return acct


class SweepConfig:
    """An imapsweep.yaml under construction, in a directory of its own."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *, defaults: Mapping[str, Any] | None = None,
                 daemon: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self._own = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="imapsweep-cfg-", dir=tmp_root()))
        self.path = self.dir / "imapsweep.yaml"
        self.socket = self.dir / "ctl.sock"
        self.daemon: dict[str, Any] = {"control_socket": str(self.socket), "log_level": "info",
                                       "audit": "messages"}  # fmt: skip
        self.daemon.update(daemon or {})
        self.defaults: dict[str, Any] = dict(FAST)
        self.defaults.update(defaults or {})
        self.accounts: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []

    def account(self, name: str, settings: Mapping[str, Any]) -> "SweepConfig":
        self.accounts.append({"name": name, **settings})
        return self

    def rule(self, name: str, match: Mapping[str, Any], action: Any = "delete", **extra: Any) -> "SweepConfig":
        self.rules.append({"name": name, "match": dict(match), "action": action, **extra})
        return self

    def write(self) -> Path:
        text = config_text(self.accounts, self.rules, self.daemon, self.defaults)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return self.path

    def cleanup(self) -> None:
        if self._own and not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class OnceResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def summary(self, account: str, mailbox: str) -> list[str]:
        """The summary lines of one mailbox: its own line, then its indented rule/note lines."""
        lines = self.stdout.splitlines()
        head = f"{account}/{mailbox}: "
        for i, line in enumerate(lines):
            if line.startswith(head):
                out = [line]
                for more in lines[i + 1:]:
                    if not more.startswith("  "):
                        break
                    out.append(more)
                return out
        raise AssertionError(f"no summary for {account}/{mailbox} in:\n{self.stdout}")


def run_once(cfg: SweepConfig, *args: str, timeout: float = 60.0, valgrind: bool | None = None,
             env: Mapping[str, str] | None = None) -> OnceResult:  # fmt: skip
    """Write the config and run ``imapsweepd -c CFG --once ARGS`` to completion."""
    cfg.write()
    argv = [str(binary("imapsweepd")), "-c", str(cfg.path), "--once", *args]
    t0 = time.monotonic()
    with Proc(argv, env=env, name="imapsweepd-once", valgrind=valgrind) as p:
        rc = p.wait(timeout)
        took = time.monotonic() - t0
        out, err = p.text("stdout"), p.text("stderr")
        p.stop()
        p.assert_valgrind_clean()
        if p.valgrind:
            reports = "\n".join(p.valgrind_reports())
            assert "ERROR SUMMARY: 0 errors" in reports, f"valgrind did not run or found errors:\n{reports[-3000:]}"
            print(f"valgrind: {reports.strip().splitlines()[-1]}")
    return OnceResult(rc, out, err, took)


class Sweepd(Proc):
    """imapsweepd in continuous mode with status helpers (a ``Proc``)."""

    def __init__(self, cfg: SweepConfig, *args: str, valgrind: bool | None = None,
                 env: Mapping[str, str] | None = None, name: str = "imapsweepd") -> None:  # fmt: skip
        cfg.write()
        self.cfg = cfg
        super().__init__([str(binary("imapsweepd")), "-c", str(cfg.path), *args], env=env, name=name,
                         valgrind=valgrind)  # fmt: skip

    # -- control socket ----------------------------------------------------
    def request(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        """One control request; the parsed JSON reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout * timeout_scale())
            s.connect(str(self.cfg.socket))
            s.sendall(line.encode() + b"\n")
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def status(self) -> dict[str, Any]:
        if not self.running():
            raise AssertionError(f"imapsweepd exited with {self.returncode}; log tail:\n{self.tail()}")
        reply = self.request("status")
        assert reply.get("ok"), reply
        return reply

    def watchers(self) -> list[dict[str, Any]]:
        return self.status()["watchers"]

    def watcher(self, account: str, mailbox: str = "INBOX") -> dict[str, Any]:
        for w in self.watchers():
            if w["account"] == account and w["mailbox"] == mailbox:
                return w
        raise AssertionError(f"no watcher {account}/{mailbox} in status")

    def count(self, account: str, mailbox: str, rule: str, action: str = "delete") -> int:
        return int(self.watcher(account, mailbox).get("actions", {}).get(rule, {}).get(action, 0))

    # -- waiting -----------------------------------------------------------
    def wait_ready(self, timeout: float = 20.0, states: Iterable[str] = ("idle", "polling"),
                   where: Any = None) -> list[dict[str, Any]]:  # fmt: skip
        """Wait until every watcher (or those ``where(w)`` selects) is in one of ``states``."""
        want = set(states)

        def ready() -> list[dict[str, Any]] | None:
            ws = [w for w in self.watchers() if where is None or where(w)]
            return ws if ws and all(w["state"] in want for w in ws) else None

        return wait_for(ready, timeout * timeout_scale(), interval=0.05,
                        what=f"watchers in {sorted(want)} (log tail:\n{self.tail(15)})")  # fmt: skip

    def wait_watcher(self, account: str, mailbox: str, pred: Callable[[dict[str, Any]], object], timeout: float = 10.0,
                     what: str = "watcher condition") -> dict[str, Any]:  # fmt: skip
        def check() -> dict[str, Any] | None:
            w = self.watcher(account, mailbox)
            return w if pred(w) else None

        return wait_for(check, timeout * timeout_scale(), interval=0.05, what=f"{account}/{mailbox}: {what}")


def daemon_alive(d: Sweepd) -> bool:
    """The process runs and its control socket answers."""
    return d.running() and bool(d.request("status").get("ok"))


class DovecotCase(unittest.TestCase):
    """One Dovecot per test class; every test takes users of its own.

    ``users`` and ``max_userip_connections`` are class attributes.  Config
    directories made with ``config()`` are removed after each test.
    """

    users = 24
    max_userip_connections = 100
    dc: "Dovecot"
    _next_user = 1

    @classmethod
    def setUpClass(cls) -> None:
        from .dovecot import Dovecot

        cls._next_user = 1
        cls.dc = Dovecot(users=cls.users, max_userip_connections=cls.max_userip_connections, tls_variants=False)
        cls.dc.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dc.cleanup()

    def take_user(self) -> int:
        """A user no other test of this class has touched."""
        cls = type(self)
        n = cls._next_user
        if n > cls.users:
            raise AssertionError(f"{cls.__name__} needs more than {cls.users} users: raise `users`")
        cls._next_user = n + 1
        return n

    def oracle(self, user: int):  # type: ignore[no-untyped-def]
        """The independent imaplib client for ``user``, logged out after the test."""
        im = self.dc.imap(user)
        self.addCleanup(im.logout)
        return im

    def config(self, **kw: Any) -> SweepConfig:
        cfg = SweepConfig(**kw)
        self.addCleanup(cfg.cleanup)
        return cfg

    def daemon(self, cfg: SweepConfig, *args: str, **kw: Any) -> Sweepd:
        """A continuous-mode daemon, stopped (and checked under valgrind) after the test."""
        d = Sweepd(cfg, *args, **kw)
        self.addCleanup(d.__exit__, None, None, None)
        return d


__all__ = ["FAST", "DovecotCase", "OnceResult", "SweepConfig", "Sweepd", "config_text", "daemon_alive",
           "dovecot_account", "fake_account", "run_once"]  # fmt: skip
