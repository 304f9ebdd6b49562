"""`python -m training prepare`: align every LFW image once, through the kiosk's own pipeline.

The result is a cache folder holding `crops.npy` (N x S x S x 3 uint8, aligned exactly as the
kiosk aligns) and `index.json` (one record per image plus a summary). Work is done in shards
that are written atomically, so an interrupted run resumes where it stopped.

Images where MTCNN finds no face are not dropped (the LFW protocol scores every pair): they
are aligned with the median landmarks of all detected images, flagged `detected: false`, and
counted so evaluations can report them.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kiosk.alignment import AlignmentSpec, align_face, alignment_error, landmarks_in_crop
from kiosk.atomic import atomic_save_npy, atomic_save_npz, atomic_write_json
from kiosk.faces import FaceDetector, face_nearest_center
from kiosk.images import load_image
from training.lfw import LFW, ImageRef

SHARD_SIZE = 256
DETECT_BATCH = 32  # MTCNN cost per image drops ~5x when equal-size images are batched


@dataclass(frozen=True)
class PreparedLFW:
    """A finished prepare cache: crops in LFW order and their per-image records."""

    folder: Path
    crops: np.ndarray  # memory-mapped N x S x S x 3 uint8
    records: list[dict]
    summary: dict

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "PreparedLFW":
        folder = Path(folder)
        index_path, crops_path = folder / "index.json", folder / "crops.npy"
        if not index_path.exists() or not crops_path.exists():
            raise FileNotFoundError(f"{folder} is not a finished prepare cache; run `python -m training prepare`")
        index = json.loads(index_path.read_text())
        return cls(folder, np.load(crops_path, mmap_mode="r"), index["images"], index["summary"])

    def positions(self) -> dict[str, int]:
        """relpath -> row in `crops`."""
        return {record["relpath"]: row for row, record in enumerate(self.records)}

    def crop_landmarks(self, rows: np.ndarray) -> np.ndarray:
        """N x 5 x 2: where the landmarks of the given rows fall in their crops (the fallback landmarks
        for images without a detected face)."""
        return np.array([landmarks_in_crop(np.asarray(self.records[row]["landmarks"]), self.spec)
                         for row in np.asarray(rows).tolist()], np.float32).reshape(-1, 5, 2)

    @property
    def spec(self) -> AlignmentSpec:
        return AlignmentSpec.from_dict(self.summary["alignment"])


def cache_key(refs: list[ImageRef], spec: AlignmentSpec, detector_settings: dict) -> str:
    """Changes whenever the images or any setting that shapes a crop changes."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"alignment": spec.to_dict(), "detector": detector_settings}, sort_keys=True).encode())
    for ref in refs:
        digest.update(ref.relpath.encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("KIOSK_CACHE_DIR", Path.home() / ".cache" / "face-kiosk"))


def largest_prepared(spec: AlignmentSpec, cache_dir: Path | None = None) -> PreparedLFW | None:
    """The finished prepare cache with the most images and crops of `spec`'s geometry, if any.

    For speed and agreement checks, where any real aligned crops will do: which detector
    settings made them does not matter, only their geometry.
    """
    best = None
    for index in sorted(((cache_dir or default_cache_dir()) / "prepared").glob("*/index.json")):
        prepared = PreparedLFW.load(index.parent)
        if prepared.spec == spec and (best is None or len(prepared.records) > len(best.records)):
            best = prepared
    return best


def prepare(
    lfw: LFW,
    cache_dir: Path,
    spec: AlignmentSpec = AlignmentSpec(),
    limit: int | None = None,
    detector: FaceDetector | None = None,
    progress: bool = True,
    refs: list[ImageRef] | None = None,
) -> PreparedLFW:
    """Align all (or the first `limit`, or only `refs`) LFW images into a cache folder, resuming if possible."""
    refs = list(refs) if refs is not None else lfw.all_images()
    refs = refs[:limit] if limit else refs
    detector = detector or FaceDetector()
    settings = detector.settings
    folder = Path(cache_dir) / "prepared" / cache_key(refs, spec, settings)
    if (folder / "index.json").exists():
        return PreparedLFW.load(folder)
    shard_dir = folder / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    shard_starts = range(0, len(refs), SHARD_SIZE)
    todo = [start for start in shard_starts if not (shard_dir / f"{start // SHARD_SIZE:05d}.npz").exists()]
    bar = tqdm(total=len(refs), initial=len(refs) - sum(min(SHARD_SIZE, len(refs) - s) for s in todo),
               unit="img", desc="aligning LFW", disable=not progress)
    processed = 0
    for start in todo:
        shard = _detect_shard(lfw, refs[start : start + SHARD_SIZE], detector, spec)
        atomic_save_npz(shard_dir / f"{start // SHARD_SIZE:05d}.npz", **shard)
        processed += len(shard["scores"])
        bar.update(len(shard["scores"]))
    bar.close()
    elapsed = time.perf_counter() - started
    return _finish(lfw, folder, refs, spec, settings, processed, elapsed)


def _detect_shard(lfw: LFW, refs: list[ImageRef], detector: FaceDetector, spec: AlignmentSpec) -> dict:
    count = len(refs)
    crops = np.zeros((count, spec.size, spec.size, 3), np.uint8)
    landmarks = np.zeros((count, 5, 2), np.float32)
    scores = np.zeros(count, np.float32)
    face_counts = np.zeros(count, np.int16)
    shapes = np.zeros((count, 2), np.int32)
    for batch_start in range(0, count, DETECT_BATCH):
        batch_refs = refs[batch_start : batch_start + DETECT_BATCH]
        images = [load_image(lfw.image_path(ref)) for ref in batch_refs]
        for offset, (image, faces) in enumerate(zip(images, detector.detect_batch(images))):
            row = batch_start + offset
            shapes[row] = image.shape[:2]
            face_counts[row] = len(faces)
            subject = face_nearest_center(faces, image.shape)
            if subject is not None:
                landmarks[row], scores[row] = subject.landmarks, subject.score
                crops[row] = align_face(image, subject.landmarks, spec)
    return {"crops": crops, "landmarks": landmarks, "scores": scores, "face_counts": face_counts, "shapes": shapes}


def _finish(lfw: LFW, folder: Path, refs: list[ImageRef], spec: AlignmentSpec, settings: dict,
            processed: int, elapsed: float) -> PreparedLFW:
    shards = [np.load(path) for path in sorted((folder / "shards").glob("*.npz"))]
    crops = np.concatenate([shard["crops"] for shard in shards])
    landmarks = np.concatenate([shard["landmarks"] for shard in shards])
    scores = np.concatenate([shard["scores"] for shard in shards])
    face_counts = np.concatenate([shard["face_counts"] for shard in shards])
    shapes = np.concatenate([shard["shapes"] for shard in shards])
    detected = face_counts > 0
    # Undetected faces get the median landmarks of the detected ones, relative to image size:
    # LFW images are centred on their subject, so this is the crop an average detection would give.
    relative = landmarks[detected] / shapes[detected][:, None, ::-1]
    fallback_relative = np.median(relative, axis=0)
    for row in np.flatnonzero(~detected):
        fallback = fallback_relative * shapes[row][::-1]
        crops[row] = align_face(load_image(lfw.image_path(refs[row])), fallback, spec)
        landmarks[row] = fallback
    errors = np.array([alignment_error(points, spec) for points in landmarks[detected]])
    eye_distance = np.linalg.norm(spec.template()[1] - spec.template()[0])
    records = [
        {
            "relpath": ref.relpath,
            "name": ref.name,
            "number": ref.number,
            "detected": bool(detected[row]),
            "faces": int(face_counts[row]),
            "score": round(float(scores[row]), 4),
            "landmarks": np.round(landmarks[row], 2).tolist(),
        }
        for row, ref in enumerate(refs)
    ]
    summary = {
        "images": len(refs),
        "detected": int(detected.sum()),
        "undetected": int((~detected).sum()),
        "undetected_handling": "aligned with the median landmarks of detected images (flagged detected=false)",
        "several_faces": int((face_counts > 1).sum()),
        "several_faces_handling": "the face nearest the image centre is the subject",
        "alignment": spec.to_dict(),
        "detector": settings,
        "median_alignment_error_px": round(float(np.median(errors)), 3),
        "median_alignment_error_of_eye_distance": round(float(np.median(errors) / eye_distance), 4),
        "fallback_landmarks_relative": np.round(fallback_relative, 4).tolist(),
        "images_processed_this_run": processed,
        "seconds_this_run": round(elapsed, 1),
        "images_per_second": round(processed / elapsed, 2) if processed and elapsed > 0 else None,
    }
    atomic_save_npy(folder / "crops.npy", crops)
    atomic_write_json(folder / "index.json", {"summary": summary, "images": records})
    return PreparedLFW.load(folder)
