"""Would a TFLite copy of the shipped model make the kiosk faster?

Converts the embedder of `assets/face_embedder.keras` (crop and mirror through the backbone,
summed and normalised) to TFLite twice, float32 and with dynamic-range int8 weights, and
measures on this machine, against the kiosk's own `Embedder` (a Keras model behind one
tf.function), both from the aligner's uint8 crop:

- latency of one crop (the kiosk embeds one face a frame) and throughput at batch 32;
- agreement: cosine between each crop's TFLite and Keras embeddings, and the largest change
  in a pair's similarity, over real aligned LFW crops when a prepare cache exists (else the
  astronaut test photo, shifted).

    python benchmarks/tflite.py [--model FILE] [--crops N] [--out reports/tflite.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from kiosk.bench.stats import latency, timed  # noqa: E402


def convert(model_path: Path, quantize: bool) -> tuple[bytes, int]:
    """The embedder's backbone as TFLite; and its input size.

    TFLite has no kernel for the antialiased resize inside the Keras model (ScaleAndTranslate,
    not even as a Flex op), so only the backbone is converted; LiteEmbedder resizes and mirrors
    with the same TensorFlow ops first and sums and normalises after, as the Keras model does.
    """
    import keras
    import tensorflow as tf

    import training.model  # noqa: F401  registers the custom layers of the saved model

    backbone = keras.saving.load_model(model_path, compile=False).get_layer("embedder").backbone
    with tempfile.TemporaryDirectory() as folder:
        backbone.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert(), backbone.input_shape[1]


class LiteEmbedder:
    """uint8 crops -> embeddings: resize and mirror (TensorFlow), backbone (TFLite), sum and normalise."""

    def __init__(self, flatbuffer: bytes, batch: int, input_size: int) -> None:
        import tensorflow as tf

        from training.model import resize_crops

        self.interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=os.cpu_count())
        index = self.interpreter.get_input_details()[0]["index"]
        self.interpreter.resize_tensor_input(index, [2 * batch, input_size, input_size, 3])
        self.interpreter.allocate_tensors()
        self.input = index
        self.output = self.interpreter.get_output_details()[0]["index"]

        def prepare(crops):
            x = resize_crops(tf.cast(crops, tf.float32) / 255.0, input_size)
            return tf.concat([x, tf.reverse(x, axis=[2])], axis=0)

        self.prepare = tf.function(prepare)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input, np.asarray(self.prepare(crops)))
        self.interpreter.invoke()
        both = self.interpreter.get_tensor(self.output)
        summed = both[:len(crops)] + both[len(crops):]
        return summed / np.linalg.norm(summed, axis=1, keepdims=True)


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

    from kiosk.embedder import Embedder

    embedder = Embedder(args.model)
    crops, source = sample_crops(args.crops, embedder.card.alignment)
    reference = embedder.embed_crops(crops)
    variants = {"keras (the kiosk's Embedder)": {
        "bytes": embedder.card.path.stat().st_size,
        "batch_1": call_latency(embedder.embed_crops, crops[:1], args.repeats),
        "batch_32": call_latency(embedder.embed_crops, crops[:32], max(args.repeats // 10, 5)),
    }}
    for name, quantize in (("tflite float32", False), ("tflite int8 weights", True)):
        flatbuffer, input_size = convert(embedder.card.path, quantize)
        one, many = LiteEmbedder(flatbuffer, 1, input_size), LiteEmbedder(flatbuffer, 32, input_size)
        embedded = np.concatenate([many(chunk) if len(chunk) == 32 else np.concatenate([one(c[None]) for c in chunk])
                                   for chunk in np.array_split(crops, range(32, len(crops), 32))])
        variants[name] = {"bytes": len(flatbuffer), "batch_1": call_latency(one, crops[:1], args.repeats),
                          "batch_32": call_latency(many, crops[:32], max(args.repeats // 10, 5)),
                          **agreement(reference, embedded)}
    report = {"benchmark": "TFLite vs Keras for the shipped embedder (benchmarks/tflite.py)",
              "model": embedder.card.path.name, "model_sha256": embedder.card.raw.get("model_sha256"),
              "crops": source, "cpu_cores": os.cpu_count(), "variants": variants,
              "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic_write_json(args.out, report)
    atomic_write_bytes(args.out.with_suffix(".md"), markdown(report).encode())
    print(markdown(report))
    return 0


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
