# SPDX-License-Identifier: MIT
"""A throwaway Dovecot on loopback for integration tests.

``Dovecot`` creates a private directory under /tmp, a test PKI made with the
``openssl`` CLI, a standalone ``dovecot.conf`` (nothing from /etc/dovecot is
included) and runs ``dovecot -F -c CONF`` as a child process.  Nothing
outside the temporary directory is written; stopping the instance removes it
(unless IMAPSWEEP_KEEP_TMP=1).

Listeners (all ports chosen free at first start, kept across ``restart()``):

=====================  ==========  =============================================
name                   address     certificate
=====================  ==========  =============================================
``imap``               127.0.0.1   valid (STARTTLS offered)
``imaps``              127.0.0.1   valid, implicit TLS
``imap_wrong_name``    127.0.0.2   SAN wrong.example only (STARTTLS)
``imaps_wrong_name``   127.0.0.2   same, implicit TLS
``imap_expired``       127.0.0.3   signed by the test CA, expired in 2020
``imaps_expired``      127.0.0.3   same, implicit TLS
``imap_self_signed``   127.0.0.4   self-signed (not issued by the test CA)
``imaps_self_signed``  127.0.0.4   same, implicit TLS
=====================  ==========  =============================================

Dovecot selects the certificate by the *local IP* the client connected to
(``local 127.0.0.2 { ssl_cert = ... }``); it cannot select by port.  All of
127.0.0.0/8 reaches loopback on Linux, so no network set-up is needed.  The
valid, expired and self-signed certificates name ``localhost`` and the
listener's own IP, so with these the *only* defect is the one intended.

Users are ``user1``..``userN`` with password ``passN`` (and, for XOAUTH2 /
OAUTHBEARER, access token ``tokenN``), each with its own unprivileged uid
40000+N so that many IDLE sessions do not exhaust one uid's inotify instances.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .wait import die_with_parent, free_ports, keep_tmp, tmp_root, wait_for

if TYPE_CHECKING:
    from .mail import Imap

DOVECOT = "dovecot"
DOVEADM = "doveadm"
OPENSSL = "openssl"

#: First uid handed to test users (user N gets UID_BASE + N).
UID_BASE = 40000
#: How long start() waits for every listener to greet.
START_TIMEOUT = 20.0

#: The address each TLS variant listens on (Dovecot picks certs by local IP).
TLS_VARIANT_ADDRESS = {
    "": "127.0.0.1",
    "wrong_name": "127.0.0.2",
    "expired": "127.0.0.3",
    "self_signed": "127.0.0.4",
}


@dataclass(frozen=True)
class User:
    """A mail account in the test instance."""

    name: str
    password: str
    uid: int
    token: str  # static XOAUTH2 / OAUTHBEARER access token


@dataclass(frozen=True)
class Listener:
    name: str
    address: str
    port: int
    tls: bool  # implicit TLS (imaps) if True, else plain with STARTTLS offered


class DovecotError(RuntimeError):
    """Dovecot or doveadm failed; the message carries the relevant log tail."""


class TestPKI:
    """A test CA and server certificates, made with the openssl CLI.

    Files (all PEM) live in ``directory``:

    - ``ca.pem``                          the test CA (trust anchor for tests)
    - ``server.pem`` / ``server.key``     valid: localhost, 127.0.0.1
    - ``wrong_name.pem`` / ``.key``       issued by the CA for wrong.example only
    - ``expired.pem`` / ``.key``          issued by the CA, valid 2020-01-01..02
    - ``self_signed.pem`` / ``.key``      self-signed for localhost (CA not involved)

    EC P-256 keys keep generation to a few tens of milliseconds.
    """

    __test__ = False  # not a unittest class despite the name

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.dir / "ca.pem"
        self._ca_key = self.dir / "ca.key"
        self._make_ca()
        self._issue("server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        self._issue("wrong_name", "wrong.example", ["DNS:wrong.example"])
        self._issue(
            "expired",
            "localhost",
            ["DNS:localhost", "IP:127.0.0.1", f"IP:{TLS_VARIANT_ADDRESS['expired']}"],
            dates=("20200101000000Z", "20200102000000Z"),
        )
        self._self_signed(
            "self_signed", "localhost", ["DNS:localhost", "IP:127.0.0.1", f"IP:{TLS_VARIANT_ADDRESS['self_signed']}"]
        )

    def cert(self, kind: str = "server") -> Path:
        """Path of the certificate ``kind`` (server, wrong_name, expired, self_signed)."""
        return self.dir / f"{kind}.pem"

    def key(self, kind: str = "server") -> Path:
        return self.dir / f"{kind}.key"

    # -- generation ------------------------------------------------------
    def _openssl(self, *args: str) -> None:
        proc = subprocess.run([OPENSSL, *args], cwd=self.dir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DovecotError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    def _newkey(self, name: str) -> Path:
        key = self.dir / f"{name}.key"
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        return key

    def _make_ca(self) -> None:
        self._newkey("ca")
        self._openssl(
            "req", "-x509", "-new", "-key", str(self._ca_key), "-out", str(self.ca_file),
            "-days", "3650", "-subj", "/CN=imapsweep test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def _ext_file(self, name: str, sans: Sequence[str]) -> Path:
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            "[v3]\n"
            "basicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = {','.join(sans)}\n"
        )
        return ext

    def _issue(self, name: str, cn: str, sans: Sequence[str], dates: tuple[str, str] | None = None) -> None:
        key = self._newkey(name)
        csr = self.dir / f"{name}.csr"
        self._openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        ext = self._ext_file(name, sans)
        out = self.cert(name)
        if dates is None:
            self._openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(self._ca_key),
                "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-extensions", "v3", "-out", str(out),
            )  # fmt: skip
        else:
            # `openssl x509` cannot back-date; `openssl ca` can, given a tiny database.
            self._openssl(
                "ca", "-batch", "-config", str(self._ca_config()), "-in", str(csr), "-out", str(out),
                "-startdate", dates[0], "-enddate", dates[1], "-extfile", str(ext), "-extensions", "v3", "-notext",
            )  # fmt: skip

    def _ca_config(self) -> Path:
        db = self.dir / "cadb"
        db.mkdir(exist_ok=True)
        (db / "index.txt").touch()
        (db / "serial").write_text("1000\n")
        conf = self.dir / "ca.cnf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                [ca]
                default_ca = test_ca
                [test_ca]
                database = {db}/index.txt
                serial = {db}/serial
                new_certs_dir = {db}
                certificate = {self.ca_file}
                private_key = {self._ca_key}
                default_md = sha256
                policy = anything
                unique_subject = no
                [anything]
                commonName = supplied
                """
            )
        )
        return conf

    def _self_signed(self, name: str, cn: str, sans: Sequence[str]) -> None:
        key = self._newkey(name)
        self._openssl(
            "req", "-x509", "-new", "-key", str(key), "-out", str(self.cert(name)), "-days", "3650",
            "-subj", f"/CN={cn}", "-addext", f"subjectAltName={','.join(sans)}",
        )  # fmt: skip


class Dovecot:
    """A private Dovecot instance (context manager).

    >>> with Dovecot(users=2) as dc:
    ...     imap = dc.imap("user1")          # logged-in harness.mail.Imap
    ...     dc.port("imaps"), dc.ca_file

    Options:
      users:          number of accounts (user1..userN)
      extra_config:   text appended to dovecot.conf (later settings win)
      hibernate:      move IDLE sessions to imap-hibernate after 2 s (or the
                      given Dovecot interval, e.g. "1s")
      max_userip_connections: Dovecot's mail_max_userip_connections (default 10)
      tls_variants:   also listen on 127.0.0.2-4 with the wrong-name, expired
                      and self-signed certificates (default True)
      oauth:          accept XOAUTH2/OAUTHBEARER with the static token tokenN
    """

    def __init__(
        self,
        users: int = 3,
        *,
        extra_config: str = "",
        hibernate: bool | str = False,
        max_userip_connections: int = 10,
        tls_variants: bool = True,
        oauth: bool = True,
    ) -> None:
        self.users = [User(f"user{i}", f"pass{i}", UID_BASE + i, f"token{i}") for i in range(1, users + 1)]
        self.extra_config = extra_config
        self.hibernate = hibernate
        self.max_userip_connections = max_userip_connections
        self.oauth = oauth
        variants = list(TLS_VARIANT_ADDRESS) if tls_variants else [""]
        self._variants = variants
        self.base = Path(tempfile.mkdtemp(prefix="imapsweep-dovecot-", dir=tmp_root()))
        os.chmod(self.base, 0o755)  # dovenull/dovecot must traverse it
        self.conf_path = self.base / "dovecot.conf"
        self.log_path = self.base / "dovecot.log"
        self.run_dir = self.base / "run"
        self.state_dir = self.base / "state"
        self.home_root = self.base / "home"
        self.listeners: dict[str, Listener] = {}
        self.pki: TestPKI | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_fh = None
        self._prepared = False

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "Dovecot":
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop Dovecot and remove the directory (unless IMAPSWEEP_KEEP_TMP=1)."""
        try:
            self.stop()
        finally:
            if keep_tmp():
                print(f"[harness] keeping Dovecot directory {self.base}")
            else:
                shutil.rmtree(self.base, ignore_errors=True)

    # -- paths and parameters --------------------------------------------
    @property
    def ca_file(self) -> str:
        """The test CA: trust it to verify the valid listeners."""
        assert self.pki
        return str(self.pki.ca_file)

    def cert_file(self, kind: str = "server") -> str:
        """Certificate file: server, wrong_name, expired or self_signed."""
        assert self.pki
        return str(self.pki.cert(kind))

    def key_file(self, kind: str = "server") -> str:
        assert self.pki
        return str(self.pki.key(kind))

    def port(self, listener: str = "imap") -> int:
        return self.listeners[listener].port

    def address(self, listener: str = "imap") -> str:
        return self.listeners[listener].address

    def user(self, which: int | str = 1) -> User:
        """User by number (1-based) or name."""
        if isinstance(which, int):
            return self.users[which - 1]
        return next(u for u in self.users if u.name == which)

    def home(self, user: int | str = 1) -> Path:
        return self.home_root / self.user(user).name

    def maildir(self, user: int | str = 1) -> Path:
        return self.home(user) / "Maildir"

    # -- configuration ---------------------------------------------------
    def _prepare(self) -> None:
        """One-time set-up: PKI, users, homes, ports, config file."""
        self.pki = TestPKI(self.base / "pki")
        for d in (self.run_dir, self.state_dir, self.home_root):
            d.mkdir(mode=0o755)
        lines = []
        for u in self.users:
            home = self.home_root / u.name
            home.mkdir(mode=0o700)
            os.chown(home, u.uid, u.uid)
            lines.append(f"{u.name}:{{PLAIN}}{u.password}:{u.uid}:{u.uid}::{home}::")
        (self.base / "users").write_text("\n".join(lines) + "\n")
        (self.base / "tokens").write_text(
            "".join(f"{u.name}:{{PLAIN}}{u.token}:{u.uid}:{u.uid}::{self.home_root / u.name}::\n" for u in self.users)
        )
        names = []
        for variant in self._variants:
            suffix = f"_{variant}" if variant else ""
            names += [(f"imap{suffix}", variant, False), (f"imaps{suffix}", variant, True)]
        # the bad-certificate listeners use 127.0.0.2-4: a port must be
        # free on every address, which binding the wildcard guarantees
        ports = free_ports(len(names), host="0.0.0.0")
        for (name, variant, tls), port in zip(names, ports):
            self.listeners[name] = Listener(name, TLS_VARIANT_ADDRESS[variant], port, tls)
        self.conf_path.write_text(self.config_text())
        self._prepared = True

    def config_text(self) -> str:
        """The complete dovecot.conf for this instance."""
        assert self.pki
        listeners = "\n".join(
            f"""  inet_listener {lst.name} {{
    address = {lst.address}
    port = {lst.port}
    ssl = {'yes' if lst.tls else 'no'}
  }}"""
            for lst in self.listeners.values()
        )
        locals_ = "\n".join(
            f"""local {TLS_VARIANT_ADDRESS[v]} {{
  ssl_cert = <{self.pki.cert(v)}
  ssl_key = <{self.pki.key(v)}
}}"""
            for v in self._variants
            if v
        )
        oauth_mechs = " xoauth2 oauthbearer" if self.oauth else ""
        oauth_passdb = (
            f"""passdb {{
  # Dovecot 2.3 hands an OAuth2 bearer token to the passdb as if it were a
  # password, so a passwd-file of static tokens stands in for a token server.
  driver = passwd-file
  args = scheme=PLAIN {self.base}/tokens
  mechanisms = xoauth2 oauthbearer
}}"""
            if self.oauth
            else ""
        )
        hibernate_after = self.hibernate if isinstance(self.hibernate, str) else "2s"
        hibernate = (
            f"""imap_hibernate_timeout = {hibernate_after}
service imap {{
  unix_listener imap-master {{
    user = $default_internal_user
  }}
}}"""
            if self.hibernate
            else ""
        )
        return f"""# Generated by tests/integration/harness/dovecot.py -- test instance only.
instance_name = imapsweep-test-{self.base.name}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
auth_verbose = yes
protocols = imap
listen = 127.0.0.1
first_valid_uid = 1
last_valid_uid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechs}
mail_location = maildir:~/Maildir
# Durability is irrelevant in a throwaway instance; fsync only adds latency.
mail_fsync = never
# Fallback polling when inotify is unavailable (default 30 s).
mailbox_idle_check_interval = 1s
ssl = yes
ssl_cert = <{self.pki.cert('server')}
ssl_key = <{self.pki.key('server')}
ssl_min_protocol = TLSv1.2
{locals_}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.base}/users
  mechanisms = plain login
}}
{oauth_passdb}
userdb {{
  driver = passwd-file
  args = {self.base}/users
}}

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}

# Fast failures: no 2 s delay per failed login, and no per-IP auth penalty
# (every test connects from 127.0.0.1; one failed login must not slow the rest).
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

protocol imap {{
  mail_max_userip_connections = {self.max_userip_connections}
}}

service imap-login {{
{listeners}
}}
{hibernate}

{self.extra_config}
"""

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Start Dovecot and wait until every listener greets (20 s deadline)."""
        if self.proc and self.proc.poll() is None:
            return
        if not self._prepared:
            self._prepare()
        self._log_fh = open(self.base / "dovecot.stderr", "ab")
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=self._log_fh,
            preexec_fn=die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for lst in self.listeners.values():
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise DovecotError(
                        f"dovecot exited with status {self.proc.returncode if self.proc else '?'} during start;"
                        f" log tail:\n{self.log_tail()}"
                    )
                err = _greeting_error(lst)
                if err is None:
                    break
                if time.monotonic() > deadline:
                    raise DovecotError(
                        f"listener {lst.name} ({lst.address}:{lst.port}) not ready after {START_TIMEOUT:.0f}s"
                        f" ({err}); log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Dovecot and every process it started; return when all are gone.

        SIGTERM to the master makes it stop its services, but (observed with
        2.3.19) it then sleeps a fixed second after signalling its log
        process, and an ``imap`` process whose client is still connected can
        outlive the master.  A stop must drop every session (reconnection
        tests depend on it) and should not cost a second, so once only such
        lingering processes remain the master is killed and the leftovers,
        known by pid from /proc, get SIGTERM (which an imap process answers
        with ``* BYE Server shutting down.``), then SIGKILL after a grace.
        """
        if self.proc is not None:
            if self.proc.poll() is None:
                seen: dict[int, str] = {}
                self.proc.terminate()
                deadline = time.monotonic() + timeout
                while self.proc.poll() is None and time.monotonic() < deadline:
                    live = _live_children(self.proc.pid)
                    seen.update(live)
                    if all(comm in _LINGERING for comm in live.values()):
                        break
                    time.sleep(0.01)
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.wait()
                _terminate(seen)
            self.proc = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> dict[str, int]:
        """Live Dovecot processes by name, e.g. {"imap": 3, "imap-login": 1, ...}."""
        counts: dict[str, int] = {}
        if self.running():
            assert self.proc is not None
            for comm in _live_children(self.proc.pid).values():
                counts[comm] = counts.get(comm, 0) + 1
        return counts

    # -- logs ------------------------------------------------------------
    def log_text(self) -> str:
        """Dovecot's log file (plus anything the master wrote to stderr)."""
        parts = []
        for p in (self.log_path, self.base / "dovecot.stderr"):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- doveadm ---------------------------------------------------------
    def doveadm(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        """Run ``doveadm -c CONF ARGS`` and return its stdout (DovecotError on failure)."""
        proc = subprocess.run(
            [DOVEADM, "-c", str(self.conf_path), *args],
            input=input,
            capture_output=True,
        )
        if check and proc.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc.stdout.decode("utf-8", "replace")

    def kick(self, user: int | str) -> str:
        """Disconnect every IMAP session of ``user`` (doveadm kick)."""
        return self.doveadm("kick", self.user(user).name)

    def who(self) -> dict[str, int]:
        """Open IMAP sessions per user, from ``doveadm who`` (via anvil)."""
        counts: dict[str, int] = {}
        for line in self.doveadm("who", "-1").splitlines():
            fields = line.split()
            if fields and fields[0] != "username":
                counts[fields[0]] = counts.get(fields[0], 0) + 1
        return counts

    def mailbox_path(self, user: int | str, mailbox: str) -> Path:
        """Filesystem directory of a mailbox (doveadm mailbox path)."""
        out = self.doveadm("mailbox", "path", "-u", self.user(user).name, mailbox).strip()
        return Path(out.splitlines()[-1].split()[-1]) if out else Path()

    def search(self, user: int | str, mailbox: str, *query: str) -> list[int]:
        """UIDs matching a doveadm search query (an oracle independent of IMAP)."""
        q = list(query) or ["all"]
        out = self.doveadm("search", "-u", self.user(user).name, "mailbox", mailbox, *q)
        return sorted(int(line.split()[1]) for line in out.splitlines() if line.strip())

    # -- IMAP clients ----------------------------------------------------
    def imap(self, user: int | str | None = 1, mode: str = "plain", **kw: object) -> "Imap":
        """A harness.mail.Imap connected to this server, logged in as ``user``.

        mode: ``plain`` (port imap), ``starttls`` (port imap + STARTTLS) or
        ``tls`` (port imaps).  Pass ``user=None`` for a connection that is
        not logged in.
        """
        from .mail import Imap

        listener = "imaps" if mode == "tls" else "imap"
        client = Imap("127.0.0.1", self.port(listener), mode=mode, ca_file=self.ca_file, **kw)  # type: ignore[arg-type]
        if user is not None:
            u = self.user(user)
            client.login(u.name, u.password)
        return client

    def iter_listeners(self) -> Iterator[Listener]:
        return iter(self.listeners.values())


def _greeting_error(lst: Listener) -> str | None:
    """None if ``lst`` accepts a connection and sends an IMAP greeting, else why not."""
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((lst.address, lst.port), timeout=2)
        if lst.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        line = sock.recv(4096)
        if not line.startswith(b"* OK"):
            return f"unexpected greeting {line[:80]!r}"
        return None
    except (OSError, ssl.SSLError) as exc:
        return repr(exc)
    finally:
        if sock is not None:
            sock.close()


#: Dovecot processes that may still run once the master has stopped its services.
_LINGERING = frozenset({"log", "stats", "imap", "imap-hibernate"})


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(comm, state) of a process, or None if it no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]


def _live_children(pid: int) -> dict[int, str]:
    """{pid: comm} of the non-zombie children of ``pid`` (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return {}
    out = {}
    for child in map(int, children):
        st = _proc_stat(child)
        if st and st[1] not in ("Z", "X"):
            out[child] = st[0]
    return out


def _alive(pid: int, comm: str) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] == comm and st[1] not in ("Z", "X")


def _terminate(procs: dict[int, str], grace: float = 2.0) -> None:
    """SIGTERM the still-running processes of ``procs``; SIGKILL those alive after ``grace``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = {pid: comm for pid, comm in procs.items() if _alive(pid, comm)}
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            left = {pid: comm for pid, comm in left.items() if _alive(pid, comm)}
            time.sleep(0.005)
        if not left:
            return


def doveadm_version() -> str:
    """``dovecot --version`` (for reports)."""
    return subprocess.run([DOVECOT, "--version"], capture_output=True, text=True).stdout.strip()


__all__ = ["Dovecot", "DovecotError", "Listener", "TestPKI", "User", "doveadm_version", "wait_for"]
