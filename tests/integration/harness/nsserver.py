# SPDX-License-Identifier: MIT
"""IMAP servers that cannot be installed beside Dovecot, run in a namespace.

Debian's cyrus-imapd and courier-imap conflict with dovecot-imapd (all
provide imap-server).  ``scripts/interop-servers`` unpacks their packages
into a cache directory; ``NamespacedServer`` runs one instance as PID 1 of a
private mount and PID namespace (``unshare --mount --pid --fork``), where

- the unpacked tree lies over /usr (read-only overlay),
- /etc and /var are writable overlays whose upper layers are in the
  instance's temporary directory (so the server's hard-coded paths work and
  the host's files never change),
- /run is a tmpfs and /dev a small tmpfs of its own with a /dev/log whose
  messages land in ``syslog.log`` (``harness/nsinit.py`` does all that),
- the network namespace is the host's, so 127.0.0.1:PORT reaches it.

The namespace dies with its PID 1: ``stop()`` asks it (SIGTERM), then kills
it; a test process that dies takes the ``unshare`` process with it
(PR_SET_PDEATHSIG, SIGKILL, as ``unshare`` ignores SIGTERM), and
``--kill-child`` takes PID 1 and so the whole server.

Subclasses (``harness.cyrus.Cyrus``, ``harness.courier.Courier``) say what
to write and run; this class gives them the interface of
``harness.dovecot.Dovecot``: a context manager, ``start``/``stop``/
``restart`` on the same ports with the same mail, ``port("imap")``,
``port("imaps")``, ``ca_file``, users user1..userN with passN,
``imap(user, mode=...)`` returning the oracle, ``log_text()``.
Root is needed (mounts).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import REPO_ROOT
from .dovecot import Listener, User, _greeting_error
from .pki import TestPKI
from .wait import free_ports, keep_tmp, tmp_root

if TYPE_CHECKING:
    from .mail import Imap

#: How long start() waits for every listener to greet.
START_TIMEOUT = 30.0
NSINIT = Path(__file__).resolve().with_name("nsinit.py")
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A namespaced server failed to set up or start; carries the log tail."""


def interop_dir() -> Path:
    """The unpacked packages: $IMAPSWEEP_INTEROP_DIR or build/interop-servers."""
    env = os.environ.get("IMAPSWEEP_INTEROP_DIR")
    return Path(env) if env else REPO_ROOT / "build" / "interop-servers"


def interop_root() -> Path:
    """DIR/root, checked complete (scripts/interop-servers makes it)."""
    root = interop_dir() / "root"
    if not (root / ".unpacked").is_file():
        raise AssertionError(f"{root} is missing: run scripts/interop-servers (or make interop)")
    return root


def probe() -> str | None:
    """Can this machine run the namespaced servers?  None if so, else why not.

    What ``NamespacedServer`` needs, tried for real in a throwaway namespace:
    root, ``unshare --mount --pid --fork`` (a container without
    CAP_SYS_ADMIN refuses it), and overlayfs and tmpfs mounts with the
    upper layer in the test temp root (overlayfs refuses an upper layer on
    some file systems, overlayfs itself among them).  Nothing is left
    behind.  Used by scripts/interop-check (``make check``).
    """
    if os.geteuid() != 0:
        return "not root (the servers run in a private mount namespace)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare(1) or mount(8) is missing"
    base = Path(tempfile.mkdtemp(prefix="imapsweep-nsprobe-", dir=tmp_root()))
    try:
        for d in ("lower", "upper", "work", "merged", "tmp"):
            (base / d).mkdir()
        (base / "lower" / "file").write_text("lower\n")
        script = (
            f"mount -t overlay nsprobe -o lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
            f" {base}/merged && echo upper > {base}/merged/file && mount -t tmpfs nsprobe {base}/tmp"
            f" && test \"$(cat {base}/lower/file)\" = lower"
        )  # fmt: skip
        try:
            proc = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                                   "sh", "-c", script], capture_output=True, text=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare failed: {exc}"
        if proc.returncode != 0:
            why = (proc.stderr or proc.stdout).strip().splitlines()
            return f"a private mount namespace with overlayfs is not possible here ({why[-1] if why else proc.returncode})"
        if (base / "upper" / "file").read_text() != "upper\n":
            return "overlayfs did not write its upper layer"
        return None
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _kill_with_parent() -> None:
    """``preexec_fn``: SIGKILL when the test process dies (unshare ignores SIGTERM)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class NamespacedServer:
    """Base class: one server instance in a namespace of its own.

    Subclasses set ``kind`` and implement ``_prepare_files()`` (write
    configuration, users, mail stores under ``self.base``), ``_spec()``
    (the extra set-up commands and the services for nsinit) and may
    override ``_after_first_start()`` (e.g. create mailboxes over IMAP).
    """

    kind = "server"
    #: system users the server needs in /etc/passwd (name, uid, gid, home)
    system_users: tuple[tuple[str, int, int, str], ...] = ()
    system_groups: tuple[tuple[str, int], ...] = ()

    def __init__(self, users: int = 3) -> None:
        self.users = [User(f"user{i}", f"pass{i}", self.user_uid(i), f"token{i}") for i in range(1, users + 1)]
        self.root = interop_root()
        self.base = Path(tempfile.mkdtemp(prefix=f"imapsweep-{self.kind}-", dir=tmp_root()))
        os.chmod(self.base, 0o755)
        self.ns = self.base / "ns"
        self.syslog_path = self.base / "syslog.log"
        self.listeners: dict[str, Listener] = {}
        self.pki: TestPKI | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._started_once = False

    def user_uid(self, i: int) -> int:
        return 40000 + i

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "NamespacedServer":
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop the server and remove the directory (unless IMAPSWEEP_KEEP_TMP=1)."""
        try:
            self.stop()
        finally:
            if keep_tmp():
                print(f"[harness] keeping {self.kind} directory {self.base}")
            else:
                shutil.rmtree(self.base, ignore_errors=True)

    # -- parameters (the Dovecot interface) --------------------------------
    @property
    def ca_file(self) -> str:
        assert self.pki
        return str(self.pki.ca_file)

    def port(self, listener: str = "imap") -> int:
        return self.listeners[listener].port

    def address(self, listener: str = "imap") -> str:
        return self.listeners[listener].address

    def user(self, which: int | str = 1) -> User:
        """User by number (1-based) or name."""
        if isinstance(which, int):
            return self.users[which - 1]
        return next(u for u in self.users if u.name == which)

    def iter_listeners(self) -> Iterator[Listener]:
        return iter(self.listeners.values())

    def imap(self, user: int | str | None = 1, mode: str = "plain", **kw: object) -> "Imap":
        """A harness.mail.Imap logged in as ``user`` (None: not logged in).

        mode: ``plain`` (port imap), ``starttls`` (port imap + STARTTLS) or
        ``tls`` (port imaps).
        """
        from .mail import Imap

        listener = "imaps" if mode == "tls" else "imap"
        client = Imap("127.0.0.1", self.port(listener), mode=mode, ca_file=self.ca_file, **kw)  # type: ignore[arg-type]
        if user is not None:
            u = self.user(user)
            client.login(u.name, u.password)
        return client

    # -- set-up ------------------------------------------------------------
    def _prepare(self) -> None:
        self.pki = TestPKI(self.base / "pki", variants=False)
        ports = free_ports(2)
        self.listeners = {
            "imap": Listener("imap", "127.0.0.1", ports[0], False),
            "imaps": Listener("imaps", "127.0.0.1", ports[1], True),
        }
        for d in ("etc", "etc.work", "var", "var.work"):
            (self.ns / d).mkdir(parents=True)
        self._write_accounts()
        self._prepare_files()
        self._prepared = True

    def _write_accounts(self) -> None:
        """/etc/passwd and /etc/group of the namespace: the host's plus the server's users."""
        etc = self.ns / "etc"
        passwd = Path("/etc/passwd").read_text()
        passwd += "".join(f"{n}:x:{uid}:{gid}:{n}:{home}:/usr/sbin/nologin\n" for n, uid, gid, home in self.system_users)
        (etc / "passwd").write_text(passwd)
        group = Path("/etc/group").read_text()
        group += "".join(f"{n}:x:{gid}:\n" for n, gid in self.system_groups)
        (etc / "group").write_text(group)

    def _prepare_files(self) -> None:
        raise NotImplementedError

    def _spec(self, first: bool) -> dict[str, Any]:
        """{"setup": [...], "services": [...]} for nsinit (``first``: first start)."""
        raise NotImplementedError

    def _not_ready(self) -> str | None:
        """None when the server can log users in, else why not (beyond the greeting)."""
        return None

    def ns_path(self, path: str) -> Path:
        """``path`` as seen inside the namespace (through /proc/PID/root)."""
        return Path(f"/proc/{self._init_pid()}/root{path}")

    def _after_first_start(self) -> None:
        """Run once, after the first start (users' mailboxes over IMAP)."""

    def _mounts(self) -> list[list[str]]:
        ns = self.ns
        var_lower = f"{self.root}/var:/var" if (self.root / "var").is_dir() else "/var"
        return [
            ["mount", "-t", "overlay", f"{self.kind}-usr", "-o", f"lowerdir={self.root}/usr:/usr", "/usr"],
            ["mount", "-t", "overlay", f"{self.kind}-etc", "-o",
             f"lowerdir={self.root}/etc:/etc,upperdir={ns}/etc,workdir={ns}/etc.work", "/etc"],
            ["mount", "-t", "overlay", f"{self.kind}-var", "-o",
             f"lowerdir={var_lower},upperdir={ns}/var,workdir={ns}/var.work", "/var"],
            ["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", f"{self.kind}-run", "/run"],
        ]  # fmt: skip

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Start the server and wait until both listeners greet."""
        if self.running():
            return
        if not self._prepared:
            self._prepare()
        first = not self._started_once
        spec = {"mounts": self._mounts(), "dev": True, "syslog": str(self.syslog_path), "grace": 5,
                **self._spec(first)}  # fmt: skip
        spec_path = self.base / "nsinit.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        with open(self.base / "nsinit.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                 "python3", "-I", str(NSINIT), str(spec_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_kill_with_parent,
                # a session of its own: Courier signals its process group
                # (kill(0, SIGTERM)) when it stops, which would reach the tests
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready()
            if first:
                self._after_first_start()
                self._started_once = True
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for lst in self.listeners.values():
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise ServerError(f"{self.kind} exited during start; log tail:\n{self.log_tail()}")
                err = _greeting_error(lst) or self._not_ready()
                if err is None:
                    break
                if time.monotonic() > deadline:
                    raise ServerError(f"{self.kind} listener {lst.name} ({lst.address}:{lst.port}) not ready after"
                                      f" {START_TIMEOUT:.0f}s ({err}); log tail:\n{self.log_tail()}")  # fmt: skip
                time.sleep(0.02)

    def _init_pid(self) -> int | None:
        """Host pid of the namespace's PID 1 (the child of unshare)."""
        if self.proc is None:
            return None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process of the instance; return when the namespace is gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            init = self._init_pid()
            if init is not None:
                try:
                    os.kill(init, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # --kill-child: PID 1 and with it the namespace
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs ------------------------------------------------------------
    def log_files(self) -> list[Path]:
        """Every log of the instance: syslog, nsinit's and each service's output."""
        return [self.syslog_path, self.base / "nsinit.log", *sorted(self.base.glob("*.out"))]

    def log_text(self) -> str:
        parts = []
        for p in self.log_files():
            if p.exists():
                parts.append(f"== {p.name}\n" + p.read_text(errors="replace"))
        return "".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def syslog_text(self) -> str:
        """What the server sent to /dev/log so far."""
        return self.syslog_path.read_text(errors="replace") if self.syslog_path.exists() else ""


__all__ = ["NamespacedServer", "ServerError", "interop_dir", "interop_root"]
