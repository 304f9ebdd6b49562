"""`prepare` on a tiny LFW-shaped tree of real photographs, and on real LFW when available."""
import json

import cv2
import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec, align_face
from training.__main__ import main as training_main
from training.lfw import LFW
from training.prepare import PreparedLFW, prepare


@pytest.fixture
def tiny_lfw(tmp_path, astronaut):
    """Two photos of one person (real face) and one image with no face at all."""
    face = cv2.resize(astronaut[0:300, 80:380], (250, 250))
    images = {
        "Eileen_Collins/Eileen_Collins_0001.jpg": face,
        "Eileen_Collins/Eileen_Collins_0002.jpg": np.ascontiguousarray(face[:, ::-1]),
        "Empty_Wall/Empty_Wall_0001.jpg": np.full((250, 250, 3), 120, np.uint8),
    }
    for relpath, rgb in images.items():
        path = tmp_path / "lfw" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "lfw-names.txt").write_text("Eileen_Collins\t2\nEmpty_Wall\t1\n")
    return LFW.locate(tmp_path, cache_dir=tmp_path / "cache")


def test_prepare_aligns_with_the_kiosk_pipeline_and_flags_undetected(tiny_lfw, tmp_path, detector):
    prepared = prepare(tiny_lfw, tmp_path / "cache", detector=detector, progress=False)
    assert prepared.crops.shape == (3, 112, 112, 3)
    records = {record["relpath"]: record for record in prepared.records}
    assert records["Eileen_Collins/Eileen_Collins_0001.jpg"]["detected"]
    assert not records["Empty_Wall/Empty_Wall_0001.jpg"]["detected"]
    assert prepared.summary["undetected"] == 1 and prepared.summary["detected"] == 2
    # The crop is exactly what the kiosk's own aligner makes from the same image and landmarks.
    from kiosk.images import load_image

    record = records["Eileen_Collins/Eileen_Collins_0001.jpg"]
    image = load_image(tiny_lfw.images_dir / record["relpath"])
    expected = align_face(image, np.array(record["landmarks"], np.float32), AlignmentSpec())
    row = prepared.positions()[record["relpath"]]
    assert np.abs(prepared.crops[row].astype(int) - expected.astype(int)).max() <= 1
    # The undetected image got the median-landmark fallback, not a blank.
    assert prepared.crops[prepared.positions()["Empty_Wall/Empty_Wall_0001.jpg"]].mean() > 100


def test_prepare_resumes_from_its_shards(tiny_lfw, tmp_path, detector):
    first = prepare(tiny_lfw, tmp_path / "cache", detector=detector, progress=False)
    # Simulate a run killed after its shards were written but before the final files.
    (first.folder / "index.json").unlink()
    (first.folder / "crops.npy").unlink()
    resumed = prepare(tiny_lfw, tmp_path / "cache", detector=detector, progress=False)
    assert resumed.summary["images_processed_this_run"] == 0
    assert np.array_equal(np.asarray(resumed.crops), np.asarray(first.crops))
    assert PreparedLFW.load(first.folder).records == first.records


def test_cache_key_changes_with_the_crop(tiny_lfw, tmp_path, detector):
    a = prepare(tiny_lfw, tmp_path / "cache", detector=detector, progress=False)
    b = prepare(tiny_lfw, tmp_path / "cache", AlignmentSpec(size=96), detector=detector, progress=False)
    assert a.folder != b.folder and b.crops.shape[1] == 96


def test_prepare_command_reports_its_figures(tmp_path, capsys, lfw):
    code = training_main(["prepare", "--lfw-dir", str(lfw.root), "--cache-dir", str(tmp_path), "--limit", "40", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 40
    assert summary["detected"] >= 38
    assert summary["median_alignment_error_px"] < 5


def test_prepare_command_fails_clearly_without_lfw(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LFW_DIR", raising=False)
    assert training_main(["prepare", "--cache-dir", str(tmp_path)]) == 2
    assert "LFW_DIR" in capsys.readouterr().err
