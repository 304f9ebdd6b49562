"""Walk-in videos: an empty doorway, then a person walks in, comes closer and stands there.

Written with cv2.VideoWriter (Motion-JPEG, 25 fps, what many USB webcams send) and cached
under $KIOSK_CACHE_DIR/bench/ with a manifest of the face box in every frame. The face is
120 px wide while walking in (at 480 px frame height; scaled with the height) and grows to
220 px while approaching. The manifest gives the face box in every frame where part of it is
in the picture; `face_enters_frame` is the first of those, `whole_face_frame` the first with
the whole box inside: the two moments the time to a decision is measured from.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.speed.options import BenchError, WalkIn
from benchmarks.speed.scenes import TEXTURED, add_noise, background, box_inside, place_face
from benchmarks.speed.sources import Source
from kiosk.atomic import atomic_write_json
from kiosk.images import load_image

FPS = 25.0
WALK_WIDTH_480, STAND_WIDTH_480 = 130.0, 220.0
_VERSION = "v1"


@dataclass(frozen=True)
class Sequence:
    path: Path  # the .avi file
    size: tuple[int, int]
    fps: float
    boxes: list[np.ndarray | None]  # face box per frame, None where no face is in the picture
    in_view: list[bool]  # the whole face box inside the picture
    face_enters_frame: int  # the first frame with part of the face box in the picture
    whole_face_frame: int  # the first frame with all of it
    source: str  # LFW relpath of the person's photo

    @property
    def frames(self) -> int:
        return len(self.boxes)


def walkin_sequence(lfw, source: Source, size: tuple[int, int], phases: WalkIn, cache_dir: Path) -> Sequence:
    """The walk-in video of `source` at `size`, from the cache or rendered now."""
    width, height = size
    slug = source.relpath.replace("/", "_").removesuffix(".jpg")
    stem = f"walkin-{width}x{height}-{slug}-{phases.empty}-{phases.walk}-{phases.approach}-{phases.stand}-{_VERSION}"
    video, manifest = cache_dir / f"{stem}.avi", cache_dir / f"{stem}.json"
    if not (video.exists() and manifest.exists()):  # the manifest is written last: it marks a finished video
        boxes = _render(lfw, source, size, phases, video)
        atomic_write_json(manifest, {"source": source.relpath, "size": [width, height], "fps": FPS,
                                     "boxes": [None if b is None else b.round(2).tolist() for b in boxes]})
    data = json.loads(manifest.read_text())
    boxes = [None if b is None else np.asarray(b, np.float32) for b in data["boxes"]]
    in_view = [b is not None and box_inside(b, width, height) for b in boxes]
    if not any(in_view):
        raise BenchError(f"{video}: the face is never wholly in the picture; the walk-in phases are too short")
    enters = next(i for i, b in enumerate(boxes) if b is not None)
    return Sequence(video, (width, height), data["fps"], boxes, in_view, enters, in_view.index(True), data["source"])


def face_path(phases: WalkIn, size: tuple[int, int]) -> list[tuple[float, float, float] | None]:
    """(centre x, centre y, face width) per frame, None for the empty frames."""
    width, height = size
    walk_w, stand_w = WALK_WIDTH_480 * height / 480, STAND_WIDTH_480 * height / 480
    path: list[tuple[float, float, float] | None] = [None] * phases.empty
    start_x = -0.9 * walk_w  # just outside the left edge, head included
    for k in range(phases.walk):
        p = (k + 1) / phases.walk
        path.append((start_x + p * (width / 2 - start_x), 0.45 * height + 3 * math.sin(k), walk_w))
    for k in range(phases.approach):
        p = (k + 1) / phases.approach
        path.append((width / 2, (0.45 + 0.05 * p) * height, walk_w + p * (stand_w - walk_w)))
    for k in range(phases.stand):  # standing still is never perfectly still
        path.append((width / 2 + 2 * math.sin(k / 7), 0.5 * height + 1.5 * math.sin(k / 5), stand_w))
    return path


def _render(lfw, source: Source, size: tuple[int, int], phases: WalkIn, video: Path) -> list[np.ndarray | None]:
    width, height = size
    rng = np.random.default_rng([13, width, height])
    wall = background(TEXTURED, width, height, rng)
    photo = load_image(lfw.images_dir / source.relpath)
    video.parent.mkdir(parents=True, exist_ok=True)
    # VideoWriter picks the container from the suffix, so the temporary file keeps ".avi".
    handle, partial = tempfile.mkstemp(prefix=f".{video.stem}.", suffix=".avi", dir=video.parent)
    os.close(handle)
    boxes: list[np.ndarray | None] = []
    try:
        writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
        if not writer.isOpened():
            raise BenchError(f"OpenCV cannot write Motion-JPEG video to {partial}")
        for step in face_path(phases, size):
            frame, box = wall, None
            if step is not None:
                cx, cy, face_width = step
                frame, box = place_face(wall, photo, source.box, (cx, cy), face_width)
                if box[2] <= 0:  # still wholly outside the picture
                    box = None
            writer.write(cv2.cvtColor(add_noise(frame, rng), cv2.COLOR_RGB2BGR))
            boxes.append(box)
        writer.release()
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, video)
    finally:
        Path(partial).unlink(missing_ok=True)
    return boxes
