"""Tests for training.lfw: tiny fake LFW trees here, the real data set when LFW_DIR is set."""
from __future__ import annotations

import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from training import lfw
from training.lfw import IMAGE_FOLDERS, LFW, ImageRef, LFWError, Pair

# A JPEG's first bytes are enough: the module finds and lists images, it never decodes them.
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake\xff\xd9"
PEOPLE = {"Alice_Anders": 3, "Bob_Brown": 2, "Carla_de-Cruz": 1, "Dan_Dee": 12}
PROTOCOL = {
    "pairs.txt": """2\t1
Alice_Anders\t1\t2
Alice_Anders\t3\tBob_Brown\t1
Dan_Dee\t1\t12
Carla_de-Cruz\t1\tDan_Dee\t5
""",
    "pairsDevTrain.txt": """1
Bob_Brown\t1\t2
Bob_Brown\t2\tCarla_de-Cruz\t1
""",
    "pairsDevTest.txt": """1
Dan_Dee\t3\t4
Dan_Dee\t6\tAlice_Anders\t2
""",
    "people.txt": """2
2
Alice_Anders\t3
Bob_Brown\t2
2
Carla_de-Cruz\t1
Dan_Dee\t12
""",
    "peopleDevTrain.txt": "2\nAlice_Anders\t3\nBob_Brown\t2\n",
    "peopleDevTest.txt": "2\nCarla_de-Cruz\t1\nDan_Dee\t12\n",
    "lfw-names.txt": "Alice_Anders\t3\nBob_Brown\t2\nCarla_de-Cruz\t1\nDan_Dee\t12\n",
}
ALL_REFS = sorted(ImageRef(name, n) for name, count in PEOPLE.items() for n in range(1, count + 1))


def make_lfw(root: Path, variant: str = "lfw-deepfunneled", archive: bool = False) -> Path:
    """Write a fake LFW copy into `root`: protocol files plus an image folder (or its .tgz)."""
    root.mkdir(parents=True, exist_ok=True)
    for filename, text in PROTOCOL.items():
        (root / filename).write_text(text)
    images = root / variant
    for ref in ALL_REFS:
        (images / ref.name).mkdir(parents=True, exist_ok=True)
        (images / ref.relpath).write_bytes(FAKE_JPEG)
    (images / ".DS_Store").write_bytes(b"junk")  # stray files are ignored
    (images / "Alice_Anders" / "Thumbs.db").write_bytes(b"junk")
    if archive:
        with tarfile.open(root / lfw.ARCHIVES[variant], "w:gz") as tar:
            tar.add(images, arcname=variant)
        shutil.rmtree(images)
    return root


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return make_lfw(tmp_path / "data")


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests must not see the developer's LFW_DIR or write to their cache."""
    monkeypatch.delenv(lfw.LFW_ENV_VAR, raising=False)
    monkeypatch.delenv(lfw.CACHE_ENV_VAR, raising=False)


# ---------------------------------------------------------------- records


def test_image_ref_path_and_order() -> None:
    assert ImageRef("Aaron_Eckhart", 1).relpath == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    assert ImageRef("George_W_Bush", 530).relpath == "George_W_Bush/George_W_Bush_0530.jpg"
    assert sorted([ImageRef("B", 1), ImageRef("A", 10), ImageRef("A", 2)]) == [
        ImageRef("A", 2), ImageRef("A", 10), ImageRef("B", 1)
    ]


# ---------------------------------------------------------------- locating


@pytest.mark.parametrize("variant", IMAGE_FOLDERS)
def test_locate_folder_with_protocol_files_and_image_folder(tmp_path: Path, variant: str) -> None:
    root = make_lfw(tmp_path / "data", variant)
    data = LFW.locate(root)
    assert data == LFW(root, root / variant)
    assert data.all_images() == ALL_REFS
    assert data.image_path(ImageRef("Dan_Dee", 12)) == root / variant / "Dan_Dee" / "Dan_Dee_0012.jpg"
    assert data.image_path(ImageRef("Dan_Dee", 12)).read_bytes() == FAKE_JPEG


def test_locate_image_folder_itself(fake: Path) -> None:
    data = LFW.locate(fake / "lfw-deepfunneled")
    assert data == LFW(fake, fake / "lfw-deepfunneled")
    assert len(data.pairs("view2")) == 4


def test_locate_prefers_deepfunneled(fake: Path) -> None:
    make_lfw(fake, "lfw")
    assert LFW.locate(fake).images_dir == fake / "lfw-deepfunneled"


def test_locate_reads_env_var(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFW_DIR", str(fake))
    assert LFW.locate().root == fake


def test_locate_without_path_or_env_says_how_to_fix() -> None:
    with pytest.raises(LFWError, match="LFW_DIR") as info:
        LFW.locate()
    assert "http://vis-www.cs.umass.edu/lfw/" in str(info.value)


def test_locate_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(LFWError, match="does not exist"):
        LFW.locate(tmp_path / "nowhere")


def test_locate_folder_without_protocol_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LFWError, match="No LFW protocol files.*pairs.txt"):
        LFW.locate(tmp_path / "empty")


def test_locate_protocol_files_without_images(fake: Path) -> None:
    shutil.rmtree(fake / "lfw-deepfunneled")
    with pytest.raises(LFWError, match="no image folder or archive") as info:
        LFW.locate(fake)
    assert "lfw-deepfunneled.tgz" in str(info.value) and "lfw_funneled/" in str(info.value)


def test_locate_wrong_sub_folder(fake: Path) -> None:
    (fake / "notes").mkdir()
    with pytest.raises(LFWError, match="no LFW image folder"):
        LFW.locate(fake / "notes")


# ---------------------------------------------------------------- archives


def test_archive_is_extracted_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_lfw(tmp_path / "data", archive=True)
    cache = tmp_path / "cache"
    data = LFW.locate(root, cache_dir=cache)
    assert data.root == root
    assert data.images_dir.name == "lfw-deepfunneled"
    assert data.images_dir.parent.parent == cache / "lfw"
    assert data.all_images() == ALL_REFS
    data.verify()

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("extracted a second time")

    monkeypatch.setattr(tarfile, "open", no_extraction)
    assert LFW.locate(root, cache_dir=cache) == data


def test_archive_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_lfw(tmp_path / "data", archive=True)
    monkeypatch.setenv("KIOSK_CACHE_DIR", str(tmp_path / "env-cache"))
    assert (tmp_path / "env-cache" / "lfw") in LFW.locate(root).images_dir.parents


def test_killed_extraction_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_lfw(tmp_path / "data", archive=True)
    cache = tmp_path / "cache"
    extractall = tarfile.TarFile.extractall

    def half_then_killed(self: tarfile.TarFile, path: str, **kwargs: object) -> None:
        members = self.getmembers()
        extractall(self, path, members=members[: len(members) // 2], **kwargs)
        raise KeyboardInterrupt  # stands in for kill -9 ...

    with monkeypatch.context() as patch:
        patch.setattr(tarfile.TarFile, "extractall", half_then_killed)
        patch.setattr(lfw.shutil, "rmtree", lambda *args, **kwargs: None)  # ... which cleans nothing up
        with pytest.raises(KeyboardInterrupt):
            LFW.locate(root, cache_dir=cache)
    (leftover,) = (cache / "lfw").iterdir()
    assert leftover.name.startswith(".") and "partial" in leftover.name

    data = LFW.locate(root, cache_dir=cache)
    assert leftover not in data.images_dir.parents
    assert data.all_images() == ALL_REFS


def test_extracted_folder_without_marker_is_redone(tmp_path: Path) -> None:
    root = make_lfw(tmp_path / "data", archive=True)
    cache = tmp_path / "cache"
    images = LFW.locate(root, cache_dir=cache).images_dir
    (images.parent / ".extracted").unlink()
    shutil.rmtree(images / "Dan_Dee")
    data = LFW.locate(root, cache_dir=cache)
    assert data.images_dir == images
    assert data.all_images() == ALL_REFS


def test_interrupted_extraction_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_lfw(tmp_path / "data", archive=True)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LFW.locate(root, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "lfw").iterdir()) == []


def test_damaged_archive(fake: Path, tmp_path: Path) -> None:
    shutil.rmtree(fake / "lfw-deepfunneled")
    (fake / "lfw-deepfunneled.tgz").write_bytes(b"not a gzip file at all" * 100)
    with pytest.raises(LFWError, match="lfw-deepfunneled.tgz is damaged"):
        LFW.locate(fake, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "lfw").iterdir()) == []


def test_archive_with_wrong_top_folder(tmp_path: Path) -> None:
    root = make_lfw(tmp_path / "data", "lfw_funneled", archive=True)
    (root / "lfw-funneled.tgz").rename(root / "lfw.tgz")  # holds lfw_funneled/, not lfw/
    with pytest.raises(LFWError, match="holds no lfw/ folder"):
        LFW.locate(root, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "lfw").iterdir()) == []


def test_unsafe_archive_is_refused(fake: Path, tmp_path: Path) -> None:
    shutil.rmtree(fake / "lfw-deepfunneled")
    (tmp_path / "evil.txt").write_text("outside")
    with tarfile.open(fake / "lfw-deepfunneled.tgz", "w:gz") as tar:
        tar.add(tmp_path / "evil.txt", arcname="../evil.txt")
    with pytest.raises(LFWError, match="unsafe"):
        LFW.locate(fake, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- protocol files


def test_people_and_pairs(fake: Path) -> None:
    data = LFW.locate(fake)
    assert data.people("devtrain") == {"Alice_Anders": 3, "Bob_Brown": 2}
    assert data.people("devtest") == {"Carla_de-Cruz": 1, "Dan_Dee": 12}
    assert data.people("all") == PEOPLE
    assert data.people_folds() == [{"Alice_Anders": 3, "Bob_Brown": 2}, {"Carla_de-Cruz": 1, "Dan_Dee": 12}]
    assert data.images_of(data.people("devtrain")) == ALL_REFS[:5]
    assert data.images_of("Bob_Brown") == [ImageRef("Bob_Brown", 1), ImageRef("Bob_Brown", 2)]

    assert data.pairs("view2") == [
        Pair(ImageRef("Alice_Anders", 1), ImageRef("Alice_Anders", 2), True, 0),
        Pair(ImageRef("Alice_Anders", 3), ImageRef("Bob_Brown", 1), False, 0),
        Pair(ImageRef("Dan_Dee", 1), ImageRef("Dan_Dee", 12), True, 1),
        Pair(ImageRef("Carla_de-Cruz", 1), ImageRef("Dan_Dee", 5), False, 1),
    ]
    assert [(p.same, p.fold) for p in data.pairs("devtrain")] == [(True, 0), (False, 0)]
    assert data.pairs("devtest")[1] == Pair(ImageRef("Dan_Dee", 6), ImageRef("Alice_Anders", 2), False, 0)


def test_all_people_without_names_file(fake: Path) -> None:
    (fake / "lfw-names.txt").unlink()
    data = LFW.locate(fake)
    assert data.people("all") == PEOPLE
    data.verify()


def test_unknown_split_or_view(fake: Path) -> None:
    data = LFW.locate(fake)
    with pytest.raises(ValueError, match="devtrain"):
        data.people("train")
    with pytest.raises(ValueError, match="view2"):
        data.pairs("view1")


def test_windows_line_endings_and_trailing_blank_lines(fake: Path) -> None:
    text = PROTOCOL["pairsDevTrain.txt"].replace("\n", "\r\n") + "\r\n\r\n"
    (fake / "pairsDevTrain.txt").write_bytes(text.encode())
    assert len(LFW.locate(fake).pairs("devtrain")) == 2


def test_missing_protocol_file(fake: Path) -> None:
    (fake / "pairsDevTest.txt").unlink()
    data = LFW.locate(fake)
    assert len(data.pairs("devtrain")) == 2  # the other files still work
    with pytest.raises(LFWError, match=r"pairsDevTest\.txt is missing"):
        data.pairs("devtest")
    with pytest.raises(LFWError, match=r"pairsDevTest\.txt is missing"):
        data.verify()


@pytest.mark.parametrize(
    ("filename", "old", "new", "where"),
    [
        ("pairs.txt", "2\t1\n", "two\t1\n", "line 1"),
        ("pairs.txt", "2\t1\n", "2\t1\t0\n", "line 1"),
        ("pairs.txt", "Dan_Dee\t1\t12", "Dan_Dee\t1\t12\t9", "line 4"),  # a matched line with 4 fields
        ("pairs.txt", "Dan_Dee\t1\t12", "Dan_Dee\tone\t12", "line 4"),
        ("pairs.txt", "Dan_Dee\t1\t12", "Dan_Dee\t0\t12", "line 4"),  # numbers start at 1
        ("pairs.txt", "Dan_Dee\t1\t12", "../Dan_Dee\t1\t12", "line 4"),  # names become paths
        ("pairs.txt", "Carla_de-Cruz\t1\tDan_Dee\t5\n", "", "after line 4"),  # one fold short
        ("pairs.txt", "Dan_Dee\t5\n", "Dan_Dee\t5\nDan_Dee\t1\t2\n", "line 6"),  # one line too many
        ("pairsDevTrain.txt", "1\n", "2\n", "line 3"),  # header says 2 matched lines
        ("people.txt", "2\nCarla", "3\nCarla", "after line 7"),
        ("people.txt", "Bob_Brown\t2", "Bob_Brown\ttwo", "line 4"),
        ("people.txt", "Dan_Dee\t12", "Alice_Anders\t3", "line 7"),  # in two folds
        ("peopleDevTrain.txt", "Bob_Brown\t2", "Bob_Brown", "line 3"),
        ("peopleDevTest.txt", "2\n", "\n", "line 2"),  # missing header
        ("lfw-names.txt", "Bob_Brown\t2", "Bob_Brown 2 x", "line 2"),
    ],
)
def test_malformed_protocol_file_names_file_and_line(
    fake: Path, filename: str, old: str, new: str, where: str
) -> None:
    path = fake / filename
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    data = LFW.locate(fake)
    read = {
        "pairs.txt": lambda: data.pairs("view2"),
        "pairsDevTrain.txt": lambda: data.pairs("devtrain"),
        "people.txt": data.people_folds,
        "peopleDevTrain.txt": lambda: data.people("devtrain"),
        "peopleDevTest.txt": lambda: data.people("devtest"),
        "lfw-names.txt": lambda: data.people("all"),
    }[filename]
    with pytest.raises(LFWError) as info:
        read()
    message = str(info.value)
    assert str(path) in message and where in message
    with pytest.raises(LFWError, match=filename.replace(".", r"\.")):
        data.verify()


# ---------------------------------------------------------------- images


def test_verify_passes_on_complete_copy(fake: Path) -> None:
    LFW.locate(fake).verify()


def test_verify_lists_a_missing_image(fake: Path) -> None:
    (fake / "lfw-deepfunneled" / "Dan_Dee" / "Dan_Dee_0012.jpg").unlink()
    with pytest.raises(LFWError, match="1 of the 18 images") as info:
        LFW.locate(fake).verify()
    assert "Dan_Dee/Dan_Dee_0012.jpg (in pairs.txt)" in str(info.value)


def test_verify_lists_at_most_ten(fake: Path) -> None:
    data = LFW.locate(fake)
    for ref in data.all_images():
        data.image_path(ref).unlink()
    with pytest.raises(LFWError, match="18 of the 18 images") as info:
        data.verify()
    assert str(info.value).count(".jpg (in ") == 10
    assert "and 8 more" in str(info.value)


def test_verify_uses_people_counts(fake: Path) -> None:
    (fake / "lfw-deepfunneled" / "Dan_Dee" / "Dan_Dee_0007.jpg").unlink()  # in no pair
    with pytest.raises(LFWError, match="Dan_Dee_0007.jpg"):
        LFW.locate(fake).verify()


def test_images_of_unknown_person(fake: Path) -> None:
    with pytest.raises(LFWError, match="No folder for 'Eve_Evans'"):
        LFW.locate(fake).images_of(["Alice_Anders", "Eve_Evans"])


# ---------------------------------------------------------------- the real data set (LFW_DIR)


@pytest.mark.lfw
class TestRealLFW:
    def test_images_and_people(self, lfw: LFW) -> None:
        images = lfw.all_images()
        assert len(images) == 13_233
        assert len({ref.name for ref in images}) == 5_749
        people = lfw.people("all")
        assert len(people) == 5_749 and sum(people.values()) == 13_233

    @pytest.mark.parametrize(
        ("split", "people", "images"), [("devtrain", 4_038, 9_525), ("devtest", 1_711, 3_708)]
    )
    def test_view1_people(self, lfw: LFW, split: str, people: int, images: int) -> None:
        names = lfw.people(split)
        assert len(names) == people and sum(names.values()) == images
        assert len(lfw.images_of(names)) == images

    def test_view1_people_are_disjoint(self, lfw: LFW) -> None:
        train, test = lfw.people("devtrain"), lfw.people("devtest")
        assert not train.keys() & test.keys()
        assert train | test == lfw.people("all")

    def test_people_folds_are_disjoint(self, lfw: LFW) -> None:
        folds = lfw.people_folds()
        assert len(folds) == 10
        names = [name for fold in folds for name in fold]
        assert len(names) == len(set(names)) == 5_749

    @pytest.mark.parametrize(("view", "count"), [("view2", 6_000), ("devtrain", 2_200), ("devtest", 1_000)])
    def test_pair_counts(self, lfw: LFW, view: str, count: int) -> None:
        pairs = lfw.pairs(view)
        assert len(pairs) == count
        assert sum(p.same for p in pairs) == count // 2
        assert all(p.same == (p.a.name == p.b.name) for p in pairs)

    def test_view2_folds(self, lfw: LFW) -> None:
        pairs = lfw.pairs("view2")
        assert Counter(p.fold for p in pairs) == {fold: 600 for fold in range(10)}
        assert Counter(p.fold for p in pairs if p.same) == {fold: 300 for fold in range(10)}

    def test_verify(self, lfw: LFW) -> None:
        lfw.verify()
