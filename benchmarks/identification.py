"""Open-set identification on LFW: how should a person's templates be scored, "best" or "mean"?

A door is an open-set problem: most faces it sees belong to an enrolled person, some to
strangers who must be turned away. This benchmark plays that out on LFW's View 1 test people
(peopleDevTest.txt, never seen in training):

- enrolled: everyone with at least 4 images; their first 3 images are enrolled, the rest probe;
- impostors: everyone with 1 to 3 images; never enrolled, all their images probe.

Every image goes through the kiosk's own path (MTCNN, the face nearest the image centre,
which is LFW's labelling convention, five-point alignment, the shipped model) and every probe
is matched against the whole gallery with kiosk.matching, once per strategy: at the door's own
rule for that strategy (the card's table for that kind of comparison and the gallery's site
calibration, kiosk.calibration), at the model card's one-comparison threshold, over a sweep of
thresholds, and at the threshold that grants the most while keeping 1% of strangers out. It also
plays the door's rule for galleries of 10, 30 and 100 people, and with people enrolled from 1 to 6
photos (those with more than 6, probed with the same later photos whatever the count).
Per strategy it reports, over all probes (a probe with no detected face counts as not granted):

- correct-grant rate: enrolled probes matched to their own person;
- wrong-person-grant rate: enrolled probes matched to someone else;
- impostor-grant rate: impostor probes matched to anyone.

These are single-image figures; the kiosk also needs 3 of 5 frames to agree before it grants.

    python benchmarks/identification.py [--lfw-dir DIR] [--model FILE] [--out reports/identification.json]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.atomic import atomic_write_json  # noqa: E402
from kiosk.calibration import DEFAULT_RISK, door_rule, measure_site  # noqa: E402
from kiosk.matching import STRATEGIES, match_many  # noqa: E402
from kiosk.modelcard import sha256_of  # noqa: E402
from kiosk.scoring import Scoring  # noqa: E402
from training.lfw import LFW, ImageRef  # noqa: E402
from training.lfw_engine import embed_lfw_images  # noqa: E402

ENROLL_IMAGES = 3
BATCH = 32  # LFW images are all 250x250: MTCNN is several times cheaper per image in batches
# A strategy wins on correct grants, unless that costs more false grants (impostor or wrong
# person, each) than this share of the rate the door promises: at a door a false grant is the
# worse error, and at 1 in 1,000 half a point more strangers would be five times the promise.
FALSE_GRANT_TOLERANCE = 0.5
SWEEP = (0.30, 0.95, 0.05)  # thresholds reported besides the card's: start, stop, step
TARGET_IMPOSTOR_GRANT = 0.01  # the operating point both strategies are also compared at
GALLERY_SIZES = (10, 30, 100)  # enrolled people in the smaller galleries played (plus all of them)
DOOR_RISKS = (100, DEFAULT_RISK)  # visitors per false accept of the door's rules compared
# How many photos to enrol from: people with more than the most tried, each enrolled from their
# first k and probed with the same later photos, so that only k changes.
ENROL_PHOTO_COUNTS = (1, 2, 3, 4, 5, 6)


def operating_point(score_at, stop: float, step: float = 0.001) -> dict | None:
    """Figures at the threshold with the most correct grants among those keeping impostor grants <= target,
    scanning from SWEEP's start up to `stop`.

    Scanned on a grid rather than solved: with the ambiguity rule, raising the threshold can
    raise the impostor-grant rate (a runner-up drops below it and an "ambiguous" becomes a match).
    The grid is fine because a face model's scores can crowd into a few hundredths (dlib's
    cosines: strangers ~0.91-0.95, the same person ~0.95-0.99).
    """
    allowed = [f for f in (score_at(t) for t in np.round(np.arange(SWEEP[0], stop + 1e-9, step), 4))
               if f["impostor_grant_rate"] <= TARGET_IMPOSTOR_GRANT]
    return max(allowed, key=lambda f: (f["correct_grant_rate"], -f["threshold"]), default=None)


def score_strategy(
    strategy: str,
    threshold: float,
    templates: np.ndarray,
    template_ids: np.ndarray,
    probes: list[tuple[int | None, np.ndarray | None]],  # (true person id or None for impostors, embedding)
    ambiguity_margin: float,
    scoring: Scoring | None = None,  # the engine's (kiosk.scoring); cosine when not given
) -> dict:
    genuine = [(pid, e) for pid, e in probes if pid is not None]
    impostor = [(pid, e) for pid, e in probes if pid is None]
    counts = {"correct_grant": 0, "wrong_person_grant": 0, "genuine_unknown": 0, "genuine_ambiguous": 0,
              "genuine_no_face": 0, "rank1_correct": 0, "impostor_grant": 0, "impostor_ambiguous": 0,
              "impostor_no_face": 0}

    def matches(group):
        vectors = [e for _, e in group if e is not None]
        if not vectors:
            return iter(())
        return iter(match_many(np.stack(vectors), templates, template_ids, threshold=threshold,
                               ambiguity_margin=ambiguity_margin, strategy=strategy, scoring=scoring))

    found = matches(genuine)
    for pid, vector in genuine:
        if vector is None:
            counts["genuine_no_face"] += 1
            continue
        m = next(found)
        counts["rank1_correct"] += int(m.person_id == pid)
        if m.verdict == "match":
            counts["correct_grant" if m.person_id == pid else "wrong_person_grant"] += 1
        else:
            counts[f"genuine_{m.verdict}"] += 1
    found = matches(impostor)
    for _, vector in impostor:
        if vector is None:
            counts["impostor_no_face"] += 1
            continue
        m = next(found)
        if m.verdict == "match":
            counts["impostor_grant"] += 1
        elif m.verdict == "ambiguous":
            counts["impostor_ambiguous"] += 1
    n_genuine, n_impostor = len(genuine), len(impostor)
    detected_genuine = n_genuine - counts["genuine_no_face"]
    return {
        "strategy": strategy,
        "threshold": round(threshold, 4),
        "correct_grant_rate": counts["correct_grant"] / n_genuine,
        "wrong_person_grant_rate": counts["wrong_person_grant"] / n_genuine,
        "impostor_grant_rate": counts["impostor_grant"] / n_impostor,
        "rank1_accuracy": counts["rank1_correct"] / max(detected_genuine, 1),
        "genuine_probes": n_genuine,
        "impostor_probes": n_impostor,
        "counts": counts,
    }


def pick_winner(results: dict[str, dict], risk: int) -> tuple[str, str]:
    """The strategy to ship, and why, from each strategy's figures at the door's rule for `risk`
    (see FALSE_GRANT_TOLERANCE)."""
    tolerance = FALSE_GRANT_TOLERANCE / risk
    best, mean = results["best"], results["mean"]

    def false_grants(r: dict) -> float:
        return r["impostor_grant_rate"] + r["wrong_person_grant_rate"]

    if best["correct_grant_rate"] == mean["correct_grant_rate"]:
        if false_grants(mean) < false_grants(best):
            return "mean", "equal correct grants; 'mean' makes fewer false grants"
        return "best", "equal correct grants and no fewer false grants with 'mean'; 'best' is cheaper"
    higher, lower = (mean, best) if mean["correct_grant_rate"] > best["correct_grant_rate"] else (best, mean)
    costs_more = any(higher[key] - lower[key] > tolerance for key in ("impostor_grant_rate", "wrong_person_grant_rate"))
    if not costs_more:
        return higher["strategy"], (
            f"{higher['strategy']!r} grants more enrolled probes "
            f"({higher['correct_grant_rate']:.2%} vs {lower['correct_grant_rate']:.2%}) without raising "
            f"impostor or wrong-person grants by more than {tolerance:.2%}"
        )
    return lower["strategy"], (
        f"{higher['strategy']!r} grants more enrolled probes ({higher['correct_grant_rate']:.2%} vs "
        f"{lower['correct_grant_rate']:.2%}) but lets in more impostors or wrong people ({higher['impostor_grant_rate']:.2%} "
        f"vs {lower['impostor_grant_rate']:.2%} strangers, more than {tolerance:.2%} more); "
        f"{lower['strategy']!r} is the safer choice at a door"
    )


def run(lfw_dir: str | None, model: str | None, out: Path, limit_people: int | None = None) -> dict:
    from kiosk.engine import FaceEngine

    lfw = LFW.locate(lfw_dir)
    people = lfw.people("devtest")
    enrolled_names = sorted(name for name, count in people.items() if count > ENROLL_IMAGES)
    impostor_names = sorted(name for name, count in people.items() if count <= ENROLL_IMAGES)
    if limit_people:  # quick runs while developing; the report is only meaningful in full
        enrolled_names, impostor_names = enrolled_names[:limit_people], impostor_names[:limit_people]

    engine = FaceEngine(model)
    threshold = engine.threshold
    refs = lfw.images_of(enrolled_names + impostor_names)
    print(f"{len(enrolled_names)} people enrolled with {ENROLL_IMAGES} images each, "
          f"{len(impostor_names)} impostors; {len(refs)} images; threshold {threshold:.4f} "
          f"({engine.card.threshold_rule})")
    start = time.time()
    vectors = embed_lfw_images(engine, lfw, refs, BATCH)
    seconds = time.time() - start

    by_person: dict[str, list[ImageRef]] = {}
    for ref in refs:
        by_person.setdefault(ref.name, []).append(ref)
    person_id = {name: i for i, name in enumerate(enrolled_names)}
    templates, template_ids, probes = [], [], []
    for name in enrolled_names:
        images = sorted(by_person[name], key=lambda r: r.number)
        for ref in images[:ENROLL_IMAGES]:
            if vectors[ref] is not None:
                templates.append(vectors[ref])
                template_ids.append(person_id[name])
        probes += [(person_id[name], vectors[ref]) for ref in images[ENROLL_IMAGES:]]
    probes += [(None, vectors[ref]) for name in impostor_names for ref in by_person[name]]
    templates_array = np.stack(templates)
    ids_array = np.asarray(template_ids, dtype=np.int64)

    results = {s: score_strategy(s, threshold, templates_array, ids_array, probes, engine.ambiguity_margin,
                                 engine.scoring)
               for s in STRATEGIES}
    strategies = [s for s in STRATEGIES if s == "best" or engine.card.mean_far_tables]
    at_door = {s: {f"1_in_{risk}": door_figures(engine, s, risk, templates_array, ids_array, probes)
                   for risk in DOOR_RISKS} for s in strategies}
    def brief(strategy: str, t: float) -> dict:
        scored = score_strategy(strategy, float(t), templates_array, ids_array, probes, engine.ambiguity_margin,
                                engine.scoring)
        return {key: value for key, value in scored.items() if key not in ("counts", "strategy")}

    sweep = {s: [brief(s, t) for t in np.round(np.arange(SWEEP[0], SWEEP[1] + 1e-9, SWEEP[2]), 4)] for s in STRATEGIES}
    # The two strategies score on different scales, so also compare them at the same impostor-grant rate.
    # A cosine stops at 1; a calibrated back end's scores go on (kiosk.scoring): scan to the card's strictest.
    highest = max([1.0] + [threshold for _, threshold in engine.card.far_table])
    operating = {s: operating_point(lambda t, s=s: brief(s, t), highest) for s in STRATEGIES}
    shipped_risk = f"1_in_{DEFAULT_RISK}"
    winner, why = (pick_winner({s: at_door[s][shipped_risk] for s in STRATEGIES}, DEFAULT_RISK) if len(strategies) == 2
                   else ("best", "the card has no mean-template tables, so the door can only score the best template"))
    by_gallery_size = gallery_sizes(engine, strategies, templates_array, ids_array, probes)
    by_enrolment_photos = enrolment_photos(engine, enrolled_names, by_person, vectors,
                                           [p for p in probes if p[0] is None])

    print(f"\n{'strategy':<9} {'correct grant':>14} {'impostor grant':>15} {'wrong person':>13} {'rank-1':>8}")
    for s in STRATEGIES:
        r = results[s]
        print(f"{s:<9} {r['correct_grant_rate']:>14.2%} {r['impostor_grant_rate']:>15.2%} "
              f"{r['wrong_person_grant_rate']:>13.2%} {r['rank1_accuracy']:>8.2%}")
    print("\nat the door's own rule (card table and site calibration for each strategy):")
    for s in strategies:
        for key, r in at_door[s].items():
            print(f"{s:<9} {key:<10} threshold {r['threshold']:.3f}: correct grant {r['correct_grant_rate']:.2%}, "
                  f"impostor grant {r['impostor_grant_rate']:.2%}, wrong person {r['wrong_person_grant_rate']:.2%}")
    print(f"\nwinner at the door's rule, 1 in {DEFAULT_RISK:,}: {winner}: {why}")
    print(f"\nat the best threshold that keeps impostor grants <= {TARGET_IMPOSTOR_GRANT:.0%}:")
    for s in STRATEGIES:
        op = operating[s]
        if op is None:
            print(f"{s:<9} no threshold up to {highest:.3f} keeps it")
        else:
            print(f"{s:<9} threshold {op['threshold']:.3f}: correct grant {op['correct_grant_rate']:.2%}, "
                  f"impostor grant {op['impostor_grant_rate']:.2%}, wrong person {op['wrong_person_grant_rate']:.2%}")

    report = {
        "benchmark": "LFW open-set identification (benchmarks/identification.py)",
        "protocol": {
            "people_file": "peopleDevTest.txt",
            "enrolled": f"people with more than {ENROLL_IMAGES} images; images 1-{ENROLL_IMAGES} enrolled, the rest probe",
            "impostors": f"people with 1-{ENROLL_IMAGES} images, never enrolled; every image probes",
            "face": "MTCNN, the face nearest the image centre, kiosk.alignment five-point crop",
            "matching": f"kiosk.matching.match_many at the model card threshold, ambiguity margin "
                        f"{engine.ambiguity_margin}; a probe with no detected face counts as not granted",
            "note": "single-image figures; the kiosk also needs several frames to agree",
            "limited_to_people": limit_people,
        },
        "model": {"file": str(engine.card.path.name), "sha256": sha256_of(engine.card.path),
                  "threshold": threshold, "threshold_rule": engine.card.threshold_rule},
        "enrolled_people": len(enrolled_names),
        "templates": int(len(templates_array)),
        "impostor_people": len(impostor_names),
        "images": len(refs),
        "images_without_face": sum(v is None for v in vectors.values()),
        "embedding_seconds": round(seconds, 1),
        "results": results,
        "at_door_rule": at_door,
        "threshold_sweep": sweep,
        f"at_impostor_grant_{TARGET_IMPOSTOR_GRANT:g}": operating,
        "by_gallery_size": by_gallery_size,
        "by_enrolment_photos": by_enrolment_photos,
        "winner": winner,
        "why": why,
        "rule": f"at the door's rule for 1 in {DEFAULT_RISK:,} visitors, the higher correct-grant rate wins unless "
                f"it raises the impostor- or wrong-person-grant rate by more than {FALSE_GRANT_TOLERANCE:g} of "
                f"the rate promised ({FALSE_GRANT_TOLERANCE / DEFAULT_RISK:.2%})",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return report


def door_figures(engine, strategy: str, risk: int, templates: np.ndarray, template_ids: np.ndarray,
                 probes: list) -> dict:
    """Grant rates at the door's own rule for `strategy` and `risk`: the card's table for that kind of
    comparison and the site calibration of this gallery, as the kiosk sets them (kiosk.calibration)."""
    rule = door_rule(engine.card, measure_site(templates, template_ids, engine.scoring, strategy), risk)
    scored = score_strategy(strategy, rule.threshold, templates, template_ids, probes, engine.ambiguity_margin,
                            engine.scoring)
    return {"source": rule.source, **{key: scored[key] for key in (
        "strategy", "threshold", "correct_grant_rate", "impostor_grant_rate", "wrong_person_grant_rate")}}


def gallery_sizes(engine, strategies: list[str], templates: np.ndarray, template_ids: np.ndarray,
                  probes: list) -> list[dict]:
    """Each strategy at the door's rule (1 in DEFAULT_RISK), for growing galleries.

    A gallery of n people holds the first n enrolled people; the probes are their own plus
    every impostor image (the other enrolled people's probes are left out).
    """
    rows = []
    people = np.unique(template_ids)
    for n in [size for size in GALLERY_SIZES if size < len(people)] + [len(people)]:
        enrolled = set(people[:n].tolist())
        keep = np.isin(template_ids, people[:n])
        chosen = [(pid, e) for pid, e in probes if pid is None or pid in enrolled]
        row = {"people": int(n), "templates": int(keep.sum())}
        for strategy in strategies:
            row[strategy] = door_figures(engine, strategy, DEFAULT_RISK, templates[keep], template_ids[keep], chosen)
            r = row[strategy]
            print(f"{n:>4} people ({row['templates']} templates), {strategy}: threshold {r['threshold']:.3f} -> "
                  f"correct {r['correct_grant_rate']:.1%}, impostor {r['impostor_grant_rate']:.1%}, "
                  f"wrong person {r['wrong_person_grant_rate']:.1%}")
        rows.append(row)
    return rows


def enrolment_photos(engine, names: list[str], by_person: dict, vectors: dict, strangers: list) -> dict:
    """The door's rule (the card's strategy, each risk) with people enrolled from 1 to 6 photos.

    People with more than max(ENROL_PHOTO_COUNTS) photos are enrolled from their first k and
    probed with the same later photos whatever k is, against every never-enrolled photo.
    """
    most = max(ENROL_PHOTO_COUNTS)
    chosen = [name for name in names if len(by_person[name]) > most]
    photos = {name: sorted(by_person[name], key=lambda r: r.number) for name in chosen}
    genuine = [(pid, vectors[ref]) for pid, name in enumerate(chosen) for ref in photos[name][most:]]
    rows = {}
    for count in ENROL_PHOTO_COUNTS:
        kept = [(pid, vectors[ref]) for pid, name in enumerate(chosen) for ref in photos[name][:count]
                if vectors[ref] is not None]
        templates = np.stack([vector for _, vector in kept])
        ids = np.array([pid for pid, _ in kept], np.int64)
        rows[str(count)] = {f"1_in_{risk}": door_figures(engine, engine.strategy, risk, templates, ids,
                                                          genuine + strangers) for risk in DOOR_RISKS}
        figures = rows[str(count)][f"1_in_{DEFAULT_RISK}"]
        print(f"enrolled from {count} photo(s), {len(chosen)} people, 1 in {DEFAULT_RISK:,}: threshold "
              f"{figures['threshold']:.3f} -> correct {figures['correct_grant_rate']:.1%}, "
              f"impostor {figures['impostor_grant_rate']:.2%}")
    return {"people": len(chosen), "genuine_probes": len(genuine), "strangers": len(strangers),
            "strategy": engine.strategy, "by_photos": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--model", help="model file (default: $KIOSK_MODEL or the shipped model)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "identification.json")
    parser.add_argument("--limit-people", type=int, help="only the first N people of each group (quick check)")
    args = parser.parse_args(argv)
    run(args.lfw_dir, args.model, args.out, args.limit_people)
    return 0


if __name__ == "__main__":
    sys.exit(main())
