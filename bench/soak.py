#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The soak: one daemon under restarts, reloads and steady mail for a long time.

    make soak                 # 30 minutes, 1,000 watchers over 100 accounts
    SOAK_MINUTES=5 make soak  # shorter
    make soak-valgrind        # 5 minutes, 100 watchers over 10 accounts, under valgrind
    python3 bench/soak.py [--minutes M] [--accounts A] [--valgrind] [--seed S]

A private Dovecot with imap-hibernate on loopback; one imapsweepd watching
10 mailboxes of each account (every account has 15: INBOX, f1..f14). Every
fourth account has max_connections 6, so 4 or more of its mailboxes are
polled on its shared connection. While it runs:

- Dovecot is restarted every minute (in a thread of its own, so appends
  race with it);
- every 30 s (15 s after each restart) a reload (SIGHUP) swaps, adds and
  removes mailboxes of random accounts (polled ones included) and adds and
  removes rules that match nothing; the watchers in status must then be
  exactly those of the new file;
- every second one cron message (which the rule deletes) and one ordinary
  message are appended to random mailboxes watched at that moment, by
  imaplib; an append that fails because the server is down is retried, and
  an ordinary message counts as "lost" only if its append succeeded.

After a warm-up (a third of the run, at most 150 s) the configuration goes
back to the first one, and once every watcher is idle or polling again the
daemon's RSS and open descriptors are the baseline; at the end the same is
done again, with a checkpoint every 5 minutes between. The verdict, from
imaplib: no cron message in a watched mailbox, no ordinary message lost or
\\Deleted, no message \\Seen; the daemon alive throughout and exiting 0 on
SIGTERM; the descriptors back to the baseline; no reload that left the
watchers out of step with the file. Memory: what the program holds
(glibc's heap in use less the blocks in the threads' caches, read with
gdb) at the end within 5 % of the baseline, and the RSS levelling off (the
highest checkpoint of the second half of the run within 5 % of the highest
of the first half). The RSS at the end against the baseline is reported,
not judged: at 1,000 watchers it moved by up to 20 % with where glibc's
main arena happened to have live blocks after a restart's 1,000
reconnections, while the heap in use moved by 4 % at most
(docs/reliability.md). Under valgrind (fewer watchers, 5 minutes): no
memory error and no definite leak, and memory is not otherwise judged. One
summary line on stdout (PASS or FAIL with the figures); details on stderr
and in build/bench/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lib  # noqa: E402
from harness.mail import cron_mail, ordinary_mail  # noqa: E402
from harness.wait import VALGRIND_ARGS, keep_tmp  # noqa: E402

POOL = ["INBOX"] + [f"f{i}" for i in range(1, 15)]
PER_ACCOUNT = 10
POLLED_MAX_CONNECTIONS = 6
RESTART_EVERY = 60.0
RELOAD_OFFSET = 15.0
RELOAD_EVERY = 30.0
MEM_TOLERANCE = 0.05
CRON_FROM = "Cron Daemon"


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Config:
    """The daemon's configuration: mailboxes per account, the extra rules."""

    def __init__(self, dc: lib.Dovecot, accounts: int, path: Path, sock: Path, rng: random.Random) -> None:
        self.dc = dc
        self.path = path
        self.sock = sock
        self.rng = rng
        self.mailboxes: dict[int, list[str]] = {u: POOL[:PER_ACCOUNT] for u in range(1, accounts + 1)}
        self.extra_rules: list[int] = []
        self.first = (json.loads(json.dumps(self.mailboxes)), list(self.extra_rules))
        self.next_rule = 1

    def max_connections(self, user: int) -> int:
        return POLLED_MAX_CONNECTIONS if user % 4 == 0 else len(POOL)

    def watched(self) -> set[tuple[str, str]]:
        return {(self.dc.user(u).name, m) for u, ms in self.mailboxes.items() for m in ms}

    def write(self) -> None:
        accounts = []
        for u, ms in self.mailboxes.items():
            usr = self.dc.user(u)
            accounts.append({"name": usr.name, "host": "127.0.0.1", "port": self.dc.port("imap"), "tls": "none",
                             "user": usr.name, "password": usr.password, "mailboxes": list(ms),
                             "max_connections": self.max_connections(u)})  # fmt: skip
        rules: list[dict[str, Any]] = [{"name": "cron", "match": {"from": CRON_FROM}, "action": "delete"}]
        for k in self.extra_rules:
            # rules that match nothing the soak delivers, some per mailbox
            r: dict[str, Any] = {"name": f"extra-{k}", "match": {"subject": f"zz-never-{k}"}, "action": "delete"}
            if k % 2:
                r["mailboxes"] = ["INBOX", f"f{k % 14 + 1}"]
            rules.append(r)
        cfg = {
            "daemon": {"control_socket": str(self.sock), "log_level": "notice", "audit": "counts"},
            "defaults": {"reconnect_min": "1s", "reconnect_max": "5s", "poll_interval": "10s",
                         "command_timeout": "30s", "connect_timeout": "10s"},  # fmt: skip
            "accounts": accounts,
            "rules": rules,
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent=1)
        os.replace(tmp, self.path)

    def mutate(self) -> str:
        """Swap, add and remove mailboxes of random accounts; add and remove rules."""
        users = list(self.mailboxes)
        swapped = added = removed = 0
        for u in self.rng.sample(users, max(1, len(users) // 10)):
            ms = self.mailboxes[u]
            spare = [m for m in POOL if m not in ms]
            choice = self.rng.random()
            if choice < 0.5 and spare:
                ms.remove(self.rng.choice(ms))
                ms.append(self.rng.choice(spare))
                swapped += 1
            elif choice < 0.75 and spare:
                ms.append(self.rng.choice(spare))
                added += 1
            elif len(ms) > 2:
                ms.remove(self.rng.choice(ms))
                removed += 1
        if self.extra_rules and self.rng.random() < 0.5:
            self.extra_rules.remove(self.rng.choice(self.extra_rules))
        if len(self.extra_rules) < 6:
            self.extra_rules.append(self.next_rule)
            self.next_rule += 1
        return f"{swapped} swapped, {added} added, {removed} removed; rules: cron + {len(self.extra_rules)}"

    def restore(self) -> None:
        self.mailboxes = json.loads(json.dumps(self.first[0]), object_hook=lambda d: {int(k): v for k, v in d.items()})
        self.extra_rules = list(self.first[1])


class Appender(threading.Thread):
    """One cron and one ordinary message per second to random watched
    mailboxes; failed appends (the server restarting) are retried."""

    def __init__(self, dc: lib.Dovecot, cfg: Config, rng: random.Random, lock: threading.Lock) -> None:
        super().__init__(name="appender", daemon=True)
        self.dc, self.cfg, self.rng, self.lock = dc, cfg, rng, lock
        self.stop = threading.Event()
        self.n = 0
        self.cron_ok: set[str] = set()
        self.ordinary_ok: dict[str, tuple[int, str]] = {}
        self.retries = 0
        self.given_up = 0
        self.error: str | None = None

    def target(self) -> tuple[int, str]:
        with self.lock:
            u = self.rng.choice(list(self.cfg.mailboxes))
            return u, self.rng.choice(self.cfg.mailboxes[u])

    def append(self, user: int, mailbox: str, raw: bytes) -> bool:
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.dc.imap(user, timeout=10) as im:
                    im.append(mailbox, raw)
                return True
            except Exception:  # noqa: BLE001 - the server is down or restarting: retry
                if time.monotonic() > deadline:
                    self.given_up += 1
                    return False
                self.retries += 1
                time.sleep(0.2)

    def run(self) -> None:
        try:
            t = time.monotonic()
            while not self.stop.is_set():
                self.n += 1
                i = 1_000_000 + self.n
                u, m = self.target()
                if self.append(u, m, cron_mail(i)):
                    self.cron_ok.add(f"<cron-{i}@host.imapsweep.test>")
                u, m = self.target()
                if self.append(u, m, ordinary_mail(i)):
                    self.ordinary_ok[f"<mail-{i}@imapsweep.test>"] = (u, m)
                t += 1.0
                self.stop.wait(max(0.0, t - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - reported in the verdict
            self.error = repr(exc)


class Restarter(threading.Thread):
    """Dovecot restarted every RESTART_EVERY seconds from the start of the run.

    Dovecot dies with the thread that started it (PR_SET_PDEATHSIG is per
    thread), so after ``stop`` this thread lives on until ``release``."""

    def __init__(self, dc: lib.Dovecot, t0: float) -> None:
        super().__init__(name="restarter", daemon=True)
        self.dc, self.t0 = dc, t0
        self.stop = threading.Event()
        self.stopped = threading.Event()
        self.release = threading.Event()
        self.busy = threading.Lock()
        self.count = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.restarts()
        finally:
            self.stopped.set()
            self.release.wait()

    def restarts(self) -> None:
        k = 1
        while not self.stop.wait(max(0.0, self.t0 + k * RESTART_EVERY - time.monotonic())):
            with self.busy:
                try:
                    t = time.monotonic()
                    self.dc.restart()
                    self.count += 1
                    log(f"Dovecot restart {self.count} took {time.monotonic() - t:.1f}s")
                except Exception as exc:  # noqa: BLE001 - reported in the verdict
                    self.error = repr(exc)
                    return
            k += 1


def status(sock: Path) -> dict[str, Any]:
    return lib.control(sock, timeout=60)


def wait_settled(sock: Path, want: set[tuple[str, str]], generation: int, timeout: float) -> float:
    """Wait until the daemon has loaded ``generation`` and exactly the
    watchers ``want`` exist, every one idle or polling."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        try:
            st = status(sock)
        except (OSError, ValueError) as exc:
            last = repr(exc)
            time.sleep(0.5)
            continue
        ws = st["watchers"]
        have = {(w["account"], w["mailbox"]) for w in ws}
        busy = [w for w in ws if w["state"] not in ("idle", "polling")]
        if st["generation"] == generation and have == want and not busy:
            return time.monotonic() - t0
        states: dict[str, int] = {}
        for w in busy:
            states[w["state"]] = states.get(w["state"], 0) + 1
        errors = sorted({str(w.get("last_error")) for w in busy})[:3]
        last = (f"generation {st['generation']}/{generation}, {len(have)}/{len(want)} watchers, busy: {states}"
                f" ({errors})")  # fmt: skip
        time.sleep(0.5)
    raise RuntimeError(f"not settled within {timeout:.0f}s: {last}")


def inspect(dc: lib.Dovecot, accounts: int) -> dict[tuple[int, str], list[tuple[str, str, set[str]]]]:
    """Every message of every pool mailbox: (Message-ID, From, flags), by imaplib."""
    out: dict[tuple[int, str], list[tuple[str, str, set[str]]]] = {}
    for u in range(1, accounts + 1):
        with dc.imap(u, timeout=30) as im:
            for m in POOL:
                hdr = im.headers(m, ("Message-ID", "From"))
                fl = im.flags(m) if hdr else {}
                out[(u, m)] = [(h.get("message-id", ""), h.get("from", ""), fl.get(uid, set()))
                               for uid, h in hdr.items()]  # fmt: skip
    return out


def cron_left(dc: lib.Dovecot, cfg: Config) -> int:
    n = 0
    for u, ms in cfg.mailboxes.items():
        with dc.imap(u, timeout=30) as im:
            for m in ms:
                n += len(im.search(m, "FROM", f'"{CRON_FROM}"'))
    return n


def measure(pid: int, err: Path | None = None) -> dict[str, int]:
    """RSS (and its anonymous and file-backed parts, the anonymous part by
    where it lies: main arena, stacks, other mappings), open descriptors; with
    ``err`` (the daemon's stderr) also glibc's heap figures (gdb calls
    malloc_stats() in the daemon): "in use" is what the program holds plus
    the freed blocks that wait in the threads' caches (tcache: glibc counts
    them as in use), "tcache" those blocks (read with libc6-dbg's symbols),
    "system" what the allocator took from the kernel."""
    st = lib.proc_status(pid)
    out = {"rss_kib": lib.rss_kib(pid), "fds": lib.fd_count(pid),
           "anon_kib": int(st["RssAnon"].split()[0]), "file_kib": int(st["RssFile"].split()[0]),
           **lib.anon_split_kib(pid)}  # fmt: skip
    if err is not None:
        before = err.stat().st_size
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "call (void)malloc_stats()",
                            "-ex", "set print repeats unlimited", "-ex", "set print elements unlimited",
                            "-ex", "thread apply all print tcache->counts"],
                           capture_output=True, text=True, check=False, timeout=120,
                           cwd=tempfile.gettempdir())  # fmt: skip
        # a tcache bin i holds blocks of 32 + 16 i bytes (x86-64)
        counts = re.findall(r"^\$\d+ = \{([\d, ]+)\}", r.stdout, re.M)
        if counts:
            out["heap_tcache"] = sum(int(n) * (32 + 16 * i) for c in counts for i, n in enumerate(c.split(",")))
        for _ in range(50):
            text = err.read_bytes()[before:].decode(errors="replace")
            m = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", text)
            if m:
                out.update({"heap_system": int(m.group(1)), "heap_in_use": int(m.group(2))})
                break
            time.sleep(0.1)
    return out


def judge_memory(checkpoints: list[dict[str, Any]], heap: bool, figures: dict[str, Any]) -> list[str]:
    """What the program holds at the end against the baseline (a leak moves
    it; where the allocator put things does not), and whether the RSS levels
    off over the checkpoints (a leak grows it in both halves of the run)."""
    fails = []
    base, final = checkpoints[0], checkpoints[-1]
    figures["rss_drift"] = round(final["rss_kib"] / base["rss_kib"] - 1, 4)
    half = (len(checkpoints) + 1) // 2
    first = max(c["rss_kib"] for c in checkpoints[:half])
    second = max(c["rss_kib"] for c in checkpoints[half:]) if len(checkpoints) > 1 else first
    figures["rss_halves_kib"] = [first, second]
    if second > first * (1 + MEM_TOLERANCE):
        fails.append(f"RSS does not level off: highest {first} KiB in the first half, "
                     f"{second} KiB in the second ({second / first - 1:+.1%})")  # fmt: skip
    if not heap:
        return fails
    if "heap_in_use" not in base or "heap_in_use" not in final:
        fails.append("no heap figures (gdb attaching to the daemon failed; --no-heap to judge RSS alone)")
        return fails
    figures["heap_in_use"] = [base["heap_in_use"], final["heap_in_use"]]
    judged, what = figures["heap_in_use"], "heap in use"
    if "heap_tcache" in base and "heap_tcache" in final:
        # what the program holds: in use but not waiting in a thread's cache
        judged = figures["heap_held"] = [c["heap_in_use"] - c["heap_tcache"] for c in (base, final)]
        what = "heap held"
    drift = judged[1] / judged[0] - 1
    figures["heap_drift"] = round(drift, 4)
    if abs(drift) > MEM_TOLERANCE:
        fails.append(f"{what} {judged[0]} -> {judged[1]} B ({drift:+.1%})")
    return fails


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--valgrind", action="store_true", default=os.environ.get("SOAK_VALGRIND", "") not in ("", "0"))
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--accounts", type=int, default=None)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--every", type=float, default=5.0,
                    help="minutes between checkpoints after the baseline (RSS, fds at the first configuration)")
    ap.add_argument("--heap", dest="heap", action="store_true", default=True,
                    help="glibc's heap figures (gdb) at each checkpoint (the default)")
    ap.add_argument("--no-heap", dest="heap", action="store_false",
                    help="skip the heap figures; memory is then judged by RSS alone")
    ap.add_argument("--out", default=str(lib.BENCH_BIN / "soak.json"))
    args = ap.parse_args()
    minutes = args.minutes or float(os.environ.get("SOAK_MINUTES") or (5 if args.valgrind else 30))
    accounts = args.accounts or (10 if args.valgrind else 100)
    scale = 10.0 if args.valgrind else 1.0
    total = minutes * 60
    warmup = min(150.0, total / 3)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="imapsweep-soak-", dir=lib.tmp_root()))
    log(f"{minutes:g} min, {accounts * PER_ACCOUNT} watchers over {accounts} accounts"
        f"{' under valgrind' if args.valgrind else ''}; work dir {work}")  # fmt: skip
    dc = lib.start_dovecot(accounts, hibernate=True)
    fails: list[str] = []
    figures: dict[str, Any] = {"minutes": minutes, "accounts": accounts, "valgrind": args.valgrind}
    p = None
    restarter: Restarter | None = None
    try:
        for u in range(1, accounts + 1):
            lib.make_folders(dc, u, POOL)
        cfg = Config(dc, accounts, work / "imapsweep.json", work / "ctl.sock", rng)
        cfg.write()
        figures["watchers"] = len(cfg.watched())
        argv = [str(lib.binary("imapsweepd")), "-c", str(cfg.path)]
        if args.valgrind:
            argv = [*VALGRIND_ARGS, f"--log-file={work}/valgrind.%p.log", *argv]
        err_path = work / "imapsweepd.stderr"
        with open(err_path, "wb") as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                 preexec_fn=lib.die_with_parent)  # fmt: skip
        generation = 1
        wait_settled(cfg.sock, cfg.watched(), generation, 120 * scale)
        log(f"all {len(cfg.watched())} watchers ready; RSS {lib.rss_kib(p.pid)} KiB, {lib.fd_count(p.pid)} fds")
        lock = threading.Lock()
        t0 = time.monotonic()
        appender = Appender(dc, cfg, rng, lock)
        restarter = Restarter(dc, t0)
        appender.start()
        restarter.start()
        reloads = mismatches = 0
        baseline: dict[str, int] | None = None
        rss_max = 0
        next_check = 0.0
        k = 0

        def reload(restore: bool = False) -> None:
            nonlocal generation, reloads, mismatches
            with lock:
                what = "back to the first configuration" if restore else cfg.mutate()
                if restore:
                    cfg.restore()
                cfg.write()
                want = cfg.watched()
            p.send_signal(signal.SIGHUP)
            generation += 1
            reloads += 1
            deadline = time.monotonic() + 30 * scale
            while True:
                st = status(cfg.sock)
                if st["generation"] == generation:
                    have = {(w["account"], w["mailbox"]) for w in st["watchers"]}
                    if have != want:
                        mismatches += 1
                        fails.append(f"reload {reloads}: {len(have)} watchers in status, {len(want)} in the file")
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"reload {reloads} not applied within {30 * scale:.0f}s")
                time.sleep(0.2)
            log(f"reload {reloads} (generation {generation}): {what}; {len(want)} watchers")

        checkpoints: list[dict[str, Any]] = []

        def checkpoint(name: str) -> dict[str, int]:
            """Back to the first configuration, settled, between two restarts; RSS and fds."""
            with restarter.busy:
                reload(restore=True)
                took = wait_settled(cfg.sock, cfg.watched(), generation, 120 * scale)
                time.sleep(3)  # the daemon trims its heap 2 s after things settle
                m = measure(p.pid, err_path if args.heap and not args.valgrind else None)
            checkpoints.append({"name": name, "t_s": round(time.monotonic() - t0), "restarts": restarter.count, **m})
            log(f"{name}: settled in {took:.1f}s; {json.dumps(m)}")
            return m

        while time.monotonic() - t0 < total:
            if p.poll() is not None:
                fails.append(f"daemon exited with {p.returncode} during the run")
                break
            if appender.error or restarter.error:
                break
            k += 1
            at = t0 + RELOAD_OFFSET + (k - 1) * RELOAD_EVERY
            if at - t0 >= total:
                break
            # sample RSS while waiting for the next reload
            while time.monotonic() < at and p.poll() is None:
                rss_max = max(rss_max, lib.rss_kib(p.pid))
                time.sleep(min(2.0, max(0.0, at - time.monotonic())))
            if p.poll() is not None:
                continue
            if baseline is None and at - t0 >= warmup:
                baseline = checkpoint("baseline")
                next_check = at + args.every * 60
            elif baseline is not None and at >= next_check and total - (at - t0) > RELOAD_EVERY:
                checkpoint(f"checkpoint {len(checkpoints)}")
                next_check = at + args.every * 60
            else:
                reload()
        appender.stop.set()
        restarter.stop.set()
        appender.join(120)
        restarter.stopped.wait(120)
        for name, th in (("appender", appender), ("restarter", restarter)):
            if th.error:
                fails.append(f"{name}: {th.error}")
        if p.poll() is not None:
            raise RuntimeError(f"daemon exited with {p.returncode}")
        final = checkpoint("final")
        rss_max = max(rss_max, final["rss_kib"])
        if baseline is None:
            baseline = final
            fails.append("the run was too short for a baseline after warm-up")
        # the last cron mail: polled mailboxes look every 10 s
        t_end = time.monotonic()
        left = cron_left(dc, cfg)
        while left and time.monotonic() - t_end < 60 * scale:
            time.sleep(2)
            left = cron_left(dc, cfg)
        msgs = inspect(dc, accounts)
        present: dict[str, tuple[int, str]] = {}
        seen = deleted_flag = cron_unwatched = 0
        cron_present: set[str] = set()
        for (u, m), items in msgs.items():
            for mid, frm, flags in items:
                present[mid] = (u, m)
                seen += "\\Seen" in flags
                if CRON_FROM in frm:
                    cron_present.add(mid)
                    if m not in cfg.mailboxes[u]:
                        cron_unwatched += 1
                elif "\\Deleted" in flags:
                    deleted_flag += 1
        lost = [mid for mid, where in appender.ordinary_ok.items() if present.get(mid) != where]
        figures.update({
            "restarts": restarter.count, "reloads": reloads, "reload_mismatches": mismatches,
            "cron_appended": len(appender.cron_ok), "ordinary_appended": len(appender.ordinary_ok),
            "append_retries": appender.retries, "appends_given_up": appender.given_up,
            "cron_deleted": len(appender.cron_ok - cron_present), "cron_left_watched": left,
            "cron_left_unwatched": cron_unwatched, "ordinary_lost": len(lost), "ordinary_deleted_flag": deleted_flag,
            "seen": seen, "rss_baseline_kib": baseline["rss_kib"], "rss_final_kib": final["rss_kib"],
            "rss_max_kib": rss_max, "fds_baseline": baseline["fds"], "fds_final": final["fds"],
            "checkpoints": checkpoints,
        })  # fmt: skip
        if left:
            fails.append(f"{left} cron messages left in watched mailboxes")
        if lost:
            fails.append(f"{len(lost)} ordinary messages lost: {lost[:5]}")
        if deleted_flag:
            fails.append(f"{deleted_flag} ordinary messages flagged \\Deleted")
        if seen:
            fails.append(f"{seen} messages \\Seen")
        if appender.given_up:
            fails.append(f"{appender.given_up} appends failed for 60 s")
        if not args.valgrind:
            fails += judge_memory(checkpoints, args.heap, figures)
        if final["fds"] != baseline["fds"]:
            fails.append(f"fds {baseline['fds']} -> {final['fds']}")
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(60 * scale)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            fails.append("the daemon did not exit within 60 s of SIGTERM")
        figures["exit"] = rc
        if rc != 0:
            fails.append(f"the daemon exited with {rc} on SIGTERM")
        if args.valgrind:
            reports = "\n".join(f.read_text(errors="replace") for f in work.glob("valgrind.*.log"))
            m = re.search(r"ERROR SUMMARY: (\d+) errors", reports)
            dl = re.search(r"definitely lost: ([\d,]+) bytes", reports)
            figures["valgrind_errors"] = int(m.group(1)) if m else None
            figures["definitely_lost_bytes"] = int(dl.group(1).replace(",", "")) if dl else 0
            if m is None or int(m.group(1)) or figures["definitely_lost_bytes"]:
                fails.append("valgrind: " + (m.group(0) if m else "no report"))
                log(reports[-6000:])
    except Exception as exc:  # noqa: BLE001 - a FAIL line, not a traceback
        fails.append(f"{type(exc).__name__}: {exc}")
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        dc.cleanup()
        if restarter is not None:
            restarter.release.set()
    figures["fails"] = fails
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    f = figures
    line = (f"soak {'FAIL' if fails else 'PASS'}: {f['minutes']:g} min, {f.get('watchers')} watchers/"
            f"{f['accounts']} accounts{' (valgrind)' if f['valgrind'] else ''}; "
            f"{f.get('restarts')} restarts, {f.get('reloads')} reloads; appended {f.get('cron_appended')} cron + "
            f"{f.get('ordinary_appended')} ordinary ({f.get('append_retries')} retries); "
            f"cron deleted {f.get('cron_deleted')}, left {f.get('cron_left_watched')} "
            f"(+{f.get('cron_left_unwatched')} in mailboxes no longer watched); "
            f"ordinary lost {f.get('ordinary_lost')}; seen {f.get('seen')}; "
            f"RSS {f.get('rss_baseline_kib')} -> {f.get('rss_final_kib')} KiB ("
            + (f"{f['rss_drift']:+.1%}, " if "rss_drift" in f else "") + f"max {f.get('rss_max_kib')}"
            + (f", halves {f['rss_halves_kib'][0]} / {f['rss_halves_kib'][1]}" if "rss_halves_kib" in f else "") + "); "
            + (f"heap held {f['heap_held'][0]} -> {f['heap_held'][1]} B; " if "heap_held" in f
               else f"heap in use {f['heap_in_use'][0]} -> {f['heap_in_use'][1]} B; " if "heap_in_use" in f else "")
            + f"fds {f.get('fds_baseline')} -> {f.get('fds_final')}; exit {f.get('exit')}"
            + (f"; valgrind errors {f.get('valgrind_errors')}, definitely lost {f.get('definitely_lost_bytes')} B"
               if f["valgrind"] else "")
            + ("" if not fails else " — " + "; ".join(fails)))  # fmt: skip
    if not fails and not keep_tmp():
        shutil.rmtree(work, ignore_errors=True)
    print(line, flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
