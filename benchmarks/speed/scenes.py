"""Door scenes: a face photograph composited onto a plain or textured background.

A photo is placed by a similarity (scale + shift) that puts its detected face box at a chosen
centre and width; an elliptical, feathered mask around the head keeps the face, hair and chin
and lets the background show around them. The face box in the scene is therefore known: it is
the source box under the same transform. Everything is seeded, so a scene is reproducible.
"""
from __future__ import annotations

import cv2
import numpy as np

PLAIN, TEXTURED = "plain", "textured"
# The head ellipse around the face box centre, in face-box widths/heights: wide enough for
# hair and ears, tall enough for the forehead and chin; shifted up for the hair.
_HEAD_RX, _HEAD_RY, _HEAD_UP = 0.8, 0.85, 0.12
_FEATHER = 0.12  # mask blur, in face-box widths


def background(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 background: a lit wall (plain) or a wall with blotches and grain (textured)."""
    base = rng.uniform(90, 200, size=3)
    # Light from above: a gentle vertical gradient, as on a wall beside a door.
    light = np.linspace(1.1, 0.85, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(base.astype(np.float32), (height, width, 3)) * light
    if kind == TEXTURED:
        # Blotches of light and shade with a little colour, then fine grain: plaster, wallpaper.
        cells = (max(height // 40, 2), max(width // 40, 2))
        blotches = rng.normal(0, 22, size=cells + (1,)) + rng.normal(0, 5, size=cells + (3,))
        image = image + cv2.resize(blotches.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        image = image + rng.normal(0, 9, size=(height, width, 1)).astype(np.float32)
    elif kind != PLAIN:
        raise ValueError(f"background kind must be {PLAIN!r} or {TEXTURED!r}, got {kind!r}")
    return np.clip(image, 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Camera sensor noise: each frame of a static scene differs a little."""
    noisy = image.astype(np.float32) + rng.normal(0, sigma, size=image.shape[:2] + (1,)).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def place_face(
    scene: np.ndarray, photo: np.ndarray, source_box: np.ndarray, centre: tuple[float, float], face_width: float
) -> tuple[np.ndarray, np.ndarray]:
    """(the scene with the photo's head composited, the face box in scene coordinates).

    The photo is scaled so that its face box (x1, y1, x2, y2) becomes `face_width` pixels wide
    and moved so that the box centre lands on `centre`; parts outside the scene are cut off.
    """
    x1, y1, x2, y2 = (float(v) for v in source_box)
    scale = face_width / (x2 - x1)
    source_centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    shift = np.asarray(centre, dtype=np.float64) - scale * source_centre
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    height, width = scene.shape[:2]
    mask = _head_mask(photo.shape[:2], source_box)
    warped = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
    blended = scene.astype(np.float32) * (1.0 - alpha) + warped.astype(np.float32) * alpha
    box = np.array([x1, y1, x2, y2]) * scale + np.tile(shift, 2)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8), box.astype(np.float32)


def _head_mask(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    box_w, box_h = x2 - x1, y2 - y1
    mask = np.zeros(shape, np.float32)
    centre = (round((x1 + x2) / 2), round((y1 + y2) / 2 - _HEAD_UP * box_h))
    axes = (round(_HEAD_RX * box_w), round(_HEAD_RY * box_h))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, thickness=-1)
    sigma = max(_FEATHER * box_w, 1.0)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def box_inside(box: np.ndarray, width: int, height: int) -> bool:
    """Whether the whole box lies inside a width x height picture."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
