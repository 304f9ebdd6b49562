"""Fault 6: many frames through the real runner, memory tracked (the script runs 10,000)."""
from __future__ import annotations

import pytest

from . import longrun


def test_short_run_keeps_going_and_decides(engine, astronaut, tmp_path):
    figures = longrun.long_run(engine, astronaut, tmp_path, frames=60, sample_every=20)
    assert figures.frames == 60 and figures.decisions > 0, figures.to_dict()
    assert figures.analysed_with_faces >= 30, figures.to_dict()  # 6 of every 9 frames show the face


@pytest.mark.slow
def test_memory_does_not_grow_with_frames(engine, astronaut, tmp_path):
    figures = longrun.long_run(engine, astronaut, tmp_path, frames=600, sample_every=50)
    # A leak of a few kilobytes per frame shows as tens of MB per 1000 frames.
    assert figures.slope_mb_per_1000_frames < 15, figures.to_dict()
    assert figures.rss_max_mb - figures.rss_start_mb < 200, figures.to_dict()


def test_memory_slope_is_fitted_after_the_warm_up():
    samples = [(0, 100.0), (100, 400.0)] + [(f, 400.0 + f / 1000) for f in range(200, 1100, 100)]
    assert longrun.memory_slope(samples) == pytest.approx(1.0, abs=0.01)
