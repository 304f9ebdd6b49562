"""LFW photos to build benchmark frames from: one clear, frontal face each, its box known.

The photos are scanned in a fixed pseudo-random order and kept when the detector finds exactly
one face that is confident, frontal, sharp and evenly lit (what a person at a door offers);
its box and landmarks are stored with the photo. The choice is cached under
$KIOSK_CACHE_DIR/bench/ and extended when a run needs more photos than a previous one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.speed.options import BenchError
from kiosk.atomic import atomic_write_json
from kiosk.images import load_image

SEED = 7
SCAN_BATCH = 32  # LFW photos are all 250x250: MTCNN is much cheaper per image in batches
_CACHE_FILE = "sources-v1.json"


@dataclass(frozen=True)
class Source:
    relpath: str  # inside the LFW image folder
    box: np.ndarray  # x1, y1, x2, y2 of the face in the photo
    landmarks: np.ndarray  # 5 x 2

    def to_dict(self) -> dict:
        return {"relpath": self.relpath, "box": self.box.round(2).tolist(), "landmarks": self.landmarks.round(2).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Source:
        return cls(data["relpath"], np.asarray(data["box"], np.float32), np.asarray(data["landmarks"], np.float32))


def usable_face(faces: list):
    """The only face of a photo if it is one a door camera would see well, else None."""
    if len(faces) != 1:
        return None
    face = faces[0]
    q = face.quality
    frontal = abs(q.yaw) <= 20 and abs(q.roll) <= 15 and abs(q.pitch) <= 25
    return face if face.score >= 0.99 and frontal and q.sharpness >= 60 and 60 <= q.brightness <= 200 else None


def choose_sources(lfw, detector, count: int, cache_dir: Path) -> list[Source]:
    """The first `count` usable photos in the scan order (cached; extended as needed)."""
    path = cache_dir / _CACHE_FILE
    cached = json.loads(path.read_text()) if path.exists() else {"seed": SEED, "scanned": 0, "sources": []}
    sources = [Source.from_dict(s) for s in cached["sources"]]
    if len(sources) >= count:
        return sources[:count]
    order = _scan_order(lfw)
    scanned = cached["scanned"]
    while len(sources) < count and scanned < len(order):
        batch = order[scanned:scanned + SCAN_BATCH]
        photos = [load_image(lfw.images_dir / relpath) for relpath in batch]
        for relpath, faces in zip(batch, detector.detect_batch(photos)):
            face = usable_face(faces)
            if face is not None:
                sources.append(Source(relpath, face.box, face.landmarks))
        scanned += len(batch)
    atomic_write_json(path, {"seed": SEED, "scanned": scanned, "sources": [s.to_dict() for s in sources]})
    if len(sources) < count:
        raise BenchError(f"only {len(sources)} usable LFW photos found in {lfw.images_dir}; {count} needed")
    return sources[:count]


def _scan_order(lfw) -> list[str]:
    relpaths = [ref.relpath for ref in lfw.all_images()]
    return [relpaths[i] for i in np.random.default_rng(SEED).permutation(len(relpaths))]
