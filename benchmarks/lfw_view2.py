"""LFW View 2 (the ten folds of pairs.txt) through FaceEngine, for a model that is not trained on LFW.

A model trained on LFW must be trained anew for each fold (`python -m training view2`). The shipped
model is not trained on LFW at all: its backbone was trained elsewhere, with every LFW identity
removed, and only its crop template and door threshold were fitted on DevTrain people. So View 2 is
scored here with one model: every image of the 6,000 pairs read from its file, MTCNN, the face
nearest the centre, the engine's alignment and embedding, each pair scored as the kiosk scores.
Each fold is judged at the threshold that is best on the other nine (the LFW protocol); the door's
own threshold (the card's) is reported beside it.

A pair with an image where no face is detected scores below every other pair, as the kiosk would
deny it.

    python benchmarks/lfw_view2.py [--lfw-dir DIR] [--model FILE] [--batch 32] [--out reports/lfw_view2_engine.json]
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

from benchmarks.lfw_devtest import score_pairs  # noqa: E402
from kiosk.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from kiosk.modelcard import sha256_of  # noqa: E402
from training.lfw import LFW  # noqa: E402
from training.lfw_engine import embed_lfw_images  # noqa: E402
from training.metrics import cross_validated_accuracy  # noqa: E402

BATCH = 32  # MTCNN's batched call: about 4x faster on LFW's equal-size images (see lfw_devtest.py)


def run(lfw_dir: str | None, model: str | None, out: Path, batch: int = BATCH) -> dict:
    from kiosk.engine import FaceEngine

    lfw = LFW.locate(lfw_dir)
    engine = FaceEngine(model) if model else FaceEngine()
    pairs = lfw.pairs("view2")
    refs = sorted({ref for pair in pairs for ref in (pair.a, pair.b)})
    print(f"LFW View 2: {len(pairs)} pairs in 10 folds, {len(refs)} images; model {engine.card.path.name}")
    started = time.perf_counter()
    vectors = embed_lfw_images(engine, lfw, refs, batch)
    scores, missing = score_pairs(engine, pairs, vectors)
    same = np.array([pair.same for pair in pairs])
    folds = np.array([pair.fold for pair in pairs])
    mean, std, per_fold = cross_validated_accuracy(scores, same, folds=folds)
    at_card = (scores >= engine.threshold) == same
    result = {
        "benchmark": "LFW View 2 through FaceEngine, one model for all folds (benchmarks/lfw_view2.py)",
        "model": {"file": engine.card.path.name, "sha256": sha256_of(engine.card.path),
                  "card_threshold": engine.threshold},
        "pairs": len(pairs),
        "images": len(refs),
        "accuracy": mean,
        "accuracy_std": std,
        "per_fold": per_fold,
        "accuracy_at_card_threshold": float(at_card.mean()),
        "accuracy_at_card_threshold_per_fold": [float(at_card[folds == k].mean()) for k in range(10)],
        "pairs_with_missing_face": int(missing.sum()),
        "detector_batch": batch,
        "seconds": round(time.perf_counter() - started, 1),
        "command": shlex.join(["python", "benchmarks/lfw_view2.py", *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(out, result)
    atomic_write_bytes(out.with_suffix(".md"), markdown(result).encode())
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    folds = " ".join(f"{100 * a:.1f}" for a in result["per_fold"])
    return "\n".join([
        "# LFW View 2 through FaceEngine",
        "",
        f"Model `{result['model']['file']}` (sha256 `{result['model']['sha256'][:16]}...`), one model for all ten "
        f"folds (nothing in it was trained on LFW). {result['pairs']} pairs of pairs.txt, {result['images']} images, "
        "each read from its file, MTCNN, the face nearest the centre, the kiosk's alignment and embedding.",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy, each fold at the best threshold of the other nine | **{100 * result['accuracy']:.2f}% "
        f"± {100 * result['accuracy_std']:.2f}** |",
        f"| accuracy at the card's threshold ({result['model']['card_threshold']:.4f}, 1% of strangers) | "
        f"{100 * result['accuracy_at_card_threshold']:.2f}% |",
        f"| pairs with an image where no face was found (scored as denied) | {result['pairs_with_missing_face']} |",
        "",
        f"Per fold (%): {folds}.",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s, detector batch {result['detector_batch']}).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--model", help="model file (default: $KIOSK_MODEL or the shipped model)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per MTCNN call; default {BATCH}")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "lfw_view2_engine.json")
    args = parser.parse_args(argv)
    run(args.lfw_dir, args.model, args.out, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(argv=None))
