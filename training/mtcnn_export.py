"""The `mtcnn` package's three networks as TFLite files the kiosk detects faces with.

The kiosk runs them on LiteRT (kiosk.mtcnn_lite) so that it never imports TensorFlow: PNet
with any image size (its input's height and width stay free), RNet and ONet with any batch.
The weights are the package's own (MIT licence); nothing is trained. A manifest beside the
files names their source and holds their digests, which the kiosk checks before loading.
"""
from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from kiosk.atomic import atomic_write_bytes, atomic_write_json
from kiosk.mtcnn_lite import MANIFEST, NETWORKS

# Each network's input: PNet one image of any size, RNet and ONet a batch of square patches.
INPUT_SHAPES = {"pnet": (1, None, None, 3), "rnet": (None, 24, 24, 3), "onet": (None, 48, 48, 3)}
FILE_STEM = "face_detector"  # the files are face_detector_pnet.tflite and so on, beside MANIFEST


def network_tflite(name: str) -> bytes:
    """One of the package's networks with its weights, converted to a float32 TFLite model."""
    import keras
    import tensorflow as tf
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet
    from mtcnn.utils.tensorflow import load_weights

    network = {"pnet": PNet, "rnet": RNet, "onet": ONet}[name]()
    network.build()
    network.set_weights(load_weights(f"{name}.lz4"))
    with tempfile.TemporaryDirectory() as saved:
        # Through a SavedModel: converting the Keras 3 model's function directly leaves its
        # weights out of the file.
        network.export(saved, format="tf_saved_model", verbose=False,
                       input_signature=[keras.InputSpec(shape=INPUT_SHAPES[name], dtype="float32")])
        return tf.lite.TFLiteConverter.from_saved_model(saved).convert()


def export_detector(out_dir: Path, command: str) -> Path:
    """Write the three files and their manifest into `out_dir`; returns the manifest's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    networks = {}
    for name in NETWORKS:
        data = network_tflite(name)
        path = out_dir / f"{FILE_STEM}_{name}.tflite"
        atomic_write_bytes(path, data)
        networks[name] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                          "input": list(INPUT_SHAPES[name])}
    manifest = out_dir / MANIFEST
    atomic_write_json(manifest, {
        "detector": "MTCNN (Zhang et al. 2016): PNet, RNet and ONet, float32",
        "weights": f"the mtcnn package {version('mtcnn')} (PyPI, MIT licence), converted unchanged",
        "networks": networks,
        "export_command": command,
        "exported": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": {"tensorflow": _tensorflow_version()},
    })
    return manifest


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__
