# SPDX-License-Identifier: MIT
"""Shared pieces of the benchmark harness (Python 3 standard library only).

- a private Dovecot tuned for many connections (on top of the integration
  test harness in tests/integration/harness);
- mailboxes made fast (maildir directories, bulk-loaded messages);
- imapsweepd configurations and its control socket;
- process measurement: wall time, CPU and peak RSS of a child (wait4), RSS,
  PSS, open descriptors and CPU of a running process (/proc).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
#: Where run.py builds the helper programs (floor, measure).
BENCH_BIN = REPO / "build" / "bench"
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness.dovecot import Dovecot  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.wait import die_with_parent, tmp_root  # noqa: E402

CRON_FROM = "Cron Daemon"

#: What the benchmark adds to the harness's dovecot.conf, and why (also
#: printed into docs/benchmarks.md).
DOVECOT_TUNING = [
    ("imap_max_line_length = 4M",
     "the lower bound and the batched script send the whole UID set in one command "
     "(50,000 UIDs are ~290 KB); the default 64 KiB would refuse it"),
    ("default_process_limit = 5000, service imap { process_limit = 5000 }",
     "one imap process per non-hibernated session (1,000 + 1,000 IDLE sessions "
     "in the reaction runs; sessions not yet hibernated in the scale runs)"),
    ("default_client_limit = 19000",
     "connections per service process (imap-hibernate holds all 10,000 sessions; "
     "imap-login proxies every TLS session); below the 20,000 fd limit"),
    ("default_vsz_limit = 2G", "one imap process expunging 50,000 messages in one command"),
    ("service imap-login { service_count = 0; process_min_avail = 2; client_limit = 5000 }",
     "high-performance login mode: a few long-lived login processes instead of one per connection"),
    ("service anvil / auth / stats / imap-hibernate { client_limit = 19000 }",
     "every session registers with anvil and stats, every login asks auth"),
    ("mail_max_userip_connections = 20000", "up to 10 watched mailboxes per user plus oracles, from one IP"),
    ("imap_idle_notify_interval = 30 mins (scale runs only)",
     "Dovecot's \"* OK Still here\" to idling clients, every 2 minutes by default and aligned per client IP, so "
     "all 10,000 sessions get it in the same instant; it is server traffic, not a timer of the daemon, and is "
     "kept out of the idle windows (one such round costs the daemon one read per session)"),
    ("imap_hibernate_timeout = 2s (scale runs only)",
     "IDLE sessions move into one imap-hibernate process; without it 10,000 sessions "
     "are 10,000 imap processes (~5 GB)"),
]

DOVECOT_EXTRA = """
# --- bench/lib.py: tuned for many connections ---
imap_max_line_length = 4M
default_process_limit = 5000
default_client_limit = 19000
default_vsz_limit = 2G
service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = 5000
}
service anvil {
  client_limit = 19000
}
service auth {
  client_limit = 19000
}
service stats {
  client_limit = 19000
}
service imap-hibernate {
  client_limit = 19000
}
service imap {
  process_limit = 5000
}
"""


#: For the scale runs only: Dovecot sends "* OK Still here" to every IDLE
#: session every imap_idle_notify_interval (2 min by default), aligned per
#: client IP, so all 10,000 sessions get it in the same instant. That is
#: server traffic, not a timer of the daemon; it is pushed out of the
#: measured idle windows.
SCALE_EXTRA = """
imap_idle_notify_interval = 30 mins
"""


def start_dovecot(users: int, hibernate: bool = False, extra: str = "") -> Dovecot:
    """A running private Dovecot with ``users`` users, tuned for many sessions."""
    dc = Dovecot(
        users=users,
        extra_config=DOVECOT_EXTRA + extra,
        hibernate=hibernate,
        max_userip_connections=20000,
        tls_variants=False,
        oauth=False,
    )
    dc.__enter__()
    return dc


def folder_names(k: int) -> list[str]:
    """The k watched mailboxes of one user: INBOX, f1 .. f(k-1)."""
    return ["INBOX"] + [f"f{i}" for i in range(1, k)]


def make_folders(dc: Dovecot, user: int, names: Iterable[str]) -> None:
    """Create maildir++ folders directly on disk (Dovecot finds them at SELECT)."""
    u = dc.user(user)
    root = dc.maildir(user)
    for name in names:
        path = root if name.upper() == "INBOX" else root / f".{name}"
        for d in (root, path, path / "cur", path / "new", path / "tmp"):
            if not d.exists():
                d.mkdir(mode=0o700)
                os.chown(d, u.uid, u.uid)


def folder_path(dc: Dovecot, user: int, name: str) -> Path:
    root = dc.maildir(user)
    return root if name.upper() == "INBOX" else root / f".{name}"


def half_cron(n: int, offset: int = 0) -> Iterable[bytes]:
    """n messages, cron noise and ordinary mail alternating (cron first), distinct Message-IDs."""
    for i in range(offset, offset + n):
        yield cron_mail(i) if i % 2 == 0 else ordinary_mail(i)


_templates: dict[tuple[str, int, int], Path] = {}


def _template(dc: Dovecot, user: int, n: int) -> Path:
    """n maildir files (half_cron(n)) owned by the user, written once per Dovecot instance."""
    key = (str(dc.base), user, n)
    if key not in _templates:
        u = dc.user(user)
        d = dc.base / f"template-{user}-{n}"
        d.mkdir()
        stamp = int(time.time())
        for i, raw in enumerate(half_cron(n)):
            # Dovecot gives new files UIDs in the order of the names' time and
            # microsecond fields: message i gets UID i+1.
            name = f"{stamp}.M{i + 1:07d}P1Rbench.imapsweep,S={len(raw)}:2,"
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, raw)
                os.fchown(fd, u.uid, u.uid)
            finally:
                os.close(fd)
        _templates[key] = d
    return _templates[key]


def fill(dc: Dovecot, user: int, mailbox: str, n: int) -> None:
    """A new mailbox with n messages; message i gets UID i+1 (odd UIDs are cron).

    The files are hard links to a template written once (Dovecot renames and
    unlinks the links, never writes into a message file), then
    `doveadm force-resync` assigns the UIDs: 100,000 messages in about a
    second instead of three.
    """
    tpl = _template(dc, user, n)
    make_folders(dc, user, [mailbox])
    cur = folder_path(dc, user, mailbox) / "cur"
    for name in sorted(os.listdir(tpl)):
        os.link(tpl / name, cur / name)
    dc.doveadm("force-resync", "-u", dc.user(user).name, mailbox)


def drop_mailbox(dc: Dovecot, user: int, mailbox: str) -> None:
    dc.doveadm("mailbox", "delete", "-u", dc.user(user).name, mailbox, check=False)


# ---------------------------------------------------------------------------
# imapsweepd
# ---------------------------------------------------------------------------
def binary(name: str) -> Path:
    build = Path(os.environ.get("IMAPSWEEP_BUILD", "build"))
    if not build.is_absolute():
        build = REPO / build
    return build / name


@dataclass
class Account:
    user: int
    mailboxes: list[str]


def write_config(path: Path, dc: Dovecot, accounts: Sequence[Account], *, tls: bool = False,
                 control_socket: str = "", log_level: str = "info",
                 defaults: Mapping[str, Any] | None = None,
                 account_extra: Mapping[str, Any] | None = None) -> Path:  # fmt: skip
    """An imapsweep.yaml (JSON, which is YAML) with one account per Dovecot user.

    The audit mode is ``counts``: per-message audit would add a header
    fetch of every acted-on message to the measured work.
    """
    accs = []
    for a in accounts:
        u = dc.user(a.user)
        acc: dict[str, Any] = {
            "name": u.name,
            "host": "localhost" if tls else "127.0.0.1",
            "port": dc.port("imaps" if tls else "imap"),
            "tls": "implicit" if tls else "none",
            "user": u.name,
            "password": u.password,
            "mailboxes": a.mailboxes,
            "max_connections": max(1, len(a.mailboxes)),
        }
        if tls:
            acc["ca_file"] = dc.ca_file
        acc.update(account_extra or {})
        accs.append(acc)
    cfg: dict[str, Any] = {
        "daemon": {"control_socket": control_socket, "log_level": log_level, "audit": "counts"},
        "defaults": dict(defaults or {}),
        "accounts": accs,
        "rules": [{"name": "cron", "match": {"from": CRON_FROM}, "action": "delete"}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def control(sock: str | Path, line: str = "status", timeout: float = 30.0) -> dict[str, Any]:
    """One request on the control socket, the JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------
@dataclass
class Run:
    """One measured child process."""

    argv: list[str]
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_measured(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 3600,
                 cwd: str | None = None) -> Run:  # fmt: skip
    """Run argv to completion under bench/measure.c: wall time, user+sys CPU
    and peak RSS of that process alone (see measure.c for why a helper)."""
    work = Path(tempfile.mkdtemp(prefix="bench-run-", dir=tmp_root()))
    out_p, err_p, res_p = work / "out", work / "err", work / "res"
    child_env = dict(os.environ)
    child_env.update(env or {})
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        p = subprocess.Popen([str(BENCH_BIN / "measure"), str(res_p), *argv], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err, env=child_env, cwd=cwd)  # fmt: skip
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    wall, user, sys_, maxrss, rc = res_p.read_text().split()
    r = Run(list(argv), float(wall), float(user), float(sys_), int(maxrss), int(rc),
            out_p.read_text(errors="replace"), err_p.read_text(errors="replace"))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return r


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0])


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def ctx_switches(pid: int) -> int:
    st = proc_status(pid)
    return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])


def read_calls(pid: int) -> tuple[int, int]:
    """(read system calls, bytes read) of a process so far (/proc/PID/io)."""
    vals = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, _, v = line.partition(":")
            vals[k] = int(v)
    return vals.get("syscr", 0), vals.get("rchar", 0)


def anon_split_kib(pid: int) -> dict[str, int]:
    """The anonymous resident memory of a process by where it lies: glibc's
    main arena (``[heap]``), the stacks, and every other anonymous mapping
    (the arenas of other threads, large blocks malloc maps on their own,
    libraries' own maps)."""
    out = {"main_heap_kib": 0, "stack_kib": 0, "other_anon_kib": 0}
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", head[0]):
                name = head[5] if len(head) > 5 else ""
            elif line.startswith("Anonymous:"):
                kib = int(head[1])
                if name == "[heap]":
                    out["main_heap_kib"] += kib
                elif name.startswith("[stack"):
                    out["stack_kib"] += kib
                else:
                    out["other_anon_kib"] += kib
    return out


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its live descendants."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_kib(p)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except (OSError, KeyError, ValueError):
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its live descendants and its reaped children (cutime/cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return total


def stop_process(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(1, -(-len(s) * q // 100))
    return s[int(k) - 1]


__all__ = [name for name in dir() if not name.startswith("_")]
