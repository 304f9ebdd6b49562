"""Real video files for tests: Motion-JPEG .avi written with OpenCV, the kind kiosk.camera plays."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, frames_bgr: list[np.ndarray], fps: float = 5.0) -> Path:
    """`frames_bgr` (all one size) as an MJPG .avi at `fps` frames/s."""
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return path


def read_bgr(path: Path, side: int = 250) -> np.ndarray:
    """An image file as a `side` x `side` BGR frame (LFW photos are 250 x 250 already)."""
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.resize(image, (side, side)) if image.shape[:2] != (side, side) else image
