"""The model card's mean-template tables: how alike a stranger's photo looks to the mean of k
photos of someone else.

A door that scores each person by the mean of their enrolled templates (kiosk.matching strategy
"mean") compares a visitor with means, not with single photos. A mean of several photos is a
steadier picture of a face, and a stranger scores a little closer to it than to any one photo,
so the single-photo table (`impostor_far_table`) would set the door too loose. For each count of
templates k, each person's photos are taken in disjoint groups of k (in LFW's order), each group
is averaged and re-normalised as matching does, and every photo of every other person is scored
against every mean; the table holds the threshold for each false-accept rate the sample can
measure. The kiosk reads the table of the gallery's largest count of templates per person
(kiosk.calibration.card_rule).

The people measured must be people the model never trained on: the validation people held out
of the View 1 split for a network trained on LFW, or all of DevTrain for a model that never saw
an LFW image (the shipped dlib backbone, whose card says no training was run). DevTest people
are never used. Every photo goes through the kiosk's own path (training.lfw_engine).

    python -m training far-tables --model assets/face_embedder.tflite --people devtrain
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kiosk.atomic import atomic_write_json
from kiosk.errors import KioskError
from kiosk.matching import person_means
from kiosk.modelcard import MEAN_TABLES_KEY, ModelCard, card_path_for
from kiosk.scoring import Scoring
from training.experiment import FAR_TABLE_RATES
from training.lfw import LFW
from training.metrics import impostor_threshold

TEMPLATE_COUNTS = (1, 2, 3, 4, 5, 6)  # beyond six photos a mean moves by under 0.001 (the card's tables)
RATES = (1e-6, 3e-6) + FAR_TABLE_RATES  # a door of 100 people at 1 in 1,000 asks 1e-5 of each comparison
PEOPLE_SETS = ("validation", "devtrain")


def mean_template_table(vectors: np.ndarray, names: np.ndarray, count: int, scoring: Scoring) -> dict:
    """The impostor table of a photo against another person's mean of `count` photos.

    `vectors`: unit embeddings, each person's photos in order; `names`: whose each is. A person
    with fewer than `count` photos gives no mean but is still scored as a stranger.
    """
    _, person = np.unique(names, return_inverse=True)
    groups = np.full(len(names), -1, np.int64)
    for index in np.unique(person):
        rows = np.flatnonzero(person == index)
        usable = len(rows) - len(rows) % count
        groups[rows[:usable]] = index * len(names) + np.arange(usable) // count
    averaged = groups >= 0
    if not averaged.any():
        raise ValueError(f"nobody has {count} photos to average")
    means, group_ids = person_means(vectors[averaged], groups[averaged])
    owner = group_ids // len(names)
    scores = np.asarray(scoring.matrix(vectors, means))
    impostor = scores[person[:, None] != owner[None, :]]
    return {"people": int(len(np.unique(owner))), "means": int(len(means)), "impostor_pairs": int(impostor.size),
            "thresholds": {f"{rate:g}": impostor_threshold(impostor, rate) for rate in RATES
                           if rate * impostor.size >= 1}}


def people_to_measure(lfw: LFW, card: ModelCard, which: str) -> list[str]:
    """The names of the people the tables are measured on (never DevTest people)."""
    if which == "devtrain":
        if (card.raw.get("training") or {}).get("command") is not None:
            raise KioskError(f"{card.path.name} was trained on LFW (`{card.raw['training']['command']}`): its tables "
                             f"must be measured on people it never saw; use --people validation")
        return sorted(lfw.people("devtrain"))
    if which == "validation":
        from training.dlib_export import People

        people = People.view1(lfw)
        return sorted({ref.name for ref in people.of_rows(people.split.validation.images)})
    raise ValueError(f"--people must be one of {PEOPLE_SETS}, got {which!r}")


def write_mean_tables(model_path: str | Path, lfw: LFW, which: str, command: str = "", log=print) -> Path:
    """Measure the mean-template tables of the model at `model_path` and write them into its card."""
    from kiosk.engine import FaceEngine
    from training.lfw_engine import embed_lfw_images

    started = time.perf_counter()
    engine = FaceEngine(model_path, strategy="best")
    names = people_to_measure(lfw, engine.card, which)
    refs = sorted(lfw.images_of(names), key=lambda ref: (ref.name, ref.number))
    log(f"{len(names)} {which} people, {len(refs)} photos, through the kiosk's detector, aligner and model")
    embedded = embed_lfw_images(engine, lfw, refs, log=log)
    found = [ref for ref in refs if embedded[ref] is not None]
    vectors = np.stack([embedded[ref] for ref in found])
    photo_names = np.array([ref.name for ref in found])
    tables = {}
    for count in TEMPLATE_COUNTS:
        tables[str(count)] = mean_template_table(vectors, photo_names, count, engine.scoring)
        table = tables[str(count)]
        log(f"  means of {count}: {table['means']} means of {table['people']} people, "
            f"{table['impostor_pairs']:,} stranger comparisons; 1e-4 -> {table['thresholds'].get('0.0001')}")
    entry = {
        "rule": "a photo against the re-normalised mean of k photos of another person (k = the key); each "
                "person's photos in disjoint groups of k; every photo of every other person compared with every "
                "mean; the lowest score whose false-accept rate is at most the key's rate",
        "people": f"LFW {which} people ({len(names)}; no DevTest person), "
                  + ("all of DevTrain: the model never trained on an LFW image" if which == "devtrain"
                     else "held out of the View 1 split, never trained on"),
        "photos": len(refs), "photos_without_face": len(refs) - len(found),
        "path": "the kiosk's own: TFLite MTCNN, the face nearest the centre, five-point alignment, the model",
        "by_templates": tables,
        "command": command or f"python -m training far-tables --model {model_path} --people {which}",
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = card_path_for(engine.card.path)
    raw = dict(engine.card.raw)
    raw[MEAN_TABLES_KEY] = entry
    atomic_write_json(path, raw)
    ModelCard.load(engine.card.path)  # what was written reads back as a card
    return path
