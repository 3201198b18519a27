# SPDX-License-Identifier: MIT
"""scripts/release-check on the real tree and on copies of its release files
that drift: a man page, debian/changelog or NEWS.md naming another version,
a source file without its SPDX line, a missing LICENSE. Each must fail with
its FILE:LINE."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "release-check"


class ReleaseCheckTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tree = Path(tempfile.mkdtemp(prefix="imapsweep-release-check-"))
        self.addCleanup(shutil.rmtree, self.tree)
        for rel in ("Makefile", "LICENSE", "NEWS.md", "debian/changelog", "src/base/util.c", "include/util.h",
                    "scripts/lint", "completion/imapsweepctl", *[f"docs/{p.name}" for p in (ROOT / "docs").glob("*.[1-8]")]):  # fmt: skip
            (self.tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, self.tree / rel)

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(CHECK), str(self.tree)], capture_output=True, text=True, timeout=60)

    def edit(self, rel: str, old: str, new: str) -> None:
        p = self.tree / rel
        text = p.read_text()
        self.assertIn(old, text)
        p.write_text(text.replace(old, new, 1))

    def version(self) -> str:
        for line in (ROOT / "Makefile").read_text().splitlines():
            if line.startswith("VERSION"):
                return line.split("=", 1)[1].strip()
        raise AssertionError("no VERSION in the Makefile")

    def test_the_real_tree_passes(self) -> None:
        r = subprocess.run([sys.executable, str(CHECK), str(ROOT)], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"version {self.version()}", r.stdout)
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_makefile_bumped_alone(self) -> None:
        self.edit("Makefile", f"VERSION    := {self.version()}", "VERSION    := 9.9.9")
        r = self.check()
        self.assertEqual(r.returncode, 1)
        for page in (ROOT / "docs").glob("*.[1-8]"):
            self.assertIn(f"docs/{page.name}:1: .TH does not say \"imapsweep 9.9.9\"", r.stderr)
        self.assertIn(f"debian/changelog:1: version {self.version()} is not the Makefile's 9.9.9", r.stderr)
        self.assertRegex(r.stderr, r"NEWS.md:\d+: the newest entry is not 9.9.9")

    def test_one_man_page_drifts(self) -> None:
        self.edit("docs/imapsweepd.8", f'"imapsweep {self.version()}"', '"imapsweep 0.0.1"')
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn("docs/imapsweepd.8:1: .TH does not say", r.stderr)
        self.assertNotIn("imapsweepctl.1", r.stderr)

    def test_licence(self) -> None:
        self.edit("src/base/util.c", "/* SPDX-License-Identifier: MIT */\n", "")
        self.edit("completion/imapsweepctl", "# SPDX-License-Identifier: MIT\n", "")
        (self.tree / "LICENSE").unlink()
        r = self.check()
        self.assertEqual(r.returncode, 1)
        self.assertIn("src/base/util.c:1: no 'SPDX-License-Identifier: MIT' line", r.stderr)
        self.assertIn("completion/imapsweepctl:1: no 'SPDX", r.stderr)
        self.assertIn("LICENSE:1: missing", r.stderr)
        self.assertNotIn("include/util.h", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=1)
