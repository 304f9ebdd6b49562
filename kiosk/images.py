"""Image input at the edge of the kiosk: files and arrays become RGB uint8, or a clear error.

Everything downstream (detector, aligner, embedder) assumes HxWx3 uint8 RGB, so the
conversions live here and nowhere else.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import InvalidImageError

# Larger than any camera frame or phone photo we expect; beyond this decoding alone would
# take hundreds of MB, which is how a hostile or broken file takes a kiosk down.
MAX_PIXELS = 50_000_000
MIN_SIDE = 12


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Return `image` as a contiguous HxWx3 uint8 RGB array.

    Grey images are repeated to three channels and RGBA loses its alpha; uint16 is scaled
    down and floats in [0, 1] scaled up. Anything else raises InvalidImageError saying why.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise InvalidImageError(f"the image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InvalidImageError(
            f"expected a grey, RGB or RGBA image (HxW, HxWx3 or HxWx4), got shape {image.shape}"
        )
    if image.shape[2] == 4:
        image = image[:, :, :3]
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InvalidImageError(f"the image is too small ({width}x{height}); need at least {MIN_SIDE} px a side")
    if height * width > MAX_PIXELS:
        raise InvalidImageError(
            f"the image is too large ({width}x{height} = {height * width / 1e6:.0f} MP; limit {MAX_PIXELS / 1e6:.0f} MP)"
        )
    image = _to_uint8(image)
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise InvalidImageError("the image holds NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise InvalidImageError(
                f"float images must hold values in [0, 1]; this one spans [{low:g}, {high:g}] "
                "(pass uint8 RGB instead)"
            )
        return np.round(image * 255.0).astype(np.uint8)
    raise InvalidImageError(f"unsupported pixel type {image.dtype}; pass uint8 RGB")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8, or raise InvalidImageError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise InvalidImageError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a folder, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, name=str(path))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to RGB uint8."""
    if not data:
        raise InvalidImageError(f"{name}: the file is empty")
    buffer = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidImageError(f"{name}: not an image, or a corrupt one (cannot decode)")
    try:
        return as_rgb_uint8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    except InvalidImageError as exc:
        raise InvalidImageError(f"{name}: {exc}") from exc


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB image (thumbnails for the gallery and the log)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidImageError("could not encode the image as JPEG")
    return buffer.tobytes()
