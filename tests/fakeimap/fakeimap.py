#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fakeimap: a scripted, misbehaving IMAP4rev1 server for tests.

Single file, Python 3 standard library only (asyncio).  It serves a small
in-memory mailbox model shared by every connection, speaks enough IMAP4rev1
(+ IDLE, UIDPLUS, MOVE, ESEARCH, SPECIAL-USE, WITHIN, LITERAL+, SASL-IR,
ENABLE, ID, UNSELECT, STARTTLS) for a mail client to work against it, and
misbehaves on cue: faults are armed by a JSON scenario, by timers, or at
run time over a control socket.

Usage::

    fakeimap.py --port 0 --scenario S.json --transcript T.log --port-file P
                [--control-port 0 --control-port-file CP]
                [--tls-cert C --tls-key K [--implicit-tls]]

The port (and the control port) are written to their files, atomically,
once the server listens.  SIGTERM/SIGINT stop it cleanly.  ``FakeImapServer``
can also be imported and run in-process (see ``run_in_thread``).

Scenario (all keys optional)::

    {
      "users": {"user": "pass"},                 # LOGIN / AUTHENTICATE PLAIN
      "tokens": {"user": "token"},               # XOAUTH2 / OAUTHBEARER
      "capabilities": {"pre": [...], "post": [...]},   # pre-login / post-login
      "greeting": "fakeimap ready",
      "mailboxes": {
        "INBOX": {"uidvalidity": 1700000001, "uidnext": 1,
                  "messages": [MESSAGE, ...]},
        "Trash": {"special_use": "\\\\Trash"}
      },
      "events": [EVENT, ...]
    }

MESSAGE is ``{"raw": "Subject: x\\n\\nbody"}`` (LF becomes CRLF; or
``"raw_b64"``), or fields the server renders: ``from to subject body date
message_id headers{}``; plus optional ``uid``, ``flags`` [..],
``internaldate`` (ISO 8601 or epoch seconds) or ``age`` ("14d", seconds).

EVENT::

    {"action": A, ...when..., ...parameters...}

when (a command-triggered event fires on the ``nth`` match of ``command``
and then ``times`` times in all, -1 = always):
    "command": REGEX    re.search, case-insensitive, on the command line
                        without its tag, e.g. "^UID STORE", "^IDLE$"; the
                        "DONE" that ends IDLE is matched as a line too
    "on": "connect"     at accept, before the greeting
    "at_ms": N          N ms after the server started (or after the event
                        was armed over the control channel)
    "nth": 1, "times": 1
    "connection": K     only connection number K (1-based, accept order)
    "min_connection": K only connections numbered >= K ("after K-1 connections")
    "delay_ms": N       command-triggered: the command is answered normally
                        and the action runs N ms later (e.g. drop mid-IDLE)

actions on the connection (for a timed event: on every open connection,
or only ``connection``):
    drop            close without reply; "after_bytes": N first sends the
                    first N octets of the normal response; "reset": true RST
    stall           never answer again (input is read and discarded)
    bye             "* BYE <text>" and close  ("text")
    malformed       send "line" (raw, CRLF added) then "then": respond
                    (default) | close | nothing
    literal_bomb    "* 1 FETCH (UID 1 BODY[] {size}" + a little data, then stall
                    ("size", default 99999999999)
    long_line       "* OK xxxx..." of "size" octets (default 2 MiB), then respond
    delay           answer after "ms"
    reply           tagged response replaced by "response" (e.g.
                    "NO [UNAVAILABLE] try later"); the command is not executed
actions on the model (pushed to IDLE sessions at once, to others before
their next tagged response):
    append          "mailbox" (INBOX), "message" MESSAGE
    expunge         "mailbox", "uids" [..] (default: all)
    set_flags       "mailbox", "uids", "flags", "mode" "+"|"-"|"="
    uidvalidity_change  "mailbox", "uidvalidity" (default old+1), "order"
                    "reverse" (default: a stale UID then names another
                    message) | "same", "notify" "none" (next SELECT shows it)
                    | "untagged" (* OK [UIDVALIDITY n] to selected sessions)
                    | "bye"

Control channel (``--control-port``): one JSON object per line in, one out,
always with "ok" (and "error" when false).  Commands:

    {"cmd": "ping"}
    {"cmd": "state"}        -> mailboxes {name: {uidvalidity, uidnext, special_use,
                               messages: [{uid, flags, seen, size, internaldate,
                               subject, from, message_id}]}}, seen_by_fetch
                               [{conn, mailbox, uid}], connections, events
    {"cmd": "connections"}  -> open, total (accepted), logins, idling, sessions[]
    {"cmd": "append", "mailbox": "INBOX", "message": MESSAGE}  -> uid
    {"cmd": "expunge" | "set_flags" | "uidvalidity_change", ...parameters}
    {"cmd": "create", "mailbox": "X", "special_use": "\\Junk"}
    {"cmd": "fault", "event": EVENT}   (or the EVENT keys inline)  -> id
    {"cmd": "clear_faults"}
    {"cmd": "do", "event": EVENT}      run a connection action now on every
                                       open connection (or "connection": K)
    {"cmd": "kick", "bye": "text"}     close every client connection
    {"cmd": "wait_idle", "count": N, "timeout": S}  reply once N sessions
                                       are in IDLE (an event, not polling)

Transcript: one line per protocol line, flushed as written::

    2026-11-21T10:00:00.123456 c1 C: a1 LOGIN user pass
    2026-11-21T10:00:00.123789 c1 S: a1 OK [CAPABILITY ...] Logged in
    ... c1 C+ <120 octets>        literal payload (client)  S+ server
    ... c1 -- connect 127.0.0.1:40000 / disconnect eof / fault drop / seen uid 5

Direction is ``C:`` client line, ``S:`` server line, ``C+``/``S+`` literal
payload, ``--`` an event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.header
import email.parser
import email.policy
import email.utils
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

CRLF = b"\r\n"
MAX_LINE = 1024 * 1024  # client line limit
MAX_LITERAL = 64 * 1024 * 1024  # client literal limit (APPEND)

DEFAULT_USERS = {"user": "pass"}
DEFAULT_PRE_CAPS = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE", "AUTH=PLAIN"]
DEFAULT_POST_CAPS = [
    "IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "CHILDREN",
    "UIDPLUS", "MOVE", "ESEARCH", "SPECIAL-USE", "WITHIN",
]  # fmt: skip
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

MODEL_ACTIONS = frozenset({"append", "expunge", "set_flags", "uidvalidity_change"})
SESSION_ACTIONS = frozenset({"drop", "stall", "bye", "malformed", "literal_bomb", "long_line", "delay", "reply"})


# ===========================================================================
# Small helpers
# ===========================================================================
def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse_duration(value: Any) -> float:
    """Seconds from a number or "30s", "5m", "2h", "14d"."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        raise ValueError(f"bad duration {value!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_when(value: Any) -> datetime:
    """A datetime from an ISO 8601 string or epoch seconds (UTC if no zone)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def imap_datetime(dt: datetime) -> str:
    """INTERNALDATE format: 02-Jan-2024 03:04:05 +0000 (no locale dependence)."""
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    mins = abs(int(off.total_seconds())) // 60
    return f"{dt.day:02d}-{MONTHS[dt.month - 1]}-{dt.year:04d} {dt:%H:%M:%S} {sign}{mins // 60:02d}{mins % 60:02d}"


def parse_imap_datetime(text: str) -> datetime:
    m = re.fullmatch(r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", text)
    if not m:
        raise ValueError(f"bad date-time {text!r}")
    tz = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    tz = -tz if m.group(7) == "-" else tz
    month = [x.lower() for x in MONTHS].index(m.group(2).lower()) + 1
    return datetime(int(m.group(3)), month, int(m.group(1)), int(m.group(4)), int(m.group(5)), int(m.group(6)),
                    tzinfo=timezone(tz))  # fmt: skip


def parse_search_date(text: str) -> datetime:
    m = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text.strip())
    if not m:
        raise ValueError(f"bad date {text!r}")
    month = [x.lower() for x in MONTHS].index(m.group(2).lower()) + 1
    return datetime(int(m.group(3)), month, int(m.group(1)), tzinfo=timezone.utc)


def quote(value: str | bytes) -> str:
    """An IMAP quoted string (values here never contain CR/LF)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_of(token: Any) -> str:
    """A token (atom str or string bytes) as text."""
    if isinstance(token, bytes):
        return token.decode("utf-8", "surrogateescape")
    if isinstance(token, str):
        return token
    raise ProtocolError("expected a string")


def compress_uids(uids: Iterable[int]) -> str:
    """1,2,3,5 -> "1:3,5"."""
    out: list[str] = []
    run: list[int] = []
    for u in sorted(set(uids)):
        if run and u == run[-1] + 1:
            run.append(u)
            continue
        if run:
            out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [u]
    if run:
        out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


class ProtocolError(Exception):
    """The client's command is syntactically wrong (answered with BAD)."""


# ===========================================================================
# Command syntax
# ===========================================================================
class Atom(str):
    """An IMAP atom (unquoted).  Strings (quoted or literal) are ``bytes``."""


_LITERAL_RE = re.compile(rb"\{(\d+)(\+?)\}\r\n")
_ATOM_STOP = b' ()"{\r\n'


def tokenize(buf: bytes) -> list[Any]:
    """Parse command arguments in wire form (literals inline as ``{n}\\r\\n<data>``).

    Returns a list of ``Atom`` (str), ``bytes`` (quoted string / literal) and
    nested lists.  Square brackets in an atom (``BODY.PEEK[HEADER.FIELDS (A B)]``)
    are kept in the atom with their content.
    """
    root: list[Any] = []
    stack = [root]
    i, n = 0, len(buf)
    while i < n:
        c = buf[i]
        if c == 0x20:
            i += 1
        elif c == 0x28:  # (
            new: list[Any] = []
            stack[-1].append(new)
            stack.append(new)
            i += 1
        elif c == 0x29:  # )
            if len(stack) == 1:
                raise ProtocolError("unbalanced )")
            stack.pop()
            i += 1
        elif c == 0x22:  # "
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ProtocolError("unterminated quoted string")
                ch = buf[i]
                if ch == 0x5C and i + 1 < n:
                    out.append(buf[i + 1])
                    i += 2
                elif ch == 0x22:
                    i += 1
                    break
                else:
                    out.append(ch)
                    i += 1
            stack[-1].append(bytes(out))
        elif c == 0x7B:  # {
            m = _LITERAL_RE.match(buf, i)
            if not m:
                raise ProtocolError("bad literal")
            size = int(m.group(1))
            start = m.end()
            if start + size > n:
                raise ProtocolError("short literal")
            stack[-1].append(buf[start : start + size])
            i = start + size
        else:
            j = i
            depth = 0
            while j < n:
                ch = buf[j]
                if ch == 0x5B:  # [
                    depth += 1
                elif ch == 0x5D and depth:  # ]
                    depth -= 1
                elif depth == 0 and ch in _ATOM_STOP:
                    break
                j += 1
            if depth:
                raise ProtocolError("unbalanced [")
            stack[-1].append(Atom(buf[i:j].decode("utf-8", "surrogateescape")))
            i = j
    if len(stack) != 1:
        raise ProtocolError("unbalanced (")
    return root


class SeqSet:
    """A sequence set like ``1:5,7,9:*``; ``*`` is resolved at test time."""

    def __init__(self, text: str) -> None:
        if not re.fullmatch(r"(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*", text):
            raise ProtocolError(f"bad sequence set {text!r}")
        self.text = text
        self.ranges = []
        for part in text.split(","):
            lo, _, hi = part.partition(":")
            self.ranges.append((lo, hi or lo))

    def resolve(self, star: int) -> list[tuple[int, int]]:
        out = []
        for lo, hi in self.ranges:
            a = star if lo == "*" else int(lo)
            b = star if hi == "*" else int(hi)
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, value: int, star: int) -> bool:
        return any(a <= value <= b for a, b in self.resolve(star))


# ===========================================================================
# The mailbox model
# ===========================================================================
@dataclass
class Message:
    uid: int
    raw: bytes
    flags: set[str]
    internaldate: datetime
    _parsed: Any = field(default=None, repr=False)
    _fields: list[tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    def split(self) -> tuple[bytes, bytes]:
        """(header including the blank line, text)."""
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = self.raw.find(sep)
            if idx >= 0:
                return self.raw[: idx + len(sep)], self.raw[idx + len(sep) :]
        return self.raw, b""

    @property
    def parsed(self) -> Any:
        if self._parsed is None:
            self._parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(self.raw)
        return self._parsed

    @property
    def fields(self) -> list[tuple[str, str]]:
        """Header fields as (lower-case name, unfolded raw value), UTF-8 decoded."""
        if self._fields is None:
            header, _ = self.split()
            text = header.decode("utf-8", "replace")
            out: list[tuple[str, str]] = []
            for line in re.split(r"\r?\n", text):
                if line[:1] in (" ", "\t") and out:
                    out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
                elif ":" in line:
                    name, _, value = line.partition(":")
                    out.append((name.strip().lower(), value.strip()))
            self._fields = out
        return self._fields

    def raw_header(self, name: str) -> str | None:
        return next((v for n, v in self.fields if n == name.lower()), None)

    def header_values(self, name: str) -> list[str]:
        """Values of header ``name``: each raw and RFC 2047-decoded."""
        out = []
        for n, v in self.fields:
            if n != name.lower():
                continue
            out.append(v)
            try:
                out.append(str(email.header.make_header(email.header.decode_header(v))))
            except (ValueError, LookupError, UnicodeDecodeError):
                pass
        return out

    def header_fields(self, names: list[str], negate: bool = False) -> bytes:
        """The header lines (with continuations) whose names are (not) in ``names``, plus CRLF."""
        header, _ = self.split()
        wanted = {n.lower() for n in names}
        out = bytearray()
        keep = False
        for line in header.splitlines(keepends=True):
            if line in (b"\r\n", b"\n"):
                break
            if line[:1] in (b" ", b"\t"):
                if keep:
                    out += line
                continue
            name = line.split(b":", 1)[0].strip().decode("latin-1").lower()
            keep = (name in wanted) != negate
            if keep:
                out += line
        return bytes(out) + CRLF

    def body_text(self) -> str:
        """The text part, transfer-decoded where possible, for SEARCH BODY."""
        _, text = self.split()
        out = [text.decode("utf-8", "replace")]
        try:
            for part in self.parsed.walk():
                if part.get_content_maintype() == "text":
                    payload = part.get_payload(decode=True)
                    if payload:
                        out.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        except (LookupError, ValueError):
            pass
        return "\n".join(out)


@dataclass
class Mailbox:
    name: str
    uidvalidity: int
    uidnext: int = 1
    special_use: str | None = None
    messages: list[Message] = field(default_factory=list)

    def by_uid(self) -> dict[int, Message]:
        return {m.uid: m for m in self.messages}

    @property
    def max_uid(self) -> int:
        return self.messages[-1].uid if self.messages else 0


def render_message(spec: dict[str, Any]) -> bytes:
    """Raw RFC 822 bytes from a scenario MESSAGE object."""
    if "raw_b64" in spec:
        return base64.b64decode(spec["raw_b64"])
    if "raw" in spec:
        return re.sub(rb"\r?\n", CRLF, spec["raw"].encode("utf-8", "surrogateescape"))
    headers = [
        ("From", spec.get("from", "Sender <sender@example.org>")),
        ("To", spec.get("to", "user@example.org")),
        ("Subject", spec.get("subject", "test")),
        ("Date", spec.get("date") or email.utils.format_datetime(now_utc())),
        ("Message-ID", spec.get("message_id") or f"<{time.time_ns()}.{id(spec)}@fakeimap>"),
    ]
    for name, value in (spec.get("headers") or {}).items():
        headers.append((name, value))
    head = "".join(f"{n}: {v}\r\n" for n, v in headers)
    body = re.sub(r"\r?\n", "\r\n", spec.get("body", "body\n"))
    return (head + "\r\n" + body).encode("utf-8")


def message_date(spec: dict[str, Any]) -> datetime:
    if "internaldate" in spec:
        return parse_when(spec["internaldate"])
    if "age" in spec:
        return now_utc() - timedelta(seconds=parse_duration(spec["age"]))
    return now_utc().replace(microsecond=0)


class Model:
    """Users and mailboxes, shared by all connections."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        self.users: dict[str, str] = dict(scenario.get("users") or DEFAULT_USERS)
        self.tokens: dict[str, str] = dict(scenario.get("tokens") or {})
        self.mailboxes: dict[str, Mailbox] = {}
        self.seen_by_fetch: list[dict[str, Any]] = []
        self._next_validity = 1700000001
        specs = scenario.get("mailboxes") or {"INBOX": {}}
        if not any(n.upper() == "INBOX" for n in specs):
            specs = {"INBOX": {}, **specs}
        for name, spec in specs.items():
            mbox = self.create(name, spec.get("special_use"), spec.get("uidvalidity"))
            for msg in spec.get("messages") or []:
                self.add(mbox, render_message(msg), set(msg.get("flags") or []), message_date(msg), msg.get("uid"))
            if spec.get("uidnext"):
                mbox.uidnext = max(mbox.uidnext, int(spec["uidnext"]))

    def get(self, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        return self.mailboxes.get(name)

    def create(self, name: str, special_use: str | None = None, uidvalidity: int | None = None) -> Mailbox:
        if name.upper() == "INBOX":
            name = "INBOX"
        if uidvalidity is None:
            uidvalidity = self._next_validity
            self._next_validity += 1
        mbox = Mailbox(name, int(uidvalidity), 1, special_use)
        self.mailboxes[name] = mbox
        return mbox

    def add(self, mbox: Mailbox, raw: bytes, flags: set[str], date: datetime, uid: int | None = None) -> Message:
        uid = int(uid) if uid else mbox.uidnext
        if uid < mbox.uidnext:
            raise ValueError(f"uid {uid} below UIDNEXT {mbox.uidnext} in {mbox.name}")
        msg = Message(uid, raw, {f for f in flags if f != "\\Recent"}, date)
        mbox.messages.append(msg)
        mbox.uidnext = uid + 1
        return msg

    def state(self) -> dict[str, Any]:
        out = {}
        for name, mbox in self.mailboxes.items():
            msgs = []
            for m in mbox.messages:
                msgs.append({
                    "uid": m.uid,
                    "flags": sorted(m.flags),
                    "seen": "\\Seen" in m.flags,
                    "size": m.size,
                    "internaldate": m.internaldate.isoformat(),
                    "subject": (m.header_values("Subject") or [""])[-1],
                    "from": (m.header_values("From") or [""])[-1],
                    "message_id": (m.header_values("Message-ID") or [""])[0],
                })  # fmt: skip
            out[name] = {
                "uidvalidity": mbox.uidvalidity,
                "uidnext": mbox.uidnext,
                "special_use": mbox.special_use,
                "messages": msgs,
            }
        return out


# ===========================================================================
# Events / faults
# ===========================================================================
class Event:
    """An armed scenario event (see the module docstring)."""

    def __init__(self, ident: int, spec: dict[str, Any]) -> None:
        self.id = ident
        self.spec = spec
        self.action = spec.get("action", "")
        if self.action not in MODEL_ACTIONS | SESSION_ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")
        if "command" in spec:
            self.on = "command"
        elif spec.get("on") == "connect":
            self.on = "connect"
        elif "at_ms" in spec:
            self.on = "time"
        else:
            raise ValueError(f"event {spec!r} needs command, on=connect or at_ms")
        self.regex = re.compile(spec["command"], re.IGNORECASE) if self.on == "command" else None
        self.nth = int(spec.get("nth", 1))
        self.times = int(spec.get("times", 1))
        self.connection = spec.get("connection")
        self.min_connection = spec.get("min_connection")
        self.delay_ms = int(spec.get("delay_ms", 0))
        self.matches = 0
        self.fired = 0

    def applies_to(self, conn_id: int) -> bool:
        if self.connection is not None and conn_id != int(self.connection):
            return False
        return not (self.min_connection is not None and conn_id < int(self.min_connection))

    def trigger(self, conn_id: int, line: str | None) -> bool:
        """Count a match for this connection/command; True if the event fires now."""
        if not self.applies_to(conn_id):
            return False
        if self.regex is not None and (line is None or not self.regex.search(line)):
            return False
        self.matches += 1
        if self.matches < self.nth or (0 <= self.times <= self.fired):
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "on": self.on, "matches": self.matches, "fired": self.fired,
                "spec": self.spec}  # fmt: skip


# ===========================================================================
# Transcript
# ===========================================================================
class Transcript:
    """Every protocol line, both directions, flushed per line."""

    MAX_TEXT = 400

    def __init__(self, path: str | None) -> None:
        self.fh = open(path, "a", encoding="utf-8", errors="backslashreplace") if path else None

    def write(self, conn: int | str, direction: str, data: bytes | str) -> None:
        if self.fh is None:
            return
        text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
        if len(text) > self.MAX_TEXT:
            text = f"{text[: self.MAX_TEXT]}... <{len(text)} chars>"
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        stamp = datetime.now().isoformat(timespec="microseconds")
        self.fh.write(f"{stamp} c{conn} {direction} {text}\n")
        self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None


# ===========================================================================
# Output buffering
# ===========================================================================
@dataclass
class Chunk:
    data: bytes
    direction: str  # "S:" line, "S+" literal payload
    text: str


class Literal(bytes):
    """Marks bytes to be sent as an IMAP literal inside a response."""


def build_response(parts: Iterable[str | bytes]) -> list[Chunk]:
    """Serialise a response whose ``parts`` are text and ``Literal`` payloads."""
    chunks: list[Chunk] = []
    line = ""
    for part in parts:
        if isinstance(part, Literal):
            line += "{%d}" % len(part)
            chunks.append(Chunk(line.encode("utf-8") + CRLF, "S:", line))
            chunks.append(Chunk(bytes(part), "S+", f"<{len(part)} octets>"))
            line = ""
        else:
            line += part if isinstance(part, str) else part.decode("utf-8", "surrogateescape")
    chunks.append(Chunk(line.encode("utf-8", "surrogateescape") + CRLF, "S:", line))
    return chunks


def nstring(value: str | bytes | None) -> str | Literal:
    if value is None:
        return "NIL"
    b = value.encode("utf-8") if isinstance(value, str) else value
    if b"\r" in b or b"\n" in b or b'"' in b or b"\\" in b or any(c > 0x7E for c in b):
        return Literal(b)
    return quote(b)


# ===========================================================================
# A client connection
# ===========================================================================
class CloseConnection(Exception):
    """Raised by handlers to end the session after flushing."""


class Session:
    def __init__(self, server: "FakeImapServer", ident: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tls: bool) -> None:  # fmt: skip
        self.server = server
        self.model = server.model
        self.id = ident
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.state = "not_authenticated"  # authenticated, selected, logout
        self.user: str | None = None
        self.selected: Mailbox | None = None
        self.readonly = False
        self.view: list[int] = []
        self.known_flags: dict[int, frozenset[str]] = {}
        self.pending: list[str] = []
        self.out: list[Chunk] = []
        self.idling = False
        self.stalled = False
        self.closed = False
        self.enabled: set[str] = set()
        self.holding = False  # keep output queued (drop after N octets)

    # -- capabilities -----------------------------------------------------
    def capabilities(self) -> list[str]:
        if self.state == "not_authenticated":
            caps = list(self.server.pre_caps)
            if self.tls:
                caps = [c for c in caps if c.upper() not in ("STARTTLS", "LOGINDISABLED")]
            return caps
        return list(self.server.post_caps)

    def has(self, cap: str) -> bool:
        return cap.upper() in (c.upper() for c in self.capabilities())

    # -- output -----------------------------------------------------------
    def log(self, direction: str, text: bytes | str) -> None:
        self.server.transcript.write(self.id, direction, text)

    def queue(self, *parts: str | bytes) -> None:
        self.out.extend(build_response(parts))

    def flush(self, limit: int | None = None) -> None:
        """Write queued output (only the first ``limit`` octets if given)."""
        if self.holding and limit is None:
            return
        chunks, self.out = self.out, []
        if self.closed:
            return
        sent = 0
        for ch in chunks:
            if limit is not None and sent + len(ch.data) > limit:
                part = ch.data[: limit - sent]
                if part:
                    self._write(part)
                self.log(ch.direction, f"{ch.text} [cut after {len(part)} octets]")
                return
            self._write(ch.data)
            sent += len(ch.data)
            self.log(ch.direction, ch.text)

    def _write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
        except (ConnectionError, RuntimeError):
            self.closed = True

    def send_now(self, *parts: str | bytes) -> None:
        self.queue(*parts)
        self.flush()

    def close(self, reason: str, reset: bool = False) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.log("--", f"disconnect ({reason})")
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
            self.writer.transport.abort()
        else:
            self.writer.close()
        self.server.session_closed(self)

    # -- mailbox view -----------------------------------------------------
    def select_view(self, mbox: Mailbox) -> None:
        self.selected = mbox
        self.view = [m.uid for m in mbox.messages]
        self.known_flags = {m.uid: frozenset(m.flags) for m in mbox.messages}

    def queue_updates(self, allow_expunge: bool = True) -> None:
        """Queue untagged EXPUNGE / EXISTS / FETCH FLAGS for changes by others."""
        for line in self.pending:
            self.queue(line)
        self.pending.clear()
        mbox = self.selected
        if mbox is None or self.state != "selected":
            return
        current = mbox.by_uid()
        if allow_expunge:
            for seq in range(len(self.view), 0, -1):
                uid = self.view[seq - 1]
                if uid not in current:
                    self.queue(f"* {seq} EXPUNGE")
                    del self.view[seq - 1]
                    self.known_flags.pop(uid, None)
        top = max(self.view, default=0)
        new = [u for u in current if u > top]
        if new:
            self.view.extend(new)
            for u in new:
                self.known_flags[u] = frozenset(current[u].flags)
            self.queue(f"* {len(self.view)} EXISTS")
        for seq, uid in enumerate(self.view, 1):
            msg = current.get(uid)
            if msg is not None and frozenset(msg.flags) != self.known_flags.get(uid):
                self.known_flags[uid] = frozenset(msg.flags)
                self.queue(f"* {seq} FETCH (UID {uid} FLAGS ({' '.join(sorted(msg.flags))}))")

    def notify_change(self) -> None:
        """The model changed: push at once if idling, else at the next command."""
        if self.idling and not self.stalled and not self.closed:
            self.queue_updates()
            self.flush()

    # -- main loop --------------------------------------------------------
    async def run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        self.log("--", f"connect {peer[0]}:{peer[1]}" if peer else "connect")
        try:
            if await self.greet():
                while not self.closed:
                    cmd = await self.read_command()
                    if cmd is None:
                        break
                    await self.dispatch(cmd)
                    await self.drain()
        except CloseConnection:
            pass
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.log("--", f"connection error {exc!r}")
        finally:
            self.close("eof")

    async def drain(self) -> None:
        if not self.closed:
            try:
                await self.writer.drain()
            except ConnectionError:
                self.closed = True

    async def greet(self) -> bool:
        for ev in self.server.events_for_connect(self):
            if ev.action in MODEL_ACTIONS:
                self.server.run_model_action(ev.spec)
                continue
            handled = await self.apply_fault(ev, tag=None, greeting=True)
            if handled:
                return not self.closed and not self.stalled
        self.send_now(f"* OK [CAPABILITY {' '.join(self.capabilities())}] {self.server.greeting}")
        return True

    async def read_line(self) -> bytes | None:
        try:
            line = await self.reader.readuntil(CRLF)
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            self.log("--", "client line too long")
            self.send_now("* BYE Line too long")
            raise CloseConnection from None
        body = line[:-2]
        self.log("C:", body)
        return body

    async def read_command(self) -> bytes | None:
        """One command in wire form, literals inline; sends "+" for synchronizing ones."""
        buf = bytearray()
        while True:
            line = await self.read_line()
            if line is None:
                return None
            buf += line
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not m or self.stalled:
                return bytes(buf)
            size = int(m.group(1))
            if size > MAX_LITERAL:
                self.send_now("* BYE Literal too large")
                raise CloseConnection
            if not m.group(2):
                self.send_now("+ OK")
            data = await self.reader.readexactly(size)
            self.log("C+", f"<{size} octets>")
            buf += CRLF + data

    # -- dispatch ---------------------------------------------------------
    async def dispatch(self, cmd: bytes) -> None:
        if self.stalled:
            return
        m = re.match(rb"([^ \r\n(){%*\"\\]+) (.*)", cmd, re.DOTALL)
        if not m:
            self.send_now("* BAD Missing tag or command")
            return
        tag = m.group(1).decode("ascii", "replace")
        rest = m.group(2)
        first_line = rest.split(CRLF, 1)[0].decode("utf-8", "replace")
        if await self.run_events(first_line, tag, rest):
            return
        await self.execute(tag, rest)

    async def run_events(self, line: str, tag: str, rest: bytes | None) -> bool:
        """Fire the events matching client line ``line``; True if a fault consumed it."""
        for ev in self.server.events_for_command(self, line):
            if ev.action in MODEL_ACTIONS:
                self.server.schedule_model_action(ev)
                continue
            if ev.delay_ms:
                self.server.schedule_session_fault(self, ev)
                continue
            if await self.apply_fault(ev, tag, rest=rest):
                return True
        return False

    async def execute(self, tag: str, rest: bytes) -> None:
        try:
            name, args = self.split_command(rest)
            handler = getattr(self, "cmd_" + name.replace(" ", "_").lower(), None)
            if handler is None:
                self.queue(f"{tag} BAD Unknown command {name}")
            else:
                await handler(tag, args)
        except ProtocolError as exc:
            self.queue(f"{tag} BAD {exc}")
        except CloseConnection:
            self.flush()
            raise
        self.flush()

    @staticmethod
    def split_command(rest: bytes) -> tuple[str, list[Any]]:
        m = re.match(rb"([A-Za-z]+)(?: ([A-Za-z]+))?", rest)
        if not m:
            raise ProtocolError("Missing command")
        name = m.group(1).decode().upper()
        pos = m.end(1)
        if name == "UID":
            if not m.group(2):
                raise ProtocolError("UID needs a command")
            name = "UID " + m.group(2).decode().upper()
            pos = m.end(2)
        tail = rest[pos:]
        if tail and not tail.startswith(b" "):
            raise ProtocolError("Bad command syntax")
        return name, tokenize(tail)

    # -- faults -----------------------------------------------------------
    async def apply_fault(self, ev: Event, tag: str | None, rest: bytes | None = None, greeting: bool = False) -> bool:
        """Act out a connection fault; True if the command/greeting is consumed."""
        spec, action = ev.spec, ev.action
        self.log("--", f"fault {action} (event {ev.id})")
        if action == "delay":
            await asyncio.sleep(int(spec.get("ms", 1000)) / 1000)
            return False
        if action == "drop":
            limit = spec.get("after_bytes")
            if limit is not None:
                if greeting:
                    self.queue(f"* OK [CAPABILITY {' '.join(self.capabilities())}] {self.server.greeting}")
                elif tag is not None and rest is not None:
                    await self.execute_buffered(tag, rest)
                self.flush(int(limit))
            else:
                self.out.clear()
            self.close(f"fault drop{' after %s octets' % limit if limit is not None else ''}", bool(spec.get("reset")))
            return True
        if action == "stall":
            self.stalled = True
            self.idling = False
            return True
        if action == "bye":
            self.send_now(f"* BYE {spec.get('text', 'Server shutting down (fault)')}")
            self.close("fault bye")
            return True
        if action == "malformed":
            self.send_raw(spec.get("line", "* FETCH garbage ((("), spec.get("raw", False))
            then = spec.get("then", "respond")
            if then == "close":
                self.close("fault malformed")
                return True
            return then == "nothing"
        if action == "literal_bomb":
            size = int(spec.get("size", 99999999999))
            self.send_raw(f"* 1 FETCH (UID 1 BODY[] {{{size}}}", False)
            self.send_raw(spec.get("data", "From: bomb\r\n"), True)
            self.stalled = True
            return True
        if action == "long_line":
            size = int(spec.get("size", 2 * 1024 * 1024))
            self.send_raw("* OK " + "x" * max(0, size - 5), False)
            return False
        if action == "reply":
            if tag is None:
                self.send_now(spec.get("response", "* OK fakeimap"))
            else:
                self.send_now(f"{tag} {spec.get('response', 'NO [UNAVAILABLE] Fault injected')}")
            return True
        return False

    async def execute_buffered(self, tag: str, rest: bytes) -> None:
        """Run a command but keep its output queued (for partial writes)."""
        self.holding = True
        try:
            await self.execute(tag, rest)
        finally:
            self.holding = False

    def send_raw(self, line: str, raw: bool) -> None:
        data = line.encode("utf-8", "surrogateescape") + (b"" if raw else CRLF)
        self.flush()
        self._write(data)
        self.log("S:", data[:-2] if not raw else data)

    # ====================================================================
    # Commands
    # ====================================================================
    def require(self, *states: str) -> None:
        if self.state not in states:
            raise ProtocolError(f"Command not valid in state {self.state}")

    def finish_ok(self, tag: str, text: str, allow_expunge: bool = True) -> None:
        self.queue_updates(allow_expunge)
        self.queue(f"{tag} OK {text}")

    async def cmd_capability(self, tag: str, args: list[Any]) -> None:
        self.queue(f"* CAPABILITY {' '.join(self.capabilities())}")
        self.finish_ok(tag, "Capability completed.")

    async def cmd_noop(self, tag: str, args: list[Any]) -> None:
        self.finish_ok(tag, "NOOP completed.")

    async def cmd_check(self, tag: str, args: list[Any]) -> None:
        self.finish_ok(tag, "CHECK completed.")

    async def cmd_logout(self, tag: str, args: list[Any]) -> None:
        self.queue("* BYE Logging out")
        self.queue(f"{tag} OK Logout completed.")
        self.flush()
        self.state = "logout"
        self.close("logout")
        raise CloseConnection

    async def cmd_id(self, tag: str, args: list[Any]) -> None:
        self.queue('* ID ("name" "fakeimap" "version" "1.0")')
        self.finish_ok(tag, "ID completed.")

    async def cmd_enable(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        got = [text_of(a).upper() for a in args if self.has(text_of(a))]
        self.enabled.update(got)
        self.queue("* ENABLED" + "".join(" " + g for g in got))
        self.finish_ok(tag, "Enabled.")

    async def cmd_namespace(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        self.queue('* NAMESPACE (("" "/")) NIL NIL')
        self.finish_ok(tag, "Namespace completed.")

    async def cmd_starttls(self, tag: str, args: list[Any]) -> None:
        self.require("not_authenticated")
        ctx = self.server.tls_context
        if self.tls or ctx is None or not self.has("STARTTLS"):
            raise ProtocolError("TLS not available")
        self.send_now(f"{tag} OK Begin TLS negotiation now.")
        await self.drain()
        try:
            await self.writer.start_tls(ctx)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self.log("--", f"TLS handshake failed: {exc!r}")
            raise CloseConnection from None
        self.tls = True
        self.log("--", "TLS established")

    def login_ok(self, tag: str, user: str) -> None:
        self.user = user
        self.state = "authenticated"
        self.server.logins += 1
        self.log("--", f"login {user}")
        self.queue(f"{tag} OK [CAPABILITY {' '.join(self.capabilities())}] Logged in")

    async def cmd_login(self, tag: str, args: list[Any]) -> None:
        self.require("not_authenticated")
        if len(args) != 2:
            raise ProtocolError("LOGIN needs user and password")
        if self.has("LOGINDISABLED"):
            self.queue(f"{tag} NO [PRIVACYREQUIRED] Plaintext authentication disallowed")
            return
        user, password = text_of(args[0]), text_of(args[1])
        if self.model.users.get(user) == password:
            self.login_ok(tag, user)
        else:
            self.queue(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")

    async def cmd_authenticate(self, tag: str, args: list[Any]) -> None:
        self.require("not_authenticated")
        if not args:
            raise ProtocolError("AUTHENTICATE needs a mechanism")
        mech = text_of(args[0]).upper()
        if not self.has(f"AUTH={mech}"):
            self.queue(f"{tag} NO Unsupported authentication mechanism.")
            return
        if len(args) > 1:
            initial = text_of(args[1])
        else:
            self.send_now("+ ")
            line = await self.read_line()
            if line is None:
                raise CloseConnection
            initial = line.decode("ascii", "replace")
        if initial == "*":
            self.queue(f"{tag} BAD Authentication aborted by client.")
            return
        try:
            data = b"" if initial == "=" else base64.b64decode(initial, validate=True)
        except ValueError:
            self.queue(f"{tag} BAD Invalid base64 data.")
            return
        user = self.check_sasl(mech, data)
        if user:
            self.login_ok(tag, user)
            return
        if mech == "XOAUTH2":  # RFC-less but Gmail-compatible: error challenge, then NO
            err = base64.b64encode(b'{"status":"401","schemes":"bearer"}').decode()
            self.send_now(f"+ {err}")
            await self.read_line()
        self.queue(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")

    def check_sasl(self, mech: str, data: bytes) -> str | None:
        if mech == "PLAIN":
            parts = data.split(b"\0")
            if len(parts) == 3:
                user, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
                return user if self.model.users.get(user) == password else None
            return None
        if mech in ("XOAUTH2", "OAUTHBEARER"):
            text = data.decode(errors="replace")
            um = re.search(r"(?:^|\x01)user=([^\x01]*)", text) or re.search(r"^n,a=([^,]*),", text)
            tm = re.search(r"auth=Bearer ([^\x01]*)", text)
            if um and tm and self.model.tokens.get(um.group(1)) == tm.group(1):
                return um.group(1)
        return None

    # -- mailboxes --------------------------------------------------------
    def mailbox_arg(self, token: Any) -> str:
        name = text_of(token)
        return "INBOX" if name.upper() == "INBOX" else name

    async def cmd_select(self, tag: str, args: list[Any], readonly: bool = False) -> None:
        self.require("authenticated", "selected")
        if not args:
            raise ProtocolError("SELECT needs a mailbox")
        self.state = "authenticated"
        self.selected = None
        mbox = self.model.get(self.mailbox_arg(args[0]))
        if mbox is None:
            self.queue(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {text_of(args[0])}")
            return
        self.pending.clear()
        self.select_view(mbox)
        self.readonly = readonly
        self.state = "selected"
        self.queue(f"* FLAGS ({' '.join(SYSTEM_FLAGS)})")
        perm = "()" if readonly else f"({' '.join(SYSTEM_FLAGS)} \\*)"
        self.queue(f"* OK [PERMANENTFLAGS {perm}] Flags permitted.")
        self.queue(f"* {len(self.view)} EXISTS")
        self.queue("* 0 RECENT")
        unseen = next((i for i, m in enumerate(mbox.messages, 1) if "\\Seen" not in m.flags), None)
        if unseen:
            self.queue(f"* OK [UNSEEN {unseen}] First unseen.")
        self.queue(f"* OK [UIDVALIDITY {mbox.uidvalidity}] UIDs valid")
        self.queue(f"* OK [UIDNEXT {mbox.uidnext}] Predicted next UID")
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        self.queue(f"{tag} OK [{mode}] {'Examine' if readonly else 'Select'} completed.")

    async def cmd_examine(self, tag: str, args: list[Any]) -> None:
        await self.cmd_select(tag, args, readonly=True)

    async def cmd_create(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        name = self.mailbox_arg(args[0]) if args else ""
        if not name or self.model.get(name):
            self.queue(f"{tag} NO [ALREADYEXISTS] Mailbox exists.")
            return
        self.model.create(name.rstrip("/"))
        self.finish_ok(tag, "Create completed.")

    async def cmd_delete(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        name = self.mailbox_arg(args[0]) if args else ""
        if name == "INBOX" or not self.model.get(name):
            self.queue(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist.")
            return
        del self.model.mailboxes[name]
        self.finish_ok(tag, "Delete completed.")

    async def cmd_subscribe(self, tag: str, args: list[Any]) -> None:
        self.finish_ok(tag, "Subscribe completed.")

    async def cmd_unsubscribe(self, tag: str, args: list[Any]) -> None:
        self.finish_ok(tag, "Unsubscribe completed.")

    def list_attrs(self, mbox: Mailbox) -> list[str]:
        attrs = []
        children = any(n.startswith(mbox.name + "/") for n in self.model.mailboxes)
        attrs.append("\\HasChildren" if children else "\\HasNoChildren")
        if mbox.special_use and self.has("SPECIAL-USE"):
            attrs.append(mbox.special_use)
        return attrs

    async def cmd_list(self, tag: str, args: list[Any], verb: str = "LIST") -> None:
        self.require("authenticated", "selected")
        args = list(args)
        selection = [text_of(a).upper() for a in args.pop(0)] if args and isinstance(args[0], list) else []
        if len(args) < 2:
            raise ProtocolError(f"{verb} needs reference and pattern")
        ref = text_of(args[0])
        patterns = [text_of(p) for p in args[1]] if isinstance(args[1], list) else [text_of(args[1])]
        if patterns == [""]:
            self.queue(f'* {verb} (\\Noselect) "/" ""')
            self.finish_ok(tag, f"{verb} completed.")
            return
        rxs = [re.compile(_pattern_regex(ref + p)) for p in patterns]
        for name, mbox in self.model.mailboxes.items():
            if not any(rx.fullmatch(name) or (name == "INBOX" and rx.fullmatch("inbox")) for rx in rxs):
                continue
            if "SPECIAL-USE" in selection and not mbox.special_use:
                continue
            self.queue(f"* {verb} ({' '.join(self.list_attrs(mbox))}) \"/\" {quote(name)}")
        self.finish_ok(tag, f"{verb} completed.")

    async def cmd_lsub(self, tag: str, args: list[Any]) -> None:
        await self.cmd_list(tag, args, "LSUB")

    async def cmd_status(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        if len(args) != 2 or not isinstance(args[1], list):
            raise ProtocolError("STATUS needs a mailbox and items")
        mbox = self.model.get(self.mailbox_arg(args[0]))
        if mbox is None:
            self.queue(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist.")
            return
        values = {
            "MESSAGES": len(mbox.messages),
            "UIDNEXT": mbox.uidnext,
            "UIDVALIDITY": mbox.uidvalidity,
            "UNSEEN": sum(1 for m in mbox.messages if "\\Seen" not in m.flags),
            "RECENT": 0,
        }
        items = []
        for item in args[1]:
            key = text_of(item).upper()
            if key not in values:
                raise ProtocolError(f"Unknown STATUS item {key}")
            items.append(f"{key} {values[key]}")
        self.queue(f"* STATUS {quote(mbox.name)} ({' '.join(items)})")
        self.finish_ok(tag, "Status completed.")

    async def cmd_append(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise ProtocolError("APPEND needs a mailbox and a message literal")
        mbox = self.model.get(self.mailbox_arg(args[0]))
        flags: set[str] = set()
        date = now_utc().replace(microsecond=0)
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = {text_of(f) for f in extra}
            else:
                try:
                    date = parse_imap_datetime(text_of(extra))
                except ValueError as exc:
                    raise ProtocolError(str(exc)) from None
        if mbox is None:
            self.queue(f"{tag} NO [TRYCREATE] Mailbox doesn't exist.")
            return
        msg = self.model.add(mbox, bytes(args[-1]), flags, date)
        self.server.changed(mbox, exclude=self)
        code = f"[APPENDUID {mbox.uidvalidity} {msg.uid}] " if self.has("UIDPLUS") else ""
        self.finish_ok(tag, f"{code}Append completed.")

    async def cmd_close(self, tag: str, args: list[Any]) -> None:
        self.require("selected")
        mbox = self.selected
        if mbox is not None and not self.readonly:
            gone = [m.uid for m in mbox.messages if "\\Deleted" in m.flags]
            self.expunge_uids(mbox, gone, announce=False)
        self.state, self.selected = "authenticated", None
        self.queue(f"{tag} OK Close completed.")

    async def cmd_unselect(self, tag: str, args: list[Any]) -> None:
        self.require("selected")
        if not self.has("UNSELECT"):
            raise ProtocolError("Unknown command UNSELECT")
        self.state, self.selected = "authenticated", None
        self.queue(f"{tag} OK Unselect completed.")

    # -- IDLE -------------------------------------------------------------
    async def cmd_idle(self, tag: str, args: list[Any]) -> None:
        self.require("authenticated", "selected")
        if not self.has("IDLE"):
            raise ProtocolError("Unknown command IDLE")
        self.send_now("+ idling")
        self.idling = True
        self.queue_updates()
        self.flush()
        self.server.idle_changed()
        try:
            line = await self.read_line()
        finally:
            self.idling = False
            self.server.idle_changed()
        if line is None:
            raise CloseConnection
        if self.stalled:
            return
        # Events can match "DONE" too (e.g. a server that never answers it).
        if await self.run_events(line.decode("utf-8", "replace"), tag, None) or self.closed:
            return
        if line.upper() != b"DONE":
            self.queue(f"{tag} BAD Expected DONE.")
            return
        self.finish_ok(tag, "Idle completed.")

    # -- searching --------------------------------------------------------
    async def cmd_search(self, tag: str, args: list[Any], uid: bool = False) -> None:
        self.require("selected")
        mbox = self.selected
        assert mbox is not None
        args = list(args)
        ret: list[str] | None = None
        if args and isinstance(args[0], str) and args[0].upper() == "RETURN":
            if len(args) < 2 or not isinstance(args[1], list):
                raise ProtocolError("RETURN needs a list")
            if not self.has("ESEARCH"):
                raise ProtocolError("RETURN requires ESEARCH")
            ret = [text_of(x).upper() for x in args[1]] or ["ALL"]
            if any(r not in ("MIN", "MAX", "COUNT", "ALL") for r in ret):
                raise ProtocolError("Unknown RETURN option")
            args = args[2:]
        if args and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            if len(args) < 2 or text_of(args[1]).upper() not in ("UTF-8", "US-ASCII"):
                self.queue(f"{tag} NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.")
                return
            args = args[2:]
        if not args:
            raise ProtocolError("SEARCH needs criteria")
        self.queue_updates(allow_expunge=uid)
        pred = SearchParser(args, self).parse_all()
        current = mbox.by_uid()
        hits: list[int] = []
        for seq, u in enumerate(self.view, 1):
            msg = current.get(u)
            if msg is not None and pred(msg, seq):
                hits.append(u if uid else seq)
        if ret is None:
            self.queue("* SEARCH" + "".join(f" {h}" for h in hits))
        else:
            parts = [f"* ESEARCH (TAG {quote(tag)})"] + (["UID"] if uid else [])
            if "MIN" in ret and hits:
                parts.append(f"MIN {min(hits)}")
            if "MAX" in ret and hits:
                parts.append(f"MAX {max(hits)}")
            if "COUNT" in ret:
                parts.append(f"COUNT {len(hits)}")
            if "ALL" in ret and hits:
                parts.append(f"ALL {compress_uids(hits)}")
            self.queue(" ".join(parts))
        self.finish_ok(tag, "Search completed.", allow_expunge=uid)

    async def cmd_uid_search(self, tag: str, args: list[Any]) -> None:
        await self.cmd_search(tag, args, uid=True)

    # -- fetching ---------------------------------------------------------
    def resolve(self, set_text: Any, uid: bool) -> list[tuple[int, Message]]:
        """(seq, message) pairs for a sequence/UID set, in mailbox order."""
        mbox = self.selected
        assert mbox is not None
        sset = SeqSet(text_of(set_text))
        current = mbox.by_uid()
        out = []
        star = (max(self.view) if self.view else 0) if uid else len(self.view)
        for seq, u in enumerate(self.view, 1):
            if u in current and sset.contains(u if uid else seq, star):
                out.append((seq, current[u]))
        return out

    async def cmd_fetch(self, tag: str, args: list[Any], uid: bool = False) -> None:
        self.require("selected")
        if len(args) < 2:
            raise ProtocolError("FETCH needs a set and items")
        items = args[1] if isinstance(args[1], list) else [args[1]]
        items = [text_of(i) for i in items]
        expanded: list[str] = []
        for it in items:
            macro = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
                     "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
                     "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]}.get(it.upper())  # fmt: skip
            expanded.extend(macro or [it])
        if uid and not any(i.upper() == "UID" for i in expanded):
            expanded.insert(0, "UID")
        for it in expanded:
            fetch_item_check(it)
        self.queue_updates(allow_expunge=uid)
        for seq, msg in self.resolve(args[0], uid):
            self.queue(*self.fetch_parts(seq, msg, expanded))
        self.finish_ok(tag, "Fetch completed.", allow_expunge=uid)

    async def cmd_uid_fetch(self, tag: str, args: list[Any]) -> None:
        await self.cmd_fetch(tag, args, uid=True)

    def fetch_parts(self, seq: int, msg: Message, items: list[str]) -> list[str | bytes]:
        parts: list[str | bytes] = [f"* {seq} FETCH ("]
        mark_seen = False
        first = True
        for item in items:
            key = item.upper()
            parts.append("" if first else " ")
            first = False
            if key == "UID":
                parts.append(f"UID {msg.uid}")
            elif key == "FLAGS":
                parts.append(f"FLAGS ({' '.join(sorted(msg.flags))})")
            elif key == "INTERNALDATE":
                parts.append(f'INTERNALDATE "{imap_datetime(msg.internaldate)}"')
            elif key == "RFC822.SIZE":
                parts.append(f"RFC822.SIZE {msg.size}")
            elif key == "ENVELOPE":
                parts.extend(["ENVELOPE ", *envelope(msg)])
            elif key in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
                header, text = msg.split()
                data = {"RFC822": msg.raw, "RFC822.HEADER": header, "RFC822.TEXT": text}[key]
                parts.extend([f"{key} ", Literal(data)])
                mark_seen |= key != "RFC822.HEADER"
            else:
                m = _BODY_ITEM.fullmatch(item)
                assert m, item
                peek = m.group(1).upper().endswith(".PEEK")
                section = m.group(2)
                data = section_data(msg, section)
                origin = None
                if m.group(3) is not None:
                    origin = int(m.group(3))
                    data = data[origin:]
                    if m.group(4) is not None:
                        data = data[: int(m.group(4))]
                name = m.group(1).upper().replace(".PEEK", "")
                parts.extend([f"{name}[{section}]" + (f"<{origin}>" if origin is not None else "") + " ",
                              Literal(data)])  # fmt: skip
                mark_seen |= not peek
        if mark_seen and not self.readonly and "\\Seen" not in msg.flags:
            msg.flags.add("\\Seen")
            self.known_flags[msg.uid] = frozenset(msg.flags)
            record = {"conn": self.id, "mailbox": self.selected.name if self.selected else None, "uid": msg.uid}
            self.model.seen_by_fetch.append(record)
            self.log("--", f"seen set on uid {msg.uid} by a non-PEEK fetch")
            if not any(i.upper() == "FLAGS" for i in items):
                parts.append(f" FLAGS ({' '.join(sorted(msg.flags))})")
            self.server.changed(self.selected, exclude=self)  # type: ignore[arg-type]
        parts.append(")")
        return parts

    # -- changing ---------------------------------------------------------
    async def cmd_store(self, tag: str, args: list[Any], uid: bool = False) -> None:
        self.require("selected")
        if len(args) < 3:
            raise ProtocolError("STORE needs a set, an item and flags")
        item = text_of(args[1]).upper()
        m = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", item)
        if not m:
            raise ProtocolError(f"Bad STORE item {item}")
        flags = {text_of(f) for f in (args[2] if isinstance(args[2], list) else args[2:])}
        if self.readonly:
            self.queue(f"{tag} NO Mailbox is read-only.")
            return
        flags.discard("\\Recent")
        self.queue_updates(allow_expunge=uid)
        mode, silent = m.group(1), bool(m.group(2))
        touched = False
        for seq, msg in self.resolve(args[0], uid):
            before = set(msg.flags)
            if mode == "+":
                msg.flags |= flags
            elif mode == "-":
                msg.flags -= flags
            else:
                msg.flags = set(flags)
            touched |= before != msg.flags
            self.known_flags[msg.uid] = frozenset(msg.flags)
            if not silent:
                self.queue(f"* {seq} FETCH (UID {msg.uid} FLAGS ({' '.join(sorted(msg.flags))}))")
        if touched and self.selected:
            self.server.changed(self.selected, exclude=self)
        self.finish_ok(tag, "Store completed.", allow_expunge=uid)

    async def cmd_uid_store(self, tag: str, args: list[Any]) -> None:
        await self.cmd_store(tag, args, uid=True)

    def copy_into(self, tag: str, args: list[Any], uid: bool) -> tuple[Mailbox, list[tuple[int, Message]], str] | None:
        if len(args) != 2:
            raise ProtocolError("COPY/MOVE needs a set and a mailbox")
        dest = self.model.get(self.mailbox_arg(args[1]))
        if dest is None:
            self.queue(f"{tag} NO [TRYCREATE] Mailbox doesn't exist.")
            return None
        self.queue_updates(allow_expunge=uid)
        src = self.resolve(args[0], uid)
        new_uids = [self.model.add(dest, m.raw, set(m.flags), m.internaldate).uid for _, m in src]
        if src:
            self.server.changed(dest, exclude=self)
        code = ""
        if src and self.has("UIDPLUS") and self.selected:
            code = (f"[COPYUID {dest.uidvalidity} {compress_uids(m.uid for _, m in src)} "
                    f"{compress_uids(new_uids)}] ")  # fmt: skip
        return dest, src, code

    async def cmd_copy(self, tag: str, args: list[Any], uid: bool = False) -> None:
        self.require("selected")
        res = self.copy_into(tag, args, uid)
        if res is not None:
            self.finish_ok(tag, f"{res[2]}Copy completed.", allow_expunge=uid)

    async def cmd_uid_copy(self, tag: str, args: list[Any]) -> None:
        await self.cmd_copy(tag, args, uid=True)

    async def cmd_move(self, tag: str, args: list[Any], uid: bool = False) -> None:
        self.require("selected")
        if not self.has("MOVE"):
            raise ProtocolError("Unknown command MOVE")
        if self.readonly:
            self.queue(f"{tag} NO Mailbox is read-only.")
            return
        res = self.copy_into(tag, args, uid)
        if res is None:
            return
        _, src, code = res
        if code:
            self.queue(f"* OK {code.strip()} Moved UIDs.")
        assert self.selected is not None
        self.expunge_uids(self.selected, [m.uid for _, m in src], announce=True)
        self.finish_ok(tag, "Move completed.")

    async def cmd_uid_move(self, tag: str, args: list[Any]) -> None:
        await self.cmd_move(tag, args, uid=True)

    def expunge_uids(self, mbox: Mailbox, uids: list[int], announce: bool) -> None:
        """Remove ``uids``; queue EXPUNGE responses here if ``announce``; tell the others."""
        gone = set(uids)
        if not gone:
            return
        mbox.messages = [m for m in mbox.messages if m.uid not in gone]
        if announce and self.selected is mbox:
            for seq in range(len(self.view), 0, -1):
                if self.view[seq - 1] in gone:
                    self.queue(f"* {seq} EXPUNGE")
                    del self.view[seq - 1]
        self.server.changed(mbox, exclude=self)

    async def cmd_expunge(self, tag: str, args: list[Any]) -> None:
        self.require("selected")
        if self.readonly:
            self.queue(f"{tag} NO Mailbox is read-only.")
            return
        mbox = self.selected
        assert mbox is not None
        self.expunge_uids(mbox, [m.uid for m in mbox.messages if "\\Deleted" in m.flags], announce=True)
        self.finish_ok(tag, "Expunge completed.")

    async def cmd_uid_expunge(self, tag: str, args: list[Any]) -> None:
        self.require("selected")
        if not self.has("UIDPLUS"):
            raise ProtocolError("Unknown command UID EXPUNGE")
        if len(args) != 1:
            raise ProtocolError("UID EXPUNGE needs a UID set")
        if self.readonly:
            self.queue(f"{tag} NO Mailbox is read-only.")
            return
        mbox = self.selected
        assert mbox is not None
        chosen = [m.uid for _, m in self.resolve(args[0], True) if "\\Deleted" in m.flags]
        self.expunge_uids(mbox, chosen, announce=True)
        self.finish_ok(tag, "Expunge completed.")


# ===========================================================================
# FETCH helpers
# ===========================================================================
_BODY_ITEM = re.compile(r"(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?", re.I | re.S)
_SIMPLE_ITEMS = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "RFC822", "RFC822.HEADER", "RFC822.TEXT"}


def fetch_item_check(item: str) -> None:
    if item.upper() in _SIMPLE_ITEMS:
        return
    m = _BODY_ITEM.fullmatch(item)
    if not m:
        raise ProtocolError(f"Unknown FETCH item {item}")
    section = m.group(2).strip().upper()
    if not re.fullmatch(r"|HEADER|TEXT|1|HEADER\.FIELDS(\.NOT)? \(.*\)", section, re.S):
        raise ProtocolError(f"Unsupported section [{m.group(2)}]")


def section_data(msg: Message, section: str) -> bytes:
    header, text = msg.split()
    sec = section.strip()
    upper = sec.upper()
    if upper == "":
        return msg.raw
    if upper == "HEADER":
        return header
    if upper in ("TEXT", "1"):
        return text
    m = re.fullmatch(r"HEADER\.FIELDS(\.NOT)? \((.*)\)", sec, re.I | re.S)
    assert m
    names = [t for t in tokenize(m.group(2).encode())]
    return msg.header_fields([text_of(n) for n in names], negate=bool(m.group(1)))


def envelope(msg: Message) -> list[str | bytes]:
    """ENVELOPE parts (raw header values, as servers send them)."""

    def raw(name: str) -> str | None:
        return msg.raw_header(name)

    def addresses(name: str, fallback: str | None = None) -> list[str | bytes]:
        value = raw(name) or (raw(fallback) if fallback else None)
        if not value:
            return ["NIL"]
        out: list[str | bytes] = ["("]
        for disp, addr in email.utils.getaddresses([value]):
            local, _, host = addr.partition("@")
            out += ["(", nstring(disp or None), " NIL ", nstring(local or None), " ", nstring(host or None), ")"]
        out.append(")")
        return out

    parts: list[str | bytes] = ["("]
    parts += [nstring(raw("Date")), " ", nstring(raw("Subject")), " "]
    parts += addresses("From") + [" "] + addresses("Sender", "From") + [" "] + addresses("Reply-To", "From")
    parts += [" "] + addresses("To") + [" "] + addresses("Cc") + [" "] + addresses("Bcc") + [" "]
    parts += [nstring(raw("In-Reply-To")), " ", nstring(raw("Message-ID")), ")"]
    return parts


# ===========================================================================
# SEARCH
# ===========================================================================
Pred = Callable[[Message, int], bool]


class SearchParser:
    """Search keys (RFC 3501 6.4.4 + WITHIN) to a predicate over (message, seq)."""

    FLAG_KEYS = {
        "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
        "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
        "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
        "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
        "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    }  # fmt: skip
    ADDRESS_KEYS = {"FROM": "From", "TO": "To", "CC": "Cc", "BCC": "Bcc", "SUBJECT": "Subject"}

    def __init__(self, tokens: list[Any], session: Session) -> None:
        self.tokens = tokens
        self.pos = 0
        self.session = session

    def parse_all(self) -> Pred:
        preds = []
        while self.pos < len(self.tokens):
            preds.append(self.parse_key())
        return lambda m, s: all(p(m, s) for p in preds)

    def take(self) -> Any:
        if self.pos >= len(self.tokens):
            raise ProtocolError("Missing search argument")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def take_text(self) -> str:
        tok = self.take()
        if isinstance(tok, list):
            raise ProtocolError("Expected a string")
        return text_of(tok)

    def parse_key(self) -> Pred:
        tok = self.take()
        if isinstance(tok, list):
            sub = SearchParser(tok, self.session)
            return sub.parse_all()
        if isinstance(tok, bytes):
            raise ProtocolError("Unexpected string in SEARCH")
        key = tok.upper()
        if key == "ALL":
            return lambda m, s: True
        if key in self.FLAG_KEYS:
            flag, want = self.FLAG_KEYS[key]
            return lambda m, s: (flag in m.flags) == want
        if key in ("NEW", "RECENT"):
            return lambda m, s: False  # \Recent is not modelled
        if key == "OLD":
            return lambda m, s: True
        if key in ("KEYWORD", "UNKEYWORD"):
            kw, want = self.take_text(), key == "KEYWORD"
            return lambda m, s: (kw in m.flags) == want
        if key in self.ADDRESS_KEYS:
            field_name, needle = self.ADDRESS_KEYS[key], self.take_text().casefold()
            return lambda m, s: any(needle in v.casefold() for v in m.header_values(field_name))
        if key == "HEADER":
            field_name, needle = self.take_text(), self.take_text().casefold()
            return lambda m, s: any(needle in v.casefold() for v in m.header_values(field_name))
        if key == "BODY":
            needle = self.take_text().casefold()
            return lambda m, s: needle in m.body_text().casefold()
        if key == "TEXT":
            needle = self.take_text().casefold()
            return lambda m, s: needle in m.raw.decode("utf-8", "replace").casefold() or needle in m.body_text().casefold()
        if key in ("LARGER", "SMALLER"):
            n = self.number()
            return (lambda m, s: m.size > n) if key == "LARGER" else (lambda m, s: m.size < n)
        if key in ("BEFORE", "ON", "SINCE"):
            day = parse_search_date(self.take_text()).date()
            ops = {"BEFORE": lambda d: d < day, "ON": lambda d: d == day, "SINCE": lambda d: d >= day}
            op = ops[key]
            return lambda m, s: op(m.internaldate.astimezone(timezone.utc).date())
        if key in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            day = parse_search_date(self.take_text()).date()
            ops = {"SENTBEFORE": lambda d: d < day, "SENTON": lambda d: d == day, "SENTSINCE": lambda d: d >= day}
            op = ops[key]
            return lambda m, s: _sent_date(m) is not None and op(_sent_date(m))  # type: ignore[arg-type]
        if key in ("OLDER", "YOUNGER"):
            if not self.session.has("WITHIN"):
                raise ProtocolError(f"{key} requires WITHIN")
            secs = self.number()
            if key == "OLDER":
                return lambda m, s: (now_utc() - m.internaldate).total_seconds() >= secs
            return lambda m, s: (now_utc() - m.internaldate).total_seconds() <= secs
        if key == "UID":
            sset = SeqSet(self.take_text())
            view = self.session.view
            return lambda m, s: sset.contains(m.uid, max(view) if view else 0)
        if key == "NOT":
            inner = self.parse_key()
            return lambda m, s: not inner(m, s)
        if key == "OR":
            a, b = self.parse_key(), self.parse_key()
            return lambda m, s: a(m, s) or b(m, s)
        if re.fullmatch(r"[\d*:,]+", key):
            sset = SeqSet(key)
            view = self.session.view
            return lambda m, s: sset.contains(s, len(view))
        raise ProtocolError(f"Unknown search key {key}")

    def number(self) -> int:
        text = self.take_text()
        if not text.isdigit():
            raise ProtocolError(f"Expected a number, got {text!r}")
        return int(text)


def _sent_date(msg: Message) -> Any:
    value = msg.raw_header("Date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(str(value)).date()
    except (TypeError, ValueError):
        return None


def _pattern_regex(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch))
    return "".join(out)


# ===========================================================================
# The server
# ===========================================================================
class FakeImapServer:
    """The scripted server: model, events, sessions, control channel."""

    def __init__(self, scenario: dict[str, Any], transcript: str | None = None,
                 tls_context: ssl.SSLContext | None = None, implicit_tls: bool = False) -> None:  # fmt: skip
        self.scenario = scenario
        self.model = Model(scenario)
        caps = scenario.get("capabilities") or {}
        self.pre_caps: list[str] = list(caps.get("pre") or DEFAULT_PRE_CAPS)
        self.post_caps: list[str] = list(caps.get("post") or DEFAULT_POST_CAPS)
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        if tls_context is not None and not implicit_tls and "STARTTLS" not in (c.upper() for c in self.pre_caps):
            self.pre_caps.append("STARTTLS")
        self.greeting: str = scenario.get("greeting", "fakeimap ready.")
        self.transcript = Transcript(transcript)
        self.events: list[Event] = []
        self.sessions: dict[int, Session] = {}
        self.total_connections = 0
        self.logins = 0
        self.port = 0
        self.control_port = 0
        self._servers: list[asyncio.base_events.Server] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.idle_waiters: list[asyncio.Future[None]] = []

    # -- lifecycle --------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, control_port: int | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        for spec in self.scenario.get("events") or []:
            self.arm(spec)
        ctx = self.tls_context if self.implicit_tls else None
        srv = await asyncio.start_server(self.handle_client, host, port, limit=MAX_LINE, ssl=ctx, reuse_address=True)
        self._servers.append(srv)
        self.port = srv.sockets[0].getsockname()[1]
        if control_port is not None:
            ctl = await asyncio.start_server(self.handle_control, host, control_port, limit=MAX_LINE)
            self._servers.append(ctl)
            self.control_port = ctl.sockets[0].getsockname()[1]
        self.transcript.write("-", "--", f"listening on {host}:{self.port} control {self.control_port or '-'}")

    async def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        for srv in self._servers:
            srv.close()
        for s in list(self.sessions.values()):
            s.close("server stop")
        for srv in self._servers:
            await srv.wait_closed()
        self.transcript.write("-", "--", "stopped")
        self.transcript.close()

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.total_connections += 1
        session = Session(self, self.total_connections, reader, writer, tls=self.implicit_tls)
        self.sessions[session.id] = session
        await session.run()

    def session_closed(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        self.idle_changed()

    def idle_changed(self) -> None:
        for fut in self.idle_waiters:
            if not fut.done():
                fut.set_result(None)
        self.idle_waiters.clear()

    # -- events -----------------------------------------------------------
    def arm(self, spec: dict[str, Any]) -> Event:
        ev = Event(len(self.events) + 1, spec)
        self.events.append(ev)
        if ev.on == "time":
            self._later(int(spec["at_ms"]) / 1000, lambda: self.fire_timed(ev))
        return ev

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        self._timers.append(self._loop.call_later(delay, fn))

    def events_for_connect(self, session: Session) -> list[Event]:
        return [ev for ev in self.events if ev.on == "connect" and ev.trigger(session.id, None)]

    def events_for_command(self, session: Session, line: str) -> list[Event]:
        return [ev for ev in self.events if ev.on == "command" and ev.trigger(session.id, line)]

    def fire_timed(self, ev: Event) -> None:
        ev.fired += 1
        if ev.action in MODEL_ACTIONS:
            self.run_model_action(ev.spec)
            return
        for s in list(self.sessions.values()):
            if ev.applies_to(s.id):
                asyncio.ensure_future(s.apply_fault(ev, tag=None))

    def schedule_model_action(self, ev: Event) -> None:
        if ev.delay_ms:
            self._later(ev.delay_ms / 1000, lambda: self.run_model_action(ev.spec))
        else:
            self.run_model_action(ev.spec)

    def schedule_session_fault(self, session: Session, ev: Event) -> None:
        def fire() -> None:
            if not session.closed:
                asyncio.ensure_future(session.apply_fault(ev, tag=None))

        self._later(ev.delay_ms / 1000, fire)

    # -- model actions ----------------------------------------------------
    def mailbox(self, spec: dict[str, Any]) -> Mailbox:
        mbox = self.model.get(spec.get("mailbox", "INBOX"))
        if mbox is None:
            raise ValueError(f"no mailbox {spec.get('mailbox')!r}")
        return mbox

    def run_model_action(self, spec: dict[str, Any]) -> dict[str, Any]:
        action = spec.get("action") or spec.get("cmd")
        self.transcript.write("-", "--", f"model {action} {json.dumps({k: v for k, v in spec.items() if k != 'message'})}")
        if action == "append":
            mbox = self.mailbox(spec)
            mspec = spec.get("message") or {}
            msg = self.model.add(mbox, render_message(mspec), set(mspec.get("flags") or []), message_date(mspec))
            self.changed(mbox)
            return {"uid": msg.uid}
        if action == "expunge":
            mbox = self.mailbox(spec)
            uids = set(spec.get("uids") or [m.uid for m in mbox.messages])
            mbox.messages = [m for m in mbox.messages if m.uid not in uids]
            self.changed(mbox)
            return {"expunged": sorted(uids)}
        if action == "set_flags":
            mbox = self.mailbox(spec)
            uids = set(spec.get("uids") or [m.uid for m in mbox.messages])
            flags, mode = set(spec.get("flags") or []), spec.get("mode", "+")
            for m in mbox.messages:
                if m.uid in uids:
                    m.flags = m.flags | flags if mode == "+" else m.flags - flags if mode == "-" else set(flags)
            self.changed(mbox)
            return {}
        if action == "uidvalidity_change":
            return self.change_uidvalidity(spec)
        raise ValueError(f"unknown model action {action!r}")

    def change_uidvalidity(self, spec: dict[str, Any]) -> dict[str, Any]:
        mbox = self.mailbox(spec)
        old_validity = mbox.uidvalidity
        mbox.uidvalidity = int(spec.get("uidvalidity") or old_validity + 1)
        start = int(spec.get("start_uid", 1))
        msgs = list(mbox.messages)
        order = list(range(len(msgs)))
        if spec.get("order", "reverse") == "reverse":
            order.reverse()  # message k gets the UID of message n-1-k: stale UIDs hit other mail
        mapping = {}
        for k, m in enumerate(msgs):
            new = start + order[k]
            mapping[m.uid] = new
            m.uid = new
        mbox.messages.sort(key=lambda m: m.uid)
        mbox.uidnext = start + len(msgs)
        notify = spec.get("notify", "none")
        notify = "untagged" if notify is True else "none" if notify is False else notify
        for s in list(self.sessions.values()):
            if s.selected is not mbox:
                continue
            # Keep the session's sequence view consistent with the renumbering.
            s.view = sorted(mapping.get(u, u) for u in s.view)
            s.known_flags = {m.uid: frozenset(m.flags) for m in mbox.messages}
            if notify == "bye":
                s.send_now("* BYE UIDVALIDITY changed")
                s.close("uidvalidity change")
            elif notify == "untagged":
                s.pending.append(f"* OK [UIDVALIDITY {mbox.uidvalidity}] UIDVALIDITY changed")
                s.notify_change()
        return {"uidvalidity": mbox.uidvalidity, "old_uidvalidity": old_validity, "mapping": mapping}

    def changed(self, mbox: Mailbox, exclude: Session | None = None) -> None:
        for s in list(self.sessions.values()):
            if s is not exclude and s.selected is mbox:
                s.notify_change()

    # -- control channel ----------------------------------------------------
    async def handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                    reply = await self.control(request)
                    reply = {"ok": True, **reply}
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def connections(self) -> dict[str, Any]:
        return {
            "open": len(self.sessions),
            "total": self.total_connections,
            "logins": self.logins,
            "idling": sum(1 for s in self.sessions.values() if s.idling),
            "sessions": [
                {"id": s.id, "state": s.state, "user": s.user, "idling": s.idling, "stalled": s.stalled,
                 "selected": s.selected.name if s.selected else None, "tls": s.tls}
                for s in self.sessions.values()
            ],
        }  # fmt: skip

    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "ping":
            return {}
        if cmd == "state":
            return {
                "mailboxes": self.model.state(),
                "seen_by_fetch": self.model.seen_by_fetch,
                "connections": self.connections(),
                "events": [ev.describe() for ev in self.events],
            }
        if cmd == "connections":
            return self.connections()
        if cmd in MODEL_ACTIONS:
            return self.run_model_action(req)
        if cmd == "create":
            mbox = self.model.create(req["mailbox"], req.get("special_use"), req.get("uidvalidity"))
            return {"uidvalidity": mbox.uidvalidity}
        if cmd == "fault":
            spec = req.get("event") or {k: v for k, v in req.items() if k != "cmd"}
            return {"id": self.arm(spec).id}
        if cmd == "clear_faults":
            for ev in self.events:
                ev.times = 0
            return {}
        if cmd == "do":
            spec = dict(req["event"])
            spec.setdefault("at_ms", 0)
            ev = Event(len(self.events) + 1, spec)
            self.events.append(ev)
            self.fire_timed(ev)
            return {"id": ev.id}
        if cmd == "kick":
            for s in list(self.sessions.values()):
                if req.get("bye"):
                    s.send_now(f"* BYE {req['bye']}")
                s.close("kicked")
            return {}
        if cmd == "wait_idle":
            # Resolve once at least N sessions are idling (or timeout).
            want, deadline = int(req.get("count", 1)), time.monotonic() + float(req.get("timeout", 10))
            while sum(1 for s in self.sessions.values() if s.idling) < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fewer than {want} sessions idling")
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.idle_waiters.append(fut)
                try:
                    await asyncio.wait_for(fut, left)
                except asyncio.TimeoutError:
                    pass
            return self.connections()
        raise ValueError(f"unknown control command {cmd!r}")


# ===========================================================================
# Running
# ===========================================================================
def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def make_tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def load_scenario(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


async def serve(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    tls = scenario.get("tls") or {}
    ctx = make_tls_context(args.tls_cert or tls.get("cert"), args.tls_key or tls.get("key"))
    server = FakeImapServer(scenario, args.transcript, ctx, args.implicit_tls or bool(tls.get("implicit")))
    await server.start(args.host, args.port, args.control_port)
    if args.control_port_file:
        write_atomic(args.control_port_file, f"{server.control_port}\n")
    if args.port_file:
        write_atomic(args.port_file, f"{server.port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--scenario", help="scenario JSON file")
    p.add_argument("--transcript", help="append the protocol transcript here")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--control-port", type=int, default=None, help="JSON-lines control socket (0 = any port)")
    p.add_argument("--control-port-file", help="write the control port here")
    p.add_argument("--tls-cert", help="certificate: enables STARTTLS (or implicit TLS)")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (imaps)")
    args = p.parse_args(argv)
    asyncio.run(serve(args))
    return 0


class ThreadedServer:
    """Run a FakeImapServer in a background thread (for in-process tests).

    >>> srv = run_in_thread({"users": {"u": "p"}})
    >>> srv.port, srv.control({"cmd": "connections"})
    >>> srv.stop()
    """

    def __init__(self, server: FakeImapServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.server, self.loop, self.thread = server, loop, thread

    @property
    def port(self) -> int:
        return self.server.port

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        fut = asyncio.run_coroutine_threadsafe(self.server.control(request), self.loop)
        return {"ok": True, **fut.result(30)}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def run_in_thread(scenario: dict[str, Any], transcript: str | None = None, host: str = "127.0.0.1") -> ThreadedServer:
    loop = asyncio.new_event_loop()
    server = FakeImapServer(scenario, transcript)
    started = threading.Event()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start(host, 0))
        started.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=runner, name="fakeimap", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("fakeimap did not start")
    return ThreadedServer(server, loop, thread)


if __name__ == "__main__":
    sys.exit(main())
