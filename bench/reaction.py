# SPDX-License-Identifier: MIT
"""Reaction time: APPEND's tagged OK -> the message is gone.

Several watcher *sets* run at once against one Dovecot, each on mailboxes
of its own (imapsweepd, the lower-bound watcher, imapfilter, at each
watcher count). New mail is appended to a random mailbox of one set at a
time, the sets taking turns every CADENCE_S. Dovecot announces the change
about 502 ms later and the watcher reacts within a few ms; CADENCE_S is
chosen so that this falls between two appends (502 ms = 4 x 115 ms +
42 ms: 42 ms after one APPEND, 73 ms before the next), so a reaction
never coincides with another set's APPEND or reaction. The sets do not
disturb each other, and all of them see the same server, the same load
and the same moment. A set gets its next append only after its previous
one is gone.

"Gone" is observed with inotify on the maildir folders (see inotify.py).
Every CRON_EVERY-th append is ordinary mail instead (not timed): it wakes
the watcher too, and must survive. After the run doveadm (independent of
the code under test) checks that no cron mail is left, every ordinary
message is there and none is \\Seen.
"""

from __future__ import annotations

import imaplib
import random
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

import lib
from inotify import DeleteWatch

#: Seconds between two APPENDs (to different sets, in turn); see above.
CADENCE_S = 0.115
#: One append in ORDINARY_EVERY is ordinary mail (untimed, must survive).
ORDINARY_EVERY = 10
#: A reaction slower than this counts as lost (the run fails).
LOST_S = 10.0


@dataclass
class WatcherSet:
    name: str
    mailboxes: list[tuple[int, str]]          # (user, mailbox)
    start: Callable[[], subprocess.Popen]     # starts the watcher(s)
    wait_ready: Callable[[list[subprocess.Popen]], None]
    n: int = 0                                # the watcher count it stands for
    procs: list[subprocess.Popen] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)
    ordinary: dict[tuple[int, str], int] = field(default_factory=dict)
    cron: int = 0


class Appender:
    """APPEND over plain imaplib sessions, one per user (opened on first use)."""

    def __init__(self, dc: lib.Dovecot) -> None:
        self.dc = dc
        self.conns: dict[int, imaplib.IMAP4] = {}

    def append(self, user: int, mailbox: str, msg: bytes) -> int:
        """APPEND; returns time.monotonic_ns() right after the tagged OK."""
        c = self.conns.get(user)
        if c is None:
            u = self.dc.user(user)
            c = imaplib.IMAP4("127.0.0.1", self.dc.port("imap"))
            c.login(u.name, u.password)
            self.conns[user] = c
        typ, data = c.append(mailbox, None, None, msg)
        t = time.monotonic_ns()
        if typ != "OK":
            raise RuntimeError(f"APPEND failed: {typ} {data!r}")
        return t

    def close(self) -> None:
        for c in self.conns.values():
            try:
                c.logout()
            except (OSError, imaplib.IMAP4.error):
                pass


def run_sets(dc: lib.Dovecot, sets: list[WatcherSet], samples: int, seed: int = 1,
             log: Callable[[str], None] = print) -> None:  # fmt: skip
    """Start every set, append until each has ``samples`` timed reactions, verify."""
    rng = random.Random(seed)
    watch = DeleteWatch()
    appender = Appender(dc)
    pending: dict[tuple[int, str], tuple[WatcherSet, int]] = {}
    counter = [10_000_000]
    try:
        for s in sets:
            for user, mbox in s.mailboxes:
                watch.add(lib.folder_path(dc, user, mbox), (user, mbox))
        for s in sets:
            t0 = time.monotonic()
            s.procs = [s.start()]
            s.wait_ready(s.procs)
            log(f"    {s.name} on {len(s.mailboxes)}: ready in {time.monotonic() - t0:.1f}s")
        time.sleep(3.0)  # let start-up work (sweeps, heap trim) settle

        def drain(timeout: float) -> None:
            for t_ns, key, _name in watch.read(timeout):
                hit = pending.pop(key, None)
                if hit is None:
                    continue  # not a timed message (cannot happen: only cron is deleted)
                s, t_ok = hit
                s.samples_ms.append((t_ns - t_ok) / 1e6)

        slot = 0
        next_at = time.monotonic()
        while any(len(s.samples_ms) + sum(1 for v in pending.values() if v[0] is s) < samples for s in sets):
            s = sets[slot % len(sets)]
            slot += 1
            have = len(s.samples_ms) + sum(1 for v in pending.values() if v[0] is s)
            if have >= samples:
                continue
            while True:
                now = time.monotonic()
                if now >= next_at:
                    break
                drain(next_at - now)
            free = [mb for mb in s.mailboxes if mb not in pending]
            while not free:
                drain(0.05)
                free = [mb for mb in s.mailboxes if mb not in pending]
                _check_alive(sets)
                _check_lost(pending)
            key = rng.choice(free)
            counter[0] += 1
            if counter[0] % ORDINARY_EVERY == 0:
                appender.append(key[0], key[1], lib.ordinary_mail(counter[0]))
                s.ordinary[key] = s.ordinary.get(key, 0) + 1
            else:
                t_ok = appender.append(key[0], key[1], lib.cron_mail(counter[0]))
                pending[key] = (s, t_ok)
                s.cron += 1
            next_at += CADENCE_S
            if time.monotonic() > next_at + 1.0:
                next_at = time.monotonic()  # fell behind (a slow watcher): do not burst
        deadline = time.monotonic() + LOST_S
        while pending and time.monotonic() < deadline:
            drain(0.1)
        if pending:
            lost = {s.name for s, _ in pending.values()}
            raise RuntimeError(f"cron mail not removed within {LOST_S}s by: {', '.join(sorted(lost))}")
        _check_alive(sets)
    finally:
        appender.close()
        watch.close()
        for s in sets:
            for p in s.procs:
                lib.stop_process(p)
    verify(dc, sets)


def _check_lost(pending: dict) -> None:
    now = time.monotonic_ns()
    for (user, mbox), (s, t_ok) in pending.items():
        if now - t_ok > LOST_S * 1e9:
            raise RuntimeError(f"{s.name}: cron mail in user{user}/{mbox} not removed within {LOST_S:.0f}s")


def _check_alive(sets: list[WatcherSet]) -> None:
    for s in sets:
        for p in s.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {p.returncode}")


def verify(dc: lib.Dovecot, sets: list[WatcherSet]) -> None:
    """doveadm (one fetch over every user): no cron mail left, every ordinary message there, none \\Seen."""
    boxes: dict[tuple[str, str], list[tuple[str, str]]] = {}
    out = dc.doveadm("-f", "tab", "fetch", "-A", "mailbox flags hdr.from", "mailbox", "*", "all")
    for line in out.splitlines()[1:]:
        user, mbox, flags, frm = (line.split("\t") + ["", "", "", ""])[:4]
        boxes.setdefault((user, mbox), []).append((flags, frm))
    for s in sets:
        for user, mbox in s.mailboxes:
            name = dc.user(user).name
            msgs = boxes.get((name, mbox), [])
            cron = sum(1 for _, frm in msgs if lib.CRON_FROM in frm)
            seen = sum(1 for flags, _ in msgs if "\\Seen" in flags.split())
            want = s.ordinary.get((user, mbox), 0)
            if cron or len(msgs) - cron != want or seen:
                raise RuntimeError(
                    f"{s.name}: {name}/{mbox}: {cron} cron left, {len(msgs) - cron} ordinary"
                    f" (want {want}), {seen} seen"
                )
