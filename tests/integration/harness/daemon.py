# SPDX-License-Identifier: MIT
"""imapsweepd under test: configuration files, the control socket, a stand-in
for systemd's notification socket, and Dovecot's view of IMAP sessions.

- ``config_text(...)`` and ``dovecot_account(...)`` come from ``sweepd``
  (one config writer for every test); the account here is named and reads
  its password from a file.
- ``Control(path)`` is a client of the control socket: one
  request line out, one JSON line back, on one connection.
- ``NotifySocket`` plays systemd: a datagram socket for NOTIFY_SOCKET whose
  messages a thread collects with their arrival time.
- ``without_systemd_env()`` gives a test module the setUpModule and
  tearDownModule that hide systemd's variables from the daemons under test.
- ``dovecot_sessions(dc, user)`` reads Dovecot's log: every login of a user
  with how it ended (``Logged out`` for a clean LOGOUT, ``Connection
  closed (...)`` when the client just went away, None while it is open).

Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence
from unittest import mock

from . import sweepd
from .sweepd import config_text
from .wait import wait_for

if TYPE_CHECKING:
    from .dovecot import Dovecot


#: Variables of a process started by systemd: none may leak from the test's
#: own environment into the daemons under test.
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                "JOURNAL_STREAM", "IMAPSWEEP_SOCKET")  # fmt: skip


def without_systemd_env() -> tuple[Callable[[], None], Callable[[], None]]:
    """A module's setUpModule and tearDownModule: the first hides
    SYSTEMD_VARS from the environment, the second puts it back as it was."""
    patch = mock.patch.dict(os.environ)

    def set_up() -> None:
        patch.start()
        for var in SYSTEMD_VARS:
            os.environ.pop(var, None)

    return set_up, patch.stop


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
def dovecot_account(dc: "Dovecot", name: str, user: int, password_file: str | os.PathLike[str],
                    mailboxes: Sequence[str] = ("INBOX",), **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A named account on the plain (``tls: none``) listener of a test
    Dovecot, its password read from ``password_file``."""
    return {"name": name, **sweepd.dovecot_account(dc, user, mailboxes=mailboxes, password_file=password_file,
                                                   **extra)}  # fmt: skip


# ---------------------------------------------------------------------------
# the control socket
# ---------------------------------------------------------------------------
class Control:
    """One connection to the control socket.

    ``request("status")`` sends a line and returns the decoded reply;
    ``send``/``reply`` do the two halves; ``closed()`` tells whether the
    daemon has closed the connection (EOF or reset).
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.sock.connect(str(path))
                    break
                except BlockingIOError:
                    # The listen backlog is full (a socket with a timeout is
                    # non-blocking inside, and a Unix socket then says EAGAIN
                    # where a blocking connect would wait): wait like it would.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.002)
        except BaseException:
            self.sock.close()
            raise
        self._buf = b""

    def __enter__(self) -> "Control":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes | str) -> None:
        """Send raw bytes (add the newline yourself)."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self) -> bytes:
        """The next reply line (without its newline); AssertionError on EOF."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"control connection closed; partial reply {self._buf[:200]!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def reply(self) -> dict[str, Any]:
        """The next reply, decoded; it must be one JSON object with a boolean "ok"."""
        raw = self.line()
        obj = json.loads(raw)
        if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
            raise AssertionError(f"reply is not an object with a boolean ok: {raw[:300]!r}")
        return obj

    def request(self, request: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
        """Send one request (a line, or an object sent as JSON) and return its reply."""
        if isinstance(request, Mapping):
            data = json.dumps(request).encode()
        else:
            data = request.encode() if isinstance(request, str) else request
        self.send(data + b"\n")
        return self.reply()

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the daemon has closed the connection (EOF or reset).

        Unread replies are skipped.  False if it is still open after ``timeout``.
        """
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def control_request(path: str | os.PathLike[str], request: str | Mapping[str, Any],
                    timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """One request on a fresh connection."""
    with Control(path, timeout) as c:
        return c.request(request)


def watchers(path: str | os.PathLike[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The status reply's watchers by (account, mailbox)."""
    st = control_request(path, "status")
    assert st["ok"], st
    return {(w["account"], w["mailbox"]): w for w in st["watchers"]}


def wait_watching(path: str | os.PathLike[str], expect: Iterable[tuple[str, str]], state: str = "idle",
                  timeout: float = 15.0) -> dict[tuple[str, str], dict[str, Any]]:  # fmt: skip
    """Wait until exactly the watchers ``expect`` exist and all are in ``state``."""
    want = set(expect)

    def ready() -> dict[tuple[str, str], dict[str, Any]] | None:
        ws = watchers(path)
        if set(ws) == want and all(w["state"] == state for w in ws.values()):
            return ws
        return None

    return wait_for(ready, timeout, interval=0.05, what=f"watchers {sorted(want)} {state}")


# ---------------------------------------------------------------------------
# sd_notify
# ---------------------------------------------------------------------------
@dataclass
class Notification:
    """One datagram: arrival time (time.monotonic), raw text and its KEY=VALUE fields."""

    t: float
    text: str
    fields: dict[str, str] = field(default_factory=dict)

    def kind(self) -> str:
        """READY, RELOADING, STOPPING, WATCHDOG, STATUS (only a status) or OTHER."""
        for key in ("READY", "RELOADING", "STOPPING", "WATCHDOG"):
            if self.fields.get(key) == "1":
                return key
        return "STATUS" if "STATUS" in self.fields else "OTHER"


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET.

    Set ``NOTIFY_SOCKET=<path>`` in the daemon's environment; a thread
    collects every datagram in ``messages`` (in arrival order).
    """

    def __init__(self, directory: str | os.PathLike[str], name: str = "notify.sock") -> None:
        self.path = str(Path(directory) / name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="notify-socket", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            fields = {}
            for line in text.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self._lock:
                self.messages.append(Notification(time.monotonic(), text, fields))

    def __enter__(self) -> "NotifySocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.messages)

    def wait(self, predicate: Callable[[Notification], bool], since: int = 0, timeout: float = 10.0,
             what: str = "notification") -> int:  # fmt: skip
        """Index of the first message at or after ``since`` that satisfies ``predicate``."""

        def find() -> int | None:
            for i, m in enumerate(self.snapshot()[since:], start=since):
                if predicate(m):
                    return i + 1  # truthy even for index 0
            return None

        return wait_for(find, timeout, what=what) - 1


# ---------------------------------------------------------------------------
# Dovecot's view of sessions
# ---------------------------------------------------------------------------
@dataclass
class Session:
    """One IMAP login as Dovecot logged it."""

    user: str
    pid: int
    id: str
    end: str | None  # "Logged out", "Connection closed (...)", ... or None while open

    @property
    def logged_out(self) -> bool:
        return self.end is not None and self.end.startswith("Logged out")


_LOGIN_RE = re.compile(r"imap-login: Info: Login: user=<([^>]*)>,.* mpid=(\d+),.* session=<([^>]+)>")
#: How Dovecot 2.3 words the end of a session: "Disconnected: Logged out" for
#: LOGOUT, "Disconnected: Connection closed (...)" when the client went away,
#: "Disconnected for inactivity", "Server shutting down" (kick, stop).
_ENDINGS = ("Logged out", "Connection closed", "Disconnected", "Server shutting down")
_END_RE = re.compile(r"imap\(([^)]*)\)<(\d+)><([^>]+)>: Info: (?:Disconnected: )?(.*?)(?: in=\d+ out=.*)?$")


def dovecot_sessions(dc: "Dovecot", user: str | int | None = None) -> list[Session]:
    """Every IMAP login in Dovecot's log (of ``user`` if given), in login order."""
    name = dc.user(user).name if user is not None else None
    sessions: dict[str, Session] = {}
    for line in dc.log_text().splitlines():
        m = _LOGIN_RE.search(line)
        if m:
            if name is None or m.group(1) == name:
                sessions[m.group(3)] = Session(m.group(1), int(m.group(2)), m.group(3), None)
            continue
        m = _END_RE.search(line)
        if m and m.group(3) in sessions:
            text = m.group(4)
            if text.startswith(_ENDINGS):
                sessions[m.group(3)].end = text
    return list(sessions.values())


__all__ = [
    "Control", "Notification", "NotifySocket", "Session", "config_text", "control_request",
    "dovecot_account", "dovecot_sessions", "wait_watching", "watchers",
]  # fmt: skip
