# SPDX-License-Identifier: MIT
"""A TCP proxy that misbehaves on cue, between the daemon and a real server.

>>> with ChaosProxy(("127.0.0.1", dc.port("imap"))) as px:
...     acct["port"] = px.port                  # the daemon connects here
...     conn = px.wait_connections(1)[0]        # one Conn per client connection
...     conn.set(latency=0.3)                   # both directions, per chunk
...     conn.set(stall="s2c")                   # hold the server's bytes (or "c2s")
...     conn.set(reset_in_literal=True)         # RST both sides inside the next {N} literal
...     conn.set(blackhole=True)                # swallow both ways, keep the sockets open
...     conn.set(trickle=0.01)                  # server bytes one at a time, 10 ms apart
...     conn.set()                              # back to a plain pipe
...     conn.arm(r"UID STORE", blackhole=True)  # once the client has sent that
...     px.default = Behaviour(latency=0.1)     # what new connections start with

Each accepted connection gets its own upstream connection and its own
``Behaviour``, changed at any time from the test's thread; the change takes
effect for the next chunk (a trickle or a latency wait in progress notices it
at once). New connections start with ``px.default`` (a plain pipe unless set),
so a watcher whose connection was broken reconnects through a healthy path.

- latency: every chunk read from either side is written ``latency`` seconds
  after it was read (order is kept).
- stall ``"c2s"`` / ``"s2c"``: chunks read in that direction are held (not
  written, not dropped) until the stall is lifted; the sockets stay open,
  and a close by the client still ends the connection.
- reset_in_literal: the server->client stream is watched for ``{N}\\r\\n``
  (N >= 2); the proxy forwards the marker and half of the literal's octets,
  then closes both sockets with a TCP RST (SO_LINGER 0). ``resets`` records
  each one.
- blackhole: everything read from either side is dropped, nothing is
  closed, and a close by the server is not passed on (a NAT that lost the
  flow): the client has to notice by itself. A close by the client ends the
  connection as usual.
- trickle: server->client bytes are written one at a time, ``trickle``
  seconds apart.
- ``conn.arm(pattern, **behaviour)``: the behaviour takes effect once a
  chunk from the client matching ``pattern`` has reached the server (the
  command is carried out, its reply meets the fault); ``conn.triggered``.

asyncio in a thread of its own; standard library only.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from .wait import wait_for

_LITERAL_RE = re.compile(rb"\{(\d+)\}\r\n")
_CHUNK = 65536
_EOF = object()


@dataclass(frozen=True)
class Behaviour:
    """What the proxy does to one connection (the defaults: a plain pipe)."""

    latency: float = 0.0
    stall: str | None = None  # "c2s", "s2c" or None
    reset_in_literal: bool = False
    blackhole: bool = False
    trickle: float | None = None  # seconds between server bytes

    def __post_init__(self) -> None:
        if self.stall not in (None, "c2s", "s2c"):
            raise ValueError(f"stall must be 'c2s', 's2c' or None, not {self.stall!r}")


@dataclass(frozen=True)
class Reset:
    """One reset inside a literal: which connection, the literal's size, how
    many of its octets went through before the RST."""

    conn: int
    literal: int
    sent: int


class Conn:
    """One proxied connection: the daemon's socket and the proxy's upstream socket."""

    def __init__(self, proxy: "ChaosProxy", ident: int, behaviour: Behaviour) -> None:
        self.proxy = proxy
        self.id = ident
        self.behaviour = behaviour
        self.closed = False
        self.bytes = {"c2s": 0, "s2c": 0}  # octets written onward
        self._changed: asyncio.Condition | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Future[None]] = []
        self._tail = b""  # the last server octets seen by the literal scanner
        self._cut_after: int | None = None  # octets still to pass before the RST
        self._literal = 0
        self._armed: tuple[re.Pattern[bytes], Behaviour] | None = None
        self.triggered = threading.Event()  # an armed behaviour took effect

    def __repr__(self) -> str:
        return f"<Conn {self.id} {self.behaviour} closed={self.closed}>"

    # -- from the test's thread ------------------------------------------------
    def set(self, **kw: Any) -> None:
        """Replace the behaviour (unnamed fields go back to their defaults)."""
        self.proxy._call(self._apply, Behaviour(**kw))

    def arm(self, pattern: str, **kw: Any) -> None:
        """Switch to ``Behaviour(**kw)`` once the client has sent a chunk
        matching ``pattern`` (a regex on its bytes) and that chunk has been
        written to the server: a fault between a command and its reply."""
        self.proxy._call(self._arm, re.compile(pattern.encode()), Behaviour(**kw))

    # -- in the proxy's loop ---------------------------------------------------
    async def _apply(self, new: Behaviour) -> None:
        if new.reset_in_literal and not self.behaviour.reset_in_literal:
            self._cut_after = None
            self._tail = b""
        self.behaviour = new
        await self._notify()

    async def _arm(self, rx: "re.Pattern[bytes]", new: Behaviour) -> None:
        self._armed = (rx, new)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _wait_change(self, timeout: float | None = None) -> None:
        assert self._changed is not None
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def run(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter,
                  upstream: tuple[str, int]) -> None:  # fmt: skip
        self._changed = asyncio.Condition()
        try:
            sreader, swriter = await asyncio.open_connection(*upstream)
        except OSError:
            cwriter.transport.abort()
            self.closed = True
            return
        self._writers = [cwriter, swriter]
        queues: dict[str, asyncio.Queue[Any]] = {"c2s": asyncio.Queue(), "s2c": asyncio.Queue()}
        self._tasks = [
            asyncio.ensure_future(self._read(creader, "c2s", queues["c2s"])),
            asyncio.ensure_future(self._write(swriter, "c2s", queues["c2s"])),
            asyncio.ensure_future(self._write(cwriter, "s2c", queues["s2c"])),
            asyncio.ensure_future(self._read(sreader, "s2c", queues["s2c"])),
        ]
        try:
            # the client's close ends the connection at once; the server's
            # once what it sent before has been written on
            await asyncio.wait(self._tasks[:3], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._close(abort=False)

    def _close(self, abort: bool) -> None:
        for w in self._writers:
            if abort:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                w.transport.abort()
            else:
                w.close()
        self.closed = True

    async def _read(self, reader: asyncio.StreamReader, way: str, q: "asyncio.Queue[Any]") -> None:
        """Read one direction into its queue, then an end mark; under a
        blackhole the server's end of stream is swallowed (the client must
        notice by itself) and only the client's ends the connection."""
        while True:
            try:
                data = await reader.read(_CHUNK)
            except OSError:
                data = b""
            if not data:
                if way == "s2c" and self.behaviour.blackhole:
                    # the server's close is swallowed: wait for the client
                    await asyncio.Event().wait()
                await q.put(_EOF)
                return
            if self.behaviour.blackhole:
                continue
            await q.put((time.monotonic(), data))

    async def _write(self, writer: asyncio.StreamWriter, way: str, q: "asyncio.Queue[Any]") -> None:
        """Write one direction from its queue with the behaviour of the moment."""
        while True:
            item = await q.get()
            if item is _EOF:
                return
            t, data = item
            while True:
                b = self.behaviour
                if b.blackhole:
                    break
                if b.stall == way:
                    await self._wait_change()
                    continue
                wait = t + b.latency - time.monotonic()
                if wait <= 0:
                    break
                await self._wait_change(wait)
            if self.behaviour.blackhole:
                continue
            if way == "s2c" and self.behaviour.reset_in_literal:
                data, cut = self._scan(data)
                if cut:
                    if data:
                        writer.write(data)
                        await writer.drain()
                        self.bytes[way] += len(data)
                    self.proxy.resets.append(Reset(self.id, self._literal, self._literal // 2))
                    self._close(abort=True)
                    return
            if way == "s2c" and self.behaviour.trickle:
                for i in range(len(data)):
                    if self.behaviour.blackhole:
                        break
                    writer.write(data[i:i + 1])
                    await writer.drain()
                    self.bytes[way] += 1
                    delay = self.behaviour.trickle
                    if delay:
                        await asyncio.sleep(delay)
                continue
            writer.write(data)
            await writer.drain()
            self.bytes[way] += len(data)
            if way == "c2s" and self._armed is not None and self._armed[0].search(data):
                await self._apply(self._armed[1])
                self._armed = None
                self.triggered.set()

    def _scan(self, data: bytes) -> tuple[bytes, bool]:
        """What of ``data`` to pass on before the reset, and whether to reset."""
        if self._cut_after is None:
            buf = self._tail + data
            m = next((m for m in _LITERAL_RE.finditer(buf) if int(m.group(1)) >= 2), None)
            if m is None:
                self._tail = buf[-24:]
                return data, False
            self._literal = int(m.group(1))
            self._cut_after = m.end() - len(self._tail) + self._literal // 2
        if self._cut_after > len(data):
            self._cut_after -= len(data)
            return data, False
        return data[: self._cut_after], True


class ChaosProxy:
    """Listens on 127.0.0.1:``port`` (any free port by default) and passes
    every connection on to ``upstream`` with a ``Behaviour`` of its own."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.default = Behaviour()
        self.resets: list[Reset] = []
        self._conns: list[Conn] = []
        self._accepting: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, args=(port,), name="chaos-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError("the chaos proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> "ChaosProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, reuse_address=True)

        try:
            self._loop.run_until_complete(start())
        finally:
            self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(self, len(self._conns) + 1, self.default)
        self._conns.append(conn)
        me = asyncio.current_task()
        assert me is not None
        self._accepting.add(me)
        try:
            await conn.run(reader, writer, self.upstream)
        finally:
            self._accepting.discard(me)

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run coroutine function ``fn(*args)`` in the proxy's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(10)

    # -- for tests ---------------------------------------------------------------
    def connections(self, live: bool = True) -> list[Conn]:
        """Connections accepted so far (only the open ones unless ``live`` is False)."""
        return [c for c in list(self._conns) if not (live and c.closed)]

    def accepted(self) -> int:
        """How many connections were accepted so far."""
        return len(self._conns)

    def wait_connections(self, n: int, timeout: float = 10.0) -> list[Conn]:
        """Wait until exactly ``n`` connections are open; return them."""
        return wait_for(lambda: (lambda cs: cs if len(cs) == n else None)(self.connections()), timeout,
                        what=f"{n} open connections through the chaos proxy")  # fmt: skip

    def close(self) -> None:
        """Stop listening and abort every connection."""
        if not self._loop.is_running():
            return

        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for c in self._conns:
                if not c.closed:
                    c._close(abort=True)
                for t in c._tasks:
                    t.cancel()
            await asyncio.gather(*self._accepting, return_exceptions=True)

        try:
            self._call(stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()


__all__ = ["Behaviour", "ChaosProxy", "Conn", "Reset"]
