"""ORL / AT&T faces: where they are and the door protocol of their README (benchmarks and tests).

40 people photographed by one camera in one room, none of them in LFW: the one-camera check of
the door. Never used to train or fit anything.
"""
from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

ORL_ENV_VAR = "ORL_DIR"
ENROLL_PHOTOS = 3


def locate_orl(orl_dir: str | None, cache_dir: Path) -> Path:
    """The folder of sNN/ people folders: given, or unpacked from orl_faces.tar.gz into `cache_dir`."""
    given = orl_dir or os.environ.get(ORL_ENV_VAR)
    if not given:
        raise SystemExit(f"error: give the ORL folder with --orl-dir or ${ORL_ENV_VAR}")
    root = Path(given).expanduser()
    for candidate in (root, root / "orl_faces"):
        if candidate.is_dir() and any(candidate.glob("s*/*.png")):
            return candidate
    archive = root / "orl_faces.tar.gz"
    if not archive.exists():
        raise SystemExit(f"error: {root} holds neither sNN/ folders nor orl_faces.tar.gz")
    target = cache_dir / "orl" / "orl_faces"
    if not any(target.glob("s*/*.png")):
        # Unpacked beside the target and moved into place whole: a reader never sees half a set.
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            try:
                os.replace(Path(scratch) / "orl_faces", target)
            except OSError:
                if not any(target.glob("s*/*.png")):  # another process unpacked it meanwhile: fine
                    raise
    return target


def orl_protocol(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]], dict[str, list[Path]]]:
    """(enrolment photos, genuine probes, stranger probes), each by person folder name."""
    people = sorted(p for p in root.iterdir() if p.is_dir())
    enrol, genuine, strangers = {}, {}, {}
    for position, folder in enumerate(people):
        photos = sorted(folder.glob("*.png"))
        if position % 2 == 0:
            enrol[folder.name], genuine[folder.name] = photos[:ENROLL_PHOTOS], photos[ENROLL_PHOTOS:]
        else:
            strangers[folder.name] = photos
    return enrol, genuine, strangers


