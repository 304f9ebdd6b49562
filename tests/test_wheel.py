"""The built wheel, installed (not editable) into a fresh virtual environment, enrols, identifies
and runs headless from there with its installed commands: the model, its card, scoring file and
the sounds travel inside it.

The wheel is installed with its declared dependencies, as `pip install` on a kiosk would, and so
without TensorFlow where LiteRT has wheels: the kiosk's TFLite files run on LiteRT alone. Its
package data and entry points are checked from a working directory outside the checkout, so that
nothing is imported from the source tree; `pip check` there confirms the dependencies are met.

Slow (a wheel build and three model loads): CI runs it as its own step (.ci/run).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.settings import KioskSettings
from tests.videos import read_bgr, write_video

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PERSON = "Jennifer_Capriati"  # as in tests/test_cli.py: probes well clear of the threshold
STRANGER = "Gerhard_Schroeder"


class Installed:
    """A fresh virtual environment holding the built wheel."""

    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir  # outside the checkout: `import kiosk` must find the installed one
        self.bin = venv / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KIOSK_MODEL", "KIOSK_DATA_DIR")}
        self.env["COLUMNS"] = "200"  # --help on one line per option, as the asserts read it

    def run(self, *argv: str | os.PathLike, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a command installed in the environment (its name, e.g. "python")."""
        command = [str(self.bin / str(argv[0])), *map(str, argv[1:])]
        result = subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check:
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(ROOT)],
                   check=True, cwd=base)
    wheel, = (base / "dist").glob("face_kiosk-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = Installed(venv, base)
    installed.run("python", "-m", "pip", "install", "-q", wheel, timeout=1200)
    return installed


def test_the_installed_package_carries_its_model_and_sounds(installed):
    found = json.loads(installed.run("python", "-c", (
        "import json, kiosk, kiosk.modelcard as m, kiosk.sound as s, kiosk.mtcnn_lite as d;"
        "c = m.ModelCard.load(m.default_model_path());"
        "print(json.dumps({'package': kiosk.__file__, 'model': str(c.path), 'tflite': str(c.verified_tflite_path()),"
        "'detector': sorted(str(p) for p in d.detector_files(d.default_detector_dir()).values()),"
        "'scoring': type(c.load_scoring()).__name__, 'scoring_file': 'scoring' in c.raw,"
        "'sounds': sorted(p.name for p in s.SOUNDS_DIR.glob('*.wav'))}))"
    )).stdout)
    venv = str(installed.venv.resolve())
    assert found["package"].startswith(venv) and found["model"].startswith(venv), found
    assert found["tflite"].startswith(venv)
    assert len(found["detector"]) == 3 and all(path.startswith(venv) for path in found["detector"])  # digests checked
    # Every file the card names came along: its TFLite file (the shipped model is that file alone)
    # and, where the card names one, its fitted scoring.
    assert found["scoring"] != "CosineScoring" if found["scoring_file"] else found["model"] == found["tflite"]
    assert found["sounds"] == ["deny.wav", "grant.wav", "prompt.wav"]
    installed.run("python", "-m", "pip", "check")  # the wheel's dependencies are all there
    if sys.platform == "linux" and os.uname().machine == "x86_64":  # LiteRT has wheels here: no TensorFlow
        missing = installed.run("python", "-c", "import tensorflow", check=False)
        assert "No module named 'tensorflow'" in missing.stderr


def test_the_installed_kiosk_enrolls_identifies_and_runs_headless(installed, lfw, tmp_path):
    photos = {name: [lfw.image_path(ref) for ref in lfw.images_of([name])[:14]] for name in (PERSON, STRANGER)}
    data = tmp_path / "data"
    kiosk = ("face-kiosk-admin", "--data-dir", data, "--json")
    enrolled = installed.run(*kiosk, "enroll", PERSON, *photos[PERSON][:3])
    assert json.loads(enrolled.stdout.splitlines()[-1])["templates"] == 3

    identified = installed.run(*kiosk, "identify", photos[PERSON][11], photos[STRANGER][0])
    assert [(r["name"], r["verdict"]) for r in map(json.loads, identified.stdout.splitlines())] == [
        (PERSON, "match"), (None, "unknown")]

    KioskSettings(liveness=False).save(data)  # recognition, not the liveness challenge
    # The enrolled person standing at the door (a photo never enrolled), then a stranger: as in tests/test_cli.py,
    # one person enrolled keeps the door at its strictest, which this photo passes.
    video = write_video(tmp_path / "door.avi", [read_bgr(photos[PERSON][11])] * 10
                        + [read_bgr(p) for p in photos[STRANGER][:10]])
    ran = installed.run(*kiosk, "run", "--headless", "--camera", video)
    assert [(d["decision"], d["name"]) for d in map(json.loads, ran.stdout.splitlines())] == [
        ("granted", PERSON), ("denied", None)]


def test_one_installed_command_per_job_each_named_in_its_help(installed):
    screen = installed.run("face-kiosk", "--help").stdout
    admin = installed.run("face-kiosk-admin", "--help").stdout
    module = installed.run("python", "-m", "kiosk", "--help").stdout
    assert screen.startswith("usage: face-kiosk [") and "--fullscreen" in screen and "face-kiosk-admin" in screen
    assert admin.startswith("usage: face-kiosk-admin [") and "The kiosk screen itself is the command face-kiosk" in admin
    assert all(command in admin for command in ("enroll", "identify", "people", "log", "keys", "run"))
    assert module.startswith("usage: python -m kiosk [")
    assert installed.run("face-kiosk-admin", "--version").stdout == installed.run("face-kiosk", "--version").stdout
