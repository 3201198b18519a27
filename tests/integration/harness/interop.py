# SPDX-License-Identifier: MIT
"""One test, every server: Dovecot, Cyrus (both namespace modes), Courier.

A test module writes its cases once, in a mixin of ``ServerCase``, and
makes one ``unittest.TestCase`` per server with ``for_each_server``:

>>> class Delete(ServerCase):            # not collected: no server set
...     def test_once(self): ...
>>> globals().update(for_each_server(Delete))
>>> # -> DeleteDovecot, DeleteCyrus, DeleteCyrusAlt, DeleteCourier

Each generated class starts its server once (``setUpClass``) and hands each
test users of its own (``take_user``), like ``harness.sweepd.DovecotCase``.
Names of folders come from what the server says (NAMESPACE): ``folder("a",
"b")`` is ``INBOX.a.b`` on Cyrus and Courier, ``a/b`` on Dovecot and on
Cyrus with altnamespace.  ``-k Cyrus`` runs both Cyrus modes; ``-k
CyrusAlt``, ``-k Courier``, ``-k Dovecot`` one server.

The servers (``SERVERS``):

============  ==========================================================
``Dovecot``   harness.dovecot.Dovecot: SPECIAL-USE, MOVE, ESEARCH...
``Cyrus``     Cyrus 3.6, Debian's namespace: ``INBOX.`` and ``.``
``CyrusAlt``  Cyrus 3.6, altnamespace + unixhierarchysep: ``""`` and ``/``
``Courier``   Courier-IMAP 5.0, enhanced IDLE: ``INBOX.``, ``.``, no
              SPECIAL-USE, no MOVE
============  ==========================================================

and, only where a test names them (``POLLING_SERVERS``), ``CourierPolling``
(Debian's default IMAP_ENHANCEDIDLE=0) and ``CyrusPolling`` (no idled),
whose IDLE only polls, every ``POLLING_IDLE_S`` seconds here.
$IMAPSWEEP_INTEROP_SERVERS (e.g. ``Cyrus,Courier``) narrows the default set.
"""

from __future__ import annotations

import os
import unittest
from typing import Any, Callable, Iterator, Sequence

from .mail import Imap
from .sweepd import SweepConfig, Sweepd, dovecot_account

#: Factories by name: each takes the number of users.
SERVERS: dict[str, Callable[[int], Any]] = {}


def _dovecot(users: int) -> Any:
    from .dovecot import Dovecot

    return Dovecot(users=users, max_userip_connections=100, tls_variants=False)


def _cyrus(users: int) -> Any:
    from .cyrus import Cyrus

    return Cyrus(users=users)


def _cyrus_alt(users: int) -> Any:
    from .cyrus import Cyrus

    return Cyrus(users=users, altnamespace=True)


def _courier(users: int) -> Any:
    from .courier import Courier

    return Courier(users=users)


def _courier_polling(users: int) -> Any:
    from .courier import Courier

    return Courier(users=users, enhanced_idle=False, idle_timeout=POLLING_IDLE_S)


def _cyrus_polling(users: int) -> Any:
    from .cyrus import Cyrus

    return Cyrus(users=users, idled=False, idle_poll=POLLING_IDLE_S)


#: How often the servers whose IDLE only polls look for changes (60 s by
#: default on both; shorter here so that a test takes seconds).
POLLING_IDLE_S = 5

SERVERS.update({"Dovecot": _dovecot, "Cyrus": _cyrus, "CyrusAlt": _cyrus_alt, "Courier": _courier,
                "CourierPolling": _courier_polling, "CyrusPolling": _cyrus_polling})  # fmt: skip
#: The servers every interop case runs against (the polling ones only where named).
DEFAULT_SERVERS = ("Dovecot", "Cyrus", "CyrusAlt", "Courier")
#: Servers whose IDLE polls every POLLING_IDLE_S: Courier with Debian's
#: IMAP_ENHANCEDIDLE=0, Cyrus without idled.
POLLING_SERVERS = ("CourierPolling", "CyrusPolling")


def selected_servers() -> list[str]:
    """The server names to run: $IMAPSWEEP_INTEROP_SERVERS (comma-separated) or DEFAULT_SERVERS."""
    env = os.environ.get("IMAPSWEEP_INTEROP_SERVERS", "")
    names = [n.strip() for n in env.split(",") if n.strip()] or list(DEFAULT_SERVERS)
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise AssertionError(f"unknown server(s) {unknown} in IMAPSWEEP_INTEROP_SERVERS; known: {list(SERVERS)}")
    return names


def servers() -> Iterator[tuple[str, Callable[[int], Any]]]:
    """(name, factory) of every selected server."""
    for name in selected_servers():
        yield name, SERVERS[name]


def account(server: Any, user: int, **kw: Any) -> dict[str, Any]:
    """Account settings for ``user`` of any test server (Dovecot's shape)."""
    return dovecot_account(server, user, **kw)


class ServerCase(unittest.TestCase):
    """Base of the per-server test classes (see the module docstring).

    Class attributes: ``server_name`` (set by ``for_each_server``),
    ``users``.  After ``setUpClass``: ``server``, ``prefix`` and ``sep``
    (the personal namespace), ``capabilities`` (after login).
    """

    server_name = ""
    users = 16
    server: Any
    prefix = ""
    sep = "/"
    capabilities: frozenset[str] = frozenset()
    _next_user = 1

    @classmethod
    def setUpClass(cls) -> None:
        if not cls.server_name:
            raise unittest.SkipTest("a ServerCase mixin, not a test class")
        cls._next_user = 1
        cls.server = SERVERS[cls.server_name](cls.users)
        cls.server.__enter__()
        try:
            with cls.server.imap(cls.users) as im:
                cls.prefix, cls.sep = im.namespace()
                cls.capabilities = frozenset(im.capabilities)
        except BaseException:
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.cleanup()

    # -- users, folders ------------------------------------------------------
    def take_user(self) -> int:
        """A user no other test of this class has touched (the last one is kept for setUpClass)."""
        cls = type(self)
        n = cls._next_user
        if n >= cls.users:
            raise AssertionError(f"{cls.__name__} needs more than {cls.users - 1} users: raise `users`")
        cls._next_user = n + 1
        return n

    def folder(self, *parts: str) -> str:
        """A personal folder's full name: the namespace prefix, parts joined by the separator."""
        return self.prefix + self.sep.join(parts)

    def trash_name(self) -> str:
        """The folder named Trash that every test server has."""
        return self.folder("Trash")

    def has(self, capability: str) -> bool:
        return capability.upper() in {c.upper() for c in self.capabilities}

    def assert_unseen(self, im: Imap, *mailboxes: str) -> None:
        """No message in ``mailboxes`` (default INBOX) carries \\Seen."""
        for mb in mailboxes or ("INBOX",):
            self.assertEqual(im.seen(mb), set(), f"{mb}: a message gained \\Seen")

    def oracle(self, user: int, mode: str = "plain") -> Imap:
        """The independent imaplib client for ``user``, logged out after the test."""
        im = self.server.imap(user, mode=mode)
        self.addCleanup(im.logout)
        return im

    def config(self, **kw: Any) -> SweepConfig:
        cfg = SweepConfig(**kw)
        self.addCleanup(cfg.cleanup)
        return cfg

    def account(self, user: int, **kw: Any) -> dict[str, Any]:
        return account(self.server, user, **kw)

    def daemon(self, cfg: SweepConfig, *args: str, **kw: Any) -> Sweepd:
        """A continuous-mode daemon, stopped after the test; its log is printed on failure."""
        d = Sweepd(cfg, *args, **kw)
        self.addCleanup(d.__exit__, None, None, None)
        self.addCleanup(self._dump_on_failure, d)
        return d

    def _dump_on_failure(self, d: Sweepd) -> None:
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is not None and any(t is self for t, _ in result.failures + result.errors)
        if failed or not getattr(outcome, "success", True):
            print(f"--- imapsweepd log tail ---\n{d.tail(60)}")
            print(f"--- {self.server_name} log tail ---\n{self.server.log_tail(40)}")


def for_each_server(mixin: type, names: Sequence[str] | None = None) -> dict[str, type]:
    """{MixinServer: class} for each selected server (or each of ``names``)."""
    out = {}
    for name in names or selected_servers():
        cls_name = f"{mixin.__name__}{name}"
        out[cls_name] = type(cls_name, (mixin,), {"server_name": name, "__module__": mixin.__module__,
                                                  "__qualname__": cls_name})  # fmt: skip
    return out


def load_tests_without_mixins(module_globals: dict[str, Any]) -> Callable[..., unittest.TestSuite]:
    """A ``load_tests`` that leaves out the mixins (classes without a server)."""

    def load_tests(loader: unittest.TestLoader, tests: unittest.TestSuite, pattern: str | None) -> unittest.TestSuite:
        suite = unittest.TestSuite()
        for obj in module_globals.values():
            if isinstance(obj, type) and issubclass(obj, ServerCase) and obj.server_name:
                suite.addTests(loader.loadTestsFromTestCase(obj))
        return suite

    return load_tests


__all__ = ["DEFAULT_SERVERS", "POLLING_IDLE_S", "POLLING_SERVERS", "SERVERS", "ServerCase", "account", "for_each_server", "load_tests_without_mixins", "selected_servers",
           "servers"]  # fmt: skip
