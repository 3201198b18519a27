#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""imapsweep benchmarks: `make bench` / `make bench-quick`.

    python3 bench/run.py --quick|--full [--only purge,reaction,scale,hostile]
                         [--out docs/benchmarks.md] [--no-docs]
    python3 bench/run.py --quick --only notify   # NOTIFY at scale (not in
                         # the default set; raw results only, see
                         # bench/notify_scale.py and docs/benchmarks.md)

Starts private Dovecot instances (tests/integration/harness, tuned in
bench/lib.py), measures imapsweepd against the protocol lower bound
(bench/floor.c) and the peers (imapfilter, a per-message and a batched
imaplib script), checks every outcome with an independent client, and
writes docs/benchmarks.md with docs/reaction.png. Raw results go to
build/bench/results-<mode>.json. Python 3 standard library only; installs
imapfilter and gnuplot-nox with apt-get when missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lib  # noqa: E402
import notify_scale  # noqa: E402
import procs  # noqa: E402
import reaction  # noqa: E402
import report  # noqa: E402

PURGE_TOOLS = ["floor", "imapsweepd", "batched", "imapfilter", "seed"]

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        # size: {client: repetitions}; "*" for the others. The seed-style
        # script takes ~150 s at 100,000 (one STORE per message): full only.
        "purge": {10_000: {"*": 5, "imapfilter": 3, "seed": 2},
                  100_000: {"*": 3, "imapfilter": 2, "seed": 0}},
        "reaction_samples": 50,
        "reaction_n": [1, 100, 1000],
        "scale_n": [1000, 10_000],
        "idle_window_s": 20,        # at the largest watcher count
        "idle_window_small_s": 10,  # at the others, and for the peers
        "peer_processes": 100,
        "regex_n": 100_000,         # subjects per pattern
        "hostile_reps": 3,
    },
    "full": {
        "purge": {10_000: {"*": 9, "imapfilter": 5, "seed": 3},
                  100_000: {"*": 5, "imapfilter": 3, "seed": 1}},
        "reaction_samples": 200,
        "reaction_n": [1, 100, 1000],
        "scale_n": [1000, 10_000],
        "idle_window_s": 60,
        "idle_window_small_s": 60,
        "peer_processes": 100,
        "regex_n": 1_000_000,
        "hostile_reps": 5,
    },
}

#: bench/hostile's cases: what a large or lying server costs one sweep.
HOSTILE_CASES = [("descending", 150_000), ("liar", 100_000_000)]

LOG_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - LOG_T0:6.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------
def ensure_packages() -> None:
    """imapfilter and gnuplot from Debian, if missing (no service may start)."""
    missing = [pkg for cmd, pkg in (("imapfilter", "imapfilter"), ("gnuplot", "gnuplot-nox")) if not shutil.which(cmd)]
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    policy = Path("/usr/sbin/policy-rc.d")
    added = False
    if not policy.exists():
        subprocess.run([*sudo, "sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod 755 {policy}"],
                       check=True)  # fmt: skip
        added = True
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env)  # fmt: skip
    finally:
        if added:
            subprocess.run([*sudo, "rm", "-f", str(policy)], check=False)


def build_helpers() -> None:
    lib.BENCH_BIN.mkdir(parents=True, exist_ok=True)
    for name in ("floor", "measure"):
        src = lib.REPO / "bench" / f"{name}.c"
        out = lib.BENCH_BIN / name
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src)], check=True)
    for name in ("imapsweepd", "imapsweepctl"):
        if not lib.binary(name).exists():
            raise SystemExit(f"{lib.binary(name)} missing: run `make` first")


def _cmd(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout.strip() or r.stderr.strip()).splitlines()[0] if (r.stdout or r.stderr).strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        k, _, v = line.partition(":")
        info.setdefault(k.strip(), v.strip())
    cpu = f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    vm, ct = _cmd(["systemd-detect-virt", "--vm"]), _cmd(["systemd-detect-virt", "--container"])
    virt = f"VM: {vm}, container: {ct}"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": _os_release(),
        "virtualization": virt,
        "dovecot": _cmd(["dovecot", "--version"]),
        "openssl": _cmd(["openssl", "version"]),
        "libuv": _cmd(["pkg-config", "--modversion", "libuv"]),
        "imapfilter": _cmd(["imapfilter", "-V"]).split("  ")[0],
        "imapfilter_pkg": _cmd(["dpkg-query", "-W", "-f", "${Version}", "imapfilter"]),
        "python": platform.python_version(),
        "imapsweepd": _cmd([str(lib.binary("imapsweepd")), "--version"]),
        "compiler": _cmd(["cc", "--version"]),
        "git": _cmd(["git", "-C", str(lib.REPO), "describe", "--always", "--dirty"]),
        "tmpdir": lib.tmp_root(),
    }


def _os_release() -> str:
    try:
        text = Path("/etc/os-release").read_text()
        return re.search(r'PRETTY_NAME="([^"]*)"', text).group(1)
    except (OSError, AttributeError):
        return "?"


# ---------------------------------------------------------------------------
# 1. bulk purge
# ---------------------------------------------------------------------------
def purge_argv(tool: str, dc: lib.Dovecot, user: int, mailbox: str, workdir: Path) -> list[str]:
    u = dc.user(user)
    host, port = "127.0.0.1", str(dc.port("imap"))
    peers = lib.REPO / "bench" / "peers"
    py = sys.executable
    if tool == "floor":
        return [str(lib.BENCH_BIN / "floor"), "purge", host, port, u.name, u.password, mailbox, lib.CRON_FROM]
    if tool == "imapsweepd":
        cfg = lib.write_config(workdir / f"once-{mailbox}.json", dc, [lib.Account(user, [mailbox])],
                               log_level="notice")  # fmt: skip
        return [str(lib.binary("imapsweepd")), "-c", str(cfg), "--once"]
    if tool == "batched":
        return [py, str(peers / "batched.py"), host, port, u.name, u.password, mailbox]
    if tool == "seed":
        return [py, str(peers / "seed_per_message.py"), host, port, u.name, u.password, mailbox]
    if tool == "imapfilter":
        text = (peers / "imapfilter_purge.lua").read_text()
        text = (text.replace("@PORT@", port).replace("@USER@", u.name).replace("@PASSWORD@", u.password)
                .replace("@MAILBOX@", mailbox))  # fmt: skip
        cfg = workdir / f"imapfilter-{mailbox}.lua"
        cfg.write_text(text)
        return ["imapfilter", "-c", str(cfg)]
    raise ValueError(tool)


def wait_sessions_gone(dc: lib.Dovecot, timeout: float = 30.0) -> None:
    """Until no imap process is left (its CPU is then in the master's cutime)."""
    deadline = time.monotonic() + timeout
    while dc.processes().get("imap", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def verify_purge(dc: lib.Dovecot, user: int, mailbox: str, size: int) -> str | None:
    """The oracle (imaplib, EXAMINE only): exactly the even UIDs (ordinary mail) left, none \\Seen or \\Deleted."""
    with dc.imap(user) as o:
        left = o.uids(mailbox)
        seen = o.search(mailbox, "SEEN")
        deleted = o.search(mailbox, "DELETED")
    want = list(range(2, size + 1, 2))
    if left != want:
        extra = len(set(left) - set(want))
        missing = len(set(want) - set(left))
        return f"{extra} unexpected messages left, {missing} ordinary messages missing"
    if seen or deleted:
        return f"{len(seen)} \\Seen, {len(deleted)} \\Deleted"
    return None


def section_purge(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    dc = lib.start_dovecot(users=2)
    out: dict[str, Any] = {}
    results["purge"] = out
    try:
        user = 1
        # warm-up, not measured: Dovecot's processes, the page cache
        lib.fill(dc, user, "warmup", 2000)
        lib.run_measured(purge_argv("floor", dc, user, "warmup", workdir))
        lib.drop_mailbox(dc, user, "warmup")
        for size, plan in cfg["purge"].items():
            reps = max(plan.values())
            rows: dict[str, list[dict[str, Any]]] = {t: [] for t in PURGE_TOOLS}
            out[str(size)] = rows
            for rep in range(reps):
                order = PURGE_TOOLS[rep % len(PURGE_TOOLS):] + PURGE_TOOLS[: rep % len(PURGE_TOOLS)]
                for tool in order:
                    if rep >= plan.get(tool, plan["*"]):
                        continue
                    mailbox = f"p{size}-{rep}-{tool}"
                    lib.fill(dc, user, mailbox, size)
                    wait_sessions_gone(dc)
                    server0 = lib.tree_cpu_seconds(dc.proc.pid)
                    r = lib.run_measured(purge_argv(tool, dc, user, mailbox, workdir))
                    wait_sessions_gone(dc)
                    server = lib.tree_cpu_seconds(dc.proc.pid) - server0
                    if r.returncode != 0:
                        raise RuntimeError(f"{tool} exited {r.returncode}: {r.stderr[-2000:]}{r.stdout[-2000:]}")
                    bad = verify_purge(dc, user, mailbox, size)
                    if bad:
                        raise RuntimeError(f"{tool} at {size}: wrong outcome: {bad}")
                    rows[tool].append({"wall": r.wall, "cpu": r.cpu, "user": r.user, "sys": r.sys,
                                       "maxrss_kib": r.maxrss_kib, "server_cpu": server})  # fmt: skip
                    log(f"purge {size:>6} run {rep + 1}/{plan.get(tool, plan['*'])} {tool:<10} wall {r.wall:7.3f}s "
                        f"cpu {r.cpu:6.3f}s rss {r.maxrss_kib / 1024:6.1f}MiB server {server:6.3f}s  verified")
    finally:
        dc.cleanup()


# ---------------------------------------------------------------------------
# 2. reaction time
# ---------------------------------------------------------------------------
class UserPool:
    def __init__(self, start: int = 1) -> None:
        self.next = start

    def take(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def boxes_for(dc: lib.Dovecot, users: list[int], n: int) -> list[tuple[int, str]]:
    """n watched mailboxes over these users, 10 per user (INBOX, f1..f9)."""
    per = 10 if n >= 10 else n
    out = []
    for u in users:
        names = lib.folder_names(per)[: n - len(out)]
        lib.make_folders(dc, u, names)
        out += [(u, m) for m in names]
        if len(out) == n:
            break
    return out


def accounts_of(boxes: list[tuple[int, str]]) -> list[lib.Account]:
    by: dict[int, list[str]] = {}
    for u, m in boxes:
        by.setdefault(u, []).append(m)
    return [lib.Account(u, ms) for u, ms in by.items()]


def section_reaction(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    """Every watcher count at once: one Dovecot, one set of watchers per
    (count, watcher), appends rotating over all sets (see reaction.py)."""
    ns = cfg["reaction_n"]
    need = 1 + sum(2 * ((n + 9) // 10) for n in ns) + 2
    dc = lib.start_dovecot(users=need)
    out: dict[str, Any] = {}
    results["reaction"] = out
    pool = UserPool()
    sets: list[reaction.WatcherSet] = []
    try:
        for n in ns:
            per_set_users = (n + 9) // 10
            ours = boxes_for(dc, pool.take(per_set_users), n)
            floor = boxes_for(dc, pool.take(per_set_users), n)
            wd = workdir / f"reaction-{n}"

            def start_ours(boxes=ours, wd=wd):
                d = procs.Daemon(dc, accounts_of(boxes), wd)
                d.p.daemon = d  # type: ignore[attr-defined]
                return d.p

            def ready_ours(ps):
                ps[0].daemon.wait_idle(120)  # type: ignore[attr-defined]

            def start_floor(boxes=floor):
                return procs.start_floor(dc, boxes)

            def ready_floor(ps, n=n):
                ps[0].reader.wait_for(rf"^ready {n}$", 120)  # type: ignore[attr-defined]

            sets.append(reaction.WatcherSet("imapsweepd", ours, start_ours, ready_ours, n=n))
            sets.append(reaction.WatcherSet("floor", floor, start_floor, ready_floor, n=n))
            if n == 1:
                ifb = boxes_for(dc, pool.take(1), 1)

                def start_if(boxes=ifb, wd=wd):
                    return procs.start_imapfilter(dc, boxes[0][0], boxes[0][1], wd)

                def ready_if(ps):
                    ps[0].reader.wait_for(r"^ready$", 60)  # type: ignore[attr-defined]

                sets.append(reaction.WatcherSet("imapfilter", ifb, start_if, ready_if, n=n))
        log(f"reaction: {len(sets)} watcher sets at {', '.join(map(str, ns))} watched mailboxes, "
            f"{sum(len(s.mailboxes) for s in sets)} sessions")
        reaction.run_sets(dc, sets, cfg["reaction_samples"], log=log)
        for s in sets:
            row = out.setdefault(str(s.n), {})
            row[s.name] = {"samples_ms": s.samples_ms, "cron": s.cron, "ordinary": sum(s.ordinary.values())}
            xs = s.samples_ms
            log(f"  {s.n:>5} {s.name:<10} n={len(xs)} p50 {lib.percentile(xs, 50):7.2f} ms  "
                f"p99 {lib.percentile(xs, 99):7.2f} ms  max {max(xs):7.2f} ms  verified")
    finally:
        for s in sets:
            for p in s.procs:
                if hasattr(p, "daemon"):
                    p.daemon.stop()  # type: ignore[attr-defined]
        dc.cleanup()


# ---------------------------------------------------------------------------
# 3. scale
# ---------------------------------------------------------------------------
def idle_window(pid: int, seconds: float) -> dict[str, float]:
    """CPU, context switches and reads of a process over `seconds` of idleness."""
    c0, x0, (r0, b0) = lib.cpu_seconds(pid), lib.ctx_switches(pid), lib.read_calls(pid)
    time.sleep(seconds)
    r1, b1 = lib.read_calls(pid)
    return {"cpu_s": lib.cpu_seconds(pid) - c0, "wakeups": lib.ctx_switches(pid) - x0,
            "reads": r1 - r0, "read_bytes": b1 - b0}  # fmt: skip


def scale_dovecot(n: int) -> tuple[lib.Dovecot, list[tuple[int, str]]]:
    """A fresh hibernating Dovecot with n mailboxes (10 per user).

    Fresh for every measurement: after a client vanishes, Dovecot 2.3 keeps
    hibernated sessions registered for minutes (doveadm who still listed
    9,600 of 10,000 two minutes after the daemon was killed), and a new
    instance starts in about a second."""
    users = max(1, (n + 9) // 10)
    dc = lib.start_dovecot(users=users, hibernate=True, extra=lib.SCALE_EXTRA)
    return dc, boxes_for(dc, list(range(1, users + 1)), n)


def scale_daemon(n: int, tls: bool, workdir: Path, window: float) -> dict[str, Any]:
    dc, boxes = scale_dovecot(n)
    d = None
    try:
        d = procs.Daemon(dc, accounts_of(boxes), workdir, tls=tls, name=f"scale-{n}-{'tls' if tls else 'plain'}")
        to_idle = d.wait_idle(timeout=600)
        setup_cpu = lib.cpu_seconds(d.pid)
        time.sleep(5.0)  # past the heap trim (2 s after the last change)
        rss = lib.rss_kib(d.pid)
        fds = lib.fd_count(d.pid)
        w = idle_window(d.pid, window) if window > 0 else {"cpu_s": None, "wakeups": None}
        rss_after = lib.rss_kib(d.pid)
        states = [x["state"] for x in lib.control(d.sock)["watchers"]]
        if states.count("idle") != n:
            raise RuntimeError(f"after the idle window only {states.count('idle')}/{n} watchers idle")
        return {"n": n, "tls": tls, "to_idle_s": to_idle, "setup_cpu_s": setup_cpu, "rss_kib": rss,
                "rss_after_kib": rss_after, "fds": fds, "window_s": window, **w}  # fmt: skip
    finally:
        if d is not None:
            d.stop(sig=9)  # not measured; a LOGOUT of 10,000 hibernated sessions would wake them all
        dc.cleanup()


def scale_imapfilter(k: int, tls: bool, workdir: Path, window: float) -> dict[str, Any]:
    dc, boxes = scale_dovecot(k)
    ps = []
    t0 = time.monotonic()
    try:
        for u, m in boxes:
            ps.append(procs.start_imapfilter(dc, u, m, workdir / "imapfilter", tls=tls))
        for p in ps:
            p.reader.wait_for(r"^ready$", 120)
        to_idle = time.monotonic() - t0
        time.sleep(5.0)
        rss = sum(lib.rss_kib(p.pid) for p in ps)
        pss = sum(lib.pss_kib(p.pid) for p in ps)
        fds = sum(lib.fd_count(p.pid) for p in ps)
        c0 = sum(lib.cpu_seconds(p.pid) for p in ps)
        x0 = sum(lib.ctx_switches(p.pid) for p in ps)
        r0 = sum(lib.read_calls(p.pid)[0] for p in ps)
        time.sleep(window)
        cpu = sum(lib.cpu_seconds(p.pid) for p in ps) - c0
        wake = sum(lib.ctx_switches(p.pid) for p in ps) - x0
        reads = sum(lib.read_calls(p.pid)[0] for p in ps) - r0
        return {"n": len(ps), "tls": tls, "to_idle_s": to_idle, "rss_kib": rss, "pss_kib": pss, "fds": fds,
                "cpu_s": cpu, "wakeups": wake, "reads": reads, "window_s": window}  # fmt: skip
    finally:
        for p in ps:
            lib.stop_process(p, timeout=5)
        dc.cleanup()


def scale_floor(n: int) -> dict[str, Any]:
    dc, boxes = scale_dovecot(n)
    t0 = time.monotonic()
    p = procs.start_floor(dc, boxes, mode="hold")
    try:
        p.reader.wait_for(rf"^ready {len(boxes)}$", 600)
        to_idle = time.monotonic() - t0
        time.sleep(5.0)
        rss = lib.rss_kib(p.pid)
        fds = lib.fd_count(p.pid)
        return {"n": len(boxes), "tls": False, "to_idle_s": to_idle, "rss_kib": rss, "fds": fds}
    finally:
        lib.stop_process(p, sig=9)
        dc.cleanup()


def section_scale(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    big, small = cfg["idle_window_s"], cfg["idle_window_small_s"]
    nmax = max(cfg["scale_n"])
    out: dict[str, Any] = {"daemon": [], "imapfilter": [], "floor": [], "window_s": big, "window_small_s": small}
    results["scale"] = out
    for tls in (False, True):
        for n in [1, *cfg["scale_n"]]:
            window = 0 if n == 1 else big if n == nmax else small
            r = scale_daemon(n, tls, workdir, window)
            out["daemon"].append(r)
            idle = (f", idle {window}s: {r['cpu_s']:.2f} CPU s, {r['wakeups']} wakeups, {r['reads']} reads"
                    if window else "")  # fmt: skip
            log(f"scale imapsweepd {n:>6} {'TLS  ' if tls else 'plain'}: all idle in {r['to_idle_s']:5.1f}s, "
                f"RSS {r['rss_kib'] / 1024:7.1f} MiB, {r['fds']} fds{idle}")
    k = cfg["peer_processes"]
    for tls in (False, True):
        r = scale_imapfilter(k, tls, workdir, small)
        out["imapfilter"].append(r)
        log(f"scale imapfilter {k} processes {'TLS  ' if tls else 'plain'}: ready in {r['to_idle_s']:.1f}s, "
            f"RSS {r['rss_kib'] / 1024:.1f} MiB (PSS {r['pss_kib'] / 1024:.1f} MiB), idle {small}s: "
            f"{r['cpu_s']:.2f} CPU s")
    n = min(cfg["scale_n"])
    r = scale_floor(n)
    out["floor"].append(r)
    log(f"scale floor hold {n} plain: RSS {r['rss_kib'] / 1024:.1f} MiB")


# ---------------------------------------------------------------------------
def section_notify(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    """100 accounts x 100 mailboxes with and without NOTIFY, and the list
    index log rotation experiment (bench/notify_scale.py)."""
    a, m = cfg.get("notify_accounts", 100), cfg.get("notify_mailboxes", 100)
    out: dict[str, Any] = {"modes": {}, "loadavg": [os.getloadavg()[0]]}
    results["notify"] = out
    for mode in ("notify", "idle"):
        out["modes"][mode] = notify_scale.scale_mode(mode, a, m, cfg.get("notify_deliveries", 1000), workdir,
                                                     log=log)  # fmt: skip
    out["rotation"] = notify_scale.rotation(10, 20, 40, workdir, log=log)
    out["loadavg"].append(os.getloadavg()[0])


# ---------------------------------------------------------------------------
def section_hostile(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    """bench/hostile (in-process, the unit-test library's scripted server):
    a descending 150,000-UID SEARCH line, and the lying server."""
    exe = lib.binary("bench/hostile")
    if not exe.exists():
        raise SystemExit(f"{exe} missing: run `make bench-hostile` (or make bench) first")
    out: dict[str, Any] = {}
    for case, n in HOSTILE_CASES:
        rows = []
        for _ in range(cfg.get("hostile_reps", 3)):
            line = subprocess.run([str(exe), case, str(n)], capture_output=True, text=True, check=True,
                                  timeout=600).stdout.strip()  # fmt: skip
            m = re.match(r"\S+ \d+: ([0-9.]+) ms, peak RSS (\d+) KiB, (.*)", line)
            if m is None:
                raise RuntimeError(f"hostile: unexpected output {line!r}")
            rows.append({"ms": float(m.group(1)), "rss_kib": int(m.group(2)), "outcome": m.group(3)})
        out[case] = {"n": n, "runs": rows}
        log(f"hostile {case} {n}: median {lib.median([r['ms'] for r in rows]):.1f} ms, "
            f"peak RSS {max(r['rss_kib'] for r in rows)} KiB: {rows[-1]['outcome']}")  # fmt: skip
    results["hostile"] = out


# ---------------------------------------------------------------------------
def section_regex(cfg: dict[str, Any], workdir: Path, results: dict[str, Any]) -> None:
    """subject_regex per message: PCRE2 as the daemon runs it against glibc's
    POSIX ERE (the engine it used before), on the same decoded subjects."""
    src, out = lib.REPO / "bench" / "regex.c", lib.BENCH_BIN / "regex"
    libdir = lib.binary("imapsweepd").parent
    pkgs = ["libuv", "openssl", "yaml-0.1", "libsystemd", "jansson", "libpcre2-8"]
    libs = subprocess.run(["pkg-config", "--libs", *pkgs], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-D_GNU_SOURCE",
                    f"-I{lib.REPO / 'include'}", "-o", str(out), str(src), str(libdir / "libimapsweep.a"),
                    *libs, "-lm"], check=True)  # fmt: skip
    r = subprocess.run([str(out), str(cfg["regex_n"])], capture_output=True, text=True, check=True, timeout=600)
    results["regex"] = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    for row in results["regex"]:
        log(f"regex {row['name']}: " + (f"PCRE2 {row['ns_pcre2']:.0f} ns, ERE {row['ns_ere']:.0f} ns"
                                         if "ns_pcre2" in row else f"PCRE2 gave up after {row['ms_pcre2']:.1f} ms"))


# ---------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--quick", action="store_true", help="shorter run (under 10 minutes)")
    g.add_argument("--full", action="store_true", help="more repetitions and samples, 60 s idle windows")
    ap.add_argument("--only", default="purge,reaction,scale,regex,hostile", help="comma-separated sections")
    ap.add_argument("--out", default=str(lib.REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md and the plot")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a mode setting (development), e.g. --set reaction_samples=20")
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    for kv in args.set:
        key, _, val = kv.partition("=")
        v = json.loads(val)
        cfg[key] = {int(a): b for a, b in v.items()} if key == "purge" else v
        args.no_docs = True  # a modified run never overwrites the published report
    sections = [s for s in args.only.split(",") if s]
    only_hostile = sections == ["hostile"] and not args.set
    only_notify = sections == ["notify"] and not args.set
    if set(sections) != {"purge", "reaction", "scale", "regex", "hostile"} \
            and args.out == ap.get_default("out") and not only_hostile and not only_notify:
        args.no_docs = True  # a partial run never overwrites the published report
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    ensure_packages()
    build_helpers()
    results: dict[str, Any] = {"mode": mode, "started": started.isoformat(timespec="seconds"),
                               "machine": machine(), "config": {k: (v if k != "purge" else {str(a): b for a, b in v.items()})
                                                                for k, v in cfg.items()},
                               "sections": sections, "dovecot_tuning": lib.DOVECOT_TUNING}  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="imapsweep-bench-", dir=lib.tmp_root()))
    log(f"{mode} run: {', '.join(sections)}; work directory {workdir}")
    failed = None
    try:
        for name in sections:
            s0 = time.monotonic()
            {"purge": section_purge, "reaction": section_reaction, "scale": section_scale,
             "regex": section_regex, "hostile": section_hostile,
             "notify": section_notify}[name](cfg, workdir, results)  # fmt: skip
            results.setdefault("section_s", {})[name] = time.monotonic() - s0
    except BaseException as exc:  # noqa: BLE001 - reported, then re-raised as status
        failed = "".join(traceback.format_exception(exc))
        log(f"FAILED: {exc}")
    finally:
        if os.environ.get("IMAPSWEEP_KEEP_TMP", "") in ("", "0"):
            shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.monotonic() - t0
    results["failed"] = failed
    raw = lib.BENCH_BIN / f"results-{mode}.json"
    raw.write_text(json.dumps(results, indent=1))
    log(f"raw results: {raw}")
    if failed:
        print(failed, file=sys.stderr)
        return 1
    if not args.no_docs and only_notify:
        # not part of make bench: refreshes its own section of the report
        report.update_notify(results, Path(args.out), log)
    elif not args.no_docs and only_hostile:
        # seconds, in-process: it may refresh its own section of the
        # published report without a full run
        report.update_hostile(results, Path(args.out), log)
    elif not args.no_docs:
        report.write(results, Path(args.out), log)
    log(f"done in {results['elapsed_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
