"""Camera footage for the liveness tests, made from LFW photographs (there is no webcam here).

Two kinds of footage, both 640x480 frames with the face about 110 px wide, sensor noise and
JPEG artefacts, written as real video files by cv2.VideoWriter:

- **Replayed photo**: one LFW photo, printed (a white border) and held in front of the camera.
  Each frame renders the flat photo through a pinhole camera (focal length 600 px, the photo
  about 60 cm away) with a random hand jitter (shifts, scale, roll, small tilts), plus scripted
  moves that mimic what a liveness challenge asks for: a strong tilt about the vertical axis
  (to +-45 degrees, like a head turning left or right) and about the horizontal axis (like a
  nod). A flat photo maps its points between any two frames by a homography: that is what the
  passive check looks for.
- **Genuine challenge sequence**: LFW has no videos, but it has many photos of the same person
  at different head poses. A sequence shows a frontal photo, then photos of the same person
  turned the asked way (or nodding), then a frontal one again, all at the same place in the
  frame. Between real photos of a real head at different poses, the nose moves off the plane
  of the eyes and mouth corners (parallax), as it does in front of the door. What this cannot
  show: a live head moving continuously, its motion blur, or the timing of a real person; those
  need a webcam recording, which the test suite does not have.

The photo numbers below were chosen with the real detector (MTCNN head poses of every image of
the person; see tests/test_liveness_pipeline.py for the selection rule and its check).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from videos import write_video  # noqa: F401  (the liveness tests import it from here)

FRAME_W, FRAME_H = 640, 480
FOCAL = 600.0  # pixels: a webcam with a ~56 degree horizontal field of view
PHOTO_SCALE = 1.3  # a 250 px LFW photo fills 325 px of the frame when held straight
BORDER = 8  # the white border of a printed photo, in photo pixels


@dataclass(frozen=True)
class Pose:
    """Where the photo is held: rotations in degrees (yaw about the vertical axis), shift in pixels."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


def background(seed: int = 7) -> np.ndarray:
    """A smooth, slightly textured wall behind the photo (BGR)."""
    rng = np.random.default_rng(seed)
    coarse = (rng.uniform(90, 170, size=(6, 8, 1)) + rng.uniform(-15, 15, size=(6, 8, 3))).astype(np.float32)
    wall = cv2.resize(coarse, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    wall += rng.normal(0, 4, size=wall.shape).astype(np.float32)
    return np.clip(wall, 0, 255).astype(np.uint8)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def photo_homography(photo_shape: tuple[int, ...], pose: Pose) -> np.ndarray:
    """3x3 map from photo pixels to frame pixels for a flat photo held at `pose`."""
    height, width = photo_shape[:2]
    s = PHOTO_SCALE * pose.scale
    rotation = _rotation(pose.yaw, pose.pitch, pose.roll)
    # Photo pixel (u, v) -> 3D point rotation @ (s(u - cu), s(v - cv), 0) + (0, 0, FOCAL).
    to_3d = np.column_stack([
        s * rotation[:, 0],
        s * rotation[:, 1],
        np.array([0.0, 0.0, FOCAL]) - s * (rotation[:, 0] * width / 2 + rotation[:, 1] * height / 2),
    ])
    camera = np.array([[FOCAL, 0, FRAME_W / 2 + pose.dx], [0, FOCAL, FRAME_H / 2 + pose.dy], [0, 0, 1]])
    return camera @ to_3d


def render(photo_bgr: np.ndarray, pose: Pose, wall: np.ndarray) -> np.ndarray:
    """The frame showing `photo_bgr` (with a white border) held at `pose` in front of `wall`."""
    printed = cv2.copyMakeBorder(photo_bgr, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT,
                                 value=(235, 235, 235))
    matrix = photo_homography(printed.shape, pose)
    warped = cv2.warpPerspective(printed, matrix, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full(printed.shape[:2], 255, np.uint8), matrix, (FRAME_W, FRAME_H))
    frame = wall.copy()
    frame[mask > 127] = warped[mask > 127]
    return frame


def degrade(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise and a JPEG round trip of random quality, as a cheap webcam delivers."""
    noisy = np.clip(frame.astype(np.float32) + rng.normal(0, 3.0, frame.shape), 0, 255).astype(np.uint8)
    quality = int(rng.integers(55, 90))
    ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _sweep(key: str, peak: float, frames: int) -> list[dict[str, float]]:
    """0 -> peak -> 0 over `frames` frames (a tilt and back)."""
    return [{key: peak * math.sin(math.pi * i / (frames - 1))} for i in range(frames)]


# The scripted moves of a replay, in order: (what, frames). Hand jitter is added to every frame.
REPLAY_SCRIPT = (
    ("hold", 6),
    ("tilt_left", 9),  # about the vertical axis to -45 degrees and back: a head turning to its left
    ("hold", 3),
    ("tilt_right", 9),
    ("tilt_down", 9),  # about the horizontal axis to +35 degrees and back: a nod
    ("held_left", 3),  # held at -55 degrees: the strongest tilt at which MTCNN still finds the face
    ("held_right", 3),
    ("wave", 8),  # the hand moves: bigger shifts, roll, closer and further
)
# A photo held steadily and turned slowly about its vertical axis to the strongest tilt at which
# MTCNN still finds the face, then held there: the face's track never breaks, so the liveness
# challenge judges the move itself (its parallax and shape).
STEADY_TURN_SCRIPT = (("hold", 5), ("swing_right", 8), ("held_right", 22))
_MOVES = {
    "hold": lambda rng, n: [{}] * n,
    "swing_right": lambda rng, n: [{"yaw": 55.0 * i / (n - 1)} for i in range(n)],
    "tilt_left": lambda rng, n: _sweep("yaw", -45.0, n),
    "tilt_right": lambda rng, n: _sweep("yaw", 45.0, n),
    "tilt_down": lambda rng, n: _sweep("pitch", 35.0, n),
    "held_left": lambda rng, n: [{"yaw": -55.0}] * n,
    "held_right": lambda rng, n: [{"yaw": 55.0}] * n,
    "wave": lambda rng, n: [{"dx": float(rng.uniform(-60, 60)), "dy": float(rng.uniform(-40, 40)),
                             "roll": float(rng.uniform(-15, 15)), "scale": float(rng.uniform(0.85, 1.15))}
                            for _ in range(n)],
}


def replay_poses(rng: np.random.Generator, script=REPLAY_SCRIPT) -> list[Pose]:
    """One pose per frame: the script's moves plus random hand jitter."""
    poses = []
    for move, frames in script:
        for extra in _MOVES[move](rng, frames):
            jitter = {"yaw": rng.normal(0, 3), "pitch": rng.normal(0, 3), "roll": rng.normal(0, 2),
                      "dx": rng.normal(0, 4), "dy": rng.normal(0, 4), "scale": 1 + rng.normal(0, 0.02)}
            values = {key: float(jitter[key]) + extra.get(key, 0.0) for key in ("yaw", "pitch", "roll", "dx", "dy")}
            values["scale"] = float(jitter["scale"]) * extra.get("scale", 1.0)
            poses.append(Pose(**values))
    return poses


def replay_frames(photo_bgr: np.ndarray, seed: int, script=REPLAY_SCRIPT) -> list[np.ndarray]:
    """BGR frames of one printed photo held up and moved by hand (see the module docstring)."""
    rng = np.random.default_rng(seed)
    wall = background()
    return [degrade(render(photo_bgr, pose, wall), rng) for pose in replay_poses(rng, script)]


def genuine_frames(photos_bgr: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """BGR frames showing each photo in turn, unwarped, at the same place (a real head posing)."""
    rng = np.random.default_rng(seed)
    wall = background()
    return [degrade(render(photo, Pose(), wall), rng) for photo in photos_bgr]
