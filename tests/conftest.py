"""Shared fixtures: real faces (scikit-image's astronaut, LFW from $LFW_DIR) and one real detector."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _no_operator_log_left():
    """Commands run in-process set up the operator's log (kiosk.logsetup); no test inherits it."""
    yield
    from kiosk.logsetup import reset

    reset()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real photograph with one frontal face (Eileen Collins), 512x512 RGB uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def detector():
    """The process-wide MTCNN detector: built once, as the kiosk does."""
    from kiosk.faces import shared_detector

    return shared_detector()


@pytest.fixture(scope="session")
def lfw(tmp_path_factory):
    """The real LFW copy named by $LFW_DIR (CI sets it); tests using it skip without it."""
    if not os.environ.get("LFW_DIR"):
        pytest.skip("LFW_DIR is not set")
    from training.lfw import LFW

    cache = os.environ.get("KIOSK_CACHE_DIR") or tmp_path_factory.mktemp("lfw-cache")
    return LFW.locate(cache_dir=Path(cache))


@pytest.fixture(scope="session")
def orl(tmp_path_factory):
    """The ORL faces named by $ORL_DIR (CI sets it): one camera, one room; tests using it skip without it."""
    if not os.environ.get("ORL_DIR"):
        pytest.skip("ORL_DIR is not set")
    from benchmarks.orl import locate_orl

    cache = os.environ.get("KIOSK_CACHE_DIR") or tmp_path_factory.mktemp("orl-cache")
    return locate_orl(None, Path(cache))


@pytest.fixture(scope="session")
def engine(detector):
    """The shipped model with the shared detector; tests using it skip until a model is exported."""
    from kiosk.modelcard import default_model_path

    model = default_model_path()
    if not model.exists():
        pytest.skip(f"no trained model at {model} (train and export one: python -m training train --export)")
    from kiosk.engine import shared_engine

    return shared_engine(model, detector)


@pytest.fixture(scope="session")
def tiny_data():
    """A tiny synthetic training split: 6 identities x 3 crops to train on, 4 more crops of 2
    other people to validate on (random pixels: for training mechanics, not accuracy)."""
    from kiosk.alignment import AlignmentSpec
    from training.data import PairSet, Split
    from training.prepare import PreparedLFW

    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (22, 40, 40, 3), dtype=np.uint8)
    train_rows = np.arange(18)
    labels = np.repeat(np.arange(6), 3)
    validation = PairSet(np.array([18, 18, 19, 20]), np.array([19, 20, 21, 21]), np.array([True, False, False, True]))
    split = Split(train_rows, labels, tuple(f"person_{i}" for i in range(6)), validation, validation,
                  frozenset(), "tiny synthetic split")
    names = [f"person_{i}" for i in labels] + ["val_a", "val_a", "val_b", "val_b"]
    spec = AlignmentSpec(40)  # landmarks as if the crops were made at the template
    records = [{"name": name, "detected": True, "landmarks": spec.template().tolist()} for name in names]
    return split, PreparedLFW(Path("unused"), crops, records, {"alignment": spec.to_dict()})
