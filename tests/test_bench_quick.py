"""`python -m benchmarks.speed --quick` end to end on the real components: valid reports, every section, positive figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.speed.endtoend import MODES
from benchmarks.speed.options import EMBED_BATCHES, GALLERY_SIZES, SECTIONS
from benchmarks.speed.stages import STAGES
from kiosk.faces import IMPLEMENTATIONS
from kiosk.modelcard import default_model_path

SIZES = ("640x480", "1280x720")


def test_matching_section_alone_writes_both_reports(tmp_path, capsys):
    """The command line in process, with the one section that needs neither LFW nor a detector."""
    from benchmarks.speed.__main__ import main

    assert main(["--quick", "--sections", "matching", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] is True and list(report["sections"]) == ["matching"]
    machine = report["machine"]
    assert machine["cpu_cores"] >= 1 and machine["tensorflow"] and machine["tensorflow_device"]
    assert machine["date"].endswith("Z") and len(machine["git_commit"] or "x" * 40) == 40
    templates = report["sections"]["matching"]["templates"]
    assert list(templates) == [str(n) for n in GALLERY_SIZES]
    assert all(t["n"] == 5 and 0 < t["median_ms"] <= t["p90_ms"] for t in templates.values())
    assert "## Matching latency" in capsys.readouterr().out
    assert (tmp_path / "bench.md").read_text().startswith("# Kiosk benchmark (--quick")


@pytest.fixture(scope="module")
def quick_report(lfw, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-out")
    env = {**os.environ, "KIOSK_CACHE_DIR": os.environ.get("KIOSK_CACHE_DIR") or str(tmp_path_factory.mktemp("cache"))}
    result = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--quick", "--out", str(out)],
                            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "bench.json").read_text())
    report["_markdown"] = (out / "bench.md").read_text()
    report["_stdout"] = result.stdout
    return report


@pytest.mark.slow
@pytest.mark.lfw
class TestQuickRun:
    def test_every_section_for_every_detector(self, quick_report):
        sections = quick_report["sections"]
        assert list(sections) == list(SECTIONS)
        assert not [name for name, result in sections.items() if "error" in result]
        for name in ("stages", "endtoend", "memory"):
            assert tuple(sections[name]) == IMPLEMENTATIONS
        for title in ("Per-stage latency", "End to end", "Embedding throughput", "Matching latency", "Model", "Memory"):
            assert f"## {title}" in quick_report["_markdown"] and f"## {title}" in quick_report["_stdout"]

    def test_stage_latencies(self, quick_report):
        for detector in IMPLEMENTATIONS:
            for size in SIZES:
                r = quick_report["sections"]["stages"][detector][size]
                assert r["frames"] == r["frames_with_face_found"] == 3
                assert r["median_iou_with_placed_face"] > 0.6
                for stage in STAGES:
                    figures = r["stages"][stage]
                    assert figures["n"] == 3 and 0 < figures["median_ms"] <= figures["p90_ms"], (detector, size, stage)
                assert r["frame_total"]["median_ms"] >= r["stages"]["detect"]["median_ms"]

    def test_walk_in_is_granted_to_the_walker(self, quick_report):
        for detector in IMPLEMENTATIONS:
            r = quick_report["sections"]["endtoend"][detector]
            for size in SIZES:
                for mode in MODES:
                    run = r[size][mode]
                    decision = run["decision"]
                    assert decision["granted"], (detector, size, mode, decision)
                    assert decision["name"] == r["walker"].replace("_", " ")
                    entering, whole = decision["from_face_entering"], decision["from_whole_face"]
                    assert 0 < whole["seconds"] <= entering["seconds"]
                    assert 1 <= whole["frames_analysed"] <= entering["frames_analysed"] <= entering["video_frames"]
                    assert run["frames_per_s"] > 0 and run["frames_analysed"] <= run["frames_played"]
                    assert run["cpu_percent"] > 0
                    if mode == "lossless":
                        assert run["frames_dropped"] == 0
            assert r["pace"] == "analysis 15/s, 5/s with nobody in view"  # the default settings' caps

    def test_throughput_model_and_memory(self, quick_report):
        sections = quick_report["sections"]
        assert [int(b) for b in sections["embedding"]["batches"]] == list(EMBED_BATCHES)
        assert all(b["crops_per_s"] > 0 for b in sections["embedding"]["batches"].values())
        model = sections["model"]
        assert model["bytes"] == default_model_path().stat().st_size
        assert model["parameters"] == model["parameters_in_card"] > 0
        assert model["training"]["images_per_s"] > 0 and model["training"]["data"]
        for detector in IMPLEMENTATIONS:
            memory = sections["memory"][detector]
            run = memory["long_run"]
            assert run["frames"] == 20 and [f for f, _ in run["samples"]] == [1, 5, 10, 15, 20]
            assert 0 < run["rss_start_mb"] <= run["rss_max_mb"] <= memory["peak_rss_mb"]
            assert run["rss_slope_mb_per_1000_frames"] is not None
        assert quick_report["peak_rss_mb"] >= max(m["peak_rss_mb"] for m in sections["memory"].values())
