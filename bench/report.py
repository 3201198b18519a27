# SPDX-License-Identifier: MIT
"""docs/benchmarks.md and docs/reaction.png from bench/run.py's results."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any, Callable

import lib
import reaction

TOOL_NAMES = {
    "floor": "lower bound (bench/floor.c)",
    "imapsweepd": "imapsweepd --once",
    "batched": "imaplib, batched",
    "imapfilter": "imapfilter",
    "seed": "imaplib, per message (seed)",
}

#: Targets (the product's published ones; where two sources differed the
#: stricter figure is checked and both are named).
PURGE_RATIO = 1.10
REACTION_DIFF_MS = {1: 5.0, 1000: 50.0}
RSS_PLAIN_KIB = 16.0
RSS_TLS_KIB = 40.0


def _fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _mm(xs: list[float], fmt: Callable[[float], str] = _fmt_s) -> str:
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(lib.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def _kib(k: float) -> str:
    return f"{k / 1024:.1f} MiB" if k >= 1024 else f"{k:.0f} KiB"


def purge_ratio(res: dict[str, Any], size: str) -> float:
    rows = res["purge"][size]
    return lib.median([r["wall"] for r in rows["imapsweepd"]]) / lib.median([r["wall"] for r in rows["floor"]])


def reaction_diffs(res: dict[str, Any], n: str) -> tuple[float, float]:
    row = res["reaction"][n]
    ours, floor = row["imapsweepd"]["samples_ms"], row["floor"]["samples_ms"]
    return (lib.percentile(ours, 50) - lib.percentile(floor, 50),
            lib.percentile(ours, 99) - lib.percentile(floor, 99))  # fmt: skip


def per_watcher(res: dict[str, Any], n: int, tls: bool) -> float | None:
    rows = {(r["n"], r["tls"]): r for r in res["scale"]["daemon"]}
    if (n, tls) not in rows or (1, tls) not in rows:
        return None
    return (rows[(n, tls)]["rss_kib"] - rows[(1, tls)]["rss_kib"]) / (n - 1)


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    if "purge" in res:
        for size in res["purge"]:
            r = purge_ratio(res, size)
            out.append((f"Bulk purge of {int(size):,} messages within {PURGE_RATIO:.2f}× of the lower bound "
                        f"(published target: 1.3×)", f"{r:.3f}×", "met" if r <= PURGE_RATIO else "**missed**"))  # fmt: skip
    if "reaction" in res:
        for n, limit in REACTION_DIFF_MS.items():
            if str(n) in res["reaction"]:
                _, d99 = reaction_diffs(res, str(n))
                out.append((f"Reaction p99 within {limit:.0f} ms of the floor at {n:,} watched mailbox"
                            f"{'es' if n > 1 else ''}", f"{d99:+.2f} ms", "met" if d99 <= limit else "**missed**"))  # fmt: skip
    if "scale" in res:
        nmax = max(r["n"] for r in res["scale"]["daemon"])
        for tls, limit, extra in ((False, RSS_PLAIN_KIB, ""), (True, RSS_TLS_KIB, " (issue: 48 KiB)")):
            pw = per_watcher(res, nmax, tls)
            if pw is not None:
                out.append((f"{nmax:,} watchers: RSS per idle {'TLS' if tls else 'plaintext'} watcher ≤ "
                            f"{limit:.0f} KiB{extra}", f"{pw:.1f} KiB", "met" if pw <= limit else "**missed**"))  # fmt: skip
        for r in res["scale"]["daemon"]:
            if r["n"] == nmax:
                ok = r["cpu_s"] <= 0.05
                out.append((f"{nmax:,} {'TLS' if r['tls'] else 'plaintext'} watchers: no CPU while idle "
                            f"({r['window_s']} s window)",
                            f"{r['cpu_s']:.2f} CPU s, {r['wakeups']} wakeups", "met" if ok else "**missed**"))  # fmt: skip
    return out


def plot(res: dict[str, Any], png: Path, log: Callable[[str], None]) -> bool:
    rows = res.get("reaction", {})
    if not rows:
        return False
    data = png.with_suffix(".dat")
    lines = ["# n ours_p50 ours_p99 floor_p50 floor_p99"]
    for n in sorted(rows, key=int):
        o, f = rows[n]["imapsweepd"]["samples_ms"], rows[n]["floor"]["samples_ms"]
        lines.append(f"{n} {lib.percentile(o, 50):.3f} {lib.percentile(o, 99):.3f} "
                     f"{lib.percentile(f, 50):.3f} {lib.percentile(f, 99):.3f}")  # fmt: skip
    data.write_text("\n".join(lines) + "\n")
    script = f"""
set terminal pngcairo size 900,520 font "DejaVu Sans,11"
set output "{png}"
set title "New mail -> expunged, over loopback ({res['mode']} run, {res['started'][:10]})"
set xlabel "watched mailboxes (log scale)"
set ylabel "APPEND OK -> message gone (ms)"
set logscale x
set xrange [0.5:2000]
set grid
set key top left
set offsets 0, 0, 1, 1
plot "{data}" using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "imapsweepd p50", \\
     "{data}" using 1:3 with linespoints lw 2 pt 5 lc rgb "#1f77b4" dt 2 title "imapsweepd p99", \\
     "{data}" using 1:4 with linespoints lw 2 pt 6 lc rgb "#d62728" title "floor p50", \\
     "{data}" using 1:5 with linespoints lw 2 pt 4 lc rgb "#d62728" dt 2 title "floor p99"
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"gnuplot failed: {exc}")
        return False
    finally:
        data.unlink(missing_ok=True)
    return True


def regex_section(res: dict[str, Any]) -> str:
    """Section 4: what a client-side regular expression costs per message."""
    rows = [r for r in res["regex"] if "ns_pcre2" in r]
    bomb = next((r for r in res["regex"] if "ms_pcre2" in r), None)
    n = rows[0]["n"] if rows else 0
    L = ["## 4. Regular expressions", "",
         "`subject_regex`, `from_regex` and `header_regex` are matched by the daemon on each candidate's "
         "decoded header (`bench/regex.c`, linked with the daemon's own rule module): PCRE2 as the daemon "
         "runs it (UTF-8, Unicode properties, caseless, no JIT, with its match limits) against glibc's "
         f"POSIX ERE with `REG_ICASE` in a UTF-8 locale, the engine it used before, over the same {n:,} "
         "subjects (eight kinds, ASCII and German), best of five passes. `\\d` and `\\b` have no ERE "
         "spelling: the ERE column uses `[0-9]` and `(^|[^[:alnum:]_])`.", "",
         "| pattern (PCRE2) | matches | PCRE2 ns/subject | ERE ns/subject | ERE ÷ PCRE2 |",
         "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        same = "" if r["matches_pcre2"] == r["matches_ere"] else f" (ERE: {r['matches_ere']:,})"
        pat = r["pcre2"].replace("|", "\\|")  # a table cell
        L.append(f"| {r['name']}: `{pat}` | {r['matches_pcre2']:,}{same} | {r['ns_pcre2']:.0f} | "
                 f"{r['ns_ere']:.0f} | {r['ns_ere'] / r['ns_pcre2']:.1f}× |")  # fmt: skip
    if bomb is not None:
        L += ["", f"A pattern that backtracks without end, `^(a+)+$` on 40 `a`s and a `!`, ends at PCRE2's "
              f"match limit after {bomb['ms_pcre2']:.1f} ms with no answer (counted as no match); a "
              "backtracking engine without limits takes time exponential in the subject's length there."]  # fmt: skip
    return "\n".join(L)


HOSTILE_BEGIN = "<!-- section: hostile (bench/run.py --only hostile refreshes it) -->"
HOSTILE_END = "<!-- end of section: hostile -->"


def hostile_lines(res: dict[str, Any]) -> list[str]:
    """The hostile-server section, between markers so that a run of that
    section alone can replace it in the published file."""
    h = res.get("hostile")
    if not h:
        return []
    L: list[str] = [HOSTILE_BEGIN]
    a = L.append
    a("## 5. Hostile and large server answers")
    a("")
    a("`bench/hostile` (built by `make bench-hostile`) runs one sweep in-process over the unit-test "
      "library's scripted server (`tests/unit/lib`, no sockets, no Dovecot) and times the loop's work "
      "on one server answer; peak RSS is the process's high-water mark (VmHWM).")  # fmt: skip
    a("")
    a("| case | what the server says | runs | ms, median (min–max) | peak RSS | outcome |")
    a("|---|---|---|---|---|---|")
    what = {
        "descending": "one `* SEARCH` line of {n:,} UIDs in descending order, every other one "
                      "({top:,}, {next:,}, … 4, 2), in a mailbox that has them",
        "liar": "3 messages, but the top is UID {n:,} and every search `ESEARCH … ALL 1:{n:,}`",
    }
    for case in ("descending", "liar"):
        if case not in h:
            continue
        rows = h[case]["runs"]
        ms = [r["ms"] for r in rows]
        n = h[case]["n"]
        a(f"| {case} | {what[case].format(n=n, top=2 * n, next=2 * n - 2)} | {len(rows)} | "
          f"{_mm(ms, lambda x: f'{x:.1f}')} | {_kib(max(r['rss_kib'] for r in rows))} | "
          f"{rows[-1]['outcome']} |")  # fmt: skip
    a("")
    a("Before issue 12 the descending line took 2.1 s of the loop (each UID out of order inserted "
      "with a memmove; every connection waited), and the liar made one sweep allocate a record per "
      "UID it named: 9.3 GiB peak RSS and 68 s, or *out of memory* and an abort under a 4 GiB limit, "
      "which ended every account. Now UID sets are collected and sorted before they are built, and "
      "a set larger than the mailbox, or naming a UID beyond its UIDNEXT, ends that connection as a "
      "protocol violation before anything is expanded.")  # fmt: skip
    a("")
    a(HOSTILE_END)
    a("")
    return L


NOTIFY_BEGIN = "<!-- section: notify (bench/run.py --only notify refreshes it) -->"
NOTIFY_END = "<!-- end of section: notify -->"


def notify_lines(res: dict[str, Any]) -> list[str]:
    """NOTIFY at scale (issue 16), between markers: run on its own
    (`--only notify`, not part of `make bench`), it replaces this section
    of the published file, and a full run keeps it."""
    nt = res.get("notify")
    if not nt:
        return []
    L: list[str] = [NOTIFY_BEGIN]
    a = L.append
    modes = nt["modes"]
    any_mode = next(iter(modes.values()))
    a("## 7. NOTIFY at scale")
    a("")
    a(f"`python3 bench/run.py --quick --only notify` (bench/notify_scale.py), run {res['started'][:16]} UTC "
      f"on the machine above while other work shared its two cores (1-minute load average "
      f"{' at the start, '.join(f'{x:.1f}' for x in nt.get('loadavg', []))} at the end): take the times as "
      f"measured under load. {any_mode['accounts']} accounts × {any_mode['mailboxes']} mailboxes "
      f"(INBOX, f1…f{any_mode['mailboxes'] - 1}) = {any_mode['accounts'] * any_mode['mailboxes']:,} "
      "watched mailboxes on one Dovecot, one imapsweepd. *with NOTIFY*: `notify: on`: INBOX keeps its "
      "IDLE connection, the account's event connection covers the other mailboxes. *one IDLE per mailbox*: "
      "`notify: off`, a budget that fits all, the way every mailbox was watched before (Dovecot hibernates "
      "those IDLE sessions into imap-hibernate, as in section 3; the event connections never IDLE, so that "
      "run has no hibernation). *ready*: from exec until every mailbox is watched and swept once (and, "
      "with NOTIFY, armed). Sessions from `doveadm who`, processes and RSS from /proc 5 s after ready "
      "(Dovecot RSS: the master and all its children). Reaction: cron messages APPENDed to random "
      "mailboxes (every 10th append ordinary mail, which must survive), one every 115 ms, from APPEND's OK "
      "until the file is unlinked (inotify, as in section 2); afterwards doveadm checks every mailbox.")  # fmt: skip
    a("")
    a("| | ready | sessions | imap processes | daemon RSS | Dovecot RSS | deliveries | p50 | p99 | max | missed |")
    a("|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"notify": "with NOTIFY", "idle": "one IDLE per mailbox"}
    for mode in ("notify", "idle"):
        r = modes.get(mode)
        if r is None:
            continue
        procs = f"{r['imap_processes']:,}" + (f" (+{r['hibernate_processes']} imap-hibernate)"
                                               if r.get("hibernate_processes") else "")  # fmt: skip
        a(f"| {names[mode]} | {r['ready_s']:.1f} s | {r['sessions']:,} | {procs} | "
          f"{_kib(r['daemon_rss_kib'])} | {_kib(r['server_rss_kib'])} | {r['samples']:,} | "
          f"{r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['max_ms']:.0f} ms | 0 |")  # fmt: skip
    a("")
    idle = modes.get("idle")
    if idle and idle.get("hibernate"):
        a(f"With one IDLE session per mailbox Dovecot's cost depends on how many sessions imap-hibernate has "
          f"taken in when it is measured ({idle['imap_processes']:,} imap processes were still awake 5 s after "
          "ready in this run); its reaction is Dovecot's: a hibernated session is woken by inotify and "
          "answers at once, an awake one after Dovecot's 0.5 s IDLE delay.")  # fmt: skip
        a("")
    n_notify = modes.get("notify")
    if n_notify:
        per_acc = n_notify["sessions"] / n_notify["accounts"]
        rows = [("connections per account with NOTIFY ≤ 2", f"{per_acc:.2f}", per_acc <= 2),
                ("reaction p50 ≤ 1 s, no delivery missed", f"{n_notify['p50_ms']:.0f} ms, 0 missed",
                 n_notify["p50_ms"] <= 1000),
                ("reaction p99 ≤ 2 s", f"{n_notify['p99_ms']:.0f} ms", n_notify["p99_ms"] <= 2000),
                ("ready in ≤ 10 s", f"{n_notify['ready_s']:.1f} s", n_notify["ready_s"] <= 10),
                ("daemon RSS ≤ 64 MiB", _kib(n_notify["daemon_rss_kib"]), n_notify["daemon_rss_kib"] <= 65536)]
        a("Issue 16's targets for the 10,000 mailboxes with NOTIFY:")
        a("")
        a("| target | measured | |")
        a("|---|---|---|")
        for what, got, ok in rows:
            a(f"| {what} | {got} | {'met' if ok else 'missed'} |")
        a("")
    rot = nt.get("rotation")
    if rot:
        a(f"**Does re-arming help after Dovecot rotates dovecot.list.index.log?** A Dovecot of its own whose "
          f"index logs rotate early (`mail_index_log_rotate_min_size = 1k`, `_max_size = 4k`, "
          f"`_min_age = 0`), {rot['accounts']} accounts × {rot['mailboxes']} mailboxes with NOTIFY and "
          "`idle_refresh: 29m` (no re-arm by the timer during the run). Each phase delivers one cron "
          f"message to each of {rot['per_phase']} distinct random non-INBOX mailboxes, 0.1 s apart, and "
          "waits for all; between the first two phases every account's list index log is made to rotate "
          f"(doveadm mailbox create/delete, {min(rot['rounds_to_rotate'])}–{max(rot['rounds_to_rotate'])} "
          "rounds per account, until dovecot.list.index.log.2 is replaced); before the third the event "
          "connections re-arm (NOTIFY NONE + NOTIFY SET, here asked for with the control socket's "
          "`sweep`, which re-arms the same way the idle_refresh timer does).")  # fmt: skip
        a("")
        a("| phase | deliveries | p50 | p90 | max |")
        a("|---|---|---|---|---|")
        for k, name in (("before", "before the rotation"), ("after_rotation", "after it, same sessions"),
                        ("after_rearm", "after the re-arm")):  # fmt: skip
            r = rot[k]
            a(f"| {name} | {r['n']} | {r['p50_ms']:.0f} ms | {r['p90_ms']:.0f} ms | {r['max_ms']:.0f} ms |")
        a("")
        b, r_, m = rot["before"], rot["after_rotation"], rot["after_rearm"]
        a(f"After the rotation the same sessions reported {r_['p50_ms'] / b['p50_ms']:.1f}× slower at the median "
          f"(worst {r_['max_ms'] / 1000:.1f} s); after NOTIFY NONE + NOTIFY SET on the same connections they were "
          f"back to {m['p50_ms']:.0f} ms (worst {m['max_ms']:.0f} ms): re-arming restores prompt delivery. The "
          "30-second stalls the issue saw did not appear here; should they, the re-arm every idle_refresh "
          "bounds them, and its STATUS lines bring the visits that a late report would have.")  # fmt: skip
        a("")
    a(NOTIFY_END)
    a("")
    return L


def update_notify(res: dict[str, Any], out: Path, log: Callable[[str], None]) -> None:
    """Replace (or add, before the Dovecot section) the NOTIFY section."""
    update_block(out, NOTIFY_BEGIN, NOTIFY_END, "\n".join(notify_lines(res)), log)


def update_hostile(res: dict[str, Any], out: Path, log: Callable[[str], None]) -> None:
    """Replace (or add, before the Dovecot section) the hostile section of
    an existing report."""
    text = out.read_text()
    block = "\n".join(hostile_lines(res))
    if HOSTILE_BEGIN in text and HOSTILE_END in text:
        head, rest = text.split(HOSTILE_BEGIN, 1)
        _, tail = rest.split(HOSTILE_END, 1)
        text = head + block.rstrip("\n") + tail
    else:
        at = text.index("## Dovecot for the benchmarks")
        text = text[:at] + block + "\n" + text[at:]
    out.write_text(text)
    log(f"updated the hostile section of {out}")


#: Section 6 comes from bench/purge_cost.py, not from make bench: a full
#: report carries it over from the file it replaces.
PURGE_COST_BEGIN = "<!-- section: purge cost (python3 bench/purge_cost.py --docs refreshes it; make bench keeps it) -->"
PURGE_COST_END = "<!-- end of section: purge cost -->"


def kept_block(out: Path, begin: str, end: str) -> list[str]:
    """The lines of a marked block of an existing report (markers included), or none."""
    try:
        text = out.read_text()
    except OSError:
        return []
    if begin not in text or end not in text:
        return []
    body = text.split(begin, 1)[1].split(end, 1)[0]
    return [begin + body + end, ""]


def update_block(out: Path, begin: str, end: str, block: str, log: Callable[[str], None]) -> None:
    """Replace a marked block of an existing report, or add it before the
    Dovecot section."""
    text = out.read_text()
    block = block.rstrip("\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        at = text.index("## Dovecot for the benchmarks")
        text = text[:at] + block + "\n\n" + text[at:]
    out.write_text(text)
    log(f"updated {out}")


def write(res: dict[str, Any], out: Path, log: Callable[[str], None]) -> None:
    png = out.parent / "reaction.png"
    have_plot = plot(res, png, log)
    m = res["machine"]
    cfg = res["config"]
    started = dt.datetime.fromisoformat(res["started"])
    L: list[str] = []
    a = L.append
    a("# imapsweep benchmarks")
    a("")
    a(f"Produced by **`make bench{'-quick' if res['mode'] == 'quick' else ''}`** "
      f"(`python3 bench/run.py --{res['mode']}`), a **{res['mode']}** run started "
      f"{started.strftime('%Y-%m-%d %H:%M UTC')}, {res['elapsed_s'] / 60:.1f} minutes end to end "
      f"(sections: {', '.join(f'{k} {v:.0f} s' for k, v in res.get('section_s', {}).items())}). "
      "The whole file, tables and plot, is generated by bench/run.py; edit the generator, not this file.")  # fmt: skip
    a("")
    a("Every figure compares imapsweepd with something measured in the same run, against the same private "
      "Dovecot on loopback: the protocol lower bound (`bench/floor.c`, a minimal C client) or a peer. "
      "After every run an independent client checks the outcome: the cron mail is gone, every other "
      "message is there, nothing gained `\\Seen`.")  # fmt: skip
    a("")
    a("## Targets")
    a("")
    a("| target | measured | |")
    a("|---|---|---|")
    for t, v, ok in targets(res):
        a(f"| {t} | {v} | {ok} |")
    a("")
    a("## Machine")
    a("")
    a("| | |")
    a("|---|---|")
    for k, label in (("cpu", "CPU"), ("cores", "cores"), ("ram", "RAM"), ("kernel", "kernel"), ("os", "OS"),
                     ("virtualization", "virtualization"), ("dovecot", "Dovecot"), ("openssl", "OpenSSL"),
                     ("libuv", "libuv"), ("imapfilter", "imapfilter"), ("python", "Python (peers, harness)"),
                     ("compiler", "compiler"), ("imapsweepd", "imapsweepd"), ("git", "source (git describe)"),
                     ("tmpdir", "mail and Dovecot state on")):  # fmt: skip
        v = m.get(k, "?")
        if k == "imapfilter" and m.get("imapfilter_pkg"):
            v = f"{v} (Debian package {m['imapfilter_pkg']})"
        a(f"| {label} | {v} |")
    a("")
    a("The machine is shared: other jobs may run during a benchmark, which is why every comparison is made "
      "inside one run, the contenders take turns (the order rotates every repetition), and medians are "
      "reported with the minimum and maximum.")  # fmt: skip
    a("")

    if "purge" in res:
        a("## 1. Bulk purge")
        a("")
        a("A fresh mailbox per run, filled by writing maildir files and `doveadm force-resync` (not timed): "
          "half cron noise (`From: \"Cron Daemon\" <root@host>`), half ordinary mail, alternating, so the "
          "matching UIDs are every other one (1, 3, 5, …: the worst case for UID-set compression); every "
          "message has its own Message-ID. Each client deletes the cron mail and exits. *wall* is from "
          "fork to exit, *client CPU* is user+sys of the client process and *peak RSS* its maximum resident "
          "size (both from `wait4` in `bench/measure.c`), *server CPU* is what Dovecot's processes used "
          "meanwhile. imapsweepd runs with `audit: counts` (one log line per sweep; `audit: messages` would "
          "add a header fetch of every deleted message to the work).")  # fmt: skip
        a("")
        for size, rows in res["purge"].items():
            floor_wall = lib.median([r["wall"] for r in rows["floor"]])
            a(f"### {int(size):,} messages ({int(size) // 2:,} deleted)")
            a("")
            a("| client | runs | wall s, median (min–max) | × lower bound | client CPU s | peak RSS | server CPU s |")
            a("|---|---|---|---|---|---|---|")
            for tool in ("floor", "imapsweepd", "batched", "imapfilter", "seed"):
                rs = rows.get(tool, [])
                if not rs:
                    if tool == "seed":
                        a(f"| {TOOL_NAMES[tool]} | 0 | not run in a quick run: about 150 s per run at this "
                          "size (one STORE round trip per message); `make bench` runs it | | | | |")
                    continue
                walls = [r["wall"] for r in rs]
                a(f"| {TOOL_NAMES[tool]} | {len(rs)} | {_mm(walls)} | {lib.median(walls) / floor_wall:.2f}× | "
                  f"{_mm([r['cpu'] for r in rs])} | {_kib(lib.median([r['maxrss_kib'] for r in rs]))} | "
                  f"{_mm([r['server_cpu'] for r in rs])} |")  # fmt: skip
            a("")
        a("The lower bound sends LOGIN, SELECT, one `UID SEARCH FROM \"Cron Daemon\"`, one `UID STORE "
          "<all> +FLAGS.SILENT (\\Deleted)`, one `UID EXPUNGE <all>`, LOGOUT (Dovecot's "
          "`imap_max_line_length` is raised to 4 MiB so one command can carry the 290 KB set). imapsweepd "
          "splits sets at about 30,000 bytes (it must work with Dovecot's default 64 KiB limit) and "
          "sends the chunks of every action one after another, each once the one before is answered and "
          "the UIDVALIDITY is unchanged. Nearly all the time "
          "is Dovecot's: the SEARCH alone parses the headers of every message (about half of the wall "
          "time at 100,000), then the flag changes and the expunge of maildir files.")  # fmt: skip
        a("")

    if "reaction" in res:
        a("## 2. Reaction time")
        a("")
        a(f"From the tagged OK of an APPEND to the moment the message file is unlinked, "
          f"{cfg['reaction_samples']} samples per watcher and watcher count (nearest-rank percentiles, so p99 "
          f"of {cfg['reaction_samples']} samples is the {'largest' if cfg['reaction_samples'] < 100 else 'second largest'} "
          "sample or close to it). New mail lands on a randomly chosen watched mailbox; one append in ten is "
          "ordinary mail (not timed; it wakes the watcher too and must survive).")  # fmt: skip
        a("")
        a("| watched mailboxes | watcher | samples | p50 ms | p99 ms | max ms | p50 − floor | p99 − floor |")
        a("|---|---|---|---|---|---|---|---|")
        for n, row in sorted(res["reaction"].items(), key=lambda kv: int(kv[0])):
            fl = row["floor"]["samples_ms"]
            for name in ("floor", "imapsweepd", "imapfilter"):
                if name not in row:
                    continue
                xs = row[name]["samples_ms"]
                p50, p99 = lib.percentile(xs, 50), lib.percentile(xs, 99)
                d = "" if name == "floor" else (f"{p50 - lib.percentile(fl, 50):+.2f} ms",
                                                f"{p99 - lib.percentile(fl, 99):+.2f} ms")  # fmt: skip
                label = {"floor": "floor (bench/floor.c)", "imapsweepd": "imapsweepd",
                         "imapfilter": "imapfilter (enter_idle loop)"}[name]  # fmt: skip
                a(f"| {int(n):,} | {label} | {len(xs)} | {p50:.2f} | {p99:.2f} | {max(xs):.2f} | "
                  f"{d[0] if d else '—'} | {d[1] if d else '—'} |")  # fmt: skip
        a("")
        if have_plot:
            a("![reaction time against watched mailboxes](reaction.png)")
            a("")
        a("How it is measured (`bench/reaction.py`, `bench/inotify.py`):")
        a("")
        a("- All watchers run side by side against one Dovecot, each set on mailboxes of its own: for every "
          "watcher count an imapsweepd process and a floor process (and imapfilter at 1), "
          f"{sum(2 * int(n) for n in res['reaction']) + 1:,} IDLE sessions in all. APPENDs go to one set at a "
          f"time, the sets taking turns every {reaction.CADENCE_S * 1000:.0f} ms; Dovecot announces each change "
          "about 502 ms later (4 × 115 + 42), so every reaction falls about 42 ms after one APPEND and 73 ms "
          "before the next, never on top of another set's APPEND or reaction, and every set sees the same "
          "server in the same state.")  # fmt: skip
        a("- Dovecot announces a change to an IDLE session about 500 ms after it happens (a fixed delay "
          "in its mailbox-change check), so the floor is ≈ 500 ms plus a few round trips; the columns "
          "*− floor* are what a watcher adds to the minimal one.")  # fmt: skip
        a("- The floor watcher (`floor watch`) is the least a client can do: on an EXISTS that raises the "
          "count, DONE with `UID SEARCH UID n:* FROM \"Cron Daemon\"` right behind it, then `UID STORE`, "
          "`UID EXPUNGE` and IDLE, each after the previous reply: three round trips. imapsweepd makes the "
          "same three; its `UID FETCH * (UID)`, which bounds the search to the new UIDs exactly, goes in "
          "the first one with DONE and the search.")  # fmt: skip
        a("- \"Gone\" is seen by inotify (IN_DELETE) on the maildir's `cur/` and `new/`: Dovecot unlinks "
          "the file while it executes the expunge, before it answers. This costs Dovecot nothing and has "
          "microsecond resolution. An observer IMAP session in IDLE would itself hear of the EXPUNGE only "
          "after Dovecot's 500 ms delay, and polling with NOOP every millisecond would load Dovecot beside "
          "the work being timed on a 2-core machine. After the run `doveadm fetch` checks every mailbox.")  # fmt: skip
        a("- Sessions are not hibernated here (one `imap` process per session, Dovecot's default); "
          "imap-hibernate is used in the scale runs below.")
        a("")

    if "scale" in res:
        sc = res["scale"]
        a("## 3. Scale")
        a("")
        a(f"One imapsweepd process, N watched mailboxes (10 per account: INBOX and f1–f9 of users "
          f"1…N/10), each with its own IDLE connection, against one Dovecot with imap-hibernate. *all idle "
          f"after*: from exec until every watcher is idle (the daemon's sd_notify STATUS, good to ±0.5 s, then "
          f"confirmed with `status`). RSS, descriptors and the idle window start 5 s after "
          f"that, past the daemon's heap trim (it runs `malloc_trim` 2 s after state changes settle). *RSS "
          f"per watcher* = (RSS at N − RSS at 1) / (N − 1): the daemon refuses a configuration without "
          f"mailboxes, so one watcher stands for zero. *wakeups* = context switches of the process in the "
          f"window, *reads* its read system calls (from /proc/PID/io): a read means the server sent something. "
          f"Dovecot's own keepalive (\"* OK Still here\" every 2 minutes, sent to all sessions of one client IP "
          f"in the same instant) is set to 30 minutes here so the windows measure the daemon alone; when one "
          f"such round fell into a window during development it cost the daemon one read per session "
          f"(10,000 reads, 0.13 CPU s, with TLS)."
          + (f" The quick run shortens the idle window from 60 s to {sc['window_s']} s at the largest count and "
             f"{sc['window_small_s']} s elsewhere." if res["mode"] == "quick" else "")
          + " Every run has a Dovecot of its own: Dovecot 2.3 keeps hibernated sessions of a vanished client "
            "registered for minutes.")  # fmt: skip
        a("")
        a("| watchers | transport | all idle after | set-up CPU s | RSS | RSS per watcher | fds | idle window | CPU s in it | wakeups | reads |")
        a("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sc["daemon"]:
            pw = per_watcher(res, r["n"], r["tls"]) if r["n"] > 1 else None
            idle = (f"{r['window_s']} s | {r['cpu_s']:.2f} | {r['wakeups']} | {r.get('reads', '?')}" if r.get("window_s")
                    else "— | — | — | —")  # fmt: skip
            a(f"| {r['n']:,} | {'TLS' if r['tls'] else 'plain'} | {r['to_idle_s']:.1f} s | {r['setup_cpu_s']:.2f} | "
              f"{_kib(r['rss_kib'])} | {f'{pw:.1f} KiB' if pw is not None else '(baseline)'} | {r['fds']:,} | "
              f"{idle} |")  # fmt: skip
        a("")
        a("The same work by others:")
        a("")
        a("| watcher | sessions | transport | RSS total | per session | PSS total | idle window | CPU s in it | wakeups | reads |")
        a("|---|---|---|---|---|---|---|---|---|---|")
        for r in sc["imapfilter"]:
            a(f"| imapfilter, one process per mailbox | {r['n']} | {'TLS' if r['tls'] else 'plain'} | "
              f"{_kib(r['rss_kib'])} | {_kib(r['rss_kib'] / r['n'])} | {_kib(r['pss_kib'])} | "
              f"{r['window_s']} s | {r['cpu_s']:.2f} | {r['wakeups']} | {r.get('reads', '?')} |")  # fmt: skip
        for r in sc["floor"]:
            a(f"| floor (`floor hold`: epoll, a 4 KiB buffer per connection) | {r['n']:,} | plain | "
              f"{_kib(r['rss_kib'])} | {_kib(r['rss_kib'] / r['n'])} | — | — | — (no timers) | — | — |")  # fmt: skip
        a("")
        a("imapfilter's `enter_idle()` blocks its whole process, so watching N mailboxes takes N processes "
          "(its maintainer's advice, lefcha/imapfilter#282); 100 are measured and the total scales "
          "linearly. The seed-style and batched imaplib scripts cannot watch at all (imaplib has no IDLE) "
          "and are one-shot. PSS shares the libraries' pages fairly among the processes.")  # fmt: skip
        a("")

    if "regex" in res:
        a(regex_section(res))
        a("")

    L.extend(hostile_lines(res))
    L.extend(kept_block(out, PURGE_COST_BEGIN, PURGE_COST_END))
    # not part of a full run: kept as published unless this run made it
    L.extend(notify_lines(res) if "notify" in res else kept_block(out, NOTIFY_BEGIN, NOTIFY_END))
    a("## Dovecot for the benchmarks")
    a("")
    a("`tests/integration/harness/dovecot.py` (the integration tests' throwaway Dovecot: loopback, passwd-file "
      "users with a uid each, maildir under the temporary directory, `mail_fsync = never`) plus, from "
      "`bench/lib.py`:")  # fmt: skip
    a("")
    a("| setting | why |")
    a("|---|---|")
    for setting, why in res["dovecot_tuning"]:
        a(f"| `{setting}` | {why} |")
    a("")
    a("## Commands")
    a("")
    a("```sh")
    a("make bench-quick        # make all tools; python3 bench/run.py --quick  (< 10 minutes)")
    a("make bench              # make all tools; python3 bench/run.py --full")
    a("make bench-hostile      # the hostile-server cases alone, printed (bench/hostile)")
    a("python3 bench/run.py --quick --only hostile   # and refresh section 5 of this file")
    a("python3 bench/run.py --quick --only notify    # NOTIFY at scale: refreshes section 7 (not in make bench)")
    a("python3 bench/run.py --quick --only purge,reaction,scale,regex,hostile   # sections; --no-docs: raw results only")
    a("python3 bench/purge_cost.py --docs   # the purge cost alone, and refresh section 6 of this file")
    a("```")
    a("")
    a("Raw results: `build/bench/results-quick.json` / `results-full.json`. What each contender runs "
      "(HOST/PORT of the private Dovecot, MAILBOX a fresh mailbox):")  # fmt: skip
    a("")
    a("```sh")
    a("build/bench/measure RESULT build/bench/floor purge 127.0.0.1 PORT USER PASS MAILBOX 'Cron Daemon'")
    a("build/bench/measure RESULT build/imapsweepd -c once.json --once      # audit: counts, log_level: notice")
    a("build/bench/measure RESULT python3 bench/peers/batched.py 127.0.0.1 PORT USER PASS MAILBOX")
    a("build/bench/measure RESULT python3 bench/peers/seed_per_message.py 127.0.0.1 PORT USER PASS MAILBOX")
    a("build/bench/measure RESULT imapfilter -c bench/peers/imapfilter_purge.lua   # @PORT@ etc. filled in")
    a("build/bench/floor watch 127.0.0.1 PORT 'Cron Daemon' < SPEC   # SPEC: 'USER PASS MAILBOX' per line")
    a("build/imapsweepd -c reaction.json                     # NOTIFY_SOCKET set by the harness")
    a("imapfilter -c bench/peers/imapfilter_idle.lua [-t CA]  # one per watched mailbox")
    a("build/bench/floor hold 127.0.0.1 PORT < SPEC")
    a("```")
    a("")
    a(f"Settings of this {res['mode']} run: purge runs per client "
      f"{'; '.join(f'{int(k):,}: ' + ', '.join(f'{t} {n}' for t, n in v.items()) for k, v in cfg['purge'].items())}"
      f" (`*`: the others); reaction "
      f"{cfg['reaction_samples']} samples at {', '.join(f'{n:,}' for n in cfg['reaction_n'])} watched mailboxes; "
      f"scale at {', '.join(f'{n:,}' for n in cfg['scale_n'])} watchers, {cfg['idle_window_s']} s idle windows, "
      f"{cfg['peer_processes']} imapfilter processes. "
      "The full run (`make bench`) takes more repetitions and samples and 60 s idle windows.")  # fmt: skip
    a("")
    out.write_text("\n".join(L))
    log(f"wrote {out}{' and ' + str(png) if have_plot else ''}")
