"""Fault 1: fuzzed and odd images through every entry point: a specific KioskError or a result,
nothing written to the database, no crash, no hang."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from kiosk.errors import InvalidImageError
from kiosk.images import decode_image, load_image

from . import fuzz
from .common import ROOT, child_env

SEED = 20240601
MUTATIONS = 25  # the script runs hundreds


@pytest.fixture(scope="module")
def cases(tmp_path_factory, astronaut) -> list[fuzz.Case]:
    return fuzz.make_cases(tmp_path_factory.mktemp("fuzz") / "inputs", astronaut, MUTATIONS, SEED)


@pytest.fixture(scope="module")
def face_jpeg(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("face") / "eileen.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def assert_clean(figures: fuzz.EntryFigures) -> None:
    assert not figures.problems, "\n".join(figures.problems)
    assert figures.tried > 0 and figures.slowest_s < fuzz.SLOW_CALL_S


def test_load_image_gives_an_rgb_image_or_a_specific_error(cases):
    figures = fuzz.check_load_image(cases)
    assert_clean(figures)
    assert figures.tried == len([c for c in cases if not c.hangs])
    assert figures.accepted >= len([c for c in cases if c.expect == "image"])


@pytest.mark.parametrize("name, words", [
    ("empty.jpg", "empty"), ("notes.png", "not one this kiosk reads"), ("bomb.png", "too large"),
    ("claims_huge.jpg", "too large"), ("one.png", "too small"), ("strip.png", "too narrow"),
    ("folder.jpg", "folder"), ("loop_a.jpg", "symbolic links"), ("dangling.jpg", "symbolic link to nothing"),
    ("sparse.jpg", "too large for an image"), ("fifo.jpg", "not a regular file"), ("zero.png", "not a regular file"),
])
def test_each_fault_has_its_own_message(cases, name, words):
    case = next(c for c in cases if c.path.name == name)
    if case.hangs:  # a FIFO or a device: tried in a child, so that a regression hangs it and not pytest
        probe = "import sys; from kiosk.images import load_image; load_image(sys.argv[1])"
        result = subprocess.run([sys.executable, "-c", probe, str(case.path)], check=False, capture_output=True,
                                text=True, timeout=30, env=child_env(), cwd=ROOT)
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("kiosk.errors.InvalidImageError: "), result.stderr
    else:
        with pytest.raises(InvalidImageError) as info:
            load_image(case.path)
        message = str(info.value)
    assert str(case.path) in message and words in message


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    # 15000 x 15000 px in about 650 KB: decoding it first took 1.3 GB and 5 s.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(fuzz.png_bomb(15000))
    # VmHWM: this process's peak (ru_maxrss would carry over the forking pytest's, TensorFlow and all).
    probe = ("import re, sys, time; from kiosk.images import load_image; t = time.perf_counter()\n"
             "try: load_image(sys.argv[1])\nexcept Exception as e: print(type(e).__name__, e)\n"
             "peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
             "print(peak / 1024, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", probe, str(bomb)], check=False, capture_output=True, text=True,
                         timeout=60, env=child_env(), cwd=ROOT).stdout.splitlines()
    assert out[0].startswith("InvalidImageError") and "15000x15000" in out[0], out
    peak_mb, seconds = map(float, out[1].split())
    assert peak_mb < 300 and seconds < 1.0, out  # the process as a whole, OpenCV and numpy included


@pytest.mark.parametrize("suffix, params", [
    (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".png", []), (".bmp", []),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", []),
    (".tiff", [cv2.IMWRITE_TIFF_COMPRESSION, 1]),
])
@pytest.mark.parametrize("width, height", [(12, 12), (640, 480), (97, 1201), (1600, 1200)])
def test_real_files_of_every_format_still_load(suffix, params, width, height):
    # The header readers must agree with OpenCV's encoders, or good photos would be refused.
    rng = np.random.default_rng(width * height)
    image = rng.integers(0, 256, (height, width, 3), np.uint8)
    ok, data = cv2.imencode(suffix, image, params)
    assert ok
    assert decode_image(data.tobytes(), name=f"x{suffix}").shape == (height, width, 3)


def test_rgba_webp_with_an_extended_header_loads():
    ok, data = cv2.imencode(".webp", np.full((40, 60, 4), 200, np.uint8))
    assert ok and data.tobytes()[12:16] in (b"VP8X", b"VP8L", b"VP8 ")
    assert decode_image(data.tobytes()).shape == (40, 60, 3)


def test_a_file_this_process_may_not_read_is_refused(tmp_path, face_jpeg):
    outcome, message = fuzz.check_unreadable(tmp_path, face_jpeg.read_bytes())
    if outcome == "skipped":
        pytest.skip(message)
    assert outcome == "refused" and "Permission denied" in message, message


def test_the_engine_detects_or_refuses_every_input(engine, cases):
    assert_clean(fuzz.check_engine(engine, cases, fuzz.odd_arrays(SEED, 15)))


def test_enrollment_import_rejects_each_bad_file_with_a_reason(engine, cases, tmp_path):
    figures = fuzz.check_enroll_import(engine, cases, tmp_path)
    assert_clean(figures)
    usable = [c for c in cases if c.expect == "image"]
    assert figures.accepted >= len(usable) - 2  # grey and 16-bit copies of one photo: all one face


def test_the_command_line_refuses_bad_images_and_writes_nothing(engine, cases, face_jpeg, tmp_path):
    assert_clean(fuzz.check_cli(cases, face_jpeg, tmp_path))


def test_the_folder_camera_skips_what_it_cannot_use_and_the_runner_carries_on(engine, cases, tmp_path):
    folder = cases[0].path.parent
    assert_clean(fuzz.check_folder_camera(engine, cases, folder, tmp_path))


@pytest.mark.slow
def test_real_kiosk_processes_refuse_fifos_devices_and_bombs_without_hanging(cases, tmp_path):
    # FIFOs and devices are only given to real processes: a regression would hang them, not pytest.
    assert_clean(fuzz.check_cli_process(cases, tmp_path))
