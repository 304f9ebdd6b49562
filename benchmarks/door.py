"""The door at a site: how many strangers get in, and how many enrolled people, in front of one camera.

A kiosk's camera sees every visitor against the same background, under the same light. LFW's web
photos never do, so LFW figures alone say little about a real door. This benchmark plays a door
on ORL / AT&T (40 people photographed by one camera in one room, none of them in LFW; never used
for training or fitting anything) through the kiosk's own path:

- enrolment as `enroll` does it (kiosk.enrollment.assess_image: one face, quality gates) into a
  real gallery (SQLite database with sealed templates, in a temporary folder);
- a decision per photo as `identify` does it (the largest face, FaceEngine.match at the door's
  rule for that gallery: kiosk.calibration), and through the multi-frame DecisionPolicy of the
  kiosk loop (KioskRunner, liveness off) on videos made from each probe person's photos.

Protocol (ORL's README): people sorted by folder; those at even positions (s01, s03, ...) are
enrolled from their first 3 photos and their other 7 are genuine probes; those at odd positions
are never enrolled and all 10 of their photos are stranger probes. Also: each enrolled person
alone in a gallery of one, against every stranger photo. And LFW's open-set identification
(benchmarks/identification.py's protocol, 100 people enrolled). Each rate comes with its 95%
Wilson interval: with 200 stranger photos, 0 granted still means "up to 1.9%".

Every figure is given at the door's rule (site-calibrated, at the kiosk's default risk of 1 false
accept in 1,000 visitors and at 1 in 100) and at the model card's rule alone at each risk (the
kiosk's rule before site calibration), so that the two can be compared on the same embeddings.
Each person is scored as the card says (their mean template where the card has mean-template
tables); `--strategy best` plays the same door scoring each person's most similar template.

    python benchmarks/door.py [--orl-dir DIR] [--lfw-dir DIR] [--model FILE] [--strategy best|mean]
                              [--no-lfw] [--no-videos] [--out reports/door.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.identification import score_strategy  # noqa: E402
from benchmarks.orl import ORL_ENV_VAR, locate_orl, orl_protocol  # noqa: E402
from kiosk.atomic import atomic_write_json  # noqa: E402
from kiosk.enrollment import assess_image  # noqa: E402
from kiosk.images import load_image  # noqa: E402
from kiosk.matching import STRATEGIES  # noqa: E402

LFW_PEOPLE = 100
RISKS = (100, 1000)  # the risks an admin may choose without confirming (1 in 1,000 as shipped) and 1 in 100
VIDEO_FPS = 10.0
FRAMES_PER_PHOTO = 5  # each photo held for half a second
LEAD_FRAMES = 3  # empty frames before the person steps in
FRAME_SIZE = (640, 480)
PHOTO_SCALE = 3  # ORL's 92x112 photos shown at 276x336, a face of about 150 px as at a kiosk


# -- statistics -----------------------------------------------------------------


def wilson(hits: int, total: int) -> list[float]:
    """95% Wilson score interval of a rate of hits / total."""
    if total == 0:
        return [0.0, 1.0]
    z, p = 1.959964, hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def rate(hits: int, total: int) -> dict:
    return {"rate": round(hits / total, 4) if total else None, "hits": hits, "of": total, "ci95": wilson(hits, total)}


# -- single photos --------------------------------------------------------------


def enrol_gallery(engine, data_dir: Path, enrol: dict[str, list[Path]]):
    """A real database in `data_dir` with each person enrolled as `enroll` does; (connection, names by id, skipped)."""
    from kiosk.database import open_database
    from kiosk.gallery import Gallery

    conn = open_database(data_dir / "kiosk.db")
    gallery = Gallery(conn)
    gallery.bind_model(engine.embedding_size, engine.model_identity)
    skipped = []
    for name, photos in enrol.items():
        samples = [assess_image(engine, load_image(photo), photo.name) for photo in photos]
        used = [s for s in samples if s.used]
        skipped += [f"{name}/{s.source}: {s.reason}" for s in samples if not s.used]
        if used:
            gallery.enroll(name, None, [s.embedding for s in used], [s.quality for s in used],
                           [s.source for s in used], [s.thumbnail for s in used])
    return conn, {p.id: p.name for p in gallery.people()}, skipped


def embed_probes(engine, photos: list[Path]) -> list[np.ndarray | None]:
    """The embedding of each photo's largest face, as `identify` takes it (None: no face)."""
    vectors = []
    for photo in photos:
        rgb = load_image(photo)
        faces = engine.detect(rgb)
        vectors.append(engine.embed_faces(rgb, faces[:1])[0] if faces else None)
    return vectors


def rule_figures(engine, threshold: float, templates, ids, probes) -> dict:
    """Grant rates of `probes` ((true person id or None for strangers, embedding or None)) at `threshold`,
    matched as the kiosk matches (benchmarks/identification.py's counting)."""
    scored = score_strategy(engine.strategy, threshold, templates, ids, probes, engine.ambiguity_margin,
                            engine.scoring)
    counts, genuine, strangers = scored["counts"], scored["genuine_probes"], scored["impostor_probes"]
    return {"enrolled_granted": rate(counts["correct_grant"], genuine),
            "wrong_person_granted": rate(counts["wrong_person_grant"], genuine),
            "strangers_granted": rate(counts["impostor_grant"], strangers)}


def rules_for(engine, templates, ids) -> dict[str, tuple[float, dict]]:
    """The thresholds compared, each with what the report says of it: the door's rule at each risk,
    and the card's rule alone at each risk (the kiosk's rule before site calibration)."""
    rules, card_rules = {}, {}
    for risk in RISKS:
        rule = engine.door_rule(templates, ids, risk)
        rules[f"door_1_in_{risk}"] = (rule.threshold, {
            "threshold": round(rule.threshold, 4), "source": rule.source, "risk": risk,
            "site_threshold": None if rule.site_threshold is None else round(rule.site_threshold, 4)})
        card_rules[f"card_rule_only_1_in_{risk}"] = (rule.card_threshold, {
            "threshold": round(rule.card_threshold, 4), "risk": risk,
            "source": "model card, scaled to the gallery (no site calibration)"})
    rules.update(card_rules)
    rules["card_threshold"] = (engine.threshold, {"threshold": round(engine.threshold, 4),
                                                  "source": "model card, one comparison"})
    return rules


def single_photos(engine, vectors: dict[Path, np.ndarray | None], genuine, strangers, templates, ids, names) -> dict:
    person_id = {name: pid for pid, name in names.items()}
    probes = [(person_id[name], vectors[p]) for name, photos in genuine.items() for p in photos]
    probes += [(None, vectors[p]) for photos in strangers.values() for p in photos]
    return {key: {**info, **rule_figures(engine, threshold, templates, ids, probes)}
            for key, (threshold, info) in rules_for(engine, templates, ids).items()}


def one_person_galleries(engine, vectors, enrol, genuine, strangers, scratch: Path) -> dict:
    """Each enrolled person alone in a gallery, against their own probes and every stranger photo."""
    stranger_vectors = [vectors[p] for photos in strangers.values() for p in photos]
    totals: dict[str, dict[str, list[int]]] = {}
    worst: dict[str, float] = {}
    for name in enrol:
        conn, _, _ = enrol_gallery(engine, Path(tempfile.mkdtemp(dir=scratch)), {name: enrol[name]})
        try:
            from kiosk.gallery import Gallery

            templates, ids = Gallery(conn).matrix()
            if len(templates) == 0:
                continue
            probes = [(int(ids[0]), vectors[p]) for p in genuine[name]] + [(None, v) for v in stranger_vectors]
            for key, (threshold, _) in rules_for(engine, templates, ids).items():
                result = rule_figures(engine, threshold, templates, ids, probes)
                sums = totals.setdefault(key, {})
                for what, figure in result.items():
                    hits, of = sums.get(what, [0, 0])
                    sums[what] = [hits + figure["hits"], of + figure["of"]]
                worst[key] = max(worst.get(key, 0.0), result["strangers_granted"]["rate"] or 0.0)
        finally:
            conn.close()
    return {key: {**{what: rate(*counts) for what, counts in sums.items()},
                  "worst_gallery_strangers_granted": round(worst[key], 4)} for key, sums in totals.items()}


# -- videos through the kiosk loop ---------------------------------------------------------


def write_video(path: Path, photos: list[Path]) -> tuple[Path, int]:
    """A video of `photos` shown one after another in the middle of a 640x480 frame; (path, first face frame)."""
    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, (width, height))
    if not writer.isOpened():
        raise SystemExit("error: this OpenCV build cannot write MJPG .avi videos")
    first = cv2.imread(str(photos[0]))
    backdrop = np.full((height, width, 3), np.median(np.concatenate([first[:, :4], first[:, -4:]], axis=1)),
                       np.uint8)  # the photos' own background colour around them
    for _ in range(LEAD_FRAMES):
        writer.write(backdrop)
    for photo in photos:
        image = cv2.imread(str(photo))
        image = cv2.resize(image, None, fx=PHOTO_SCALE, fy=PHOTO_SCALE, interpolation=cv2.INTER_CUBIC)
        frame = backdrop.copy()
        top, left = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
        frame[top:top + image.shape[0], left:left + image.shape[1]] = image
        for _ in range(FRAMES_PER_PHOTO):
            writer.write(frame)
    writer.release()
    return path, LEAD_FRAMES


def play(engine, database: Path, video: Path, first_face: int, risk: int) -> dict:
    """The video through KioskRunner (every frame, liveness off): who was granted, and when."""
    from kiosk.accesslog import AccessLog
    from kiosk.camera import Camera
    from kiosk.database import open_database
    from kiosk.engine import RiskEngine
    from kiosk.gallery import Gallery
    from kiosk.policy import DecisionPolicy
    from kiosk.runner import KioskRunner

    conn = open_database(database)
    grants, denials = [], []
    try:
        with Camera(video, realtime=False) as camera:
            runner = KioskRunner(camera, RiskEngine(engine, risk), Gallery(conn), AccessLog(conn), DecisionPolicy(),
                                 camera_name="door benchmark")
            for frame in runner.run(every_frame=True):
                decision = frame.decision
                if decision is None:
                    continue
                if decision.granted:
                    grants.append({"name": decision.name,
                                   "seconds": round((frame.frame.index - first_face + 1) / VIDEO_FPS, 2)})
                else:
                    denials.append(decision.reason)
    finally:
        conn.close()
    return {"grants": grants, "denials": denials}


def videos(engine, database: Path, genuine, strangers, scratch: Path, risk: int) -> dict:
    enrolled_runs, stranger_runs = {}, {}
    for group, runs in ((genuine, enrolled_runs), (strangers, stranger_runs)):
        for name, photos in group.items():
            video, first_face = write_video(scratch / f"{name}.avi", photos)
            runs[name] = play(engine, database, video, first_face, risk)
    first_grant = {name: next((g for g in run["grants"] if g["name"] == name), None)
                   for name, run in enrolled_runs.items()}
    times = [g["seconds"] for g in first_grant.values() if g is not None]
    return {
        "risk": risk,
        "video": f"each person's probe photos, {FRAMES_PER_PHOTO} frames each at {VIDEO_FPS:g} fps, "
                 f"{PHOTO_SCALE}x in a {FRAME_SIZE[0]}x{FRAME_SIZE[1]} frame; every frame analysed",
        "enrolled_people": len(enrolled_runs),
        "enrolled_granted": sum(g is not None for g in first_grant.values()),
        "enrolled_granted_within_2s": sum(t <= 2.0 for t in times),
        "seconds_to_grant": {"median": float(np.median(times)) if times else None, "max": max(times, default=None)},
        "wrong_person_grants": sum(1 for name, run in enrolled_runs.items() for g in run["grants"] if g["name"] != name),
        "stranger_people": len(stranger_runs),
        "strangers_granted": sum(bool(run["grants"]) for run in stranger_runs.values()),
        "per_person": {"enrolled": enrolled_runs, "strangers": stranger_runs},
    }


# -- LFW ------------------------------------------------------------------------


def lfw_identification(engine, lfw_dir: str | None) -> dict:
    """benchmarks/identification.py's protocol, the first LFW_PEOPLE enrolled people, at each rule."""
    from benchmarks.identification import BATCH, ENROLL_IMAGES
    from training.lfw import LFW
    from training.lfw_engine import embed_lfw_images

    lfw = LFW.locate(lfw_dir)
    people = lfw.people("devtest")
    enrolled = sorted(name for name, count in people.items() if count > ENROLL_IMAGES)[:LFW_PEOPLE]
    impostors = sorted(name for name, count in people.items() if count <= ENROLL_IMAGES)
    refs = lfw.images_of(enrolled + impostors)
    vectors = embed_lfw_images(engine, lfw, refs, BATCH)
    by_person: dict[str, list] = {}
    for ref in refs:
        by_person.setdefault(ref.name, []).append(ref)
    templates, ids, probes = [], [], []
    for pid, name in enumerate(enrolled):
        images = sorted(by_person[name], key=lambda r: r.number)
        for ref in images[:ENROLL_IMAGES]:
            if vectors[ref] is not None:
                templates.append(vectors[ref])
                ids.append(pid)
        probes += [(pid, vectors[ref]) for ref in images[ENROLL_IMAGES:]]
    probes += [(None, vectors[ref]) for name in impostors for ref in by_person[name]]
    templates_array = np.stack(templates)
    templates_array.flags.writeable = False
    ids_array = np.asarray(ids, np.int64)
    ids_array.flags.writeable = False
    out = {"enrolled_people": len(enrolled), "impostor_people": len(impostors),
           "probes": {"genuine": sum(p is not None for p, _ in probes), "strangers": sum(p is None for p, _ in probes)}}
    for key, (threshold, info) in rules_for(engine, templates_array, ids_array).items():
        out[key] = {**info, **rule_figures(engine, threshold, templates_array, ids_array, probes)}
    return out


# -- report ---------------------------------------------------------------------


def print_table(title: str, section: dict) -> None:
    print(f"\n{title}")
    print(f"  {'rule':<22} {'threshold':>9} {'enrolled granted':>24} {'strangers granted':>24} {'wrong person':>13}")
    for key, row in section.items():
        if not isinstance(row, dict) or "strangers_granted" not in row:
            continue

        def cell(figure: dict) -> str:
            low, high = figure["ci95"]
            return f"{figure['rate']:.1%} [{low:.1%}, {high:.1%}]"

        threshold = f"{row['threshold']:.3f}" if "threshold" in row else "-"
        print(f"  {key:<22} {threshold:>9} {cell(row['enrolled_granted']):>24} {cell(row['strangers_granted']):>24} "
              f"{row['wrong_person_granted']['rate']:>13.1%}")


def run(args: argparse.Namespace) -> dict:
    from kiosk.engine import FaceEngine
    from kiosk.gallery import Gallery
    from kiosk.modelcard import sha256_of
    from training.prepare import default_cache_dir

    started = time.time()
    engine = FaceEngine(args.model, strategy=args.strategy)
    root = locate_orl(args.orl_dir, default_cache_dir())
    enrol, genuine, strangers = orl_protocol(root)
    report: dict = {
        "benchmark": "the door at a one-camera site (benchmarks/door.py)",
        "model": {"file": engine.card.path.name, "sha256": sha256_of(engine.card.path),
                  "card_threshold": engine.threshold},
        "strategy": f"{engine.strategy}: each person scored by their "
                    f"{'mean' if engine.strategy == 'mean' else 'most similar'} template (kiosk.matching)",
        "orl": {"protocol": "people sorted by folder; even positions enrolled from their first 3 photos, their "
                            "other 7 photos genuine probes; odd positions never enrolled, all 10 photos stranger probes",
                "enrolled_people": len(enrol), "stranger_people": len(strangers)},
    }
    with tempfile.TemporaryDirectory(prefix="door-bench-") as scratch_name:
        scratch = Path(scratch_name)
        data_dir = scratch / "site"
        data_dir.mkdir()
        conn, names, skipped = enrol_gallery(engine, data_dir, enrol)
        try:
            templates, ids = Gallery(conn).matrix()
            calibration = engine.measure_site(templates, ids)
            report["orl"]["templates"] = int(len(templates))
            report["orl"]["enrolment_photos_refused"] = skipped
            report["orl"]["site"] = {"impostor_scores": calibration.impostor_scores, "mean": calibration.mean,
                                     "spread": calibration.spread,
                                     "closest_pair": None if calibration.closest is None else
                                     [names[calibration.closest[0]], names[calibration.closest[1]],
                                      round(calibration.closest[2], 4)]}
            photos = [p for group in (genuine, strangers) for ps in group.values() for p in ps]
            vectors = dict(zip(photos, embed_probes(engine, photos)))
            report["orl"]["probes_without_face"] = sum(v is None for v in vectors.values())
            report["orl"]["single_photos"] = single_photos(engine, vectors, genuine, strangers, templates, ids, names)
        finally:
            conn.close()
        print_table(f"ORL, {len(enrol)} people enrolled, single photos", report["orl"]["single_photos"])
        report["orl"]["one_person_galleries"] = one_person_galleries(engine, vectors, enrol, genuine, strangers,
                                                                     scratch)
        print_table("ORL, each enrolled person alone (strangers: every stranger photo)",
                    report["orl"]["one_person_galleries"])
        if not args.no_videos:
            report["orl"]["videos"] = {}
            for risk in RISKS:
                v = report["orl"]["videos"][f"door_1_in_{risk}"] = videos(engine, data_dir / "kiosk.db", genuine,
                                                                          strangers, scratch, risk)
                print(f"\nORL videos through the kiosk loop, 1 in {risk:,}: {v['enrolled_granted']}/"
                      f"{v['enrolled_people']} enrolled granted ({v['enrolled_granted_within_2s']} within 2 s, "
                      f"median {v['seconds_to_grant']['median']} s), {v['strangers_granted']}/{v['stranger_people']} "
                      f"strangers granted, {v['wrong_person_grants']} wrong-person grants")
    if not args.no_lfw:
        report["lfw"] = lfw_identification(engine, args.lfw_dir)
        print_table(f"LFW identification, {report['lfw']['enrolled_people']} people enrolled, single photos",
                    report["lfw"])
    report["seconds"] = round(time.time() - started, 1)
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    if args.record_in_card:
        record_in_card(engine.card.path, report, args.out)
    return report


def record_in_card(model_path: Path, report: dict, out: Path) -> None:
    """The door's figures in the model's card, beside its LFW figures (the card's "door" entry)."""
    from kiosk.modelcard import card_path_for

    def figures(row: dict) -> dict:
        return {"threshold": row.get("threshold"), "source": row.get("source"),
                **{key: row[key]["rate"] for key in ("enrolled_granted", "strangers_granted", "wrong_person_granted")}}

    orl = report["orl"]
    door = {
        "set": "ORL / AT&T faces: 40 people, one camera, one room (none in LFW; never trained or fitted on)",
        "protocol": orl["protocol"],
        "single_photos_20_enrolled": {key: figures(row) for key, row in orl["single_photos"].items()},
        "one_person_galleries": {key: figures(row) for key, row in orl["one_person_galleries"].items()},
        "lfw_identification_100_enrolled": {key: figures(row) for key, row in report.get("lfw", {}).items()
                                            if isinstance(row, dict) and "strangers_granted" in row},
        "command": f"python benchmarks/door.py --record-in-card --out {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}",
        "measured": report["created"],
    }
    if "videos" in orl:
        door["videos_through_the_kiosk_loop"] = {rule: {key: run[key] for key in (
            "enrolled_people", "enrolled_granted", "enrolled_granted_within_2s", "stranger_people",
            "strangers_granted", "wrong_person_grants")} for rule, run in orl["videos"].items()}
    path = card_path_for(model_path)
    card = json.loads(path.read_text(encoding="utf-8"))
    card["door"] = door
    atomic_write_json(path, card)
    print(f"recorded the door's figures in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orl-dir", help=f"ORL folder or the folder of orl_faces.tar.gz (default: ${ORL_ENV_VAR})")
    parser.add_argument("--lfw-dir", help="LFW folder (default: $LFW_DIR)")
    parser.add_argument("--model", help="model file (default: $KIOSK_MODEL or the shipped model)")
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="score each person by their best or their mean template (default: the card's)")
    parser.add_argument("--no-lfw", action="store_true", help="skip LFW identification")
    parser.add_argument("--no-videos", action="store_true", help="skip the videos through the kiosk loop")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "door.json")
    parser.add_argument("--record-in-card", action="store_true",
                        help="also write the figures into the model's card (its \"door\" entry)")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
