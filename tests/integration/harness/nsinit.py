# SPDX-License-Identifier: MIT
"""PID 1 of a test server's private mount and PID namespace.

Run by ``harness.nsserver`` as ``unshare --mount --pid --fork --kill-child
--mount-proc python3 -I nsinit.py SPEC.json``; never imported.  SPEC says:

- ``mounts``: argv lists for mount(8), run in order (the unpacked server
  packages over /usr, writable overlays over /etc and /var, a tmpfs on /run);
- ``dev``: build a /dev of its own (a tmpfs with the host's null, zero,
  random, urandom, tty, shm and pts bound in) so that ``syslog`` can be a
  datagram socket at /dev/log without touching the host's /dev;
- ``syslog``: file that every datagram sent to /dev/log is appended to, one
  line each, prefixed with the wall-clock time;
- ``setup``: commands run one after the other before the services (each
  must succeed);
- ``services``: long-running commands, each with its stdout and stderr in a
  file of its own.  When one of them exits, or on SIGTERM, every process in
  the namespace gets SIGTERM, then this process exits after ``grace``
  seconds at most; the kernel kills whatever is left when PID 1 ends.

Errors go to stderr (a file the harness reads) and end the namespace.
Standard library only; this process must stay small and simple.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def log(msg: str) -> None:
    sys.stderr.write(f"nsinit: {msg}\n")
    sys.stderr.flush()


def run(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
    proc = subprocess.run(argv, env=_env(env), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {(proc.stdout + proc.stderr).strip()}")


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def private_dev() -> None:
    """A tmpfs /dev with the few host devices servers use, and room for /dev/log."""
    stage = "/run/.nsinit-dev"
    os.makedirs(stage, exist_ok=True)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "nsdev", stage])
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        if os.path.exists(f"/dev/{name}"):
            open(f"{stage}/{name}", "w").close()
            run(["mount", "--bind", f"/dev/{name}", f"{stage}/{name}"])
    for name in ("shm", "pts"):
        if os.path.isdir(f"/dev/{name}"):
            os.mkdir(f"{stage}/{name}")
            run(["mount", "--bind", f"/dev/{name}", f"{stage}/{name}"])
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):  # fmt: skip
        os.symlink(target, f"{stage}/{link}")
    run(["mount", "--move", stage, "/dev"])
    os.rmdir(stage)


def syslog_reader(path: str) -> None:
    """Bind /dev/log and append each message to ``path`` (in a thread)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)

    def loop() -> None:
        with open(path, "a", encoding="utf-8", errors="replace") as out:
            while True:
                data = sock.recv(65536).decode("utf-8", "replace").rstrip("\n\0")
                if data.startswith("<") and ">" in data[:5]:
                    data = data[data.index(">") + 1 :]
                now = time.time()
                stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
                out.write(f"{stamp} {data}\n")
                out.flush()

    threading.Thread(target=loop, daemon=True).start()


def terminate_all(grace: float) -> None:
    """SIGTERM every other process of the namespace, reap them for ``grace`` s."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != 1]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)

    def on_term(signum: int, frame: object) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        for argv in spec.get("mounts", []):
            run(argv)
        if spec.get("dev"):
            private_dev()
        if spec.get("syslog"):
            syslog_reader(spec["syslog"])
        for cmd in spec.get("setup", []):
            run(cmd["argv"], cmd.get("env"), cmd.get("cwd"))
    except (OSError, RuntimeError) as exc:
        log(f"set-up failed: {exc}")
        return 1

    services: dict[int, str] = {}
    for svc in spec.get("services", []):
        out = open(svc["log"], "ab")
        proc = subprocess.Popen(svc["argv"], env=_env(svc.get("env")), cwd=svc.get("cwd"),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)  # fmt: skip
        out.close()
        services[proc.pid] = svc["name"]

    status = 0
    try:
        while True:
            pid, st = os.waitpid(-1, 0)  # reaps orphans too, as PID 1 must
            if pid in services:
                log(f"service {services[pid]} (pid {pid}) ended with status {st:#x}")
                status = 1
                break
    except (_Stop, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    terminate_all(float(spec.get("grace", 5)))
    return status


if __name__ == "__main__":
    sys.exit(main())
