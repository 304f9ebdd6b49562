"""The Keras copy of dlib's face-recognition ResNet against dlib itself, on real LFW faces.

For each image: dlib's own pipeline (frontal face detector, 5-point shape predictor,
get_face_chip at 150 px, padding 0.25) cuts the face chip; dlib computes its descriptor of that
chip, and the Keras backbone (training.dlib_resnet, weights read from the same .dat file by our
own reader) computes its descriptor of the identical chip. Reports the largest absolute
difference over every value, and the smallest cosine between the two.

    python benchmarks/dlib_reference.py [--lfw-dir DIR] [--images 48] [--out reports/dlib_reference.json]

Needs the train extra (face-recognition-models, dlib-bin). The images are the first of distinct
DevTrain people (no DevTest person is needed for a numerical check).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from kiosk.images import load_image  # noqa: E402
from kiosk.modelcard import sha256_of  # noqa: E402
from training.dlib_reference import DlibReference  # noqa: E402
from training.dlib_resnet import build_dlib_resnet, default_model_file, read_weights  # noqa: E402
from training.lfw import LFW  # noqa: E402


def run(lfw_dir: str | None, images: int, out: Path, command: str) -> dict:
    lfw = LFW.locate(lfw_dir)
    people = sorted(lfw.people("devtrain"))
    refs = [lfw.images_of([name])[0] for name in people[::max(1, len(people) // (2 * images))]][:2 * images]
    reference = DlibReference()
    started = time.perf_counter()
    weights = read_weights()
    read_seconds = time.perf_counter() - started
    model = build_dlib_resnet(weights, normalize=False)
    chips, used = [], []
    for ref in refs:
        chip = reference.chip(load_image(lfw.image_path(ref)))
        if chip is not None:
            chips.append(chip)
            used.append(ref.relpath)
        if len(chips) == images:
            break
    chips = np.stack(chips)
    theirs = np.stack([reference.descriptor(chip) for chip in chips])
    ours = np.asarray(model(chips.astype(np.float32) / 255.0))
    difference = np.abs(ours - theirs)
    cosines = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    result = {
        "benchmark": "Keras dlib ResNet against dlib's own descriptors (benchmarks/dlib_reference.py)",
        "model_file": str(default_model_file().name), "model_sha256": sha256_of(default_model_file()),
        "seconds_to_read_model_file": round(read_seconds, 2),
        "images": len(chips), "image_files": used,
        "max_abs_difference": float(difference.max()),
        "mean_abs_difference": float(difference.mean()),
        "largest_descriptor_value": float(np.abs(theirs).max()),
        "min_cosine": float(cosines.min()),
        "max_distance_between_descriptors": float(np.linalg.norm(ours - theirs, axis=1).max()),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(out, result)
    atomic_write_bytes(out.with_suffix(".md"), "\n".join([
        "# dlib's face-recognition ResNet: the Keras copy against dlib",
        "",
        f"{len(chips)} LFW images (first image of distinct DevTrain people), each cut into dlib's own 150x150 chip "
        "(frontal face detector, 5-point shape predictor, `get_face_chip`, padding 0.25). dlib's descriptor of "
        "each chip against the Keras backbone's descriptor of the identical chip (weights read from "
        f"`{result['model_file']}` by `training.dlib_format`, {read_seconds:.2f} s):",
        "",
        "| | value |",
        "|---|---|",
        f"| largest absolute difference, over all {difference.size} values | {result['max_abs_difference']:.2e} |",
        f"| mean absolute difference | {result['mean_abs_difference']:.2e} |",
        f"| largest descriptor value (dlib) | {result['largest_descriptor_value']:.3f} |",
        f"| largest Euclidean distance between the two descriptors (dlib's same-person threshold: 0.6) | "
        f"{result['max_distance_between_descriptors']:.2e} |",
        f"| smallest cosine between the two | {result['min_cosine']:.7f} |",
        "",
        f"Command: `{command}`",
        "",
    ]).encode("utf-8"))
    print(f"{len(chips)} chips: max |dlib - keras| = {result['max_abs_difference']:.2e} "
          f"(descriptor values up to {result['largest_descriptor_value']:.3f}), min cosine {result['min_cosine']:.7f}")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--images", type=int, default=48, help="face chips compared (default 48)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "dlib_reference.json")
    args = parser.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/dlib_reference.py", *(sys.argv[1:] if argv is None else argv)])
    run(args.lfw_dir, args.images, args.out, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
