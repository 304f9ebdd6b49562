"""Odd and broken images through every way in: files, arrays, the engine, the CLI, enrolment, the folder camera.

make_cases() writes a seeded set of files into a folder: fixed faults (zero bytes, text, a folder
named like a photo, symbolic link loops, a FIFO, a device, a sparse 300 MB file, decompression
bombs, 1x1 images, a 12 x 1300 strip) and odd but usable images (grey, RGBA, 16-bit, BMP, WebP,
TIFF), then `count` random mutations of real encoded photos (cut short, bytes flipped, blocks
zeroed, headers grafted onto noise). Each entry point must either give an image / a result or
raise a KioskError; nothing else, nothing written to the database, no hang.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .common import ROOT, child_env, dump, kiosk_cli, traceback_in

SLOW_CALL_S = 20.0  # one call taking longer than this counts as a hang (a 3000 px MTCNN pass takes ~2 s)


@dataclass(frozen=True)
class Case:
    path: Path
    kind: str
    expect: str  # "image": must load; "refused": must raise InvalidImageError; "either": mutated, may go both ways
    hangs: bool = False  # would block a process that gets it wrong (FIFO, device): only tried in subprocesses


@dataclass
class EntryFigures:
    """What one entry point made of the inputs."""

    tried: int = 0
    accepted: int = 0
    refused: int = 0  # a KioskError with a message
    problems: list[str] = field(default_factory=list)  # crashes, wrong outcomes, slow calls, DB changes
    slowest_s: float = 0.0

    def to_dict(self) -> dict:
        return {"tried": self.tried, "accepted": self.accepted, "refused": self.refused,
                "problems": len(self.problems), "slowest_s": round(self.slowest_s, 3),
                "problem_examples": self.problems[:10]}


# -- the inputs -----------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A valid PNG of side x side black pixels: kilobytes on disk, side*side*3 bytes decoded."""
    compressor = zlib.compressobj(9)
    rows = (b"\x00" * (side * 3 + 1)) * 100
    body = [compressor.compress(rows) for _ in range(side // 100)] + [compressor.flush()]
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(body))
            + _png_chunk(b"IEND", b""))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming width x height with almost no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to claim width x height."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data):
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xC2:
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise ValueError("no frame header in the JPEG")


def _encode(rgb: np.ndarray, suffix: str) -> bytes:
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buffer = cv2.imencode(suffix, image)
    assert ok, suffix
    return buffer.tobytes()


def make_cases(folder: Path, face: np.ndarray, count: int, seed: int, bomb_side: int = 8000) -> list[Case]:
    """Write the inputs into `folder`. `face`: an RGB photo with one face (it should be found in the usable ones)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, kind: str, expect: str, data: bytes | None = None, hangs: bool = False) -> None:
        path = folder / name
        if data is not None:
            path.write_bytes(data)
        cases.append(Case(path, kind, expect, hangs))

    jpeg, png = _encode(face, ".jpg"), _encode(face, ".png")
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    # Odd but usable.
    add("grey.png", "grey PNG", "image", _encode(grey, ".png"))
    add("rgba.png", "RGBA PNG", "image", _encode(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]), ".png"))
    add("deep.png", "16-bit PNG", "image", _encode(face.astype(np.uint16) * 257, ".png"))
    add("deep_grey.png", "16-bit grey PNG", "image", _encode(grey.astype(np.uint16) * 257, ".png"))
    for suffix in (".bmp", ".webp", ".tiff"):
        add(f"face{suffix}", f"{suffix[1:].upper()}", "image", _encode(face, suffix))
    add("face.jpg", "JPEG", "image", jpeg)
    add("UPPER.JPG", "JPEG, upper-case suffix", "image", jpeg)
    # Broken or hostile.
    add("empty.jpg", "zero bytes", "refused", b"")
    add("notes.png", "text file", "refused", b"this is not a photo\n" * 20)
    add("random.jpg", "random bytes", "refused", rng.bytes(5000))
    add("bomb.png", f"PNG bomb {bomb_side}x{bomb_side}", "refused", png_bomb(bomb_side))
    add("claims_huge.png", "PNG header 60000x60000", "refused", png_claiming(60000, 60000))
    add("claims_big.png", "PNG header 30000x30000", "refused", png_claiming(30000, 30000))
    add("claims_huge.jpg", "JPEG header 65000x65000", "refused", jpeg_claiming(jpeg, 65000, 65000))
    add("claims_zero.png", "PNG header 0x0", "refused", png_claiming(0, 0))
    add("one.png", "1x1 PNG", "refused", _encode(np.zeros((1, 1, 3), np.uint8), ".png"))
    add("one.jpg", "1x1 JPEG", "refused", _encode(np.zeros((1, 1, 3), np.uint8), ".jpg"))
    add("strip.png", "12x1300 strip", "refused", _encode(np.zeros((12, 1300, 3), np.uint8), ".png"))
    add("anim.gif", "GIF (not a supported format)", "refused", b"GIF89a" + struct.pack("<HH", 64, 64) + rng.bytes(300))
    add("cut.jpg", "JPEG cut after its header", "refused", jpeg[:300])
    add("cut.png", "PNG cut after IHDR", "refused", png[:40])
    (folder / "folder.jpg").mkdir(exist_ok=True)
    add("folder.jpg", "folder named like a photo", "refused")
    _symlink(folder / "loop_a.jpg", folder / "loop_b.jpg")
    _symlink(folder / "loop_b.jpg", folder / "loop_a.jpg")
    add("loop_a.jpg", "symbolic link loop", "refused")
    _symlink(folder / "nowhere.jpg", folder / "dangling.jpg")
    add("dangling.jpg", "dangling symbolic link", "refused")
    with open(folder / "sparse.jpg", "wb") as stream:  # 300 MB that take no disk space
        stream.truncate(300 * 2**20)
    add("sparse.jpg", "300 MB sparse file", "refused")
    if not (folder / "fifo.jpg").exists():
        os.mkfifo(folder / "fifo.jpg")
    add("fifo.jpg", "FIFO named like a photo", "refused", hangs=True)
    _symlink(Path("/dev/zero"), folder / "zero.png")
    add("zero.png", "link to /dev/zero", "refused", hangs=True)
    # Seeded mutations of real encoded photos.
    bases = {".jpg": jpeg, ".png": png, ".bmp": _encode(face, ".bmp"), ".webp": _encode(face, ".webp"),
             ".tiff": _encode(face, ".tiff")}
    for i in range(count):
        suffix = list(bases)[int(rng.integers(len(bases)))]
        data, how = _mutate(bases[suffix], rng)
        add(f"fuzz_{i:04d}{suffix}", f"{suffix[1:]} {how}", "either", data)
    return cases


def _symlink(target: Path, link: Path) -> None:
    if not link.is_symlink():
        link.symlink_to(target)


def _mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    how = ("truncated", "bytes flipped", "block zeroed", "header on noise", "chunk repeated")[int(rng.integers(5))]
    buffer = bytearray(data)
    if how == "truncated":
        return bytes(buffer[:int(rng.integers(1, len(buffer)))]), how
    if how == "bytes flipped":
        for at in rng.integers(0, len(buffer), int(rng.integers(1, 20))):
            buffer[at] ^= int(rng.integers(1, 256))
        return bytes(buffer), how
    if how == "block zeroed":
        start = int(rng.integers(0, len(buffer)))
        buffer[start:start + int(rng.integers(1, 2000))] = b"\x00" * len(buffer[start:start + 2000])
        return bytes(buffer[:len(data)]), how
    if how == "header on noise":
        cut = int(rng.integers(8, 200))
        return bytes(buffer[:cut]) + rng.bytes(int(rng.integers(0, 20000))), how
    start = int(rng.integers(0, len(buffer)))
    piece = bytes(buffer[start:start + int(rng.integers(1, 5000))])
    return bytes(buffer[:start]) + piece * int(rng.integers(2, 6)) + bytes(buffer[start:]), how


def odd_arrays(seed: int, count: int) -> list[tuple[str, object]]:
    """Arrays (and non-arrays) a Python caller might hand to FaceEngine: fixed oddities plus seeded random ones."""
    rng = np.random.default_rng(seed)
    huge = np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (9000, 9000, 3), (0, 0, 1))
    arrays: list[tuple[str, object]] = [
        ("empty", np.zeros((0, 0, 3), np.uint8)), ("5x5", np.zeros((5, 5, 3), np.uint8)),
        ("strip 12x2000", np.zeros((12, 2000, 3), np.uint8)), ("strip 12x40000", np.zeros((12, 40000, 3), np.uint8)),
        ("2 channels", np.zeros((64, 64, 2), np.uint8)),
        ("5 channels", np.zeros((64, 64, 5), np.uint8)), ("1-D", np.zeros(300, np.uint8)),
        ("0-D", np.array(7, np.uint8)), ("4-D batch", np.zeros((2, 64, 64, 3), np.uint8)),
        ("NaN float", np.full((64, 64, 3), np.nan, np.float32)), ("float 0..255", np.full((64, 64, 3), 200.0)),
        ("complex", np.zeros((64, 64, 3), np.complex64)), ("object", np.full((64, 64, 3), None, object)),
        ("int32", np.zeros((64, 64, 3), np.int32)), ("big-endian uint16", np.zeros((64, 64, 3), ">u2")),
        ("81 MP strided", huge), ("str", "photo.jpg"), ("None", None), ("nested list", [[[0, 0, 0]] * 20] * 20),
        ("bool", np.ones((64, 64), bool)), ("float16", np.full((64, 64, 3), 0.5, np.float16)),
        ("reversed strides", np.zeros((64, 64, 3), np.uint8)[::-1, ::-1]),
    ]
    dtypes = [np.uint8, np.uint16, np.float32, np.float64, np.int16, np.bool_]
    for i in range(count):
        height, width = (int(v) for v in rng.integers(1, 700, 2))
        channels = [None, 1, 2, 3, 4][int(rng.integers(5))]
        dtype = dtypes[int(rng.integers(len(dtypes)))]
        shape = (height, width) if channels is None else (height, width, channels)
        if np.issubdtype(dtype, np.floating):
            array = rng.uniform(-0.2, 1.2, shape).astype(dtype)
        else:
            array = rng.integers(0, 2 if dtype is np.bool_ else 255, shape).astype(dtype)
        arrays.append((f"random {shape} {np.dtype(dtype).name}", array))
    return arrays


# -- the entry points ------------------------------------------------------------------------


def _timed(figures: EntryFigures, label: str, call) -> tuple[str, object]:
    """Run call(); ("ok", value), ("refused", error) or ("crash", error); slow calls are problems too."""
    from kiosk.errors import KioskError

    figures.tried += 1
    started = time.perf_counter()
    try:
        outcome = ("ok", call())
        figures.accepted += 1
    except KioskError as exc:
        outcome = ("refused", exc)
        figures.refused += 1
        if not str(exc).strip():
            figures.problems.append(f"{label}: {type(exc).__name__} without a message")
    except Exception as exc:  # noqa: BLE001 - what this suite is looking for
        outcome = ("crash", exc)
        figures.problems.append(f"{label}: crashed with {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    figures.slowest_s = max(figures.slowest_s, elapsed)
    if elapsed > SLOW_CALL_S:
        figures.problems.append(f"{label}: took {elapsed:.1f} s")
    return outcome


def check_load_image(cases: list[Case]) -> EntryFigures:
    """kiosk.images.load_image on every in-process-safe case: the right outcome for the fixed ones."""
    from kiosk.images import load_image

    figures = EntryFigures()
    for case in cases:
        if case.hangs:
            continue
        outcome, value = _timed(figures, case.kind, lambda case=case: load_image(case.path))
        if outcome == "ok" and (value.dtype != np.uint8 or value.ndim != 3 or value.shape[2] != 3):
            figures.problems.append(f"{case.kind}: loaded as {value.dtype} {value.shape}")
        got = {"ok": "image", "refused": "refused"}.get(outcome)
        if case.expect != "either" and got is not None and got != case.expect:
            figures.problems.append(f"{case.kind}: {outcome}, expected {case.expect} ({value})")
    return figures


def check_engine(engine, cases: list[Case], arrays: list[tuple[str, object]]) -> EntryFigures:
    """FaceEngine.detect and .embed on every loadable file and every odd array."""
    from kiosk.images import load_image

    figures = EntryFigures()
    inputs: list[tuple[str, object]] = list(arrays)
    for case in cases:
        if case.hangs:
            continue
        with contextlib.suppress(Exception):  # load_image's own faults are check_load_image's business
            inputs.append((case.kind, load_image(case.path)))
    for label, image in inputs:
        outcome, faces = _timed(figures, f"detect {label}", lambda image=image: engine.detect(image))
        if outcome == "ok" and not isinstance(faces, list):
            figures.problems.append(f"detect {label}: returned {type(faces).__name__}")
        outcome, vector = _timed(figures, f"embed {label}", lambda image=image: engine.embed(image))
        unit = np.shape(vector) == (engine.embedding_size,) and abs(np.linalg.norm(vector) - 1) <= 1e-3
        if outcome == "ok" and not unit:
            figures.problems.append(f"embed {label}: not a unit vector of size {engine.embedding_size}")
    return figures


def check_enroll_import(engine, cases: list[Case], data_dir: Path) -> EntryFigures:
    """The enrolment dialog's file import (EnrollWorker.analyse_files): one rejected sample per bad file."""
    from kiosk.database import database_path, open_database
    from kiosk.ui.enroll_worker import EnrollWorker

    figures = EntryFigures()
    paths = [c for c in cases if not c.hangs]
    worker = EnrollWorker(database_path(data_dir), engine_factory=lambda: engine)
    samples: list = []
    done = threading.Event()
    worker.sample_ready.connect(samples.append)
    worker.files_done.connect(lambda: (done.set(), worker.stop()))  # run() returns after this job
    worker.failed.connect(lambda message: figures.problems.append(f"import failed: {message}"))
    open_database(database_path(data_dir)).close()  # the kiosk has run here before: the database exists
    before = dump(data_dir)
    worker.analyse_files([str(c.path) for c in paths])
    # The worker's loop on this thread (its QThread's job in the dialog), so that its signals
    # arrive directly; the watchdog stops it should it hang.
    watchdog = threading.Timer(SLOW_CALL_S * len(paths), worker.stop)
    watchdog.start()
    started = time.perf_counter()
    worker.run()
    figures.slowest_s = time.perf_counter() - started
    watchdog.cancel()
    if not done.is_set():
        figures.problems.append("the import did not finish (hang)")
    figures.tried = len(paths)
    if len(samples) != len(paths):
        figures.problems.append(f"{len(samples)} samples for {len(paths)} files")
    for case, sample in zip(paths, samples):
        if sample.used:
            figures.accepted += 1
        else:
            figures.refused += 1
            if not sample.reason or sample.reason.startswith("analysis failed"):
                figures.problems.append(f"{case.kind}: {sample.reason!r}")
        if case.expect == "refused" and sample.used:
            figures.problems.append(f"{case.kind}: used for enrolment")
    if dump(data_dir) != before:
        figures.problems.append("the import wrote to the database")
    return figures


def check_cli(cases: list[Case], good: Path, data_dir: Path) -> EntryFigures:
    """`python -m kiosk enroll / identify / verify` in-process on every case (exit status 1, one error
    line per bad image, no traceback, the database unchanged)."""
    from kiosk.cli import main

    figures = EntryFigures()
    bad = [c for c in cases if c.expect == "refused" and not c.hangs]
    code, _, err = _main(main, "--data-dir", data_dir, "enroll", "Fuzz Reference", good)
    if code != 0:
        figures.problems.append(f"enrolling the reference photo failed: {err.strip()}")
    before = dump(data_dir)

    def expect(argv: list, status: int, errors: int | None, label: str) -> None:
        figures.tried += 1
        started = time.perf_counter()
        code, out, err = _main(main, "--data-dir", data_dir, *argv)
        figures.slowest_s = max(figures.slowest_s, time.perf_counter() - started)
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        if code == status:
            figures.refused += 1
        else:
            figures.problems.append(f"{label}: exit {code}, expected {status}: {err.strip()[-300:]}")
        if errors is not None and len(lines) != errors:
            figures.problems.append(f"{label}: {len(lines)} error lines for {errors} bad images")
        if traceback_in(err) or traceback_in(out):
            figures.problems.append(f"{label}: traceback")
        if dump(data_dir) != before:
            figures.problems.append(f"{label}: the database changed")

    paths = [c.path for c in bad]
    expect(["enroll", "Fuzz Reference", *paths], 1, 1, "enroll all bad into an existing person")
    expect(["enroll", "Nobody Fuzzed", *paths], 1, 1, "enroll all bad as a new person")
    expect(["identify", *paths], 1, len(paths), "identify all bad")
    for case in bad:
        expect(["verify", case.path, good], 1, 1, f"verify {case.kind}")
    mutated = [c.path for c in cases if c.expect == "either"]
    if mutated:  # some of these decode to a usable photo: any exit status, but no traceback, nothing written
        figures.tried += 1
        code, _, err = _main(main, "--data-dir", data_dir, "identify", *mutated)
        if traceback_in(err) or code not in (0, 1):
            figures.problems.append(f"identify mutated: exit {code}: {err.strip()[-300:]}")
        if dump(data_dir) != before:
            figures.problems.append("identify mutated: the database changed")
    return figures


def check_cli_process(cases: list[Case], data_dir: Path, timeout: float = 240.0) -> EntryFigures:
    """The real `python -m kiosk` processes on every refused case, FIFO and device included: no hang."""
    from kiosk.database import database_path, open_database

    figures = EntryFigures()
    bad = [c.path for c in cases if c.expect == "refused"]
    open_database(database_path(data_dir)).close()
    before = dump(data_dir)
    for argv, label in ((["identify", *bad], "identify"), (["enroll", "Process Fuzzed", *bad], "enroll")):
        figures.tried += 1
        started = time.perf_counter()
        try:
            result = kiosk_cli("--data-dir", data_dir, *argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            figures.problems.append(f"python -m kiosk {label}: no answer within {timeout:.0f} s (hang)")
            continue
        figures.slowest_s = max(figures.slowest_s, time.perf_counter() - started)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        if result.returncode == 1 and not traceback_in(result.stderr):
            figures.refused += 1
        else:
            figures.problems.append(f"python -m kiosk {label}: exit {result.returncode}: {result.stderr[-300:]}")
        if label == "identify" and len(errors) != len(bad):
            figures.problems.append(f"identify: {len(errors)} error lines for {len(bad)} bad files")
    if dump(data_dir) != before:
        figures.problems.append("python -m kiosk: the database changed")
    return figures


_UNREADABLE_PROBE = """
import sys
from pathlib import Path
from kiosk.errors import InvalidImageError
from kiosk.images import load_image
try:
    load_image(sys.argv[1])
    print("loaded")
except InvalidImageError as exc:
    print("refused", exc)
"""


def check_unreadable(folder: Path, face_jpeg: bytes) -> tuple[str, str]:
    """A photo the process may not read: ("refused", message) expected, or ("skipped", why).

    root reads everything, so as root the probe runs in a child that dropped the capabilities
    that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) before exec.
    """
    path = folder / "unreadable.jpg"
    path.write_bytes(face_jpeg)
    path.chmod(0)
    preexec = None
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)

        def preexec() -> None:
            for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                    os._exit(99)
    try:
        result = subprocess.run([sys.executable, "-c", _UNREADABLE_PROBE, str(path)], check=False, capture_output=True,
                                text=True, timeout=60, env=child_env(), cwd=ROOT, preexec_fn=preexec)
    finally:
        path.chmod(0o600)
    if result.returncode == 99:
        return "skipped", "cannot drop CAP_DAC_OVERRIDE here (no permission test as root)"
    return (result.stdout.split(" ", 1)[0].strip() or "crash"), (result.stdout + result.stderr).strip()[-300:]


def check_folder_camera(engine, cases: list[Case], folder: Path, data_dir: Path) -> EntryFigures:
    """The folder camera over all the inputs, through the real KioskRunner: it ends, it never raises."""
    from kiosk.accesslog import AccessLog
    from kiosk.camera import IMAGE_SUFFIXES, Camera, CameraState
    from kiosk.database import database_path, open_database
    from kiosk.gallery import Gallery
    from kiosk.images import load_image
    from kiosk.runner import KioskRunner

    figures = EntryFigures()
    listed = [c for c in cases if c.path.parent == folder and c.path.suffix.lower() in IMAGE_SUFFIXES]
    loadable = 0
    for case in listed:
        if case.path.is_file() and not case.hangs:
            with contextlib.suppress(Exception):
                load_image(case.path)
                loadable += 1
    conn = open_database(database_path(data_dir))
    camera = Camera(folder, realtime=False)
    frames = 0
    started = time.perf_counter()
    try:
        runner = KioskRunner(camera, engine, Gallery(conn), AccessLog(conn))
        for _ in runner.run(every_frame=True):
            frames += 1
    except Exception as exc:  # noqa: BLE001
        figures.problems.append(f"runner over the folder camera crashed: {type(exc).__name__}: {exc}")
    finally:
        camera.stop()
        conn.close()
    figures.slowest_s = time.perf_counter() - started
    figures.tried = len(listed)
    figures.accepted, figures.refused = frames, figures.tried - frames
    if camera.state is not CameraState.ENDED:
        figures.problems.append(f"camera ended as {camera.state.value}: {camera.message}")
    if frames != loadable:
        figures.problems.append(f"{frames} frames analysed, {loadable} files loadable")
    return figures


# -- helpers -----------------------------------------------------------------------------------


def _main(main, *argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def kinds(cases: list[Case]) -> dict[str, int]:
    return dict(Counter(c.expect for c in cases))
