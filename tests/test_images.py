import numpy as np
import pytest

from kiosk.errors import InvalidImageError
from kiosk.images import MAX_PIXELS, as_rgb_uint8, decode_image, encode_jpeg, load_image


def test_rgb_uint8_passes_through_unchanged(astronaut):
    out = as_rgb_uint8(astronaut)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    assert np.array_equal(out, astronaut)


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im.mean(axis=2).astype(np.uint8),  # grey HxW
        lambda im: im.mean(axis=2, keepdims=True).astype(np.uint8),  # grey HxWx1
        lambda im: np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]),  # RGBA
        lambda im: im.astype(np.float32) / 255.0,  # float in [0, 1]
        lambda im: im.astype(np.uint16) * 257,  # 16-bit
    ],
    ids=["grey", "grey1", "rgba", "float01", "uint16"],
)
def test_odd_formats_are_converted_to_rgb_uint8(astronaut, convert):
    out = as_rgb_uint8(convert(astronaut))
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    # Still the same picture: no channel swap, no scaling error.
    assert np.abs(out.astype(int).mean() - astronaut.astype(int).mean()) < 40


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((5, 5, 3), np.uint8), "too small"),
        (np.zeros((100, 100, 2), np.uint8), "shape"),
        (np.zeros(100, np.uint8), "shape"),
        (np.full((50, 50, 3), 2.0, np.float32), "[0, 1]"),
        (np.full((50, 50, 3), np.nan, np.float32), "NaN"),
        (np.zeros((50, 50, 3), np.complex64), "unsupported"),
        ("not an array", "numpy array"),
    ],
)
def test_bad_arrays_give_specific_errors(bad, words):
    with pytest.raises(InvalidImageError, match=None) as info:
        as_rgb_uint8(bad)
    assert words in str(info.value)


def test_absurdly_large_image_is_refused_before_work():
    side = int(np.sqrt(MAX_PIXELS)) + 10
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (side, side, 3), (0, 0, 1))
    with pytest.raises(InvalidImageError, match="too large"):
        as_rgb_uint8(huge)


def test_load_image_round_trips_a_jpeg(tmp_path, astronaut):
    path = tmp_path / "a.jpg"
    path.write_bytes(encode_jpeg(astronaut, quality=95))
    loaded = load_image(path)
    assert loaded.shape == astronaut.shape
    assert np.abs(loaded.astype(int) - astronaut.astype(int)).mean() < 3  # RGB order kept


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty"),
        (b"hello, I am a text file\n", "not an image"),
        (None, "truncated"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, astronaut, content, words):
    path = tmp_path / "bad.jpg"
    if content is None:  # a JPEG cut in the middle of its header
        content = encode_jpeg(astronaut)[:200]
        words = "not an image"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_missing_file_and_folder_are_reported(tmp_path):
    with pytest.raises(InvalidImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InvalidImageError, match="folder"):
        load_image(tmp_path)


def test_decode_rejects_random_bytes():
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidImageError):
        decode_image(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), name="noise")
