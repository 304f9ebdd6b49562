"""Dependencies chosen by platform: a Linux aarch64 board (Raspberry Pi, Jetson) gets TensorFlow's
full build (tensorflow-cpu publishes no aarch64 wheel) and no LiteRT (none there either: the kiosk
serves the .keras model), and every dependency it gets has a wheel for it.

pip evaluates environment markers for the machine it runs on, even with --platform, so the
markers are evaluated here for each target (with `packaging`, pip's own library) and pip checks
that the requirements they select have wheels for that target (`pip install --dry-run
--platform ... --only-binary=:all:`). That check asks the package index, so it is slow (it
fetches the wheels' metadata) and runs as a CI step (.ci/run)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def environment(system: str, machine: str, python: str = "3.11") -> dict[str, str]:
    return {"platform_system": system, "platform_machine": machine, "python_version": python,
            "python_full_version": f"{python}.0", "sys_platform": {"Linux": "linux", "Darwin": "darwin"}.get(system, "win32"),
            "os_name": "nt" if system == "Windows" else "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_release": "", "platform_version": "",
            "implementation_version": f"{python}.0", "extra": ""}


def selected(env: dict[str, str]) -> list[Requirement]:
    """The project's dependencies whose markers hold in `env`, markers removed."""
    chosen = []
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(env):
            requirement.marker = None
            chosen.append(requirement)
    return chosen


@pytest.mark.parametrize(("system", "machine", "tensorflow", "litert"), [
    ("Linux", "x86_64", "tensorflow-cpu", True),
    ("Linux", "aarch64", "tensorflow", False),   # Raspberry Pi OS 64-bit, Jetson
    ("Darwin", "arm64", "tensorflow", True),
    ("Windows", "AMD64", "tensorflow-cpu", True),
])
def test_each_platform_gets_one_tensorflow_and_litert_where_it_has_wheels(system, machine, tensorflow, litert):
    names = [r.name for r in selected(environment(system, machine))]
    assert [n for n in names if n.startswith("tensorflow")] == [tensorflow]
    assert ("ai-edge-litert" in names) == litert


# Debian 12 and Raspberry Pi OS bookworm have glibc 2.36: wheels for manylinux 2.17 to 2.36 install there.
AARCH64_PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 37))]


@pytest.mark.slow
def test_every_dependency_has_a_wheel_for_linux_aarch64(tmp_path):
    requirements = [str(r) for r in selected(environment("Linux", "aarch64"))]
    platforms = [option for platform in AARCH64_PLATFORMS for option in ("--platform", platform)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target", str(tmp_path / "t"),
         *platforms, "--python-version", "3.11", "--only-binary=:all:", *requirements],
        capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    would = next(line for line in done.stdout.splitlines() if line.startswith("Would install"))
    assert " tensorflow-2." in would and "tensorflow-cpu" not in would and "PySide6_Essentials" in would, would
