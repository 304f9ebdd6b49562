"""Fault 4: a full disk. Each refused write is a clear error, everything earlier stays intact, and
the kiosk works again once space comes back."""
from __future__ import annotations

import cv2
import pytest

from . import diskfull


def assert_survived(figures: diskfull.DiskFullFigures) -> None:
    summary = figures.to_dict()
    assert figures.refusals > 0 and not figures.unclear, summary
    assert figures.lost == 0 and figures.integrity == "ok", summary
    assert figures.files_intact and figures.leftover_temp_files == 0, summary
    assert figures.recovered, summary
    assert not [p for p in figures.problems if "without templates" not in p], summary  # that one: see test_fault_kills


@pytest.mark.slow
def test_disk_full_then_space_again(tmp_path, astronaut, engine):
    face = tmp_path / "eileen.jpg"
    cv2.imwrite(str(face), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    figures = diskfull.disk_full(tmp_path, face)
    assert_survived(figures)
    if figures.cli_enroll:  # a real small file system: the command line says so in one line
        assert figures.cli_enroll.startswith("exit 1: error: ") and "full" in figures.cli_enroll


def test_file_size_limit_then_space_again(tmp_path):
    # Without a small file system (not root): the writer limits its own file sizes.
    figures = diskfull.DiskFullFigures(method="RLIMIT_FSIZE")
    diskfull._scenario(figures, tmp_path / "data", None, None)
    assert_survived(figures)
