"""Image input at the edge of the kiosk: files and arrays become RGB uint8, or a clear error.

Everything downstream (detector, aligner, embedder) assumes HxWx3 uint8 RGB, so the
conversions live here and nowhere else.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import InvalidImageError

# Larger than any camera frame or phone photo we expect; beyond this decoding alone would
# take hundreds of MB, which is how a hostile or broken file takes a kiosk down.
MAX_PIXELS = 50_000_000
MIN_SIDE = 12
MAX_ASPECT = 100  # longer side over shorter: a strip, not a photo (and too thin to scale for MTCNN)
# Above any photo's size (a 50 MP BMP is 150 MB); a file beyond it is not read into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024
FORMATS = "JPEG, PNG, BMP, WebP or TIFF"


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
    check_size(image.shape[1], image.shape[0])
    image = _to_uint8(image)
    return np.ascontiguousarray(image)


def check_size(width: int, height: int) -> None:
    """Raise InvalidImageError if a width x height image is too small, too large or too thin to use."""
    if min(height, width) < MIN_SIDE:
        raise InvalidImageError(f"the image is too small ({width}x{height}); need at least {MIN_SIDE} px a side")
    if height * width > MAX_PIXELS:
        raise InvalidImageError(
            f"the image is too large ({width}x{height} = {height * width / 1e6:.0f} MP; limit {MAX_PIXELS / 1e6:.0f} MP)"
        )
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise InvalidImageError(f"the image is too narrow ({width}x{height}); a side may be at most {MAX_ASPECT}x the other")


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
    try:
        # O_NONBLOCK: a FIFO named like a photo must not block the open (regular files ignore it).
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        broken = " (a symbolic link to nothing)" if path.is_symlink() else ""
        raise InvalidImageError(f"{path}: no such file{broken}") from None
    except IsADirectoryError:  # Windows cannot open a folder; POSIX can, fstat says so below
        raise InvalidImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:  # permission denied, a symbolic link loop, ...
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(descriptor)  # of what was opened, so a swap after a check cannot fool it
        if stat.S_ISDIR(info.st_mode):
            raise InvalidImageError(f"{path}: is a folder, not an image")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidImageError(f"{path}: not a regular file (a device, pipe or socket), not an image")
        if info.st_size > MAX_FILE_BYTES:
            raise InvalidImageError(
                f"{path}: the file is too large for an image ({info.st_size / 2**20:.0f} MB; "
                f"limit {MAX_FILE_BYTES / 2**20:.0f} MB)"
            )
        with open(descriptor, "rb", closefd=False) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)  # bounded: the file may be growing
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    finally:
        os.close(descriptor)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"{path}: the file is too large for an image (limit {MAX_FILE_BYTES / 2**20:.0f} MB)")
    return decode_image(data, name=str(path))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, WebP, TIFF) to RGB uint8.

    The size is read from the header and checked before decoding: a few hundred KB of PNG can
    claim 20000x20000 pixels, and decoding that first would take gigabytes and seconds.
    """
    if not data:
        raise InvalidImageError(f"{name}: the file is empty")
    kind = _format(data)
    if kind is None:
        raise InvalidImageError(f"{name}: not an image, or not one this kiosk reads ({FORMATS})")
    size = _header_size(kind, data)
    if size is None:
        raise InvalidImageError(f"{name}: not an image, or a corrupt one (a {kind} header without a readable size)")
    try:
        check_size(*size)
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InvalidImageError("not an image, or a corrupt one (cannot decode)")
        return as_rgb_uint8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    except cv2.error as exc:  # OpenCV's own limits and assertions
        raise InvalidImageError(f"{name}: not an image, or a corrupt one ({exc.err or 'cannot decode'})") from exc
    except InvalidImageError as exc:
        raise InvalidImageError(f"{name}: {exc}") from exc


# -- image size from the file header, without decoding -----------------------------------

_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for signature, kind in _SIGNATURES if data.startswith(signature)), None)


def _header_size(kind: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) as the header states them; None when it is cut short or makes no sense."""
    try:
        return {"JPEG": _jpeg_size, "PNG": _png_size, "BMP": _bmp_size, "WebP": _webp_size, "TIFF": _tiff_size}[
            kind
        ](data)
    except IndexError:  # the header is cut short
        return None


def _field(data: bytes, start: int, length: int, order: str = "little", signed: bool = False) -> int:
    if start + length > len(data):
        raise IndexError("header cut short")
    return int.from_bytes(data[start:start + length], order, signed=signed)  # type: ignore[arg-type]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return _field(data, 16, 4, "big"), _field(data, 20, 4, "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments to the first start-of-frame (SOF0..SOF15 bar DHT, JPG, DAC).
    i = 2
    while True:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return _field(data, i + 7, 2, "big"), _field(data, i + 5, 2, "big")
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        length = _field(data, i + 2, 2, "big")
        if length < 2:
            return None
        i += 2 + length


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if _field(data, 14, 4) == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return _field(data, 18, 2), _field(data, 20, 2)
    width, height = _field(data, 18, 4, signed=True), _field(data, 22, 4, signed=True)
    return (width, abs(height)) if width > 0 else None  # a negative height: stored top-down


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        return _field(data, 26, 2) & 0x3FFF, _field(data, 28, 2) & 0x3FFF
    if chunk == b"VP8L":
        bits = _field(data, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return _field(data, 24, 3) + 1, _field(data, 27, 3) + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "little" if data[:2] == b"II" else "big"
    first = _field(data, 4, 4, order)  # the first image's directory: the one OpenCV decodes
    sizes = {}
    for entry in range(_field(data, first, 2, order)):
        at = first + 2 + 12 * entry
        tag, kind = _field(data, at, 2, order), _field(data, at + 2, 2, order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            sizes[tag] = _field(data, at + 8, 2 if kind == 3 else 4, order)
    return (sizes[256], sizes[257]) if len(sizes) == 2 else None


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB image (thumbnails for the gallery and the log)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidImageError("could not encode the image as JPEG")
    return buffer.tobytes()
