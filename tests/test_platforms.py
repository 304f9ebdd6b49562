"""Dependencies chosen by platform: where LiteRT publishes wheels the kiosk runs its TFLite files on
it and installs no TensorFlow; a Linux aarch64 board (Raspberry Pi, Jetson) has no LiteRT 2.x wheel
and gets TensorFlow's full build (tensorflow-cpu publishes no aarch64 wheel either), whose own
interpreter runs the same files; every dependency it gets has a wheel for it. The train extra
brings TensorFlow everywhere.

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


def selected(env: dict[str, str], extra: str | None = None) -> list[Requirement]:
    """The project's dependencies (or an extra's) whose markers hold in `env`, markers removed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chosen = []
    for line in project["optional-dependencies"][extra] if extra else project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(env):
            requirement.marker = None
            chosen.append(requirement)
    return chosen


@pytest.mark.parametrize(("system", "machine", "tensorflow", "litert", "train_tensorflow"), [
    ("Linux", "x86_64", [], True, "tensorflow-cpu"),
    ("Linux", "aarch64", ["tensorflow"], False, "tensorflow"),   # Raspberry Pi OS 64-bit, Jetson
    ("Darwin", "arm64", [], True, "tensorflow"),
    ("Darwin", "x86_64", ["tensorflow"], False, "tensorflow"),
    ("Windows", "AMD64", [], True, "tensorflow-cpu"),
])
def test_the_kiosk_gets_litert_or_else_tensorflow_and_training_gets_tensorflow(system, machine, tensorflow, litert,
                                                                              train_tensorflow):
    names = [r.name for r in selected(environment(system, machine))]
    assert [n for n in names if n.startswith("tensorflow")] == tensorflow
    assert ("ai-edge-litert" in names) == litert
    for extra in ("train", "test"):
        names = [r.name for r in selected(environment(system, machine), extra)]
        assert [n for n in names if n.startswith("tensorflow")] == [train_tensorflow]


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
