"""TFLite against Keras for the shipped embedder: what the kiosk gains by serving TFLite.

Measures, on the machine it runs on and from the aligner's uint8 crop, the kiosk's `Embedder` with each
runtime: the `.keras` model, the float32 TFLite backbone that export ships beside it (the
kiosk's default), and the same backbone with dynamic-range int8 weights (not shipped; measured
to show what it would cost in agreement):

- latency of one crop (the kiosk embeds one face a frame) and throughput at batch 32;
- agreement: cosine between each crop's embedding and the Keras one, and the largest change
  in a pair's similarity, over real aligned LFW crops when a prepare cache exists (else the
  astronaut test photo, shifted).

    python benchmarks/tflite.py [--model FILE] [--crops N] [--out reports/tflite.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.speed.stats import latency, timed  # noqa: E402
from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from kiosk.embedder import Embedder  # noqa: E402
from kiosk.modelcard import card_path_for, scoring_path_for, sha256_of  # noqa: E402


def int8_copy(model_path: Path, folder: Path) -> Path:
    """A copy of the model in `folder` whose card lists an int8-weight TFLite backbone."""
    import keras

    import training.model  # noqa: F401  registers the custom layers of the saved model
    from training.export import backbone_to_tflite

    copy = folder / model_path.name
    shutil.copy(model_path, copy)
    if scoring_path_for(model_path).exists():  # a fitted scoring travels with its card
        shutil.copy(scoring_path_for(model_path), scoring_path_for(copy))
    backbone = keras.saving.load_model(model_path, compile=False).get_layer("embedder").backbone
    tflite = folder / "int8.tflite"
    tflite.write_bytes(backbone_to_tflite(backbone, "int8"))
    card = json.loads(card_path_for(model_path).read_text())
    card["tflite"] = {**card["tflite"], "file": tflite.name, "sha256": sha256_of(tflite), "bytes": tflite.stat().st_size}
    card_path_for(copy).write_text(json.dumps(card))
    return copy


def call_latency(function, crops: np.ndarray, repeats: int) -> dict:
    """Median and p90 (ms) of `repeats` calls, after one warm-up call."""
    function(crops)
    return latency([timed(function, crops)[1] for _ in range(repeats)])


def sample_crops(count: int, spec) -> tuple[np.ndarray, str]:
    """Real aligned LFW crops of the model's geometry if a prepare cache exists, else a test photo."""
    from training.prepare import largest_prepared

    prepared = largest_prepared(spec)
    if prepared is not None:
        rows = np.random.default_rng(0).choice(len(prepared.crops), size=min(count, len(prepared.crops)), replace=False)
        return np.asarray(prepared.crops[np.sort(rows)]), f"{len(rows)} aligned LFW crops from the prepare cache"
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut()[30:230, 130:330], (spec.size, spec.size))
    crops = np.stack([np.roll(face, (dy, dx), axis=(0, 1)) for dy in range(-4, 4) for dx in range(-4, 4)])
    return crops[:count], f"{min(count, len(crops))} shifted copies of the astronaut photo (no prepare cache)"


def agreement(reference: np.ndarray, other: np.ndarray) -> dict:
    per_crop = np.sum(reference * other, axis=1)
    pair_change = np.abs(reference @ reference.T - other @ other.T)
    return {"min_cosine_to_keras": round(float(per_crop.min()), 6),
            "max_pair_similarity_change": round(float(pair_change.max()), 6)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: the shipped model")
    parser.add_argument("--crops", type=int, default=256, help="crops for the agreement check (default 256)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per figure (default 200)")
    parser.add_argument("--out", type=Path, default=Path("reports/tflite.json"))
    args = parser.parse_args(argv)

    keras_embedder = Embedder(args.model, runtime="keras")
    crops, source = sample_crops(args.crops, keras_embedder.card.alignment)
    reference = keras_embedder.embed_crops(crops)
    variants = {}
    with tempfile.TemporaryDirectory() as folder:
        runtimes = {"keras": keras_embedder,
                    "tflite float32 (the kiosk's default)": Embedder(args.model, runtime="tflite"),
                    "tflite int8 weights (not shipped)":
                        Embedder(int8_copy(keras_embedder.card.path, Path(folder)), runtime="tflite")}
        for name, embedder in runtimes.items():
            embedded = np.concatenate([embedder.embed_crops(chunk) for chunk in np.array_split(crops, range(32, len(crops), 32))])
            served = embedder.card.path if embedder.runtime == "keras" else embedder.card.tflite_path
            variants[name] = {
                "bytes": served.stat().st_size,
                "batch_1": call_latency(embedder.embed_crops, crops[:1], args.repeats),
                "batch_32": call_latency(embedder.embed_crops, crops[:32], max(args.repeats // 10, 5)),
                **agreement(reference, embedded)}
    report = {"benchmark": "The kiosk's Embedder on TFLite and on Keras (benchmarks/tflite.py)",
              "model": keras_embedder.card.path.name, "model_sha256": keras_embedder.card.raw.get("model_sha256"),
              "crops": source, "cpu_cores": _cores(), "variants": variants,
              "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic_write_json(args.out, report)
    atomic_write_bytes(args.out.with_suffix(".md"), markdown(report).encode())
    print(markdown(report))
    return 0


def _cores() -> int:
    """The cores this process may run on (`taskset -c 0` for the one-core figures), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def markdown(report: dict) -> str:
    lines = [f"# {report['benchmark']}", "",
             f"Model `{report['model']}`, {report['cpu_cores']} CPU cores; agreement over {report['crops']}.", "",
             "| runtime | file | 1 crop, median / p90 | 32 crops, median | min cosine to Keras | max change of a pair's similarity |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, v in report["variants"].items():
        lines.append(f"| {name} | {v['bytes'] / 1e6:.2f} MB | {v['batch_1']['median_ms']:.2f} / {v['batch_1']['p90_ms']:.2f} ms "
                     f"| {v['batch_32']['median_ms']:.1f} ms | {v.get('min_cosine_to_keras', 1.0):.6f} "
                     f"| {v.get('max_pair_similarity_change', 0.0):.6f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
