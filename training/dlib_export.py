"""`python -m training dlib-export --out DIR`: dlib's face-recognition ResNet as a kiosk model.

No training: the backbone is dlib's (training.dlib_resnet, outside knowledge). What is ours is
the crop and the threshold, both from DevTrain people only:

- the alignment: a five-point template for the kiosk's aligner that reproduces dlib's own face
  chips from MTCNN's landmarks. dlib's pipeline (its detector, 5-point shape predictor and
  150 px chip, training.dlib_reference) cuts chips of DevTrain training images; MTCNN, run on
  those chips, says where its five landmarks fall on them; the template is their median. Aligning
  MTCNN's landmarks onto it then gives, on average, dlib's chip.
- the ambiguity margin: dlib's unit descriptors of any two faces have a cosine of 0.8 or more, so
  the kiosk's default margin between a best match and its runner-up (0.05, made for scores on the
  cosine's usual scale, where it is 15% of the way from a typical stranger to the threshold) would
  call most true matches "ambiguous"; the card states the same 15% on its own scale.
- the threshold: the card's usual rule (the target false-accept rate over every different-person
  pair of the View 1 validation people, the same people a `train` run of the default recipe holds
  out), scored by cosine on embeddings of the very TFLite file the kiosk runs (float16 weights by
  default: half the size, and the threshold is fitted on their rounding, not on float32's).

DevTest is scored once at the end, for the card, and never chooses anything.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.alignment import AlignmentSpec, align_face
from kiosk.atomic import atomic_write_json
from kiosk.faces import FaceDetector, face_nearest_center
from kiosk.images import load_image
from training.data import Split, view1_split
from training.dlib_resnet import CHIP_SIZE, MODEL_FILE, build_dlib_resnet, read_weights
from training.lfw import LFW, ImageRef
from training.prepare import PreparedLFW, prepare

AMBIGUITY_SHARE = 0.15  # the margin, as a share of the way from a typical stranger (FAR 0.2) to the threshold
TEMPLATE_IMAGES = 400  # DevTrain training images whose dlib chips fit the template
CHECK_IMAGES = 100  # other DevTrain training images that measure how close our crops come to dlib's chips
MODEL_NAME = "dlib_resnet"

BACKBONE_ORIGIN = {
    "network": "dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat, from dlib's "
               "examples/dnn_face_recognition_ex.cpp): 29 convolutional layers, 5.6 M weights, 150x150 RGB input, "
               "128-d descriptor",
    "licence": "public domain (released so by its author, Davis King)",
    "trained_on": "about 3 million faces of 7,485 people (the face scrub and VGG data sets and images scraped by "
                  "dlib's author), with every identity that overlaps LFW removed; dlib reports 99.38% on LFW",
    "outside_knowledge": "yes: the weights are used as dlib ships them, read by training.dlib_format; nothing here "
                         "trained them. Only the crop template and the threshold were fitted, on DevTrain people",
    "source": "the face-recognition-models package (PyPI)",
}


def names_only(lfw: LFW) -> PreparedLFW:
    """A PreparedLFW without crops: every image's name, for choosing people as a prepared cache of
    all of LFW would (training.data needs only the records)."""
    records = [{"relpath": ref.relpath, "name": ref.name, "number": ref.number} for ref in lfw.all_images()]
    return PreparedLFW(Path(), np.zeros((0, 1, 1, 3), np.uint8), records, {})


@dataclass(frozen=True)
class People:
    """The View 1 split of the default recipe (seed 0): its validation images and pairs, DevTest
    images and pairs, and training images, as LFW image references."""

    split: Split
    refs: list[ImageRef]  # every LFW image, in the order of the split's rows

    @classmethod
    def view1(cls, lfw: LFW, seed: int = 0) -> "People":
        everything = names_only(lfw)
        refs = [ImageRef(record["name"], record["number"]) for record in everything.records]
        return cls(view1_split(lfw, everything, seed=seed), refs)

    def of_rows(self, rows: np.ndarray) -> list[ImageRef]:
        return [self.refs[row] for row in np.asarray(rows).tolist()]

    def training_images(self, count: int, seed: int = 0) -> list[ImageRef]:
        """`count` training images of distinct people (never validation or DevTest people)."""
        rng = np.random.default_rng(seed)
        first_of_person = {}
        for row in rng.permutation(self.split.train_rows):
            first_of_person.setdefault(self.refs[row].name, row)
        rows = list(first_of_person.values())
        return self.of_rows(np.array(rows[:count]))


def fit_template(lfw: LFW, refs: list[ImageRef], detector: FaceDetector, reference) -> tuple[np.ndarray, dict]:
    """Where MTCNN puts its five landmarks on dlib's own chips of `refs`: the median over the chips
    (as fractions of the chip), and how widely they spread (px)."""
    chips = [reference.chip(load_image(lfw.image_path(ref))) for ref in refs]
    chips = [chip for chip in chips if chip is not None]
    points = []
    for start in range(0, len(chips), 32):
        batch = chips[start:start + 32]
        for chip, faces in zip(batch, detector.detect_batch(batch)):
            face = face_nearest_center(faces, chip.shape)
            if face is not None:
                points.append(face.landmarks)
    points = np.asarray(points, np.float64)
    if len(points) < 10:
        raise RuntimeError(f"MTCNN found faces on only {len(points)} of dlib's chips; cannot fit a template")
    template = np.median(points, axis=0)
    spread = np.median(np.linalg.norm(points - template, axis=2), axis=0)
    return template / CHIP_SIZE, {
        "images": len(refs), "dlib_chips": len(chips), "mtcnn_on_chips": int(len(points)),
        "median_distance_to_template_px": {name: round(float(d), 2) for name, d in
                                           zip(("left_eye", "right_eye", "nose", "mouth_left", "mouth_right"), spread)},
    }


def fitted_template(lfw: LFW, cache_dir: Path, refs: list[ImageRef] | None = None, detector: FaceDetector | None = None,
                    reference=None) -> tuple[AlignmentSpec, dict]:
    """The crop that reproduces dlib's chips (fit_template on `refs`, by default the DevTrain images
    `dlib-export` fits it on) and how the fit went; fitted once per set of images and kept in
    `cache_dir`, so the exported model and every training run of the dlib backbone crop alike."""
    refs = refs if refs is not None else People.view1(lfw).training_images(TEMPLATE_IMAGES + CHECK_IMAGES)[:TEMPLATE_IMAGES]
    key = hashlib.sha256("\n".join(ref.relpath for ref in refs).encode()).hexdigest()[:16]
    path = Path(cache_dir) / "dlib_template" / f"{key}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        return AlignmentSpec.from_dict(cached["alignment"]), cached["fit"]
    from training.dlib_reference import DlibReference

    template, fit = fit_template(lfw, refs, detector or FaceDetector(), reference or DlibReference())
    spec = AlignmentSpec(size=CHIP_SIZE, points=tuple(map(tuple, template.round(6).tolist())))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"alignment": spec.to_dict(), "fit": fit})
    return spec, fit


def crop_agreement(lfw: LFW, refs: list[ImageRef], spec: AlignmentSpec, detector: FaceDetector, reference,
                   descriptor_model) -> dict:
    """How close the kiosk's crops (MTCNN + `spec`) come to dlib's chips of the same images: the cosine
    between dlib's descriptor of its chip and the backbone's descriptor of our crop (1 = same input)."""
    cosines = []
    for ref in refs:
        rgb = load_image(lfw.image_path(ref))
        chip = reference.chip(rgb)
        face = face_nearest_center(detector.detect(rgb), rgb.shape)
        if chip is None or face is None:
            continue
        ours = np.asarray(descriptor_model(align_face(rgb, face.landmarks, spec)[None].astype(np.float32) / 255.0))[0]
        theirs = reference.descriptor(chip)
        cosines.append(float(ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs))))
    cosines = np.asarray(cosines)
    return {"images": len(cosines), "median_cosine": round(float(np.median(cosines)), 4),
            "fifth_percentile_cosine": round(float(np.percentile(cosines, 5)), 4),
            "rule": "cosine between dlib's descriptor of dlib's chip and the backbone's of the kiosk's crop "
                    "(MTCNN landmarks aligned onto the template), same image"}


def export_dlib(lfw: LFW, cache_dir: Path, out_dir: Path, target_far: float, model_file: Path | None = None,
                command: str = "", log=print, weights: str = "float16", name: str = MODEL_NAME) -> Path:
    """Fit the template, align the validation and DevTest images with it, set the threshold, write
    the model (`name`.keras), its TFLite backbone (`weights`) and card into `out_dir`; returns the
    model's path."""
    from kiosk.embedder import LiteEmbedding
    from training.dlib_reference import DlibReference
    from training.experiment import HeldOutPeople, protocol_checksums
    from training.export import THRESHOLD_WHY, backbone_to_tflite, export_model
    from training.metrics import verification_report

    started = time.perf_counter()
    people = People.view1(lfw)
    detector, reference = FaceDetector(), DlibReference()
    dlib_weights = read_weights(model_file)
    descriptor_model = build_dlib_resnet(dlib_weights, normalize=False)

    sample = people.training_images(TEMPLATE_IMAGES + CHECK_IMAGES)
    spec, template_fit = fitted_template(lfw, cache_dir, sample[:TEMPLATE_IMAGES], detector, reference)
    log(f"template from {template_fit['mtcnn_on_chips']} dlib chips: {spec.to_dict()['points']}")
    agreement = crop_agreement(lfw, sample[TEMPLATE_IMAGES:], spec, detector, reference, descriptor_model)
    log(f"our crops against dlib's chips: median descriptor cosine {agreement['median_cosine']} "
        f"({agreement['images']} other DevTrain images)")

    split = people.split
    wanted = sorted(set(people.of_rows(split.validation.images)) | set(people.of_rows(split.test.images)))
    prepared = prepare(lfw, cache_dir, spec, detector=detector, refs=wanted)
    row_of = prepared.positions()

    def rows(lfw_rows: np.ndarray) -> np.ndarray:
        """Rows of the split (every LFW image) -> rows of the crops prepared here."""
        return np.array([row_of[people.refs[row].relpath] for row in lfw_rows.tolist()])

    backbone = build_dlib_resnet(dlib_weights)
    tflite = backbone_to_tflite(backbone, weights)
    with tempfile.TemporaryDirectory() as folder:
        converted = Path(folder) / "backbone.tflite"
        converted.write_bytes(tflite)
        vectors = _embed(LiteEmbedding(converted, CHIP_SIZE, CHIP_SIZE), prepared.crops)
    log(f"embedded {len(vectors)} validation and DevTest images with the {weights} TFLite backbone")

    validation_rows = rows(split.validation.images)
    held_out = HeldOutPeople(vectors[validation_rows], np.array([prepared.records[row]["name"] for row in validation_rows]))
    threshold, rule = held_out.door_threshold(target_far)
    validation_scores = _pair_scores(vectors, rows(split.validation.a), rows(split.validation.b))
    validation = verification_report(validation_scores, split.validation.same, threshold=threshold).to_dict()
    validation.update(rank1=held_out.rank1(), every_pair=held_out.true_accept_table())
    test_a, test_b = rows(split.test.a), rows(split.test.b)
    devtest = verification_report(_pair_scores(vectors, test_a, test_b), split.test.same, threshold=threshold).to_dict()
    undetected = np.array([not record["detected"] for record in prepared.records])
    seconds = time.perf_counter() - started
    out_path = Path(out_dir) / f"{name}.keras"
    far_table = held_out.far_table()
    typical_stranger = far_table["thresholds"][max(far_table["thresholds"], key=float)]
    card = {
        "threshold": {"value": threshold, "target_far": target_far, "rule": rule, "why": THRESHOLD_WHY},
        "impostor_far_table": far_table,
        "ambiguity_margin": round(AMBIGUITY_SHARE * (threshold - typical_stranger), 6),
        "devtest": {key: devtest[key] for key in ("pairs", "accuracy", "accuracy_std", "auc", "eer", "tar_at_far_1e2",
                                                  "tar_at_far_1e3", "accuracy_at_threshold")},
        "devtest_protocol": "LFW View 1: nothing trained on LFW; template and threshold fitted on peopleDevTrain.txt "
                            "people only; accuracy with 10-fold cross-validated thresholds on the 1,000 pairs of "
                            "pairsDevTest.txt; accuracy_at_threshold uses the threshold above",
        "devtest_pairs_with_undetected_face": int((undetected[test_a] | undetected[test_b]).sum()),
        "validation": validation,
        "backbone": BACKBONE_ORIGIN,
        "alignment_fit": {"template": template_fit, "agreement_with_dlib_chips": agreement,
                          "method": "dlib's detector, 5-point shape predictor and get_face_chip (150 px, padding "
                                    "0.25) on DevTrain training images; MTCNN on those chips; the median of its "
                                    "landmarks. Agreement measured on other DevTrain training images"},
        "training": {"command": None, "seconds": round(seconds, 1), "what": "no training: dlib's weights as shipped; "
                     "this is the time to fit the template and threshold and export",
                     "machine": f"{os.cpu_count()} CPU cores, no GPU"},
        "export_command": command or (f"python -m training dlib-export --out {out_dir} --name {name} "
                                      f"--weights {weights} --target-far {target_far:g}"),
        "data": {"lfw_images_aligned": len(prepared.records), "lfw_undetected": int(undetected.sum()),
                 "protocol_sha256": protocol_checksums(lfw), "dlib_model_file": MODEL_FILE},
    }
    return export_model(backbone, CHIP_SIZE, spec.to_dict(), out_path, card, tflite=tflite, tflite_weights=weights)


def _embed(embedding, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([np.asarray(embedding(np.asarray(crops[start:start + batch])))
                           for start in range(0, len(crops), batch)])


def _pair_scores(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(vectors[a] * vectors[b], axis=1)
