# SPDX-License-Identifier: MIT
"""scripts/lint on small synthetic trees: it passes a clean one and names
each kind of violation in a broken one (the layering, confined third-party
headers, private headers, file size, banned functions, // comments)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "scripts" / "lint"

CLEAN = {
    "include/util.h": '#include <stddef.h>\n',
    "src/base/util.c": '#include "util.h"\n/* fine */\nint x = 1;\n',
    "include/imap_conn.h": '#include "util.h"\n',
    "src/imap/imap_conn.c": '#include "imap_conn.h"\n#include "imap_conn_private.h"\n#include <uv.h>\n',
    "src/imap/imap_conn_private.h": '#include "util.h"\n',
    "src/imap/tls.c": '#include <openssl/ssl.h>\n',
    "include/tls.h": '\n',
    "include/sweep.h": '#include "imap_conn.h"\n',
    "src/sweep/sweep.c": '#include "sweep.h"\n',
    "src/sweep/config.c": '#include <yaml.h>\n#include "sweep.h"\n',
    "include/config.h": '\n',
    "include/daemon.h": '#include "sweep.h"\n',
    "src/service/daemon.c": '#include "daemon.h"\n#include "config.h"\n',
    "src/service/ctl_proto.c": '#include <jansson.h>\n',
    "include/ctl_proto.h": '\n',
    "src/service/notify.c": '#include <systemd/sd-daemon.h>\n',
    "include/notify.h": '\n',
    "tests/unit/test_x.c": '#include <openssl/evp.h>\n#include "daemon.h"\n',
}


def run_lint(files: dict[str, str]) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        r = subprocess.run([sys.executable, str(LINT), tmp], capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr


class LintTest(unittest.TestCase):
    def assert_flags(self, change: dict[str, str], where: str, what: str) -> None:
        rc, out = run_lint({**CLEAN, **change})
        self.assertEqual(rc, 1, out)
        self.assertIn(where, out)
        self.assertIn(what, out)

    def test_clean_tree_passes(self) -> None:
        rc, out = run_lint(CLEAN)
        self.assertEqual(rc, 0, out)
        self.assertIn("lint: ok", out)

    def test_base_including_imap_is_refused(self) -> None:
        self.assert_flags({"src/base/util.c": '#include "imap_conn.h"\n'},
                          "src/base/util.c:1", 'base may not include "imap_conn.h" of the imap layer')

    def test_imap_including_sweep_is_refused(self) -> None:
        self.assert_flags({"src/imap/imap_conn.c": '#include "sweep.h"\n'},
                          "src/imap/imap_conn.c:1", "of the sweep layer")

    def test_public_header_including_upward_is_refused(self) -> None:
        self.assert_flags({"include/imap_conn.h": '#include "daemon.h"\n'},
                          "include/imap_conn.h:1", "of the service layer")

    def test_sweep_including_service_is_refused(self) -> None:
        self.assert_flags({"src/sweep/sweep.c": '#include "ctl_proto.h"\n'},
                          "src/sweep/sweep.c:1", "of the service layer")

    def test_jansson_outside_the_control_protocol_is_refused(self) -> None:
        self.assert_flags({"src/service/daemon.c": '#include <jansson.h>\n'},
                          "src/service/daemon.c:1", "<jansson.h> is confined")

    def test_yaml_outside_the_loader_is_refused(self) -> None:
        self.assert_flags({"src/sweep/sweep.c": '#include <yaml.h>\n'}, "src/sweep/sweep.c:1",
                          "<yaml.h> is confined")

    def test_openssl_outside_tls_and_digest_is_refused(self) -> None:
        self.assert_flags({"src/imap/imap_conn.c": '#include <openssl/evp.h>\n'},
                          "src/imap/imap_conn.c:1", "<openssl/evp.h> is confined")

    def test_systemd_outside_notify_is_refused(self) -> None:
        self.assert_flags({"src/service/daemon.c": '#include <systemd/sd-journal.h>\n'},
                          "src/service/daemon.c:1", "is confined")

    def test_libuv_in_base_is_refused(self) -> None:
        self.assert_flags({"src/base/util.c": '#include <uv.h>\n'}, "src/base/util.c:1",
                          "<uv.h> is confined")

    def test_private_header_of_another_folder_is_refused(self) -> None:
        self.assert_flags({"src/sweep/sweep.c": '#include "imap_conn_private.h"\n'},
                          "src/sweep/sweep.c:1", "private to another folder")

    def test_header_of_no_module_is_refused(self) -> None:
        self.assert_flags({"include/orphan.h": "\n"}, "include/orphan.h:1", "public header of no module")

    def test_long_file_is_refused(self) -> None:
        self.assert_flags({"src/sweep/sweep.c": "int x;\n" * 1001}, "src/sweep/sweep.c:1", "1001 lines")

    def test_banned_function_is_refused(self) -> None:
        self.assert_flags({"src/base/util.c": 'void f(char *d) { strcpy(d, "x"); }\n'},
                          "src/base/util.c:1", "banned function")

    def test_line_comment_is_refused_but_not_in_strings(self) -> None:
        self.assert_flags({"src/base/util.c": 'int x; // no\n'}, "src/base/util.c:1", "use /* */")
        rc, out = run_lint({**CLEAN, "src/base/util.c": 'const char *u = "http://x";\n/* a // b */\n'})
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main()
