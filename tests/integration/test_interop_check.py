# SPDX-License-Identifier: MIT
"""scripts/interop-check: how ``make check`` decides about the interop tests.

It runs them when the machine can (root, unshare and overlayfs, the
packages), and otherwise says plainly that it did not, and why: on stderr,
in BUILD/interop-not-run (which make check's last line repeats), exit 0;
with INTEROP=yes a machine that cannot is an error.  Here the machine is
made unable by dropping root (setpriv), so the case runs anywhere; that the
tests do run where they can is what ``make check`` on the CI machine shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT  # noqa: E402

SCRIPT = REPO_ROOT / "scripts" / "interop-check"
NOBODY = 65534


class InteropCheck(unittest.TestCase):
    def setUp(self) -> None:
        self.build = Path(tempfile.mkdtemp(prefix="imapsweep-icheck-"))
        os.chmod(self.build, 0o777)
        self.addCleanup(shutil.rmtree, self.build, True)

    def run_check(self, mode: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [str(SCRIPT), str(self.build)]
        if as_nobody and os.geteuid() == 0:  # otherwise already unprivileged
            argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
        env = dict(os.environ, INTEROP=mode)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    def marker(self) -> str:
        return (self.build / "interop-not-run").read_text().strip()

    def test_interop_no_says_so(self) -> None:
        r = self.run_check("no")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("interop tests NOT RUN: INTEROP=no", r.stderr)
        self.assertEqual(self.marker(), "INTEROP=no")

    def test_not_root_is_said_and_passes(self) -> None:
        r = self.run_check("auto", as_nobody=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("interop tests NOT RUN: not root", r.stderr)
        self.assertTrue(self.marker().startswith("not root"), self.marker())

    def test_interop_yes_on_a_machine_that_cannot_fails(self) -> None:
        r = self.run_check("yes", as_nobody=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("interop tests NOT RUN: not root", r.stderr)

    def test_bad_setting(self) -> None:
        r = self.run_check("maybe")
        self.assertEqual(r.returncode, 2)
        self.assertIn("INTEROP must be auto, yes or no", r.stderr)


if __name__ == "__main__":
    unittest.main()
