"""Files that name people are created readable by their owner only, whatever the umask."""
from __future__ import annotations

import os
import stat

import pytest

from kiosk.datadir import create_private_file
from kiosk.outbox import FILE_NAME, Outbox
from kiosk.site_copy import GalleryCopy


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    previous = os.umask(0o002)  # a desktop's usual umask: group-writable, world-readable
    yield
    os.umask(previous)


def test_the_outbox_and_the_sites_gallery_copy_are_owner_only(tmp_path, open_umask):
    outbox = Outbox(tmp_path / FILE_NAME)
    outbox.close()
    assert mode(tmp_path / FILE_NAME) == 0o600
    copy = GalleryCopy(tmp_path)
    copy.save(1, [(1, 1, 2, 1, b"sealed")], {1: "Ada"}, 1, b"key", b"log", None, {})
    assert mode(copy.path) == 0o600 and copy.exists()


def test_an_existing_file_keeps_its_mode_and_its_contents(tmp_path, open_umask):
    path = tmp_path / "kiosk.db"
    path.write_bytes(b"kept")
    os.chmod(path, 0o640)
    create_private_file(path)
    assert mode(path) == 0o640 and path.read_bytes() == b"kept"
    fresh = tmp_path / "new.db"
    create_private_file(fresh)
    assert mode(fresh) == 0o600 and fresh.read_bytes() == b""
