# SPDX-License-Identifier: MIT
"""Waiting on events without fixed sleeps, free ports, and daemon processes.

Tests never ``time.sleep(N)`` to let something happen: they state the
condition they expect and poll it with a deadline (``wait_for``), or they
tail a process's log for a line (``Proc.wait_for_log``).  A failed wait
raises ``AssertionError`` naming what was awaited, so the test report says
what did not happen rather than just "timeout".

Everything here is standard library only.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

T = TypeVar("T")

#: Arguments prepended to the command line when IMAPSWEEP_VALGRIND=1.
VALGRIND_ARGS = (
    "valgrind",
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
    "--track-fds=no",
)

#: Exit status valgrind reports for memory errors / definite leaks.
VALGRIND_ERROR_EXIT = 99

_PR_SET_PDEATHSIG = 1


def valgrind_enabled() -> bool:
    """True when the environment asks for daemons to run under valgrind."""
    return os.environ.get("IMAPSWEEP_VALGRIND", "") not in ("", "0")


def timeout_scale() -> float:
    """Factor applied to process-related timeouts (valgrind is ~10-30x slower)."""
    return 10.0 if valgrind_enabled() else 1.0


def tmp_root() -> str:
    """Parent of every temporary directory: $IMAPSWEEP_TMPDIR, else /dev/shm
    when it is a writable directory, else /tmp.

    tmpfs makes file-heavy tests (bulk loads, maildirs) faster and immune to
    other processes' disk churn, which keeps timings steady.
    """
    env = os.environ.get("IMAPSWEEP_TMPDIR")
    if env:
        return env
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return "/tmp"


def keep_tmp() -> bool:
    """True when IMAPSWEEP_KEEP_TMP=1: temporary directories are left in place."""
    return os.environ.get("IMAPSWEEP_KEEP_TMP", "") not in ("", "0")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet" (a server that is
    still starting refuses connections, a file is not written yet); the last
    one is quoted if the deadline passes.  Raises ``AssertionError`` with
    ``what`` in the message after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - "not yet", reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago (bind to 0, close)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct free TCP ports.

    All sockets are held open until every port is chosen, so the kernel
    does not hand out the same port twice.  There is an unavoidable window
    between close and the server's bind; servers we start bind with
    SO_REUSEADDR, and nothing else on a test machine races for ephemeral
    ports in practice.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """``preexec_fn`` for children: SIGTERM them when the test process dies.

    Keeps a crashed or killed test run from leaving servers behind.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Proc:
    """A daemon under test: a subprocess with stdout/stderr captured to files.

    ``argv`` is run with ``env`` added to the current environment.  When
    IMAPSWEEP_VALGRIND=1 (or ``valgrind=True``) it runs under valgrind with
    valgrind's own report in a separate file, so the daemon's stderr stays
    clean for log assertions; an exit status of 99 then means memory errors.

    Use as a context manager; leaving it terminates the process (SIGTERM,
    then SIGKILL after a grace period) and, under valgrind, fails the test
    if valgrind reported errors.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        valgrind: bool | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.name = name or Path(argv[0]).name
        self.valgrind = valgrind_enabled() if valgrind is None else valgrind
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"imapsweep-{self.name}-", dir=tmp_root()))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = self.workdir / f"{self.name}.stdout"
        self.stderr_path = self.workdir / f"{self.name}.stderr"
        self.valgrind_log = self.workdir / f"{self.name}.valgrind.%p.log"
        full = list(argv)
        if self.valgrind:
            full = [*VALGRIND_ARGS, f"--log-file={self.valgrind_log}", *full]
        self.argv = full
        child_env = dict(os.environ)
        if env:
            child_env.update(env)
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        try:
            self.popen = subprocess.Popen(
                full,
                stdin=stdin,
                stdout=self._stdout,
                stderr=self._stderr,
                env=child_env,
                cwd=cwd,
                preexec_fn=die_with_parent,
            )
        except BaseException:
            self._stdout.close()
            self._stderr.close()
            self.cleanup()
            raise
        self.pid = self.popen.pid

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        try:
            if exc_type is None:
                self.assert_valgrind_clean()
        finally:
            self.cleanup()

    def __repr__(self) -> str:
        return f"<Proc {self.name} pid={self.pid} rc={self.popen.returncode}>"

    # -- output ----------------------------------------------------------
    def text(self, stream: str = "stderr") -> str:
        """Everything the process wrote so far to ``stream`` (stderr/stdout)."""
        path = self.stderr_path if stream == "stderr" else self.stdout_path
        return path.read_bytes().decode("utf-8", "replace")

    def log_text(self) -> str:
        """The daemon's log (stderr) so far."""
        return self.text("stderr")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def mark(self, stream: str = "stderr") -> int:
        """Current length of ``stream``; pass as ``since`` to look only at newer output."""
        path = self.stderr_path if stream == "stderr" else self.stdout_path
        return path.stat().st_size

    def wait_for_log(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = 10.0,
        *,
        since: int = 0,
        stream: str = "stderr",
        count: int = 1,
    ) -> re.Match[str]:
        """Wait until a line matching ``pattern`` (re.search) appears in the log.

        Only output after byte offset ``since`` (see ``mark()``) is looked at.
        With ``count`` > 1 waits for that many matching lines and returns the
        last.  Fails early, with the log tail, if the process exits first.
        The timeout is multiplied by ``timeout_scale()``.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        path = self.stderr_path if stream == "stderr" else self.stdout_path

        def scan() -> re.Match[str] | None:
            with open(path, "rb") as f:
                f.seek(since)
                data = f.read().decode("utf-8", "replace")
            # Only complete lines: a half-written line must not match early.
            cut = data.rfind("\n")
            hits = [m for line in data[: cut + 1].splitlines() if (m := rx.search(line))]
            return hits[count - 1] if len(hits) >= count else None

        deadline = time.monotonic() + timeout * timeout_scale()
        while True:
            m = scan()
            if m:
                return m
            exited = self.popen.poll() is not None
            if exited or time.monotonic() >= deadline:
                m = scan()  # output written just before exit
                if m:
                    return m
                why = f"exited with {self.popen.returncode}" if exited else f"timed out after {timeout:.1f}s"
                raise AssertionError(
                    f"{self.name} {why} before logging /{rx.pattern}/ (x{count});"
                    f" last {stream} lines:\n{self.tail(stream=stream)}"
                )
            time.sleep(0.02)

    def tail(self, lines: int = 40, stream: str = "stderr") -> str:
        return "\n".join(self.text(stream).splitlines()[-lines:])

    # -- control ---------------------------------------------------------
    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (no-op if it already exited)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for exit and return the status; AssertionError on timeout."""
        try:
            return self.popen.wait(timeout * timeout_scale())
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not exit within {timeout:.1f}s; last stderr lines:\n{self.tail()}"
            ) from None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout`` (scaled), then SIGKILL. Returns the status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout * timeout_scale())
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()
        return self.popen.returncode

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def valgrind_reports(self) -> list[str]:
        """Contents of valgrind's report files (empty unless run under valgrind)."""
        return [p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}.valgrind.*.log"))]

    def assert_valgrind_clean(self) -> None:
        """Raise AssertionError if valgrind reported errors (exit status 99)."""
        if self.valgrind and self.popen.returncode == VALGRIND_ERROR_EXIT:
            raise AssertionError(f"valgrind reported errors for {self.name}:\n" + "\n".join(self.valgrind_reports()))

    def cleanup(self) -> None:
        """Remove the work directory if this object created it (unless IMAPSWEEP_KEEP_TMP)."""
        if self._own_workdir and not keep_tmp():
            _rmtree(self.workdir)

    def describe(self) -> str:
        return shlex.join(self.argv)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wait_all(preds: Iterable[tuple[Callable[[], object], str]], timeout: float = 10.0) -> None:
    """Wait for several conditions under one shared deadline."""
    deadline = time.monotonic() + timeout
    for pred, what in preds:
        wait_for(pred, max(0.0, deadline - time.monotonic()), what=what)
