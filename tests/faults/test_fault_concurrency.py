"""Fault 5: the recogniser, `python -m kiosk enroll` and busy writers, all real processes on one
data folder at once: no "database is locked" reaches anyone, no write is lost."""
from __future__ import annotations

import cv2
import pytest

from . import concurrency


@pytest.mark.slow
def test_recogniser_cli_and_writers_at_once(tmp_path, astronaut, engine):
    face = tmp_path / "eileen.jpg"
    cv2.imwrite(str(face), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    figures = concurrency.concurrent_writers(tmp_path, astronaut, face, seconds=10, cli_enrolls=1, writers=2)
    summary = figures.to_dict()
    assert figures.locked_errors == 0 and not figures.problems, summary
    assert figures.lost == 0 and figures.integrity == "ok", summary
    assert figures.recogniser_events > 0 and figures.cli_enrolled == 1, summary
    assert figures.writer_people > 0 and figures.writer_events > 0, summary
    assert figures.log_verify == "ok", summary
