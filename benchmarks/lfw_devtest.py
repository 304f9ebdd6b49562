"""LFW DevTest verification through FaceEngine, exactly as the kiosk scores a face.

Training reports its DevTest figures from the prepared crops in its cache. This benchmark
checks the shipped model the way the kiosk uses it instead: every image of the 1,000 pairs
of pairsDevTest.txt is read from its file (kiosk.images.load_image), run through the
engine's MTCNN detector, the face nearest the image centre is taken (LFW's labelling
convention, kiosk.faces.face_nearest_center), aligned and embedded by the engine, and each
pair is scored as the kiosk scores (FaceEngine.similarity: the card's scoring, kiosk.scoring).

A pair with an image where no face is detected scores -1: the kiosk would deny it. Such pairs
are counted (training instead aligns those images with median landmarks).

Detection is one image per call (`engine.detect`), as the kiosk detects each frame. MTCNN's
batched call (`detector.detect_batch`, `--batch 32`) is about 4x faster on the equal-size LFW
images but does not give exactly the same faces (run twice, one batch gives the same result;
the same image in another batch or alone can come out about a pixel apart, presumably from
floating-point differences that tip which proposal survives). On DevTest (the first shipped model,
2026-11) that changed 51 of the 1,000 pair scores by
more than 0.001 (at most by 0.04) and no decision at the card threshold; the
cross-validated accuracy was 85.9% batched vs 86.1% one by one. So `--batch` is a quick
approximation; with it, the first `--check-batch` images are also detected one by one and
the differences are recorded in the report.

    python benchmarks/lfw_devtest.py [--lfw-dir DIR] [--model FILE] [--out reports/lfw_devtest_engine.json]

The acceptance: the 10-fold cross-validated accuracy is within 0.5 point of the model card's
`devtest.accuracy` (same data, same detector, alignment and model as training used).
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
from kiosk.faces import IMPLEMENTATIONS, Face, face_nearest_center, kiosk_detector  # noqa: E402
from kiosk.images import load_image  # noqa: E402
from kiosk.modelcard import sha256_of  # noqa: E402
from training.lfw import LFW, ImageRef  # noqa: E402
from training.lfw_engine import embed_lfw_images  # noqa: E402
from training.metrics import best_balanced_accuracy, cross_validated_correct, verification_report  # noqa: E402
from training.paired import paired_interval  # noqa: E402

BATCH = 1  # one image per detector call, as the kiosk does (see the module docstring for --batch 32)
CHECK_IMAGES = 64  # with --batch > 1: images also detected one by one, to measure the difference
NO_FACE_MARGIN = 1.0  # a pair with an undetected face scores this far below every other pair: denied, as the kiosk would
ACCEPTANCE_POINTS = 0.5  # |engine accuracy - card accuracy| allowed, in percentage points
# detect() and detect_batch() must agree to this many pixels (boxes and landmarks).
SAME_FACE_TOLERANCE_PX = 0.5
COMPARED = ("accuracy", "accuracy_at_threshold", "auc", "eer", "tar_at_far_1e2", "tar_at_far_1e3")


def same_faces(a: list[Face], b: list[Face], tolerance: float = SAME_FACE_TOLERANCE_PX) -> tuple[bool, float]:
    """(whether two detections agree, the largest coordinate difference in pixels)."""
    if len(a) != len(b):
        return False, float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        worst = max(worst, float(np.abs(x.box - y.box).max()), float(np.abs(x.landmarks - y.landmarks).max()))
    return worst <= tolerance, worst


def check_batching(engine, lfw: LFW, refs: list[ImageRef]) -> dict:
    """Detect `refs` one by one and in one batch; report whether the faces are the same."""
    images = [load_image(lfw.image_path(ref)) for ref in refs]
    batched = engine.detector.detect_batch(images)
    single = [engine.detect(rgb) for rgb in images]
    verdicts = [same_faces(s, b) for s, b in zip(single, batched)]
    differing = [ref.relpath for ref, (ok, _) in zip(refs, verdicts) if not ok]
    chosen_differ = 0
    for rgb, s, b in zip(images, single, batched):
        fs, fb = face_nearest_center(s, rgb.shape), face_nearest_center(b, rgb.shape)
        if (fs is None) != (fb is None) or (fs is not None and not same_faces([fs], [fb])[0]):
            chosen_differ += 1
    finite = [worst for ok, worst in verdicts if np.isfinite(worst)]
    return {
        "images": len(refs),
        "same_faces": not differing,
        "images_differing": differing,
        "subject_face_differs": chosen_differ,
        "max_difference_px": round(max(finite, default=0.0), 4),
        "tolerance_px": SAME_FACE_TOLERANCE_PX,
    }


def score_pairs(engine, pairs, vectors: dict) -> tuple[np.ndarray, np.ndarray]:
    """(score per pair, NO_FACE_MARGIN below the lowest where an image has no face (a fixed floor
    would not do: a fitted scoring's scale has no lower bound); mask of those pairs)."""
    missing = np.array([vectors[pair.a] is None or vectors[pair.b] is None for pair in pairs])
    scores = np.array([np.nan if gone else engine.similarity(vectors[pair.a], vectors[pair.b])
                       for pair, gone in zip(pairs, missing)], np.float64)
    if missing.any():
        scores[missing] = (np.nanmin(scores) if not missing.all() else 0.0) - NO_FACE_MARGIN
    return scores, missing


def door_gap(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    """How much the door's threshold costs against thresholds cross-validated on these pairs, with
    a 95% paired-bootstrap interval: both decide the same pairs,
    so the pairs are resampled once for both (fold thresholds held fixed)."""
    cross_validated, _ = cross_validated_correct(scores, same)
    at_threshold = (scores >= threshold) == same
    gap, low, high = paired_interval(at_threshold, cross_validated)
    return {"cv_accuracy": float(cross_validated.mean()), "accuracy_at_threshold": float(at_threshold.mean()),
            "gap_points": round(100 * gap, 2), "interval_points": [round(100 * low, 2), round(100 * high, 2)]}


def impostor_table_on_new_people(engine, vectors: dict) -> dict:
    """The card's impostor table (thresholds for false-accept rates down to 1e-5, fitted on the
    validation people, which the kiosk reads for its gallery thresholds) against every pair of
    the DevTest images, about 1.2 million different-person pairs of people the model never saw:
    the false-accept rate each threshold really gives on new people, and the true accepts there."""
    from training.experiment import HeldOutPeople

    table = engine.card.raw.get("impostor_far_table", {}).get("thresholds", {})
    refs = [ref for ref, vector in vectors.items() if vector is not None]
    if not table or len(refs) < 2:
        return {}
    # Every pair of these images, scored and split by person as for the validation people's table.
    people = HeldOutPeople(np.stack([vectors[ref] for ref in refs]), np.array([ref.name for ref in refs]), engine.scoring)
    impostor, genuine = people.impostor_scores, people.genuine_scores
    rates = {rate: {"threshold": threshold, "far": float(np.mean(impostor >= threshold)),
                    "tar": float(np.mean(genuine >= threshold))} for rate, threshold in table.items()}
    # The door's gap without the 1,000 pairs' noise: every pair, each class weighed as much.
    every_score = np.concatenate([genuine, impostor])
    every_same = np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]
    best, best_at = best_balanced_accuracy(every_score, every_same)
    at_card = (np.mean(genuine >= engine.threshold) + np.mean(impostor < engine.threshold)) / 2
    return {"impostor_pairs": len(impostor), "genuine_pairs": len(genuine), "rates": rates,
            "balanced_accuracy": {"best": best, "best_threshold": best_at, "at_card_threshold": float(at_card),
                                  "gap_points": round(100 * (best - at_card), 2)}}


def run(lfw_dir: str | None, model: str | None, out: Path, batch: int = BATCH, check_batch: int = CHECK_IMAGES,
        command: str = "", detector: str = "lite") -> dict:
    from kiosk.engine import FaceEngine

    lfw = LFW.locate(lfw_dir)
    pairs = lfw.pairs("devtest")
    refs = sorted({ref for pair in pairs for ref in (pair.a, pair.b)})
    engine = FaceEngine(model, kiosk_detector(detector))
    card = engine.card.raw
    print(f"LFW DevTest: {len(pairs)} pairs, {len(refs)} images; model {engine.card.path.name}, "
          f"threshold {engine.threshold:.4f}")

    batching = None
    if batch > 1 and check_batch > 0:
        batching = check_batching(engine, lfw, refs[:check_batch])
        print(f"detect_batch vs detect on the first {batching['images']} images: "
              f"{'same faces' if batching['same_faces'] else 'DIFFERENT faces'} "
              f"(largest difference {batching['max_difference_px']:.4f} px)")
        if not batching["same_faces"]:
            print(f"  warning: detect_batch moves the faces of {len(batching['images_differing'])} of these images; "
                  "the figures below approximate the kiosk's (run without --batch for the exact ones)")

    start = time.perf_counter()
    vectors = embed_lfw_images(engine, lfw, refs, batch)
    scores, missing = score_pairs(engine, pairs, vectors)
    seconds = time.perf_counter() - start
    same = np.array([pair.same for pair in pairs])
    report = verification_report(scores, same, threshold=engine.threshold).to_dict()
    tail = impostor_table_on_new_people(engine, vectors)
    gap = door_gap(scores, same, engine.threshold)

    card_devtest = card.get("devtest") or {}
    difference_points = {key: round(100 * (report[key] - card_devtest[key]), 2)
                         for key in COMPARED if report.get(key) is not None and card_devtest.get(key) is not None}
    accuracy_gap = difference_points.get("accuracy")
    accepted = accuracy_gap is not None and abs(accuracy_gap) <= ACCEPTANCE_POINTS

    result = {
        "benchmark": "LFW DevTest verification through FaceEngine (benchmarks/lfw_devtest.py)",
        "protocol": {
            "pairs_file": "pairsDevTest.txt",
            "pipeline": "kiosk.images.load_image -> engine.detector (MTCNN) -> face nearest the image centre "
                        "-> engine.embed_faces (five-point alignment + model) -> cosine similarity",
            "detection": f"detect_batch, {batch} images per call" if batch > 1 else "detect, one image per call",
            "detector": f"MTCNN, {detector} implementation (kiosk.faces.FaceDetector)",
            "no_face": f"a pair with an image without a detected face scores {NO_FACE_MARGIN:g} below the lowest "
                       "other pair (denied)",
            "accuracy": "10-fold cross-validated thresholds (training.metrics.verification_report, stratified folds)",
            "accuracy_at_threshold": "accept when score >= the model card threshold",
        },
        "model": {"file": engine.card.path.name, "sha256": sha256_of(engine.card.path),
                  "threshold": engine.threshold, "threshold_rule": engine.card.threshold_rule},
        "lfw": {"root": str(lfw.root), "images_dir": str(lfw.images_dir)},
        "pairs": len(pairs),
        "images": len(refs),
        "images_without_face": sorted(ref.relpath for ref, v in vectors.items() if v is None),
        "pairs_with_missing_face": int(missing.sum()),
        "same_pairs_with_missing_face": int((missing & same).sum()),
        "results": report,
        "card_devtest": card_devtest,
        "card_devtest_pairs_with_undetected_face": card.get("devtest_pairs_with_undetected_face"),
        "difference_points": difference_points,
        "acceptance": {"rule": f"|accuracy - card devtest accuracy| <= {ACCEPTANCE_POINTS} point",
                       "difference_points": accuracy_gap, "passed": accepted},
        "batching_check": batching,
        "door_gap": gap,
        "impostor_table_on_devtest_people": tail,
        "seconds": round(seconds, 1),
        "images_per_second": round(len(refs) / seconds, 2),
        "command": command,
        "scores": scores.round(6).tolist(),
        "same": same.tolist(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    rows = [("accuracy (10-fold CV)", "accuracy"), ("accuracy at card threshold", "accuracy_at_threshold"),
            ("AUC", "auc"), ("EER", "eer"), ("TAR @ FAR 1%", "tar_at_far_1e2"), ("TAR @ FAR 0.1%", "tar_at_far_1e3")]
    lines = [f"{'':<28} {'engine':>9} {'card':>9} {'diff (pt)':>10}"]
    for label, key in rows:
        card_value = card_devtest.get(key)
        lines.append(f"{label:<28} {100 * report[key]:>8.2f}% "
                     f"{'' if card_value is None else f'{100 * card_value:.2f}%':>9} "
                     f"{'' if key not in difference_points else f'{difference_points[key]:+.2f}':>10}")
    print()
    print("\n".join(lines))
    print(f"\naccuracy std over folds {100 * report['accuracy_std']:.2f}; pairs with a missing face "
          f"{result['pairs_with_missing_face']} (card: {result['card_devtest_pairs_with_undetected_face']}); "
          f"{result['seconds']} s, {result['images_per_second']} images/s")
    gap_line = (f"Cross-validated {100 * gap['cv_accuracy']:.1f}%, at the card threshold "
                f"{100 * gap['accuracy_at_threshold']:.1f}%: {gap['gap_points']:.1f} points "
                f"(95% paired bootstrap {gap['interval_points'][0]:.1f} to {gap['interval_points'][1]:.1f}).")
    print(f"\nthe door threshold's cost: {gap_line}")
    tail_rows = [f"| {rate} | {entry['threshold']:.4f} | {entry['far']:.2e} ({entry['far'] / float(rate):.2f}x) | "
                 f"{100 * entry['tar']:.1f}% |" for rate, entry in tail.get("rates", {}).items()]
    if tail:
        print(f"\nthe card's impostor table on every pair of the DevTest images ({tail['impostor_pairs']} "
              f"different-person, {tail['genuine_pairs']} same-person pairs):")
        print("\n".join(tail_rows))
        balanced = tail["balanced_accuracy"]
        balanced_line = (f"On every pair, each class weighed equally: {100 * balanced['best']:.1f}% at the best threshold "
                         f"({balanced['best_threshold']:.3f}), {100 * balanced['at_card_threshold']:.1f}% at the card's: "
                         f"{balanced['gap_points']:.1f} points.")
        print(balanced_line)
    print(f"acceptance (within {ACCEPTANCE_POINTS} point of the card): "
          f"{'PASSED' if accepted else 'FAILED'} ({accuracy_gap:+.2f} points)" if accuracy_gap is not None
          else "acceptance: the card has no devtest accuracy")

    atomic_write_json(out, result)
    md = out.with_suffix(".md")
    atomic_write_bytes(md, "\n".join([
        "# LFW DevTest through FaceEngine",
        "",
        f"Model `{engine.card.path.name}` (sha256 `{result['model']['sha256'][:16]}...`), "
        f"card threshold {engine.threshold:.4f}. {len(pairs)} pairs of pairsDevTest.txt, {len(refs)} images, "
        f"each scored as the kiosk does{'' if batch == 1 else ' (but detected in batches: approximate)'}: "
        "raw file, MTCNN, face nearest the centre, five-point alignment, "
        f"model, {engine.scoring.kind} score. Pairs with an undetected face score {NO_FACE_MARGIN:g} below the lowest other pair: "
        f"{result['pairs_with_missing_face']}.",
        "",
        "| metric | engine | card (training, prepared crops) | difference (points) |",
        "|---|---|---|---|",
        *[f"| {label} | {100 * report[key]:.2f}% | "
          f"{'' if card_devtest.get(key) is None else f'{100 * card_devtest[key]:.2f}%'} | "
          f"{'' if key not in difference_points else f'{difference_points[key]:+.2f}'} |" for label, key in rows],
        "",
        f"Accuracy std over the 10 folds: {100 * report['accuracy_std']:.2f} points. "
        f"Acceptance (within {ACCEPTANCE_POINTS} point of the card's accuracy): "
        f"**{'passed' if accepted else 'failed'}**.",
        "",
        f"The door threshold's cost (accuracy given up for a bounded false-accept rate): {gap_line} "
        "The card's threshold lets in 1% of strangers (a door's rate); the accuracy-maximising one sits near the equal-error rate.",
        "",
        f"Detection: {result['protocol']['detector']}; {result['protocol']['detection']}"
        + ("" if batching is None else
           f"; detect_batch vs detect on the first {batching['images']} images: "
           f"{'same faces' if batching['same_faces'] else 'different faces'} "
           f"(largest difference {batching['max_difference_px']} px)")
        + f". {result['seconds']} s, {result['images_per_second']} images/s.",
        "",
        *([] if not tail else [
            "## The card's impostor table on new people",
            "",
            "The kiosk's gallery thresholds come from the card's table of false-accept rates, measured on the "
            "validation people. Against every pair of the DevTest images "
            f"({tail['impostor_pairs']} different-person pairs, {tail['genuine_pairs']} same-person pairs), "
            "each threshold lets strangers in at this rate and accepts this share of same-person pairs:",
            "",
            "| card's false-accept rate | threshold | on DevTest people (x the card's) | same person accepted |",
            "|---|---|---|---|",
            *tail_rows,
            "",
            balanced_line,
            ""]),
        f"Command: `{command}`",
        "",
    ]).encode("utf-8"))
    print(f"wrote {out} and {md}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--model", help="model file (default: $KIOSK_MODEL or the shipped model)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "lfw_devtest_engine.json")
    parser.add_argument("--batch", type=int, default=BATCH,
                        help="images per detector call (default 1, engine.detect as the kiosk; 32 is ~4x faster "
                             "but moves a few faces slightly)")
    parser.add_argument("--check-batch", type=int, default=CHECK_IMAGES,
                        help="with --batch > 1: images also detected one by one to measure the difference (0: skip)")
    parser.add_argument("--detector", choices=IMPLEMENTATIONS, default="lite",
                        help="MTCNN implementation: graph (the kiosk's, compiled) or package (the mtcnn package's own)")
    args = parser.parse_args(argv)
    command = "python " + shlex.join([str(Path(sys.argv[0]).resolve().relative_to(ROOT))
                                      if Path(sys.argv[0]).resolve().is_relative_to(ROOT) else sys.argv[0],
                                      *(sys.argv[1:] if argv is None else argv)])
    run(args.lfw_dir, args.model, args.out, max(args.batch, 1), args.check_batch, command, args.detector)
    return 0


if __name__ == "__main__":
    sys.exit(main())
