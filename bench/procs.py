# SPDX-License-Identifier: MIT
"""Long-running watchers for the reaction and scale runs: imapsweepd, the
lower-bound client (floor), imapfilter; readiness and measurement."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Sequence

import lib


class LineReader:
    """Lines from a child's stdout, with a deadline (no threads)."""

    def __init__(self, p: subprocess.Popen) -> None:
        self.p = p
        self.fd = p.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""

    def wait_for(self, pattern: str, timeout: float) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if rx.search(text):
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.p.args[0]}: no line /{pattern}/ within {timeout:.0f}s")
            r, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise RuntimeError(f"{self.p.args[0]} exited ({self.p.wait()}) before /{pattern}/")
                self.buf += chunk

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except (BlockingIOError, OSError):
            pass


class NotifyListener:
    """A NOTIFY_SOCKET for imapsweepd: READY=1 and STATUS= lines, no polling.

    A thread keeps reading: sd_notify() blocks when a datagram socket's
    queue is full, which would stall the daemon's loop. The daemon
    coalesces STATUS= to at most one per 0.5 s, so times taken from it are
    good to about half a second.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.last = ""
        self.watching: tuple[int, int, float] | None = None
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rx = re.compile(r"STATUS=watching (\d+)/(\d+)")
        while True:
            try:
                msg = self.sock.recv(65536).decode(errors="replace")
            except OSError:
                return
            now = time.monotonic()
            m = rx.search(msg)
            if m:
                with self.cond:
                    self.last = m.group(0)
                    self.watching = (int(m.group(1)), int(m.group(2)), now)
                    self.cond.notify_all()

    def wait_watching(self, n: int, timeout: float, proc: subprocess.Popen) -> float:
        """Block until STATUS says "watching n/n"; returns time.monotonic() then."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                w = self.watching
                if w is not None and w[0] == n and w[1] == n:
                    return w[2]
                if proc.poll() is not None:
                    raise RuntimeError(f"imapsweepd exited with {proc.returncode}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"imapsweepd not watching {n}/{n} after {timeout:.0f}s (last: {self.last})")
                self.cond.wait(min(left, 0.5))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.path.unlink()
        except OSError:
            pass


class Daemon:
    """imapsweepd in continuous mode on a generated config."""

    def __init__(self, dc: lib.Dovecot, accounts: Sequence[lib.Account], workdir: Path, *, tls: bool = False,
                 name: str = "imapsweepd", log_level: str = os.environ.get("BENCH_DAEMON_LOG", "info"),
                 defaults: dict | None = None, account_extra: dict | None = None) -> None:  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.n = sum(len(a.mailboxes) for a in accounts)
        self.sock = workdir / f"{name}.sock"
        self.cfg = lib.write_config(workdir / f"{name}.json", dc, accounts, tls=tls, control_socket=str(self.sock),
                                    log_level=log_level, defaults=defaults,
                                    account_extra=account_extra)  # fmt: skip
        self.notify = NotifyListener(workdir / f"{name}.notify")
        self.log = open(workdir / f"{name}.log", "wb")
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path))
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([str(lib.binary("imapsweepd")), "-c", str(self.cfg)], stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log, env=env,
                                  preexec_fn=lib.die_with_parent)  # fmt: skip
        self.pid = self.p.pid

    def wait_idle(self, timeout: float) -> float:
        """Seconds from start until every watcher is idle (STATUS, then confirmed by one status request)."""
        t = self.notify.wait_watching(self.n, timeout, self.p)
        deadline = time.monotonic() + 30
        while True:
            st = lib.control(self.sock)
            states = [w["state"] for w in st["watchers"]]
            if len(states) == self.n and all(s == "idle" for s in states):
                return t - self.t0
            if time.monotonic() > deadline:
                raise RuntimeError(f"watchers not all idle: {sorted(set(states))}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        lib.stop_process(self.p, sig, timeout=30)
        self.notify.close()
        self.log.close()


def start_floor(dc: lib.Dovecot, boxes: Sequence[tuple[int, str]], mode: str = "watch") -> subprocess.Popen:
    """The lower-bound watcher (or idle holder) on these (user, mailbox) pairs."""
    spec = "".join(f"{dc.user(u).name} {dc.user(u).password} {m}\n" for u, m in boxes)
    argv = [str(lib.BENCH_BIN / "floor"), mode, "127.0.0.1", str(dc.port("imap"))]
    if mode == "watch":
        argv.append(lib.CRON_FROM)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=lib.die_with_parent)
    p.stdin.write(spec.encode())
    p.stdin.close()
    p.reader = LineReader(p)  # type: ignore[attr-defined]
    return p


def imapfilter_idle_config(dc: lib.Dovecot, user: int, mailbox: str, path: Path, tls: bool = False) -> Path:
    text = (lib.REPO / "bench" / "peers" / "imapfilter_idle.lua").read_text()
    u = dc.user(user)
    text = (text.replace("@HOST@", "localhost" if tls else "127.0.0.1")
            .replace("@PORT@", str(dc.port("imaps" if tls else "imap")))
            .replace("@USER@", u.name).replace("@PASSWORD@", u.password)
            .replace("@MAILBOX@", mailbox)
            .replace("@SSL@", "ssl = 'auto'," if tls else ""))  # fmt: skip
    path.write_text(text)
    return path


def start_imapfilter(dc: lib.Dovecot, user: int, mailbox: str, workdir: Path, tls: bool = False) -> subprocess.Popen:
    """imapfilter's enter_idle loop on one mailbox (it watches one mailbox per process)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = imapfilter_idle_config(dc, user, mailbox, workdir / f"imapfilter-{user}-{mailbox}.lua", tls)
    argv = ["imapfilter", "-c", str(cfg)]
    if tls:
        argv += ["-t", dc.ca_file]
    env = dict(os.environ, HOME=str(workdir))  # its ~/.imapfilter, not root's
    with open(workdir / f"imapfilter-{user}-{mailbox}.log", "ab") as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
                             preexec_fn=lib.die_with_parent)  # fmt: skip
    p.reader = LineReader(p)  # type: ignore[attr-defined]
    return p
