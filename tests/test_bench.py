"""benchmarks.speed without models: options, statistics, scene geometry, the report and the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.speed.options import (
    SECTIONS,
    BenchError,
    BenchOptions,
    WalkIn,
    quick_options,
)
from benchmarks.speed.report import markdown, write_reports
from benchmarks.speed.scenes import PLAIN, TEXTURED, background, box_inside, iou, place_face
from benchmarks.speed.sequences import face_path
from benchmarks.speed.stats import latency, peak_rss_mb, rss_mb, slope


def test_options_refuse_unknown_sections_and_detectors():
    with pytest.raises(BenchError, match="unknown section.*nope"):
        BenchOptions(sections=("stages", "nope"))
    with pytest.raises(BenchError, match="unknown detector.*turbo"):
        BenchOptions(detectors=("turbo",))
    with pytest.raises(BenchError, match="at least 1"):
        quick_options(long_frames=0)


def test_options_default_to_every_detector_implementation():
    from kiosk.faces import IMPLEMENTATIONS

    assert BenchOptions().detectors == IMPLEMENTATIONS
    assert quick_options(detectors=("package",)).detectors == ("package",)


def test_quick_options_shrink_every_size():
    full, quick = BenchOptions(), quick_options()
    assert quick.quick and quick.sections == SECTIONS
    for field in ("stage_frames", "enrolled_people", "embed_repeats", "match_repeats", "long_frames",
                  "rss_every", "train_steps", "train_images"):
        assert getattr(quick, field) < getattr(full, field), field


def test_latency_median_p90_in_milliseconds():
    figures = latency([0.001 * v for v in range(1, 11)])  # 1..10 ms
    assert figures["n"] == 10
    assert figures["median_ms"] == pytest.approx(5.5)
    assert figures["p90_ms"] == pytest.approx(9.1)
    assert figures["max_ms"] == pytest.approx(10.0)
    assert latency([])["median_ms"] is None


def test_slope_and_memory_readings():
    assert slope([0, 500, 1000], [100.0, 101.0, 102.0]) == pytest.approx(0.002)
    assert slope([5, 5], [1.0, 2.0]) is None
    assert 0 < rss_mb() <= peak_rss_mb() * 1.01


@pytest.mark.parametrize("kind", [PLAIN, TEXTURED])
def test_background_is_deterministic(kind):
    a = background(kind, 64, 48, np.random.default_rng(1))
    b = background(kind, 64, 48, np.random.default_rng(1))
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    if kind == TEXTURED:
        assert a.std() > background(PLAIN, 64, 48, np.random.default_rng(1)).std()


def test_place_face_puts_the_source_box_where_asked():
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[30:70, 40:60] = 255  # a bright "face" filling the source box
    source_box = np.array([40, 30, 60, 70], np.float32)
    scene = np.zeros((200, 300, 3), np.uint8)
    frame, box = place_face(scene, photo, source_box, centre=(150, 100), face_width=60)
    np.testing.assert_allclose(box, [120, 40, 180, 160], atol=1e-4)  # 3x wider, centred on (150, 100)
    assert frame[100, 150].min() > 200  # the face is in the frame, bright
    assert frame[5, 5].max() == 0  # far from the head the background is untouched
    assert box_inside(box, 300, 200) and not box_inside(box, 170, 200)


def test_iou():
    a = np.array([0, 0, 10, 10.0])
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, np.array([5, 0, 15, 10.0])) == pytest.approx(50 / 150)
    assert iou(a, np.array([20, 20, 30, 30.0])) == 0.0


def test_walk_in_path_enters_from_the_side_and_grows():
    phases = WalkIn(empty=2, walk=4, approach=3, stand=5)
    path = face_path(phases, (640, 480))
    assert len(path) == phases.total
    assert path[:2] == [None, None]
    xs = [step[0] for step in path[2:6]]
    assert xs == sorted(xs) and xs[-1] == pytest.approx(320)  # walks in to the middle
    widths = [step[2] for step in path[2:]]
    assert widths[0] == pytest.approx(130) and widths[-1] == pytest.approx(220)
    assert widths == sorted(widths)
    assert face_path(phases, (1280, 720))[-1][2] == pytest.approx(220 * 1.5)  # scaled with the height


def _report(sections: dict) -> dict:
    machine = {"date": "2026-11-28T00:00:00Z", "git_commit": "abc", "git_dirty": False, "cpu_model": "CPU",
               "cpu_cores_usable": 2, "cpu_cores": 2, "memory_gb": 8, "python": "3.11", "tensorflow": "2.21",
               "tensorflow_device": "CPU", "load_average_at_start": [0.1, 0.1, 0.1]}
    return {"command": "python -m benchmarks.speed", "quick": False, "machine": machine, "sections": sections,
            "section_seconds": {}, "peak_rss_mb": 1.0}


def test_reports_are_written_whole_and_name_failed_sections(tmp_path):
    report = _report({"matching": {"embedding_size": 4, "strategy": "best", "templates_per_person": 3,
                                   "templates": {"1000": latency([0.001, 0.002])}},
                      "stages": {"error": "LFWError: LFW_DIR is not set"}})
    json_path, md_path = write_reports(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["sections"]["stages"]["error"].startswith("LFWError")
    text = md_path.read_text()
    assert "## Matching latency" in text and "| 1000 | 1.50 / 1.90 |" in text
    assert "## Per-stage latency" in text and "Not measured: LFWError: LFW_DIR is not set" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bench.json", "bench.md"]  # no temporaries
    assert markdown(report) == text


def test_command_line_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    from benchmarks.speed.__main__ import main

    assert main(["--sections", "stages,warp", "--out", str(tmp_path)]) == 2
    assert "unknown section(s) warp" in capsys.readouterr().err
    assert main(["--detector", "turbo", "--out", str(tmp_path)]) == 2
    assert "unknown detector(s) turbo" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
