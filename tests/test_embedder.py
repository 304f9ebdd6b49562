"""The Embedder's two runtimes: the TFLite backbone export ships and the .keras model.

A tiny real backbone is exported with the project's own export; both runtimes must give the
same embeddings, a TFLite file given alone (as the shipped model is) must serve by itself, and a
TFLite file that is not the one its card describes must be refused.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from kiosk.embedder import Embedder
from kiosk.modelcard import ModelCardError, card_path_for, sha256_of

CROP = 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from training.export import export_model
    from training.model import build_backbone

    backbone = build_backbone(input_size=32, widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), embedding_size=16)
    folder = tmp_path_factory.mktemp("model")
    card = {"threshold": {"value": 0.5, "rule": "a test threshold"}}
    return export_model(backbone, CROP, {"size": CROP, "margin": 0.0}, folder / "tiny.keras", card)


@pytest.fixture
def model_copy(exported, tmp_path):
    """A copy of the exported model's three files that a test may damage."""
    for suffix in (".keras", ".tflite"):
        (tmp_path / f"tiny{suffix}").write_bytes(exported.with_suffix(suffix).read_bytes())
    card_path_for(tmp_path / "tiny.keras").write_bytes(card_path_for(exported).read_bytes())
    return tmp_path / "tiny.keras"


def crops(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, CROP, CROP, 3), dtype=np.uint8)


def edit_card(model, edit) -> None:
    path = card_path_for(model)
    card = json.loads(path.read_text())
    edit(card)
    path.write_text(json.dumps(card))


def test_export_writes_the_tflite_backbone_its_card_describes(exported):
    entry = json.loads(card_path_for(exported).read_text())["tflite"]
    tflite = exported.with_name(entry["file"])
    assert tflite.name == "tiny.tflite" and tflite.stat().st_size == entry["bytes"]
    assert entry["sha256"] == sha256_of(tflite) and entry["input_size"] == 32


def test_both_runtimes_give_the_same_unit_embeddings_for_any_batch(exported):
    lite, keras_model = Embedder(exported), Embedder(exported, runtime="keras")
    assert (lite.runtime, keras_model.runtime) == ("tflite", "keras")
    for count in (1, 5, 1, 3):  # the interpreter is re-sized whenever the batch changes
        batch = crops(count, seed=count)
        fast, reference = lite.embed_crops(batch), keras_model.embed_crops(batch)
        assert fast.shape == (count, 16) and fast.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(fast, reference, atol=2e-5)
    assert lite.embed_crops(crops(0)).shape == (0, 16)


def test_threads_sharing_one_tflite_embedder_each_get_their_own_result(exported):
    embedder = Embedder(exported)
    inputs = [crops(1 + index % 3, seed=index) for index in range(8)]
    expected = [embedder.embed_crops(batch) for batch in inputs]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        for _ in range(15):
            results[index] = embedder.embed_crops(inputs[index])
            np.testing.assert_allclose(results[index], expected[index], atol=1e-6)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(8))


def test_a_tflite_file_that_is_not_the_cards_is_refused(model_copy):
    tflite = model_copy.with_suffix(".tflite")
    data = bytearray(tflite.read_bytes())
    data[-100] ^= 0xFF
    tflite.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="not the file its card describes"):
        Embedder(model_copy)
    assert Embedder(model_copy, runtime="keras").runtime == "keras"  # asked for: the .keras model is unaffected


def test_a_missing_tflite_file_is_named(model_copy):
    model_copy.with_suffix(".tflite").unlink()
    with pytest.raises(ModelCardError, match="TFLite file not found"):
        Embedder(model_copy)


def test_a_card_without_tflite_serves_the_keras_model(model_copy):
    edit_card(model_copy, lambda card: card.pop("tflite"))
    assert Embedder(model_copy).runtime == "keras"
    with pytest.raises(ModelCardError, match="lists no TFLite file"):
        Embedder(model_copy, runtime="tflite")


def test_an_unknown_runtime_is_refused(exported):
    with pytest.raises(ValueError, match="unknown runtime"):
        Embedder(exported, runtime="onnx")


def tflite_alone(exported, folder):
    """The exported model's TFLite file and card, without the .keras file."""
    tflite = folder / "tiny.tflite"
    tflite.write_bytes(exported.with_suffix(".tflite").read_bytes())
    card_path_for(tflite).write_bytes(card_path_for(exported).read_bytes())
    return tflite


def test_a_tflite_file_given_alone_serves_the_keras_embeddings(exported, tmp_path):
    alone = Embedder(tflite_alone(exported, tmp_path))
    assert alone.runtime == "tflite" and alone.card.path.suffix == ".tflite"
    batch = crops(4, seed=7)
    np.testing.assert_allclose(alone.embed_crops(batch), Embedder(exported, runtime="keras").embed_crops(batch), atol=2e-5)
    with pytest.raises(ModelCardError, match="is a TFLite model"):
        Embedder(tflite_alone(exported, tmp_path), runtime="keras")


def test_without_litert_a_tflite_model_runs_on_tensorflows_interpreter(exported, tmp_path):
    # As on Linux for ARM, where LiteRT publishes no wheel: its import fails, TensorFlow's copy serves.
    tflite = tflite_alone(exported, tmp_path)
    expected = Embedder(tflite).embed_crops(crops(3, seed=3))
    np.save(tmp_path / "crops.npy", crops(3, seed=3))
    script = (
        "import sys, numpy as np; sys.modules['ai_edge_litert'] = None\n"
        "from kiosk.embedder import Embedder\n"
        f"e = Embedder({str(tflite)!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, e.embed_crops(np.load({str(tmp_path / 'crops.npy')!r})))\n"
        "print(e.runtime, 'ai_edge_litert.interpreter' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["tflite", "False"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_float16_weights_halve_the_file_and_barely_move_the_embeddings(tmp_path):
    from training.export import export_model
    from training.model import build_backbone

    backbone = build_backbone(input_size=32, widths=(16, 32, 32, 32), blocks=(1, 1, 1, 1), embedding_size=16)
    card = {"threshold": {"value": 0.5, "rule": "a test threshold"}}
    full = export_model(backbone, CROP, {"size": CROP, "margin": 0.0}, tmp_path / "full" / "m.keras", card)
    half = export_model(backbone, CROP, {"size": CROP, "margin": 0.0}, tmp_path / "half" / "m.keras", card,
                        tflite_weights="float16")
    assert json.loads(card_path_for(half).read_text())["tflite"]["weights"] == "float16"
    sizes = [path.with_suffix(".tflite").stat().st_size for path in (full, half)]
    assert sizes[1] < 0.6 * sizes[0], sizes
    batch = crops(8, seed=1)
    a, b = Embedder(full, runtime="tflite").embed_crops(batch), Embedder(half, runtime="tflite").embed_crops(batch)
    assert 0 < np.abs(a - b).max() < 0.01  # rounded weights: a little different, never another face


def test_the_shipped_model_is_its_float16_tflite_file_within_the_size_budget(engine, astronaut):
    card = engine.card
    assert engine.embedder_runtime == "tflite" and card.path.suffix == ".tflite"
    assert card.raw["tflite"]["weights"] == "float16" and card.path.stat().st_size <= 12e6
    assert card.raw["tflite"]["sha256"] == sha256_of(card.path)
    face = engine.align(astronaut, engine.detect(astronaut))
    vector = engine.embed_crops(face)
    assert vector.shape == (1, card.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)
