# SPDX-License-Identifier: MIT
"""scripts/install-deps as a new user meets it right after boot: another apt
run holds the package manager's lock. It must say what it waits for, wait,
and then install; and give up, with apt's message, only after its timeout.

apt-get and dpkg-query are stand-ins on PATH (nothing is installed); the
policy-rc.d path and the tools folder are the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT  # noqa: E402

LOCKED = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n"
          "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n")  # fmt: skip


class InstallDepsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="imapsweep-install-deps-"))
        self.addCleanup(subprocess.run, ["rm", "-rf", str(self.tmp)])
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        self.calls = self.tmp / "calls"
        # every package is missing
        self.stub("dpkg-query", "exit 1\n")
        (self.tmp / "tools").mkdir()
        self.stub_at(self.tmp / "tools" / "promtool", "exit 0\n")

    def stub(self, name: str, body: str) -> None:
        self.stub_at(self.bin / name, body)

    def stub_at(self, path: Path, body: str) -> None:
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    def apt_get_locked_for(self, n: int) -> None:
        """apt-get fails with the lock message n times, then succeeds."""
        self.stub("apt-get", f'echo "$*" >> {self.calls}\n'
                             f'if [ "$(wc -l < {self.calls})" -le {n} ]; then\n'
                             f"    printf '%s' '{LOCKED}' >&2\n    exit 100\nfi\nexit 0\n")  # fmt: skip

    def run_deps(self, timeout: str = "60") -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PATH=f"{self.bin}:/usr/bin:/bin", IMAPSWEEP_TOOLS=str(self.tmp / "tools"),
                   IMAPSWEEP_POLICY_RC_D=str(self.tmp / "policy-rc.d"), IMAPSWEEP_LOCK_POLL="0.1",
                   IMAPSWEEP_LOCK_TIMEOUT=timeout)  # fmt: skip
        return subprocess.run([str(REPO_ROOT / "scripts" / "install-deps")], capture_output=True, text=True,
                              env=env, timeout=60)  # fmt: skip

    def test_waits_for_the_lock_and_says_so(self) -> None:
        self.apt_get_locked_for(3)
        r = self.run_deps()
        self.assertEqual(r.returncode, 0, r.stderr)
        calls = self.calls.read_text().splitlines()
        # update tried until the lock was free, then install
        self.assertEqual([c.split()[2] for c in calls], ["update"] * 4 + ["install"], calls)
        self.assertIn("DPkg::Lock::Timeout=60", calls[0])
        self.assertIn("install-deps: apt-get update: the package manager is busy: waiting for process 4242 "
                      "(unattended-upgr) to release /var/lib/dpkg/lock-frontend", r.stderr)  # fmt: skip
        self.assertEqual(r.stderr.count("is busy"), 1, "said once, not at every try")
        self.assertIn("install-deps: done", r.stderr)
        # the policy-rc.d that keeps services from starting is gone again
        self.assertFalse((self.tmp / "policy-rc.d").exists())

    def test_gives_up_after_the_timeout(self) -> None:
        self.apt_get_locked_for(10**6)
        r = self.run_deps(timeout="2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("gave up after 2s waiting for the package manager's lock", r.stderr)
        self.assertIn("It is held by process 4242", r.stderr)
        self.assertNotIn("install", [c.split()[2] for c in self.calls.read_text().splitlines()])

    def test_other_failures_are_not_waited_for(self) -> None:
        self.stub("apt-get", f'echo "$*" >> {self.calls}\necho "E: Unable to locate package frob" >&2\nexit 100\n')
        r = self.run_deps()
        self.assertEqual(r.returncode, 1)
        self.assertIn("Unable to locate package frob", r.stderr)
        self.assertEqual(len(self.calls.read_text().splitlines()), 1)
        self.assertNotIn("busy", r.stderr)


if __name__ == "__main__":
    unittest.main()
