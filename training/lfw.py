"""Finding and reading an LFW copy: images, the official protocol files and their splits.

Training and evaluation must see exactly the people, images and pairs the LFW protocols
define, so everything about the data set goes through here: a copy that is incomplete,
damaged or laid out differently fails early with a message that says how to fix it,
instead of quietly training or scoring on the wrong set.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

LFW_ENV_VAR = "LFW_DIR"
CACHE_ENV_VAR = "KIOSK_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/face-kiosk"
LFW_URL = "http://vis-www.cs.umass.edu/lfw/"

# Accepted image layouts, in order of preference, and the official archive of each.
IMAGE_FOLDERS = ("lfw-deepfunneled", "lfw_funneled", "lfw")
ARCHIVES = {"lfw-deepfunneled": "lfw-deepfunneled.tgz", "lfw_funneled": "lfw-funneled.tgz", "lfw": "lfw.tgz"}

PAIRS_FILES = {"devtrain": "pairsDevTrain.txt", "devtest": "pairsDevTest.txt", "view2": "pairs.txt"}
PEOPLE_FILES = {"devtrain": "peopleDevTrain.txt", "devtest": "peopleDevTest.txt"}
FOLDS_FILE = "people.txt"
NAMES_FILE = "lfw-names.txt"
PROTOCOL_FILES = (*PAIRS_FILES.values(), *PEOPLE_FILES.values(), FOLDS_FILE, NAMES_FILE)

# Written last into a finished extraction: a folder without it is never trusted.
_DONE_MARKER = ".extracted"
# Names become paths, so a protocol file must not be able to point outside the image folder.
_NAME = re.compile(r"[^\s/\\.][^\s/\\]*")
_HOW_TO_FIX = (
    f"Set {LFW_ENV_VAR} (or pass --lfw-dir) to the folder that holds pairs.txt and the "
    f"lfw-deepfunneled/ image folder or lfw-deepfunneled.tgz; LFW can be downloaded from {LFW_URL}"
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class LFWError(Exception):
    """The LFW copy is missing, incomplete or damaged; the message says where and how to fix it."""


@dataclass(frozen=True, order=True)
class ImageRef:
    """One LFW image as the protocol files name it: a person and a 1-based image number."""

    name: str
    number: int

    @property
    def relpath(self) -> str:
        """Path inside the image folder, e.g. "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"."""
        return f"{self.name}/{self.name}_{self.number:04d}.jpg"


@dataclass(frozen=True)
class Pair:
    """A verification pair; fold is 0..9 for View 2 (pairs.txt) and 0 for the View 1 files."""

    a: ImageRef
    b: ImageRef
    same: bool
    fold: int


@dataclass(frozen=True)
class LFW:
    """An LFW copy: `root` holds the protocol files, `images_dir` one folder per person."""

    root: Path
    images_dir: Path

    def __post_init__(self) -> None:
        # Built directly (not by locate) with strings is fine too.
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "images_dir", Path(self.images_dir))

    @classmethod
    def locate(
        cls, path: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
    ) -> LFW:
        """Find LFW at `path` (default: $LFW_DIR), extracting the official .tgz once if needed.

        `path` is either the folder with the protocol files and an image folder (or its .tgz)
        inside, or the image folder itself with the protocol files in its parent. An archive
        is extracted into `cache_dir` (default: $KIOSK_CACHE_DIR, else ~/.cache/face-kiosk).
        """
        path = path or os.environ.get(LFW_ENV_VAR)
        if not path:
            raise LFWError(f"No LFW folder was given and {LFW_ENV_VAR} is not set. {_HOW_TO_FIX}")
        given = Path(path).expanduser()
        if not given.is_dir():
            raise LFWError(f"The LFW folder {given} does not exist or is not a folder. {_HOW_TO_FIX}")
        # Lexical, not resolve(): a symlinked image folder must keep the parent the user sees.
        folder = Path(os.path.abspath(given))

        if _has_protocol_files(folder):
            for variant in IMAGE_FOLDERS:
                if (folder / variant).is_dir():
                    return cls(folder, folder / variant)
                archive = folder / ARCHIVES[variant]
                if archive.is_file():
                    return cls(folder, _extract_once(archive, variant, _cache_dir(cache_dir)))
            looked = ", ".join([f"{v}/" for v in IMAGE_FOLDERS] + list(ARCHIVES.values()))
            raise LFWError(
                f"{folder} holds LFW protocol files but no image folder or archive "
                f"(looked for {looked}). {_HOW_TO_FIX}"
            )
        if not _has_protocol_files(folder.parent):
            raise LFWError(
                f"No LFW protocol files ({', '.join(PROTOCOL_FILES)}) in {folder} or its parent. "
                f"{_HOW_TO_FIX}"
            )
        if not _looks_like_image_folder(folder):
            raise LFWError(
                f"{folder} has no LFW protocol files and is no LFW image folder "
                f"(no Name/Name_0001.jpg inside). {_HOW_TO_FIX}"
            )
        return cls(folder.parent, folder)

    def image_path(self, ref: ImageRef) -> Path:
        """Where the image `ref` lives (whether or not it exists)."""
        return self.images_dir / ref.relpath

    def all_images(self) -> list[ImageRef]:
        """Every image actually present in the image folder, sorted."""
        try:
            names = [entry.name for entry in os.scandir(self.images_dir) if entry.is_dir()]
        except OSError as exc:
            raise LFWError(f"Cannot list the image folder {self.images_dir}: {exc}. {_HOW_TO_FIX}") from exc
        return self.images_of(names)

    def people(self, split: str) -> dict[str, int]:
        """Name -> image count for "devtrain", "devtest" (View 1) or "all".

        "all" reads lfw-names.txt, or joins the folds of people.txt where that file is absent.
        """
        if split in PEOPLE_FILES:
            cursor = _Cursor(self.root / PEOPLE_FILES[split])
            count = cursor.take("the number of people", _positive_int)
            people = _read_people(cursor, count)
            cursor.expect_end()
            return people
        if split != "all":
            raise ValueError(f"unknown LFW split {split!r}; expected one of {[*PEOPLE_FILES, 'all']}")
        if (self.root / NAMES_FILE).is_file():
            cursor = _Cursor(self.root / NAMES_FILE)
            return _read_people(cursor, cursor.remaining())
        return {name: n for fold in self.people_folds() for name, n in fold.items()}

    def people_folds(self) -> list[dict[str, int]]:
        """The 10 folds of people.txt (View 2, unrestricted setting), name -> image count each."""
        cursor = _Cursor(self.root / FOLDS_FILE)
        seen: set[str] = set()
        folds = []
        for _ in range(cursor.take("the number of folds", _positive_int)):
            count = cursor.take("the number of people in the fold", _positive_int)
            folds.append(_read_people(cursor, count, seen))
        cursor.expect_end()
        return folds

    def images_of(self, names: Iterable[str]) -> list[ImageRef]:
        """Every image present for these people (a single name is also accepted), sorted."""
        if isinstance(names, str):
            names = [names]
        refs = []
        for name in set(names):
            try:
                files = os.listdir(self.images_dir / name)
            except OSError as exc:
                raise LFWError(f"No folder for {name!r} in {self.images_dir}: {exc}. {_HOW_TO_FIX}") from exc
            refs += [ImageRef(name, n) for f in files if (n := _image_number(name, f)) is not None]
        return sorted(refs)

    def pairs(self, view: str) -> list[Pair]:
        """The pairs of "devtrain", "devtest" (View 1) or "view2" (pairs.txt, 10 folds), in file order."""
        if view not in PAIRS_FILES:
            raise ValueError(f"unknown LFW pairs view {view!r}; expected one of {list(PAIRS_FILES)}")
        cursor = _Cursor(self.root / PAIRS_FILES[view])
        folds, per_fold = cursor.take("a header 'pairs' or 'folds pairs'", _pairs_header)
        pairs = []
        for fold in range(folds):
            for _ in range(per_fold):
                a, b = cursor.take("a matched pair 'name n1 n2'", _matched_pair)
                pairs.append(Pair(a, b, True, fold))
            for _ in range(per_fold):
                a, b = cursor.take("a mismatched pair 'name1 n1 name2 n2'", _mismatched_pair)
                pairs.append(Pair(a, b, False, fold))
        cursor.expect_end()
        return pairs

    def verify(self) -> None:
        """Check every image named by a pairs or people file exists, so gaps fail now, not mid-training."""
        referenced: dict[ImageRef, str] = {}
        for view, filename in PAIRS_FILES.items():
            for pair in self.pairs(view):
                referenced.setdefault(pair.a, filename)
                referenced.setdefault(pair.b, filename)
        listings = [(PEOPLE_FILES[split], self.people(split)) for split in PEOPLE_FILES]
        listings.append((FOLDS_FILE, {n: c for fold in self.people_folds() for n, c in fold.items()}))
        if (self.root / NAMES_FILE).is_file():
            listings.append((NAMES_FILE, self.people("all")))
        for filename, people in listings:
            for name, count in people.items():
                for number in range(1, count + 1):
                    referenced.setdefault(ImageRef(name, number), filename)

        present = set(self.all_images())
        missing = sorted(ref for ref in referenced if ref not in present)
        if missing:
            shown = "\n".join(f"  {ref.relpath} (in {referenced[ref]})" for ref in missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise LFWError(
                f"{len(missing)} of the {len(referenced)} images named by the protocol files in {self.root} "
                f"are missing from {self.images_dir}:\n{shown}{more}\n"
                f"The image folder is incomplete or from another release; extract it again. {_HOW_TO_FIX}"
            )


class _Cursor:
    """Reads a protocol file line by line, so every error can name the file and the line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LFWError(f"The LFW protocol file {path} is missing. {_HOW_TO_FIX}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LFWError(f"Cannot read the LFW protocol file {path}: {exc}. {_HOW_TO_FIX}") from exc
        # Blank lines carry nothing (the official files end with a newline); line numbers stay true.
        self._lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        self._next = 0

    def remaining(self) -> int:
        return len(self._lines) - self._next

    def take(self, what: str, parse: Callable[[list[str]], _T]) -> _T:
        """Parse the next line with `parse`; a ValueError from it becomes an LFWError naming the line."""
        if not self.remaining():
            last = self._lines[-1][0] if self._lines else 0
            raise self._error(f"the file ends too early, after line {last}; expected {what}")
        lineno, fields = self._lines[self._next]
        self._next += 1
        try:
            return parse(fields)
        except ValueError as exc:
            raise self._error(f"line {lineno}: expected {what}, found {' '.join(fields)!r} ({exc})") from None

    def expect_end(self) -> None:
        if self.remaining():
            lineno, fields = self._lines[self._next]
            raise self._error(f"line {lineno}: expected the end of the file, found {' '.join(fields)!r}")

    def _error(self, problem: str) -> LFWError:
        return LFWError(
            f"{self.path}: {problem}. The file is damaged or not the official LFW one; "
            f"download it again from {LFW_URL}"
        )


def _read_people(cursor: _Cursor, count: int, seen: set[str] | None = None) -> dict[str, int]:
    """Read `count` 'name image_count' lines; a name already in `seen` (or repeated) is an error."""
    seen = set() if seen is None else seen
    people: dict[str, int] = {}

    def person(fields: list[str]) -> tuple[str, int]:
        _expect_fields(fields, 2)
        name = _person_name(fields[0])
        if name in seen:
            raise ValueError(f"{name} is listed twice")
        seen.add(name)
        return name, _positive_int(fields[1:])

    for _ in range(count):
        name, images = cursor.take("a line 'name image_count'", person)
        people[name] = images
    return people


def _expect_fields(fields: list[str], n: int) -> None:
    if len(fields) != n:
        raise ValueError(f"{len(fields)} fields instead of {n}")


def _positive_int(fields: list[str]) -> int:
    _expect_fields(fields, 1)
    text = fields[0]
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


def _person_name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a person name")
    return text


def _ref(name: str, number: str) -> ImageRef:
    return ImageRef(_person_name(name), _positive_int([number]))


def _pairs_header(fields: list[str]) -> tuple[int, int]:
    if len(fields) == 1:
        return 1, _positive_int(fields)
    _expect_fields(fields, 2)
    return _positive_int(fields[:1]), _positive_int(fields[1:])


def _matched_pair(fields: list[str]) -> tuple[ImageRef, ImageRef]:
    _expect_fields(fields, 3)
    return _ref(fields[0], fields[1]), _ref(fields[0], fields[2])


def _mismatched_pair(fields: list[str]) -> tuple[ImageRef, ImageRef]:
    _expect_fields(fields, 4)
    return _ref(fields[0], fields[1]), _ref(fields[2], fields[3])


def _image_number(name: str, filename: str) -> int | None:
    """The number in "<name>_0001.jpg", or None for any other file (e.g. .DS_Store)."""
    digits = filename[len(name) + 1 : -len(".jpg")]
    if filename == f"{name}_{digits}.jpg" and len(digits) == 4 and digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def _has_protocol_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in PROTOCOL_FILES)


def _looks_like_image_folder(folder: Path) -> bool:
    """True if some sub-folder X holds X_0001.jpg, as every LFW image folder does."""
    with os.scandir(folder) as entries:
        return any(e.is_dir() and Path(e.path, f"{e.name}_0001.jpg").is_file() for e in entries)


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir or os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR).expanduser()


def _archive_key(archive: Path) -> str:
    """A cache key for `archive` without reading all of it on every run.

    Size plus the first and last MiB identify the file: a gzip stream ends with the CRC-32 and
    length of everything it holds, so any change to the contents changes the last bytes.
    """
    size = archive.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with archive.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(size - (1 << 20), 0))
        digest.update(f.read())
    return f"{archive.name.removesuffix('.tgz')}-{size}-{digest.hexdigest()[:16]}"


def _is_complete(extracted: Path, variant: str) -> bool:
    return (extracted / _DONE_MARKER).is_file() and (extracted / variant).is_dir()


def _extract_once(archive: Path, variant: str, cache_dir: Path) -> Path:
    """Extract `archive` into the cache (once) and return its image folder.

    The archive is unpacked into a temporary sibling folder that is renamed into place only
    when complete, so an interrupted or killed run never leaves a folder that looks usable.
    """
    base = cache_dir / "lfw"
    target = base / _archive_key(archive)
    if _is_complete(target, variant):
        return target / variant
    if not hasattr(tarfile, "data_filter"):
        raise LFWError(
            f"This Python's tarfile cannot extract {archive} safely (needs Python 3.10.12+/3.11.4+); "
            f"extract it by hand next to the protocol files instead. {_HOW_TO_FIX}"
        )
    try:
        if target.exists() and not _is_complete(target, variant):  # not put there by os.replace below
            shutil.rmtree(target)
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=base))
    except OSError as exc:
        raise LFWError(
            f"Cannot prepare the cache folder {base}: {exc}. Set {CACHE_ENV_VAR} to a writable folder."
        ) from exc

    log.info("Extracting %s into %s (once; about 110 MB for LFW)", archive, target)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / variant).is_dir():
            raise LFWError(
                f"{archive} holds no {variant}/ folder; is it the official LFW archive? {_HOW_TO_FIX}"
            )
        (tmp / _DONE_MARKER).write_text(f"{archive}\n", encoding="utf-8")
        os.replace(tmp, target)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LFWError(
            f"{archive} is damaged or unsafe to extract ({exc}); download it again from {LFW_URL}"
        ) from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_complete(target, variant):  # another process finished the same extraction first
            return target / variant
        raise LFWError(
            f"Could not extract {archive} into {base}: {exc}. Free some disk space "
            f"or set {CACHE_ENV_VAR} to another folder."
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target / variant
