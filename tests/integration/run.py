#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration test runner: ``python3 tests/integration/run.py [-k PATTERN] [-v] [-j N]``.

Discovers tests/integration/test_*.py (unittest), runs them, prints every
test with its time, then a summary with the total wall time.  Exits 0 only
if at least one test ran and every test passed: a failure, an error, a
skip, an expected failure or an unexpected success all make the run fail
(a skipped test is never counted as passed).

Options:
  -k PATTERN   run only tests whose id (module.Class.test) contains PATTERN
               (fnmatch wildcards allowed; repeatable, like unittest -k)
  -v           also print each test's captured output
  -j N         run up to N test modules in parallel, each in its own process
  --timeout S  abort (with a stack dump) if one test runs longer than S s

Environment: IMAPSWEEP_BUILD (default ``build``, relative to the repo root)
says where the binaries are; IMAPSWEEP_KEEP_TMP=1 keeps temporary
directories; IMAPSWEEP_VALGRIND=1 runs daemons under valgrind.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PASS = "PASS"


@dataclass
class Record:
    id: str
    status: str  # PASS FAIL ERROR SKIP XFAIL XPASS
    seconds: float
    detail: str = ""
    output: str = ""


class RecordingResult(unittest.TestResult):
    """Collects one Record per test (and per failed class/module fixture)."""

    def __init__(self, on_record: Any, timeout: float) -> None:
        super().__init__()
        self.buffer = True  # capture each test's stdout/stderr
        self.records: list[Record] = []
        self._on_record = on_record
        self._timeout = timeout
        self._t0 = 0.0
        self._current: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------
    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._arm()
        self._t0 = time.monotonic()
        self._current = {"status": None, "detail": [], "failed_subtests": 0}

    def stopTest(self, test: unittest.TestCase) -> None:
        output = self._captured()
        self._mirrorOutput = False  # the summary prints it; no interleaving
        super().stopTest(test)
        cur = self._current
        status = cur["status"] or ("FAIL" if cur["failed_subtests"] else PASS)
        self._emit(Record(test.id(), status, time.monotonic() - self._t0, "\n".join(cur["detail"]), output))
        self._arm()  # also covers the next class's setUpClass

    def _arm(self) -> None:
        if self._timeout > 0:
            # sys.stderr is a capture buffer during a test: dump to the real one.
            faulthandler.dump_traceback_later(self._timeout, exit=True, file=sys.__stderr__)

    def _captured(self) -> str:
        out = []
        for buf in (getattr(self, "_stdout_buffer", None), getattr(self, "_stderr_buffer", None)):
            if buf is not None:
                out.append(buf.getvalue())
        return "".join(out)

    def _emit(self, record: Record) -> None:
        self.records.append(record)
        self._on_record(record)

    # -- outcomes --------------------------------------------------------------
    def _set(self, test: unittest.TestCase, status: str, detail: str) -> None:
        if not isinstance(test, unittest.TestCase) or not self._current:
            # setUpClass / setUpModule failures arrive without startTest.
            self._emit(Record(str(test), status, 0.0, detail, self._captured()))
            return
        self._current["status"] = status
        if detail:
            self._current["detail"].append(detail)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._set(test, "ERROR", self._exc_info_to_string(err, test))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._set(test, "FAIL", self._exc_info_to_string(err, test))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._set(test, "SKIP", f"skipped: {reason}")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, "XFAIL", "expected failure (a known-broken test is not a pass)")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "XPASS", "unexpected success of a test marked expectedFailure")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None and self._current:
            self._current["failed_subtests"] += 1
            self._current["detail"].append(f"{subtest.id()}:\n{self._exc_info_to_string(err, test)}")


# ---------------------------------------------------------------------------
def print_record(rec: Record, verbose: bool, out: TextIO = sys.stdout) -> None:
    out.write(f"{rec.status:<6} {rec.seconds:7.2f}s  {rec.id}\n")
    if rec.status == "SKIP":
        out.write(f"       {rec.detail} (a skip counts as a failure)\n")
    if verbose and rec.output.strip():
        out.write("".join(f"       | {line}\n" for line in rec.output.rstrip().splitlines()))
    out.flush()


def load_suite(start_dir: Path, patterns: list[str], module: str | None = None) -> unittest.TestSuite:
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    if str(start_dir) not in sys.path:
        sys.path.insert(0, str(start_dir))
    if module:
        return loader.loadTestsFromName(module)
    return loader.discover(str(start_dir), pattern="test_*.py", top_level_dir=str(start_dir))


def run_in_process(start_dir: Path, patterns: list[str], verbose: bool, timeout: float,
                   module: str | None = None) -> list[Record]:  # fmt: skip
    suite = load_suite(start_dir, patterns, module)
    result = RecordingResult(lambda r: print_record(r, verbose) if module is None else None, timeout)
    try:
        suite.run(result)
    finally:
        faulthandler.cancel_dump_traceback_later()
    return result.records


def run_parallel(start_dir: Path, patterns: list[str], verbose: bool, timeout: float, jobs: int) -> list[Record]:
    """One subprocess per test module, up to ``jobs`` at a time."""
    modules = sorted(p.stem for p in start_dir.glob("test_*.py"))
    records: list[Record] = []

    def run_module(name: str) -> list[Record]:
        with tempfile.TemporaryDirectory(prefix="imapsweep-run-") as tmp:
            report = Path(tmp) / "report.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--report", str(report),
                   "--start-dir", str(start_dir), "--timeout", str(timeout)]  # fmt: skip
            for p in patterns:
                cmd += ["-k", p]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if report.exists():
                return [Record(**r) for r in json.loads(report.read_text())]
            tail = (proc.stdout + proc.stderr)[-4000:]
            return [Record(f"{name} (worker)", "ERROR", 0.0, f"worker exited {proc.returncode}:\n{tail}")]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for module_records in pool.map(run_module, modules):
            for rec in module_records:
                print_record(rec, verbose)
            records.extend(module_records)
    return records


def summarize(records: list[Record], wall: float) -> int:
    bad = [r for r in records if r.status != PASS]
    for r in bad:
        if r.status == "SKIP":
            continue
        print("=" * 78)
        print(f"{r.status}: {r.id}")
        print("-" * 78)
        print(r.detail.rstrip())
        if r.output.strip():
            print("--- captured output ---")
            print(r.output.rstrip())
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    print("=" * 78)
    parts = [f"{counts.get(PASS, 0)} passed"] + [f"{n} {s.lower()}" for s, n in sorted(counts.items()) if s != PASS]
    ran = len(records)
    print(f"{ran} tests: {', '.join(parts)}; wall time {wall:.1f}s")
    if ran == 0:
        print("error: no tests ran (check -k)")
        return 1
    if bad:
        print("FAILED" + (" (skips count as failures)" if counts.get("SKIP") else ""))
        return 1
    print("OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="imapsweep integration tests")
    ap.add_argument("-k", dest="patterns", action="append", default=[], help="only tests whose id contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="print captured output of every test")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="test modules to run in parallel")
    ap.add_argument("--timeout", type=float, default=300.0, help="per-test time limit in seconds (0: none)")
    ap.add_argument("--start-dir", type=Path, default=HERE, help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    build = Path(os.environ.get("IMAPSWEEP_BUILD", "build"))
    os.environ["IMAPSWEEP_BUILD"] = str(build if build.is_absolute() else REPO_ROOT / build)
    start_dir = args.start_dir.resolve()

    if args.worker:
        records = run_in_process(start_dir, args.patterns, args.verbose, args.timeout, module=args.worker)
        args.report.write_text(json.dumps([asdict(r) for r in records]))
        return 0

    t0 = time.monotonic()
    print(f"integration tests in {start_dir} (IMAPSWEEP_BUILD={os.environ['IMAPSWEEP_BUILD']})", flush=True)
    if args.jobs > 1:
        records = run_parallel(start_dir, args.patterns, args.verbose, args.timeout, args.jobs)
    else:
        records = run_in_process(start_dir, args.patterns, args.verbose, args.timeout)
    return summarize(records, time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
