"""Mutation check: does the default test run notice when a promise of the kiosk is broken?

Each mutation below is a deliberate, small breakage of one promise (grant only after several
agreeing frames, liveness on by default, the nose-parallax test of a held-up photo, the
decision on disk before the door opens, repeated denials locking the kiosk out). For each one
the script copies the source tree (tracked and untracked files, not the ignored ones) to a
temporary folder, applies the change there, and runs the tests that guard the promise with the
default markers (`slow` tests excluded, exactly as `python -m pytest` runs them). The mutation
is *caught* when those tests fail and *survives* when they pass. The same tests first run on the
unchanged copy, which must pass, so that a failure is the mutation's doing.

Run it before a release, from the repository root, with the test environment set (LFW_DIR,
KIOSK_CACHE_DIR):

    python tools/mutations.py                        # every mutation; writes reports/mutations.md and .json
    python tools/mutations.py --only door_before_commit --no-report

Exit status 1 when a mutation survives, its change no longer applies (the code moved on: update
the list), or the unchanged tree fails its tests; 0 when every mutation is caught.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.atomic import atomic_open, atomic_write_json  # noqa: E402

PIPELINE = "tests/test_liveness_pipeline.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str  # what the kiosk promises, which the change breaks
    path: str  # the file changed, relative to the repository root
    old: str  # text that must occur exactly once in it...
    new: str  # ...and what it becomes
    tests: tuple[str, ...]  # the default-run tests that guard the promise (files or node ids)
    # Other (old, new) forms of the same breakage, for code that has moved on; the first that applies is used.
    alternatives: tuple[tuple[str, str], ...] = ()


MUTATIONS = (
    Mutation(
        "policy_one_frame",
        "a grant needs 3 agreeing frames, not 1",
        "kiosk/policy.py",
        "        frames_required: int = 3,\n",
        "        frames_required: int = 1,\n",
        ("tests/test_policy.py",),
    ),
    Mutation(
        "denials_not_rate_limited",
        "repeated denials lock recognition out for a while",
        "kiosk/runner.py",
        "        if not decision.granted:\n            self.rate_limiter.record_denial()\n",
        "        if not decision.granted:\n            pass\n",
        ("tests/test_liveness.py", PIPELINE),
        # Per-face lockouts: denials counted against the face and the person they claimed to be.
        (("        if not decision.granted:\n            self._count_denial(decision, embeddings[0], track)\n",
          "        if not decision.granted:\n            pass\n"),),
    ),
    Mutation(
        "liveness_off_by_default",
        "a kiosk asks for a head move before every grant unless an admin switched it off",
        "kiosk/settings.py",
        "    liveness: bool = True",
        "    liveness: bool = False",
        ("tests/test_live_settings.py", PIPELINE),
    ),
    Mutation(
        "no_nose_parallax",
        "a flat picture is refused: the nose must move off the plane of the eyes and mouth",
        "kiosk/liveness.py",
        "        if parallax >= self.config.min_parallax and head_shaped and sideways <= moved:\n",
        "        if head_shaped and sideways <= moved:\n",
        ("tests/test_liveness.py", PIPELINE),
    ),
    Mutation(
        "door_before_commit",
        "the decision is committed to the access log before the door opens",
        "kiosk/runner.py",
        "        event = self._log(decision, rgb, faces)\n"
        "        triggered = None\n"
        "        if decision.granted and self.door is not None:\n"
        "            self.door.trigger(event.id, decision.name, self._door_outcomes_put)\n"
        "            triggered = self.door\n",
        "        triggered = None\n"
        "        if decision.granted and self.door is not None:  # open at once, log right after\n"
        "            event_id = self.access_log._conn.execute(\n"
        "                \"SELECT COALESCE(MAX(id), 0) + 1 FROM access_event\").fetchone()[0]\n"
        "            self._door_outcomes_put(event_id, self.door.open_now(event_id, decision.name))\n"
        "            triggered = self.door\n"
        "        event = self._log(decision, rgb, faces)\n",
        ("tests/test_cli.py::test_run_grants_the_enrolled_person_and_denies_the_stranger", "tests/test_door.py"),
    ),
)


@dataclass
class Outcome:
    name: str
    promise: str
    path: str
    tests: list[str]
    verdict: str  # "caught", "survived" or "not applied"
    seconds: float
    detail: str  # the first failing test, or why the change did not apply


def copy_tree(destination: Path) -> None:
    """The working tree as git sees it (tracked and untracked files, ignored ones left out)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """(passed, the first failure or a summary) of the default run of `tests` in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = result.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    summary = lines[-1] if lines else result.stderr.strip()[-300:]
    return result.returncode == 0, (failed[0] if failed else summary)[:300]


def check_imports_from(tree: Path) -> None:
    """The tests must import the copy's kiosk, not the installed checkout's."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    found = subprocess.run([sys.executable, "-c", "import kiosk; print(kiosk.__file__)"], cwd=tree, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"error: the copy imports kiosk from {found}, not from {tree}")


def apply(tree: Path, mutation: Mutation) -> str | None:
    """Change the copy; None when done, else why the change does not apply."""
    path = tree / mutation.path
    text = path.read_text(encoding="utf-8")
    for old, new in ((mutation.old, mutation.new), *mutation.alternatives):
        if text.count(old) == 1:
            path.write_text(text.replace(old, new), encoding="utf-8")
            return None
    return f"the text to change is not (once) in {mutation.path} (the code moved on: update the list)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[m.name for m in MUTATIONS], help="just these mutations")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one mutation's tests (default 900)")
    parser.add_argument("--no-report", action="store_true", help="print only; leave reports/ alone")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kiosk-mutations-") as work:
        pristine = Path(work) / "tree"
        copy_tree(pristine)
        check_imports_from(pristine)
        guarding = tuple(dict.fromkeys(test for m in chosen for test in m.tests))
        print(f"unchanged tree: {' '.join(guarding)}", flush=True)
        clock = time.perf_counter()
        passed, detail = run_tests(pristine, guarding, args.timeout * len(chosen))
        baseline = {"tests": list(guarding), "passed": passed, "seconds": round(time.perf_counter() - clock, 1),
                    "detail": detail}
        print(f"  {'passed' if passed else 'FAILED'} in {baseline['seconds']:.0f} s: {detail}", flush=True)
        if not passed:
            print("error: the unchanged tree fails the tests; fix that first", file=sys.stderr)
            return 1
        outcomes = []
        for mutation in chosen:
            tree = Path(work) / mutation.name
            shutil.copytree(pristine, tree)
            clock = time.perf_counter()
            problem = apply(tree, mutation)
            if problem is None:
                passed, detail = run_tests(tree, mutation.tests, args.timeout)
                verdict = "survived" if passed else "caught"
            else:
                verdict, detail = "not applied", problem
            outcome = Outcome(mutation.name, mutation.promise, mutation.path, list(mutation.tests), verdict,
                              round(time.perf_counter() - clock, 1), detail)
            outcomes.append(outcome)
            print(f"{mutation.name}: {verdict.upper()} in {outcome.seconds:.0f} s: {detail}", flush=True)
            shutil.rmtree(tree)
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
        "baseline": baseline,
        "mutations": [asdict(outcome) for outcome in outcomes],
        "caught": sum(o.verdict == "caught" for o in outcomes),
        "total": len(outcomes),
    }
    print(f"{report['caught']} of {report['total']} mutations caught ({report['seconds']:.0f} s)")
    if not args.no_report:
        reports = ROOT / "reports"
        atomic_write_json(reports / "mutations.json", report)
        with atomic_open(reports / "mutations.md", "w") as handle:
            handle.write(markdown(report))
        print(f"wrote {reports / 'mutations.md'} and mutations.json")
    return 0 if report["caught"] == report["total"] else 1


def markdown(report: dict) -> str:
    lines = [
        "# Mutation check: does the default test run notice a broken promise?",
        "",
        "Each row is one deliberate breakage, applied to a copy of the tree; the tests named ran there with",
        "the default markers (`slow` excluded), as `python -m pytest` runs them. *Caught*: they failed.",
        "Made by `python tools/mutations.py` "
        f"({report['created']}, Python {report['python']}, {report['cpus']} CPUs, {report['seconds'] / 60:.1f} min).",
        "",
        f"Unchanged tree first: {'passed' if report['baseline']['passed'] else 'FAILED'} "
        f"({report['baseline']['seconds']:.0f} s, {report['baseline']['detail']}).",
        "",
        f"**{report['caught']} of {report['total']} caught.**",
        "",
        "| mutation | promise broken | file | verdict | tests run | first failure / result | s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in report["mutations"]:
        verdict = m["verdict"] if m["verdict"] == "caught" else f"**{m['verdict']}**"
        detail = m["detail"].replace("|", "\\|")
        lines.append(f"| `{m['name']}` | {m['promise']} | `{m['path']}` | {verdict} | "
                     f"{', '.join(f'`{t}`' for t in m['tests'])} | {detail} | {m['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
