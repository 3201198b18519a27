# SPDX-License-Identifier: MIT
"""Run tests/fakeimap/fakeimap.py as a subprocess and talk to its control channel.

>>> with FakeImap({"users": {"user": "pass"}, "events": [...]}) as srv:
...     srv.port                                  # IMAP port on 127.0.0.1
...     srv.append("INBOX", {"from": "Cron Daemon <root@h>", "subject": "x"})
...     srv.fault(command="^UID STORE", action="drop")
...     srv.state()["mailboxes"]["INBOX"]["messages"]
...     srv.client_commands()                     # what the client sent
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .wait import die_with_parent, keep_tmp, tmp_root, wait_for

FAKEIMAP = Path(__file__).resolve().parents[2] / "fakeimap" / "fakeimap.py"
SCENARIOS = FAKEIMAP.parent / "scenarios"

_ENTRY_RE = re.compile(r"^(\S+) c(\S+) (C:|S:|C\+|S\+|--) ?(.*)$")


@dataclass(frozen=True)
class Entry:
    """One transcript line."""

    time: str
    conn: str  # "1", "2", ... or "-" for server-wide events
    direction: str  # "C:", "S:", "C+", "S+", "--"
    text: str


class FakeImap:
    """A fakeimap subprocess with a control connection.

    ``scenario`` is a dict or the name/path of a JSON file (a bare name like
    ``"basic"`` means tests/fakeimap/scenarios/basic.json).  ``tls_cert`` /
    ``tls_key`` enable STARTTLS (or implicit TLS with ``implicit_tls``).
    """

    def __init__(
        self,
        scenario: dict[str, Any] | str | None = None,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        implicit_tls: bool = False,
        workdir: str | Path | None = None,
    ) -> None:
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="imapsweep-fakeimap-", dir=tmp_root()))
        self.scenario_path = self._scenario_file(scenario)
        self.transcript_path = self.dir / "transcript.log"
        self.stderr_path = self.dir / "fakeimap.stderr"
        self._port_file = self.dir / "port"
        self._ctl_file = self.dir / "control-port"
        argv = [
            sys.executable, str(FAKEIMAP), "--port", "0", "--scenario", str(self.scenario_path),
            "--transcript", str(self.transcript_path), "--port-file", str(self._port_file),
            "--control-port", "0", "--control-port-file", str(self._ctl_file),
        ]  # fmt: skip
        if tls_cert:
            argv += ["--tls-cert", tls_cert, "--tls-key", tls_key or tls_cert]
        if implicit_tls:
            argv.append("--implicit-tls")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                                     preexec_fn=die_with_parent)  # fmt: skip
        self._ctl: socket.socket | None = None
        self._ctl_reader = None
        try:
            wait_for(self._ready, 10, what="fakeimap to write its port files")
            self.port = int(self._port_file.read_text())
            self.control_port = int(self._ctl_file.read_text())
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"fakeimap exited {self.proc.returncode}: {self.stderr_path.read_text()[-2000:]}")
        return self._port_file.exists() and self._ctl_file.exists()

    def _scenario_file(self, scenario: dict[str, Any] | str | None) -> Path:
        if isinstance(scenario, str):
            path = Path(scenario)
            if not path.exists():
                path = SCENARIOS / f"{scenario}.json"
            return path
        path = self.dir / "scenario.json"
        path.write_text(json.dumps(scenario or {}, indent=1))
        return path

    # -- lifecycle --------------------------------------------------------
    def __enter__(self) -> "FakeImap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        if self._own_dir and not keep_tmp():
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- control channel --------------------------------------------------
    def control(self, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send one JSON request; return the reply (AssertionError if not ok)."""
        if self._ctl is None:
            self._ctl = socket.create_connection(("127.0.0.1", self.control_port), timeout=timeout)
            self._ctl_reader = self._ctl.makefile("rb")
        self._ctl.settimeout(timeout)
        self._ctl.sendall(json.dumps(request).encode() + b"\n")
        assert self._ctl_reader is not None
        line = self._ctl_reader.readline()
        if not line:
            raise AssertionError(f"fakeimap control channel closed; stderr:\n{self.stderr_path.read_text()[-2000:]}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise AssertionError(f"fakeimap control {request!r} failed: {reply.get('error')}")
        return reply

    def state(self) -> dict[str, Any]:
        return self.control({"cmd": "state"})

    def messages(self, mailbox: str = "INBOX") -> list[dict[str, Any]]:
        return self.state()["mailboxes"][mailbox]["messages"]

    def uids(self, mailbox: str = "INBOX") -> list[int]:
        return [m["uid"] for m in self.messages(mailbox)]

    def connections(self) -> dict[str, Any]:
        return self.control({"cmd": "connections"})

    def append(self, mailbox: str, message: dict[str, Any]) -> int:
        """Add a message as if delivered (IDLE sessions get EXISTS at once); returns its UID."""
        return self.control({"cmd": "append", "mailbox": mailbox, "message": message})["uid"]

    def expunge(self, mailbox: str, uids: list[int]) -> None:
        self.control({"cmd": "expunge", "mailbox": mailbox, "uids": uids})

    def fault(self, **event: Any) -> int:
        """Arm an event, e.g. ``fault(command="^UID FETCH", action="drop", after_bytes=10)``."""
        return self.control({"cmd": "fault", "event": event})["id"]

    def do(self, **event: Any) -> int:
        """Run an action now on every open connection (or ``connection=K``)."""
        return self.control({"cmd": "do", "event": event})["id"]

    def uidvalidity_change(self, mailbox: str = "INBOX", **kw: Any) -> dict[str, Any]:
        return self.control({"cmd": "uidvalidity_change", "mailbox": mailbox, **kw})

    def wait_idle(self, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Block until ``count`` sessions are in IDLE (server-side event, no polling)."""
        return self.control({"cmd": "wait_idle", "count": count, "timeout": timeout}, timeout=timeout + 5)

    # -- transcript -------------------------------------------------------
    def transcript(self) -> list[Entry]:
        entries = []
        if not self.transcript_path.exists():
            return entries
        for line in self.transcript_path.read_text(errors="replace").splitlines():
            m = _ENTRY_RE.match(line)
            if m:
                entries.append(Entry(*m.groups()))
        return entries

    def client_commands(self, conn: str | int | None = None) -> list[str]:
        """Command lines the client sent (tag stripped), e.g. "UID STORE 1:3 +FLAGS (\\\\Deleted)"."""
        out = []
        for e in self.transcript():
            if e.direction == "C:" and (conn is None or e.conn == str(conn)):
                parts = e.text.split(" ", 1)
                out.append(parts[1] if len(parts) == 2 else parts[0])
        return out

    def transcript_text(self) -> str:
        return self.transcript_path.read_text(errors="replace") if self.transcript_path.exists() else ""
