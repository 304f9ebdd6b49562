"""Save a trained backbone as the kiosk's model: `.keras` serving model, TFLite backbone, model card JSON."""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from kiosk.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from kiosk.modelcard import card_path_for, scoring_path_for, sha256_of
from kiosk.scoring import LOG_ODDS_PER_UNIT, CosineScoring, Scoring
from kiosk.texture import texture_in_words
from training.backend import DEFAULT_SHRINKAGE, FUSION_NETWORK_SHRINKAGE
from training.chain import chain, chain_seconds
from training.model import build_serving_model
from training.recipe import Recipe
from training.run_folder import load_backbone, load_scoring, read_summary, save_scoring


def export_model(backbone: keras.Model, crop_size: int, alignment: dict, out_path: str | Path, card: dict,
                 scoring: Scoring | None = None, tflite: bytes | None = None, tflite_weights: str = "float32") -> Path:
    """Write the serving model to `out_path`, its TFLite backbone and any fitted scoring beside it,
    then the card that describes them (last, so a card never names files that are not there yet);
    each atomically. `tflite`: the backbone already converted (with `tflite_weights`), when the
    card's threshold was measured on that very file."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    serving = build_serving_model(backbone, crop_size)
    # Keras insists on the .keras suffix, so it saves to a staging name that is then copied atomically.
    staging = out_path.with_name(f".{out_path.stem}.staging.keras")
    serving.save(staging)
    with atomic_path(out_path) as temporary:
        temporary.write_bytes(staging.read_bytes())
    staging.unlink()
    tflite_path = out_path.with_suffix(".tflite")
    atomic_write_bytes(tflite_path, tflite if tflite is not None else backbone_to_tflite(backbone, tflite_weights))
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
        "tflite": {
            "file": tflite_path.name,
            "sha256": sha256_of(tflite_path),
            "bytes": tflite_path.stat().st_size,
            "input_size": int(backbone.input_shape[1]),
            "weights": tflite_weights,
            "covers": f"the backbone only ({tflite_weights} weights): the kiosk resizes and mirrors the crop before it "
                      "and sums and normalises after it with the model's own operations, so both files give the same "
                      "embeddings" + ("" if tflite_weights == "float32" else " up to the weights' rounding"),
        },
        # A texture fusion extends the network's embedding: the gallery stores the longer vector.
        "embedding_size": int(getattr(scoring, "dimension", backbone.output_shape[-1])),
        **_scoring_entries(scoring or CosineScoring(), out_path),
        **card,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "software": {"tensorflow": _version("tensorflow"), "keras": keras.__version__, "python": platform.python_version()},
    }
    atomic_write_json(card_path_for(out_path), full_card)
    return out_path


def _scoring_entries(scoring: Scoring, out_path: Path) -> dict:
    """The card's "similarity" (and "scoring" file, when the scoring has parameters); writes that file."""
    scoring_path = scoring_path_for(out_path)
    save_scoring(scoring_path, scoring)
    if scoring.kind == "cosine":
        return {"similarity": "cosine (dot product of unit vectors); higher = more alike"}
    if scoring.kind == "as-norm":
        similarity = (f"as-norm: the cosine less each face's mean cosine with its {scoring.top_k} nearest cohort "
                      f"images, over their spread, averaged over both faces, read as {scoring.centre:.4f} + "
                      f"{scoring.spread:.4f} x that (kiosk.scoring); higher = more alike")
        fitted = f"cohort: the embeddings of the {len(scoring.cohort)} training images (float16)"
    elif scoring.kind == "cosine+texture":
        similarity = (f"cosine+texture: 0.5 + calibrated log-odds of 'same person' / {LOG_ODDS_PER_UNIT:g}, from the "
                      "network's cosine and Joint Bayesian ratios of its vectors and of LBP and LPQ texture vectors "
                      "(kiosk.scoring, kiosk.texture); higher = more alike")
        fitted = (f"texture: {texture_in_words(scoring.texture)} (float16) and a Joint Bayesian on them; a Joint "
                  f"Bayesian on the training people's network vectors (within-person covariance shrunk by "
                  f"{FUSION_NETWORK_SHRINKAGE:g}x its mean eigenvalue); the three scores' weights by logistic regression "
                  "on the validation pairs")
    else:
        similarity = (f"joint-bayesian: 0.5 + calibrated log-odds of 'same person' / {LOG_ODDS_PER_UNIT:g} "
                      "(kiosk.scoring); higher = more alike")
        fitted = ("log-likelihood ratio fitted on the training people's embeddings (within-person covariance "
                  f"shrunk by {DEFAULT_SHRINKAGE:g}x its mean eigenvalue), logistic calibration on the validation pairs")
    return {
        "similarity": similarity,
        "scoring": {"kind": scoring.kind, "file": scoring_path.name, "sha256": sha256_of(scoring_path),
                    "bytes": scoring_path.stat().st_size, "fitted": fitted},
    }


TFLITE_WEIGHTS = ("float32", "float16", "int8")


def backbone_to_tflite(backbone: keras.Model, weights: str = "float32") -> bytes:
    """The backbone as a TFLite flatbuffer with float32, float16 or int8 weights (computed in float32).

    Only the backbone: TFLite has no kernel for the serving model's antialiased resize
    (ScaleAndTranslate, not even as a Flex op), so kiosk.embedder runs that part in TensorFlow.
    """
    import tensorflow as tf

    if weights not in TFLITE_WEIGHTS:  # before the export, which takes seconds
        raise ValueError(f"weights must be one of {', '.join(TFLITE_WEIGHTS)}, got {weights!r}")
    with tempfile.TemporaryDirectory() as folder:
        backbone.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if weights != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "unknown"


def export_run(run_dir: Path, lfw, prepared, out_path: Path, target_far: float) -> Path:
    """Export the backbone of a finished run folder; the threshold is set on its validation people."""
    from training.experiment import HeldOutPeople, protocol_checksums, split_for
    from training.metrics import accuracy_at

    summary = read_summary(Path(run_dir))
    recipe, scores = Recipe.from_json(summary["recipe"]), summary["scores"]
    backbone = load_backbone(run_dir, recipe)
    scoring = load_scoring(run_dir, recipe)
    held_out = HeldOutPeople.embed(build_serving_model(backbone, prepared.crops.shape[1]), prepared,
                                   split_for(recipe, lfw, prepared), scoring)
    threshold, rule = held_out.door_threshold(target_far)
    test = dict(summary["test"])
    test["accuracy_at_threshold"] = accuracy_at(np.array(scores["test"]), np.array(scores["same"]), threshold)
    card = {
        "threshold": {"value": threshold, "target_far": target_far, "rule": rule, "why": THRESHOLD_WHY},
        "impostor_far_table": held_out.far_table(),
        "devtest": {key: test[key] for key in ("pairs", "accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e2",
                                              "tar_at_far_1e3", "accuracy_at_threshold")},
        "devtest_protocol": "LFW View 1: trained on peopleDevTrain.txt only (minus a held-out validation slice); "
                            "accuracy with 10-fold cross-validated thresholds on the 1,000 pairs of pairsDevTest.txt; "
                            "accuracy_at_threshold uses the threshold above",
        "devtest_pairs_with_undetected_face": summary["test_pairs_with_undetected_face"],
        "validation": summary["validation"],
        "recipe": summary["recipe"],
        "training": {
            "command": training_command(Path(run_dir), summary),
            # A distilled model needs its teachers first: their commands, in order, and their time.
            "needs_first": [training_command(folder, read_summary(folder)) for folder in chain(Path(run_dir))[:-1]],
            "seconds": round(chain_seconds(Path(run_dir)), 1),
            "best_epoch": summary["best_epoch"],
            "images": summary["train_images"],
            "identities": summary["train_identities"],
            "machine": f"{os.cpu_count()} CPU cores, no GPU",
        },
        "export_command": f"python -m training export {run_dir} --out {out_path} --target-far {target_far:g}",
        "data": {"lfw_images": prepared.summary["images"], "lfw_undetected": prepared.summary["undetected"],
                 "protocol_sha256": protocol_checksums(lfw)},
    }
    return export_model(backbone, prepared.crops.shape[1], prepared.summary["alignment"], out_path, card, scoring)


def training_command(run_dir: Path, summary: dict) -> str:
    """The `train` command that reproduces a run, rebuilt from the recipes it recorded."""
    recipe, defaults = summary["recipe"], Recipe()
    parts = ["python -m training train", f"--loss {recipe['loss']}"]
    pretrain_path = run_dir / "pretrain" / "summary.json"
    if pretrain_path.exists():
        pretrain = json.loads(pretrain_path.read_text())["recipe"]
        parts.append(f"--pretrain-epochs {pretrain['epochs']}")
        parts += _non_default_flags(pretrain, defaults, (("min_images", "--pretrain-min-images"),
                                                         ("sampling", "--pretrain-sampling")))
    elif recipe["init"]:
        parts.append(f"--init {recipe['init']}" + (" --freeze" if recipe["freeze"] else ""))
    if not recipe["augment"]:
        parts.append("--no-augment")
    parts += _non_default_flags(recipe, defaults, (
        ("min_images", "--min-images"), ("sampling", "--sampling"), ("epochs", "--epochs"),
        ("steps_per_epoch", "--steps"), ("input_size", "--input-size"),
        ("embedding_size", "--embedding-size"), ("identities_per_batch", "--identities-per-batch"),
        ("images_per_identity", "--images-per-identity"), ("margin", "--margin"), ("learning_rate", "--learning-rate"),
        ("backbone_learning_rate", "--backbone-learning-rate"),
        ("weight_decay", "--weight-decay"), ("mixed_precision", "--mixed-precision"),
        ("occlusion_prob", "--occlusion-prob"), ("sunglasses_prob", "--sunglasses-prob"),
        ("ema_decay", "--ema-decay"), ("memory_batches", "--memory-batches"), ("seed", "--seed"),
        ("split_seed", "--split-seed"), ("scoring", "--scoring")))
    if recipe.get("distill_from"):
        parts.append("--distill-from " + " ".join(recipe["distill_from"]))
        parts += _non_default_flags(recipe, defaults, (("distill_weight", "--distill-weight"),))
    return " ".join(parts + [f"--out {run_dir}"])


def _non_default_flags(recipe: dict, defaults, flags: tuple[tuple[str, str], ...]) -> list[str]:
    """`--flag value` for each recipe field that differs from the default (older runs lack some fields)."""
    parts = []
    for key, flag in flags:
        value = recipe.get(key, getattr(defaults, key))
        if value == getattr(defaults, key):
            continue
        if isinstance(value, bool):
            parts.append(flag)  # a switch: only ever written when on (off is the default)
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return parts


# Why the door's threshold is set by a false-accept rate, and this one by default.
THRESHOLD_WHY = (
    "A door must bound how often a stranger gets in, so the threshold is fixed by a false-accept rate measured "
    "on people the model never saw, not by best accuracy. The kiosk additionally needs several consecutive "
    "frames to agree on the same enrolled person before it grants, which filters one-frame flukes (but not a "
    "true look-alike: frames of one face are strongly correlated, so do not multiply the rates)."
)
