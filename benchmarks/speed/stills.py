"""Still frames for the per-stage latencies: a different person in every frame, as JPEG files.

Frame i puts source photo i on a plain (even i) or textured (odd i) background, its face
120-250 px wide at 640x480 (scaled with the frame height at other sizes) somewhere near the
middle. The frames are cached as JPEGs (what a webcam sends) with a manifest of the face box
in each; frame i is the same whatever the number of frames a run asks for.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.speed.scenes import PLAIN, TEXTURED, background, place_face
from benchmarks.speed.sources import Source
from kiosk.atomic import atomic_write_bytes, atomic_write_json
from kiosk.images import encode_jpeg, load_image

SEED = 11
FACE_WIDTH_480 = (120.0, 250.0)  # face box width range in a 480-pixel-high frame
JPEG_QUALITY = 90
_VERSION = "v1"  # bump when the rendering changes: old caches are then ignored


@dataclass(frozen=True)
class Still:
    path: Path  # the JPEG
    box: np.ndarray  # the face box in the frame
    source: str  # LFW relpath of the face
    background: str


def stills(lfw, sources: list[Source], size: tuple[int, int], cache_dir: Path) -> list[Still]:
    """One frame per source at `size` (width, height), generating the ones not cached yet."""
    width, height = size
    folder = cache_dir / f"stills-{width}x{height}-{_VERSION}"
    manifest_path = folder / "manifest.json"
    known = json.loads(manifest_path.read_text())["frames"] if manifest_path.exists() else []
    frames = []
    changed = False
    for index, source in enumerate(sources):
        entry = known[index] if index < len(known) else None
        if entry is None or entry["source"] != source.relpath or not (folder / entry["file"]).exists():
            entry = _render(lfw, source, index, size, folder)
            changed = True
        frames.append(entry)
    if changed:
        atomic_write_json(manifest_path, {"size": [width, height], "frames": frames + known[len(frames):]})
    return [Still(folder / f["file"], np.asarray(f["box"], np.float32), f["source"], f["background"]) for f in frames]


def _render(lfw, source: Source, index: int, size: tuple[int, int], folder: Path) -> dict:
    width, height = size
    rng = np.random.default_rng([SEED, index])
    kind = PLAIN if index % 2 == 0 else TEXTURED
    face_width = rng.uniform(*FACE_WIDTH_480) * height / 480
    aspect = float((source.box[3] - source.box[1]) / (source.box[2] - source.box[0]))
    half_w, half_h = face_width / 2, face_width * aspect / 2
    # Somewhere near the middle, the whole face box inside the frame.
    cx = float(np.clip(rng.uniform(0.3, 0.7) * width, half_w + 2, width - half_w - 2))
    cy = float(np.clip(rng.uniform(0.4, 0.55) * height, half_h + 2, height - half_h - 2))
    scene = background(kind, width, height, rng)
    frame, box = place_face(scene, load_image(lfw.images_dir / source.relpath), source.box, (cx, cy), face_width)
    name = f"frame_{index:05d}.jpg"
    atomic_write_bytes(folder / name, encode_jpeg(frame, JPEG_QUALITY))
    return {"file": name, "box": box.round(2).tolist(), "source": source.relpath, "background": kind}
