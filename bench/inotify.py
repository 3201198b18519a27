# SPDX-License-Identifier: MIT
"""The "gone" observer of the reaction benchmark: inotify on maildir folders.

A maildir message is one file; Dovecot removes it with unlink(2) while it
executes the expunge, before it answers the client. An IN_DELETE event on
the folder's cur/ or new/ directory is therefore the moment the message is
gone, with microsecond resolution, no IMAP traffic, no load on Dovecot and
no notification delay (an observer IMAP session in IDLE would hear of the
EXPUNGE only after Dovecot's own ~0.5 s notification delay; polling with
NOOP every millisecond would cost Dovecot CPU on the 2-core machine, beside
the very work being timed). Renames (tmp/ -> new/ -> cur/ on delivery and
first sync) are IN_MOVED_* and are not counted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import time
from pathlib import Path

IN_DELETE = 0x00000200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class DeleteWatch:
    """IN_DELETE events of many maildir folders, each known by a key."""

    def __init__(self) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._keys: dict[int, object] = {}

    def add(self, folder: Path, key: object) -> None:
        for sub in ("cur", "new"):
            wd = _libc.inotify_add_watch(self.fd, str(folder / sub).encode(), IN_DELETE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder / sub}")
            self._keys[wd] = key

    def read(self, timeout: float) -> list[tuple[int, object, str]]:
        """[(monotonic ns, key, file name)] of the deletions seen within timeout seconds."""
        r, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        now = time.monotonic_ns()
        if not r:
            return []
        out = []
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return []
            raise
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
            pos += _EVENT.size + length
            if mask & IN_DELETE and wd in self._keys:
                out.append((now, self._keys[wd], name))
        return out

    def close(self) -> None:
        os.close(self.fd)
