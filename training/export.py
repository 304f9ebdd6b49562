"""Save a trained backbone as the kiosk's model: `.keras` serving model + model card JSON."""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import keras

from kiosk.atomic import atomic_path, atomic_write_json
from kiosk.modelcard import card_path_for
from training.model import build_serving_model


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_model(backbone: keras.Model, crop_size: int, alignment: dict, out_path: str | Path, card: dict) -> Path:
    """Write the serving model to `out_path` and its card beside it; both atomically."""
    out_path = Path(out_path)
    serving = build_serving_model(backbone, crop_size)
    # Keras insists on the .keras suffix, so it saves to a staging name that is then copied atomically.
    staging = out_path.with_name(f".{out_path.stem}.staging.keras")
    serving.save(staging)
    with atomic_path(out_path) as temporary:
        temporary.write_bytes(staging.read_bytes())
    staging.unlink()
    full_card = {
        "format": 1,
        "model_file": out_path.name,
        "model_sha256": sha256_of(out_path),
        "model_bytes": out_path.stat().st_size,
        "parameters": int(backbone.count_params()),
        "input": {
            "alignment": alignment,
            "crop": f"{crop_size}x{crop_size} RGB uint8, aligned by kiosk.alignment.align_face",
            "normalisation": f"inside the model: x / 255, resized to {backbone.input_shape[1]} px "
                             "(bilinear, antialiased), mirrored copy embedded too and the two summed",
        },
        "embedding_size": int(backbone.output_shape[-1]),
        "similarity": "cosine (dot product of unit vectors); higher = more alike",
        **card,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "software": {"tensorflow": _version("tensorflow"), "keras": keras.__version__, "python": platform.python_version()},
    }
    atomic_write_json(card_path_for(out_path), full_card)
    return out_path


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "unknown"


def data_checksums(lfw_root: Path, files: tuple[str, ...]) -> dict[str, str]:
    return {name: sha256_of(lfw_root / name) for name in files if (lfw_root / name).exists()}


def load_card(model_path: str | Path) -> dict:
    return json.loads(card_path_for(model_path).read_text())


def export_run(run_dir: Path, summary: dict, lfw, prepared, out_path: Path, command: str) -> Path:
    """Export the backbone of a finished run folder with a card built from its summary."""
    from training.model import build_backbone
    from training.experiment import protocol_checksums

    recipe = summary["recipe"]
    backbone = build_backbone(recipe["input_size"], recipe["embedding_size"])
    backbone.load_weights(Path(run_dir) / "backbone.weights.h5")
    test = summary["test"]
    card = {
        "threshold": {**summary["threshold"],
                      "why": "a door should turn away at least 99 of 100 strangers on a single frame; the kiosk "
                             "also requires several consecutive frames to agree before it grants"},
        "devtest": {key: test[key] for key in ("pairs", "accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e2",
                                              "tar_at_far_1e3", "accuracy_at_threshold")},
        "devtest_protocol": "LFW View 1: trained on peopleDevTrain.txt only (minus a held-out validation slice); "
                            "accuracy with 10-fold cross-validated thresholds on the 1,000 pairs of pairsDevTest.txt",
        "validation": summary["validation"],
        "recipe": recipe,
        "training": {"command": command, "seconds": summary["train_seconds"], "best_epoch": summary["best_epoch"],
                     "images": summary["train_images"], "identities": summary["train_identities"]},
        "data": {"lfw_images": prepared.summary["images"], "lfw_undetected": prepared.summary["undetected"],
                 "protocol_sha256": protocol_checksums(lfw)},
    }
    return export_model(backbone, prepared.crops.shape[1], prepared.summary["alignment"], out_path, card)
