# SPDX-License-Identifier: MIT
"""Variants of the purge's command sequence, for bench/purge_cost.py --variants.

A small blocking IMAP client (plain TCP, standard library) that runs the
lower bound's sequence with one change or several, to see what each form
costs the server. A variant is a '+'-joined list of changes to the lower
bound (LOGIN, SELECT, UID SEARCH FROM, one UID STORE, one UID EXPUNGE,
LOGOUT, each after the previous reply):

    one            no change (the lower bound's forms, from Python)
    pipelined      UID STORE and UID EXPUNGE sent together (two round trips)
    top            UID FETCH * (UID) sent with the search, as imapsweepd does
    esearch        UID SEARCH RETURN (ALL) UID 1:* FROM ..., as imapsweepd does
    store=N        UID STORE in chunks of at most N bytes of set, pipelined
    expunge=N      UID EXPUNGE in chunks of at most N bytes, one after another

e.g. top+esearch+store=30000+expunge=30000 is imapsweepd's sequence. The
client's own time is Python's: compare these by the server's CPU.
"""

from __future__ import annotations

import re
import socket

ITEMS = ("one", "pipelined", "top", "esearch", "store", "expunge")


DESCRIBE = {
    "one": "none: the lower bound's commands, sent by the Python client",
    "pipelined": "`UID STORE` and `UID EXPUNGE` sent together",
    "top": "`UID FETCH * (UID)` sent with the search",
    "esearch": "`UID SEARCH RETURN (ALL) UID 1:* FROM …`",
    "store": "`UID STORE` in chunks of ≤ {} bytes of set, sent together",
    "expunge": "`UID EXPUNGE` in chunks of ≤ {} bytes, each after the previous reply",
}


def describe(name: str) -> str:
    return "; ".join(DESCRIBE[k].format(f"{v:,}") for k, v in parse(name).items())


def parse(name: str) -> dict[str, int | bool]:
    """'top+store=30000' -> {'top': True, 'store': 30000}; ValueError if unknown."""
    out: dict[str, int | bool] = {}
    for item in name.split("+"):
        key, _, val = item.partition("=")
        if key not in ITEMS or (key in ("store", "expunge")) != bool(val):
            raise ValueError(f"unknown variant item {item!r} (known: {', '.join(ITEMS)}; store=N, expunge=N)")
        out[key] = int(val) if val else True
    return out


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self.line()  # greeting

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def send(self, text: str) -> str:
        self.n += 1
        tag = f"v{self.n}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        return tag

    def wait(self, tags: list[str], found: list[int] | None = None) -> dict[str, float]:
        """Read until every tag has its OK; Dovecot's own time per tag. SEARCH
        and ESEARCH results go to found."""
        left, times = set(tags), {}
        while left:
            line = self.line()
            tag = line.split(b" ", 1)[0].decode()
            if tag in left:
                if not line[len(tag):].startswith(b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                m = re.search(rb"\(([0-9.]+) \+", line)
                times[tag] = float(m.group(1)) if m else 0.0
                left.discard(tag)
            elif found is not None and line.startswith(b"* SEARCH"):
                found += [int(x) for x in line.split()[2:]]
            elif found is not None and line.startswith(b"* ESEARCH"):
                for part in line.rsplit(b" ", 1)[1].decode().split(","):
                    a, _, b = part.partition(":")
                    found += range(int(a), int(b or a) + 1)
        return times

    def cmd(self, text: str, found: list[int] | None = None) -> float:
        tag = self.send(text)
        return self.wait([tag], found)[tag]


def uid_set(uids: list[int]) -> str:
    return ",".join(map(str, uids))


def chunks(uids: list[int], max_len: int) -> list[list[int]]:
    """Consecutive pieces whose set is at most max_len bytes (one UID at least)."""
    out: list[list[int]] = []
    cur: list[int] = []
    n = 0
    for u in uids:
        w = len(str(u)) + (1 if cur else 0)
        if cur and n + w > max_len:
            out.append(cur)
            cur, n, w = [], 0, len(str(u))
        cur.append(u)
        n += w
    if cur:
        out.append(cur)
    return out


def run(port: int, user: str, password: str, mailbox: str, sender: str, name: str) -> dict[str, float]:
    """One purge with the variant; Dovecot's time per phase (summed over chunks)."""
    v = parse(name)
    c = Client(port)
    t: dict[str, float] = {}
    c.cmd(f'LOGIN "{user}" "{password}"')
    t["select"] = c.cmd(f'SELECT "{mailbox}"')
    found: list[int] = []
    tags = []
    if v.get("top"):
        tags.append(c.send("UID FETCH * (UID)"))
    if v.get("esearch"):
        tags.append(c.send(f'UID SEARCH RETURN (ALL) UID 1:* FROM "{sender}"'))
    else:
        tags.append(c.send(f'UID SEARCH FROM "{sender}"'))
    t["search"] = max(c.wait(tags, found).values())
    found.sort()
    if found and v.get("pipelined"):
        tags = [c.send(f"UID STORE {uid_set(found)} +FLAGS.SILENT (\\Deleted)"), c.send(f"UID EXPUNGE {uid_set(found)}")]
        times = c.wait(tags)
        t["store"], t["expunge"] = times[tags[0]], times[tags[1]]
    elif found:
        pieces = chunks(found, int(v["store"])) if v.get("store") else [found]
        tags = [c.send(f"UID STORE {uid_set(p)} +FLAGS.SILENT (\\Deleted)") for p in pieces]
        t["store"] = sum(c.wait(tags).values())
        pieces = chunks(found, int(v["expunge"])) if v.get("expunge") else [found]
        t["expunge"] = sum(c.cmd(f"UID EXPUNGE {uid_set(p)}") for p in pieces)
    c.cmd("LOGOUT")
    c.sock.close()
    return t
