"""One enrolment for the command line and the admin window (kiosk.enrollment): the save and its
badge rules, and the check that warns (window) or refuses (`enroll`) when a photo shows someone
already enrolled. Real MTCNN and model, real LFW photos, a real database."""
from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.database import database_path, open_database
from kiosk.enrollment import IdentityCheck, assess_image, save_enrolment
from kiosk.gallery import Gallery, GalleryError
from kiosk.images import load_image
from kiosk.ui.enroll_dialog import EnrollDialog

# As in tests/test_cli.py: photo 12 of PERSON matches photos 1-3 well clear of the threshold, and
# STRANGER's photo 1 matches nobody.
PERSON, STRANGER, NAME = "Jennifer_Capriati", "Gerhard_Schroeder", "Jennifer Capriati"


@pytest.fixture(scope="module")
def photos(lfw) -> dict[str, list[Path]]:
    return {who: [lfw.image_path(ref) for ref in lfw.images_of([who])[:14]] for who in (PERSON, STRANGER)}


def samples(engine, paths: list[Path]):
    return [assess_image(engine, load_image(path), path.name) for path in paths]


def test_one_save_with_its_badge_rules_and_the_lookalike_check(tmp_path, engine, photos):
    conn = open_database(database_path(tmp_path))
    try:
        gallery = Gallery(conn)
        person = save_enrolment(gallery, engine, samples(engine, photos[PERSON][:3]), name=NAME, badge="B-1")
        assert person.template_count == 3 and person.external_id == "B-1"
        assert [t.source for t in gallery.templates(person)] == [f"enroll {p.name}" for p in photos[PERSON][:3]]
        with pytest.raises(GalleryError, match="badge B-1 already belongs to Jennifer Capriati"):
            save_enrolment(gallery, engine, samples(engine, photos[STRANGER][:1]), name="Someone", badge="B-1")
        with pytest.raises(GalleryError, match="a badge can only be given when enrolling a new person"):
            save_enrolment(gallery, engine, samples(engine, photos[PERSON][3:4]), badge="B-2", person_id=person.id)
        assert gallery.get_person(NAME).template_count == 3 and gallery.find_person("Someone") is None

        probe, stranger = (s.embedding for s in samples(engine, [photos[PERSON][11], photos[STRANGER][0]]))
        found = IdentityCheck(engine, gallery, risk=100).lookalike(probe)
        assert (found.name, found.person_id) == (NAME, person.id) and 0 <= found.percent <= 100
        assert IdentityCheck(engine, gallery, risk=100).lookalike(stranger) is None
        assert IdentityCheck(engine, gallery, risk=100, person_id=person.id).lookalike(probe) is None  # themselves
    finally:
        conn.close()


def test_the_enrolment_dialog_warns_of_a_photo_of_someone_enrolled(qtbot, tmp_path, engine, photos):
    conn = open_database(database_path(tmp_path))
    try:
        save_enrolment(Gallery(conn), engine, samples(engine, photos[PERSON][:3]), name=NAME)
    finally:
        conn.close()
    dialog = EnrollDialog(database_path(tmp_path), engine_factory=lambda: engine)
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("Someone Else")
    dialog.add_files([photos[PERSON][11], photos[STRANGER][0]])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=120_000)
    assert [(s.source, s.match_name) for s in dialog.results] == [
        (photos[PERSON][11].name, NAME), (photos[STRANGER][0].name, None)]
    dialog.close()
