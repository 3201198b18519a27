# SPDX-License-Identifier: MIT
"""Integration-test harness for imapsweep (Python 3 standard library only).

- ``dovecot``: a throwaway Dovecot on loopback (``Dovecot``)
- ``pki``: the test CA and certificates (``TestPKI``)
- ``cyrus``, ``courier``: Cyrus IMAP and Courier-IMAP, unpacked beside
  Dovecot and run in a private namespace (``nsserver``, ``nsinit``)
- ``interop``: one test class per server (``ServerCase``, ``for_each_server``)
- ``mail``: message builders, the imaplib-based oracle ``Imap``, ``RawConn``, ``bulk_fill``
- ``wait``: ``wait_for`` (poll with a deadline), free ports, ``Proc`` (daemon under test)
- ``fakeimap``: drive tests/fakeimap/fakeimap.py (``FakeImap``)
- ``chaos``: a TCP proxy that misbehaves on cue (``ChaosProxy``)
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (tests/integration/harness/../../..).
REPO_ROOT = Path(__file__).resolve().parents[3]


def build_dir() -> Path:
    """Where the binaries are: $IMAPSWEEP_BUILD (default ``build``), relative to the repo root."""
    path = Path(os.environ.get("IMAPSWEEP_BUILD", "build"))
    return path if path.is_absolute() else REPO_ROOT / path


def binary(name: str) -> Path:
    """Path of a built program (``imapsweepd``, ``imapsweepctl``, ``tests/x``).

    Raises AssertionError (a failure, never a skip) if it has not been built.
    """
    path = build_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise AssertionError(f"{path} not found or not executable: run `make` (IMAPSWEEP_BUILD={build_dir()})")
    return path
