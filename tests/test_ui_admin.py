"""Admin mode end to end: PIN, settings, the access-log table, people, enrollment, the kiosk's Admin entry.

Real widgets (offscreen Qt), a real SQLite file in tmp_path, events written through AccessLog.
Enrollment with recognition needs the trained model (assets/face_embedder.keras) and skips
without it.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QDate, Qt, QThread, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from kiosk.accesslog import AccessLog
from kiosk.admin_secret import AdminLockedError, AdminSecret
from kiosk.alignment import AlignmentSpec
from kiosk.calibration import DEFAULT_RISK
from kiosk.camera import Camera
from kiosk.database import database_path, open_database
from kiosk.events import default_door_id
from kiosk.gallery import Gallery
from kiosk.images import encode_jpeg
from kiosk.modelcard import ModelCard, default_model_path
from kiosk.settings import KioskSettings, settings_path
from kiosk.ui.admin_window import AdminWindow
from kiosk.ui.enroll_dialog import EnrollDialog
from kiosk.ui.kiosk_window import KioskWindow
from kiosk.ui.log_model import AccessLogModel, LogFilter
from kiosk.ui.pin_dialog import EnterPinDialog, SetPinDialog

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def unit(seed: int, dim: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def face_jpeg(astronaut: np.ndarray) -> bytes:
    return encode_jpeg(cv2.resize(astronaut[30:230, 130:330], (64, 64)))


@pytest.fixture
def conn(tmp_path):
    connection = open_database(database_path(tmp_path))
    yield connection
    connection.close()


@pytest.fixture
def people(conn, astronaut):
    """Ada (2 samples, one with a thumbnail) and Grace (1 sample)."""
    gallery = Gallery(conn)
    ada = gallery.add_person("Ada", "1042")
    gallery.add_templates(ada, [unit(1), unit(2)], [0.99, 0.98], ["a1", "a2"], [face_jpeg(astronaut), None])
    grace = gallery.add_person("Grace")
    gallery.add_templates(grace, [unit(3)], [0.97], ["g1"])
    return {"Ada": ada.id, "Grace": grace.id}


@pytest.fixture
def events(conn, people, astronaut):
    """Six events over three days, newest last: (camera, decision, name, day offset)."""
    log = AccessLog(conn)
    rows = [
        ("door-1", "granted", "Ada", 0),
        ("door-1", "denied", None, 0),
        ("door-2", "granted", "Grace", 1),
        ("door-2", "denied", None, 1),
        ("door-1", "granted", "Ada", 2),
        ("door-1", "denied", None, 2),
    ]
    recorded = []
    for i, (camera, decision, name, day) in enumerate(rows):
        recorded.append(log.record(
            camera=camera, decision=decision, reason="match" if decision == "granted" else "unknown",
            person_id=people[name] if name else None, score=0.8 if name else 0.3,
            thumbnail=face_jpeg(astronaut) if i == 4 else None, time=T0 + timedelta(days=day, minutes=i),
        ))
    return recorded


@pytest.fixture
def admin(qtbot, tmp_path, events):
    window = AdminWindow(tmp_path)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def shown(model) -> list[tuple[str, str, str]]:
    return [(model.event_at(r).camera, model.event_at(r).decision, model.event_at(r).name or "")
            for r in range(model.rowCount())]


# -- settings and PIN (no Qt) --------------------------------------------------------------


def test_settings_round_trip_and_bad_files_give_defaults(tmp_path, caplog):
    assert KioskSettings.load(tmp_path) == KioskSettings()  # no file: defaults, silently
    saved = KioskSettings(camera="rtsp://cam/1", risk=1000, retention_days=30, door_url="http://door/open",
                          store_thumbnails=True, admin_timeout_s=300, analysis_fps=10.0, idle_analysis_fps=0.5)
    saved.save(tmp_path)
    assert KioskSettings.load(tmp_path) == saved
    assert KioskSettings().store_thumbnails is False and KioskSettings().admin_timeout_s == 120

    with pytest.raises(ValueError, match="door_command and door_url"):
        KioskSettings(door_command="open", door_url="http://door/open").save(tmp_path)
    assert KioskSettings.load(tmp_path) == saved  # a refused save leaves the file alone
    for busy, idle in ((10.0, 12.0), (10.0, 0.0)):  # 0 is no cap: faster than 10
        with pytest.raises(ValueError, match="idle_analysis_fps: must not be above analysis_fps"):
            KioskSettings(analysis_fps=busy, idle_analysis_fps=idle).validate()
    assert KioskSettings(analysis_fps=0.0, idle_analysis_fps=5.0).problems() == []
    with pytest.raises(ValueError, match="analysis_fps: must be 0 .no cap. to 60"):
        KioskSettings(analysis_fps=100.0).validate()
    assert KioskSettings(analysis_fps="fast").problems() == ["analysis_fps: must be a number of frames a second, "
                                                              "got 'fast'"]
    # Rates laid over saved settings (as `run --analysis-fps` does): None keeps the saved one; the
    # rate check ignores the other fields' problems.
    saved_rates = KioskSettings(analysis_fps=10.0, idle_analysis_fps=2.0, door_command="open", door_url="http://d")
    assert (saved_rates.with_rates(None, 1.0).analysis_fps, saved_rates.with_rates(None, 1.0).idle_analysis_fps) \
        == (10.0, 1.0)
    assert saved_rates.with_rates(12.0, None).idle_analysis_fps == 2.0 and saved_rates.analysis_fps == 10.0
    assert saved_rates.pace_problems() == [] and saved_rates.problems() != []
    assert saved_rates.with_rates(1.0, None).pace_problems() == [
        "idle_analysis_fps: must not be above analysis_fps (0 counts as no cap)"]

    caplog.set_level(logging.WARNING, logger="kiosk.settings")
    settings_path(tmp_path).write_text("{not json")
    assert KioskSettings.load(tmp_path) == KioskSettings()
    settings_path(tmp_path).write_text(json.dumps({"risk": "high", "retention_days": 7, "sound": 1}))
    loaded = KioskSettings.load(tmp_path)
    assert loaded.risk == DEFAULT_RISK and loaded.retention_days == 7 and loaded.sound is True
    # A hand-edited idle rate above the busy one is brought down to it (whole numbers are fine).
    settings_path(tmp_path).write_text(json.dumps({"analysis_fps": 8, "idle_analysis_fps": 20}))
    loaded = KioskSettings.load(tmp_path)
    assert (loaded.analysis_fps, loaded.idle_analysis_fps) == (8.0, 8.0) and "idle_analysis_fps 20" in caplog.text
    assert "not valid JSON" in caplog.text and "risk" in caplog.text and "sound" in caplog.text


def test_admin_secret_is_hashed_private_and_lockout_survives_a_restart(tmp_path):
    secret = AdminSecret(tmp_path)
    assert not secret.is_set()
    secret.set_pin("2718")
    text = secret.path.read_text()
    assert "2718" not in text and json.loads(text)["n"] == 2**14
    assert stat.S_IMODE(os.stat(secret.path).st_mode) == 0o600
    assert secret.verify("2718") and not secret.verify("0000")

    for _ in range(2):
        assert not secret.verify("0000")  # failures 2 and 3: the third starts a 1 s lockout
    restarted = AdminSecret(tmp_path)  # a new process reads the same count
    assert restarted.failures() == 3 and 0 < restarted.lockout_remaining() <= 1
    with pytest.raises(AdminLockedError):
        restarted.verify("2718")  # even the right PIN waits


# -- PIN dialogs ---------------------------------------------------------------------------


def test_pin_dialogs_first_start_wrong_pin_and_lockout(qtbot, tmp_path):
    secret = AdminSecret(tmp_path)
    setter = SetPinDialog(secret)
    qtbot.addWidget(setter)
    setter.show()
    qtbot.keyClicks(setter.pin, "123")
    qtbot.keyClicks(setter.repeat, "123")
    setter.ok_button.click()
    assert "at least 4" in setter.message.text() and not secret.is_set()
    setter.pin.setText("4321")
    setter.repeat.setText("4312")
    setter.ok_button.click()
    assert "differ" in setter.message.text() and not secret.is_set()
    setter.repeat.setText("4321")
    with qtbot.waitSignal(setter.accepted, timeout=2_000):
        setter.ok_button.click()
    assert secret.is_set()

    entry = EnterPinDialog(AdminSecret(tmp_path))
    qtbot.addWidget(entry)
    entry.show()
    for attempt in range(3):
        entry.pin.setText("0000")
        entry.ok_button.click()
        assert entry.result() != entry.DialogCode.Accepted
    assert "Wrong PIN" in entry.message.text() and "try again in 1 s" in entry.message.text()
    assert not entry.ok_button.isEnabled()

    again = EnterPinDialog(AdminSecret(tmp_path))  # a new dialog (or a restarted kiosk) is still locked
    qtbot.addWidget(again)
    again.show()
    assert not again.ok_button.isEnabled() and "Too many wrong PINs" in again.message.text()
    qtbot.waitUntil(again.ok_button.isEnabled, timeout=3_000)
    again.pin.setText("4321")
    with qtbot.waitSignal(again.accepted, timeout=2_000):
        again.ok_button.click()
    assert AdminSecret(tmp_path).failures() == 0


def test_pin_dialogs_are_touch_keypads_sized_from_the_screen(qtbot, tmp_path):
    secret = AdminSecret(tmp_path)
    setter = SetPinDialog(secret)
    qtbot.addWidget(setter)
    setter.show()
    screen = setter.screen().availableGeometry()
    side = max(56, screen.height() // 12)
    assert set(setter.keypad.keys) == {*"0123456789", "⌫", "OK"}
    assert all(key.height() >= side and key.width() >= side for key in setter.keypad.keys.values())
    assert setter.width() >= min(6 * side, screen.width())
    for key in "12":
        qtbot.mouseClick(setter.keypad.keys[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(setter.ok_button, Qt.MouseButton.LeftButton)
    assert setter.message.text() == "The PIN needs at least 4 characters."  # "PIN", not "pin"
    setter.pin.setFocus()
    setter.pin.clear()
    for key in "24689⌫":  # a slip, taken back
        qtbot.mouseClick(setter.keypad.keys[key], Qt.MouseButton.LeftButton)
    assert setter.pin.text() == "2468" and setter.focusWidget() is setter.pin  # the keys never take the focus
    setter.repeat.setFocus()
    for key in "2468":
        qtbot.mouseClick(setter.keypad.keys[key], Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(setter.accepted, timeout=2_000):
        qtbot.mouseClick(setter.ok_button, Qt.MouseButton.LeftButton)

    entry = EnterPinDialog(secret)
    qtbot.addWidget(entry)
    entry.show()
    for attempt in range(3):
        for key in "1111":
            qtbot.mouseClick(entry.keypad.keys[key], Qt.MouseButton.LeftButton)
        qtbot.mouseClick(entry.ok_button, Qt.MouseButton.LeftButton)
    # The lockout message is shown whole: wrapped, never cut off.
    message = entry.message
    assert message.text().startswith("Wrong PIN. Too many wrong PINs: try again in ")
    assert message.height() >= message.heightForWidth(message.width())


# -- the access log ------------------------------------------------------------------------


def test_log_table_shows_filters_and_searches(qtbot, admin, tmp_path):
    tab = admin.log_tab
    model = tab.model
    assert model.rowCount() == 6 and model.columnCount() == 8
    assert [tab.door_combo.itemText(i) for i in range(tab.door_combo.count())] == ["All doors", default_door_id()]
    assert model.data(model.index(0, 7)) == default_door_id()  # the door (kiosk) that decided
    assert shown(model)[0] == ("door-1", "denied", "")  # newest first
    assert model.data(model.index(3, 2)) == "Grace" and model.data(model.index(0, 5)) == "0.300"

    tab.decision_combo.setCurrentIndex(tab.decision_combo.findData("granted"))
    assert [row[1] for row in shown(model)] == ["granted"] * 3

    tab.person_combo.setCurrentIndex(tab.person_combo.findData("Ada"))
    assert shown(model) == [("door-1", "granted", "Ada")] * 2

    tab.person_combo.setCurrentIndex(0)
    tab.decision_combo.setCurrentIndex(0)
    day2 = (T0 + timedelta(days=1)).astimezone().date()
    tab.from_date.setDate(QDate(day2.year, day2.month, day2.day))
    tab.to_date.setDate(QDate(day2.year, day2.month, day2.day))
    tab.dates_check.setChecked(True)
    assert [row[0] for row in shown(model)] == ["door-2", "door-2"]
    tab.dates_check.setChecked(False)
    assert model.rowCount() == 6

    qtbot.keyClicks(tab.search_edit, "grac")  # applied after a pause in typing
    qtbot.waitUntil(lambda: shown(model) == [("door-2", "granted", "Grace")], timeout=3_000)
    assert tab.summary.text().startswith("1 event ")

    tab.search_edit.clear()
    qtbot.waitUntil(lambda: model.rowCount() == 6, timeout=3_000)
    tab.view.selectRow(1)  # the event recorded with a face thumbnail
    assert tab.selected_thumbnail_shown()
    tab.view.selectRow(0)
    assert not tab.selected_thumbnail_shown() and "No thumbnail" in tab.thumbnail.text()

    admin.tabs.setCurrentIndex(1)
    admin.activateWindow()
    qtbot.waitUntil(admin.isActiveWindow, timeout=2_000)
    qtbot.keyClick(admin, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # Ctrl+F: to the search box
    assert admin.tabs.currentWidget() is tab and tab.search_edit.hasFocus()
    qtbot.keyClick(tab.search_edit, Qt.Key.Key_Escape)  # Esc leaves admin mode
    assert not admin.isVisible()


def test_new_events_appear_live_and_export_writes_the_filtered_rows(qtbot, admin, conn, people, tmp_path_factory):
    tab = admin.log_tab
    tab.decision_combo.setCurrentIndex(tab.decision_combo.findData("denied"))
    assert tab.model.rowCount() == 3

    log = AccessLog(conn)  # another connection, as the kiosk's recognition worker would be
    event = log.record(camera="door-3", decision="denied", reason="several_faces")
    log.record(camera="door-3", decision="granted", reason="match", person_id=people["Ada"])  # filtered out
    qtbot.waitUntil(lambda: tab.model.rowCount() == 4, timeout=5_000)
    assert tab.model.event_at(0).id == event.id
    log.set_door_outcome(event.id, "ok")  # the door reports after the event
    qtbot.waitUntil(lambda: tab.model.data(tab.model.index(0, 6)) == "ok", timeout=5_000)

    path = tmp_path_factory.mktemp("exports") / "out" / "denied.csv"  # outside the data directory
    with qtbot.waitSignal(tab.exported, timeout=5_000) as signal:
        assert tab.export_csv(path)
    assert signal.args == [str(path), 4]
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["decision"] for row in rows] == ["denied"] * 4
    assert rows[0]["camera"] == "door-3" and rows[0]["door"] == "ok"


def test_export_never_writes_into_the_kiosks_own_files_nor_over_an_existing_file(qtbot, admin, tmp_path,
                                                                                 tmp_path_factory):
    tab = admin.log_tab
    database = database_path(tmp_path)
    before = database.read_bytes()
    for target, why in ((database, "inside the data directory"), (tmp_path / "keys" / "kiosk.key", "inside"),
                        (tmp_path / "log.csv", "inside the data directory")):
        with qtbot.waitSignal(tab.export_failed, timeout=5_000) as signal:
            assert not tab.export_csv(target)
        assert why in signal.args[0] and tab.export_button.isEnabled()
    assert database.read_bytes() == before and not (tmp_path / "log.csv").exists()
    existing = tmp_path_factory.mktemp("exports") / "kept.csv"
    existing.write_text("someone's file\n")
    with qtbot.waitSignal(tab.export_failed, timeout=5_000) as signal:
        assert not tab.export_csv(existing)
    assert "already exists" in signal.args[0] and existing.read_text() == "someone's file\n"


def test_model_pages_lazily_by_key_in_both_orders(qtbot, conn, tmp_path):
    log = AccessLog(conn)
    # Eleven events, several sharing a millisecond: key-set paging must neither repeat nor skip.
    for i in range(11):
        log.record(camera=f"c{i}", decision="denied", reason="unknown", time=T0 + timedelta(seconds=i // 3))
    model = AccessLogModel(database_path(tmp_path), page_size=4)
    try:
        assert model.rowCount() == 4 and model.canFetchMore()
        while model.canFetchMore():
            model.fetchMore()
        assert [model.event_at(r).camera for r in range(11)] == [f"c{i}" for i in reversed(range(11))]

        model.sort(0, Qt.SortOrder.AscendingOrder)
        assert model.rowCount() == 4
        while model.canFetchMore():
            model.fetchMore()
        assert [model.event_at(r).camera for r in range(11)] == [f"c{i}" for i in range(11)]

        model.set_filter(LogFilter(search="c1"))  # c1 and c10
        assert model.rowCount() == 2 and not model.canFetchMore() and model.total() == 2
    finally:
        model.close()


# -- people ------------------------------------------------------------------------------


def test_a_damaged_face_sample_is_shown_and_everyone_else_still_listed(qtbot, admin, tmp_path):
    import sqlite3

    raw = sqlite3.connect(database_path(tmp_path))
    template_id, blob = raw.execute("SELECT id, embedding FROM template ORDER BY id LIMIT 1").fetchone()
    raw.execute("UPDATE template SET embedding = ? WHERE id = ?", (blob[:-1] + bytes([blob[-1] ^ 1]), template_id))
    raw.commit()
    raw.close()
    tab = admin.people_tab
    tab.refresh()
    assert [(p.name, p.template_count) for p in tab.people] == [("Ada", 2), ("Grace", 1)]
    assert tab.table.item(0, 2).text() == "2 (1 damaged)"
    assert "fails authentication" in tab.table.item(0, 2).toolTip()
    assert tab.message.text().endswith("; 1 damaged face sample not used")


def test_people_rename_deactivate_delete_reach_the_database(qtbot, admin, tmp_path):
    tab = admin.people_tab
    assert [(p.name, p.template_count) for p in tab.people] == [("Ada", 2), ("Grace", 1)]
    assert not tab.table.item(0, 0).icon().isNull()  # Ada's sample thumbnail
    check = open_database(database_path(tmp_path))
    try:
        gallery = Gallery(check)
        assert tab.select("ada") and tab.rename_selected("Ada Lovelace")
        assert gallery.find_person("Ada Lovelace").template_count == 2 and gallery.find_person("Ada") is None
        assert admin.log_tab.person_combo.findData("Ada Lovelace") >= 0  # the log's person filter follows

        assert not tab.rename_selected("grace")  # names are unique, whatever the case
        assert "already exists" in tab.message.text()

        assert tab.toggle_active_selected()
        assert gallery.get_person("Ada Lovelace").active is False
        assert tab.active_button.text() == "Activate" and tab.table.item(0, 3).text() == "no"
        assert len(gallery.matrix()[0]) == 1  # only Grace's template is matched against now

        assert tab.select("Grace") and tab.delete_selected(confirm=False)
        assert gallery.find_person("Grace") is None and len(gallery.templates()) == 2
        assert [p.name for p in tab.people] == ["Ada Lovelace"]

        # The Delete key asks first; answering Cancel keeps the person.
        admin.tabs.setCurrentWidget(tab)
        admin.activateWindow()
        qtbot.waitUntil(admin.isActiveWindow, timeout=2_000)
        tab.select("Ada Lovelace")
        tab.table.setFocus()
        answered = []

        def answer_cancel() -> None:
            box = QApplication.activeModalWidget()
            if isinstance(box, QMessageBox):
                answered.append(box.text())
                box.button(QMessageBox.StandardButton.Cancel).click()
            else:
                QTimer.singleShot(20, answer_cancel)

        QTimer.singleShot(20, answer_cancel)
        qtbot.keyClick(tab.table, Qt.Key.Key_Delete)
        qtbot.waitUntil(lambda: bool(answered), timeout=3_000)
        assert "Delete Ada Lovelace and all 2" in answered[0]
        assert gallery.find_person("Ada Lovelace") is not None
    finally:
        check.close()


def test_deleting_a_person_can_erase_their_log_entries(qtbot, admin, tmp_path):
    tab, log = admin.people_tab, admin.log_tab
    assert ("door-2", "granted", "Grace") in shown(log.model)
    # Ticking the question's box erases Grace's entries as well as her samples.
    answered = []

    def tick_and_confirm() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, tick_and_confirm)
            return
        answered.append(box.text())
        box.checkBox().setChecked(True)
        box.button(QMessageBox.StandardButton.Yes).click()

    assert tab.select("Grace")
    QTimer.singleShot(20, tick_and_confirm)
    assert tab.delete_selected()
    assert "erased 1 log entry" in tab.message.text()
    assert ("door-2", "granted", "") in shown(log.model) and "Grace" not in {row[2] for row in shown(log.model)}
    names = [log.model.data(log.model.index(row, 2)) for row in range(log.model.rowCount())]
    assert names.count("(erased)") == 1

    # Without the box ticked the name stays in the log, unlinked.
    assert tab.select("Ada") and tab.delete_selected(confirm=False)
    assert [row[2] for row in shown(log.model)].count("Ada") == 2
    check = open_database(database_path(tmp_path))
    try:
        access_log = AccessLog(check)
        assert access_log.verify().ok
        erased = [event for event in access_log.query() if event.redacted]
        assert len(erased) == 1 and erased[0].name is None and erased[0].score is None
    finally:
        check.close()


def test_settings_tab_sets_a_risk_and_says_what_the_door_uses(qtbot, tmp_path):
    raw = {"threshold": {"value": 0.42, "target_far": 0.01}, "devtest": {"accuracy": 0.93, "tar_at_far_1e3": 0.61}}
    card = ModelCard(Path("m.keras"), AlignmentSpec(112, 0.0), 128, 0.42, "far", raw)
    window = AdminWindow(tmp_path, card=card)
    qtbot.addWidget(window)
    try:
        tab = window.settings_tab
        assert tab.risk_combo.currentData() == DEFAULT_RISK and "as shipped" in tab.risk_combo.currentText()
        assert "93.0%" in tab.card_label.text()
        # Nobody enrolled: the rule in force is the model's strict starting rule, and the tab says so.
        assert "strict starting rule" in tab.rule_label.text() and "0.420" in tab.rule_label.text()
        # A looser door needs its own tick: without it nothing is saved.
        tab.risk_combo.setCurrentIndex(tab.risk_combo.findData(20))
        assert tab.looser_check.isVisibleTo(tab) and "looser than shipped" in tab.risk_combo.currentText()
        assert not tab.save() and "looser_risk_confirmed" in tab.message.text()
        assert KioskSettings.load(tmp_path) == KioskSettings()
        tab.risk_combo.setCurrentIndex(tab.risk_combo.findData(1000))
        assert not tab.looser_check.isVisibleTo(tab)
        tab.retention_spin.setValue(30)
        tab.thumbnails_combo.setCurrentIndex(tab.thumbnails_combo.findData("all"))
        tab.timeout_spin.setValue(60)
        assert tab.analysis_spin.value() == 15 and tab.idle_analysis_spin.value() == 5  # the defaults
        tab.analysis_spin.setValue(0)
        assert tab.analysis_spin.text() == "every frame"
        tab.idle_analysis_spin.setValue(3)
        assert tab.save()
        saved = KioskSettings.load(tmp_path)
        assert saved.risk == 1000 and not saved.looser_risk_confirmed and saved.retention_days == 30
        assert saved.store_thumbnails and saved.admin_timeout_s == 60
        assert (saved.analysis_fps, saved.idle_analysis_fps) == (0.0, 3.0)
        assert window.idle.timeout_s == 60  # the new timeout applies at once

        tab.analysis_spin.setValue(2)  # below the idle rate of 3
        assert not tab.save() and "idle_analysis_fps" in tab.message.text()
        assert KioskSettings.load(tmp_path) == saved
        tab.analysis_spin.setValue(15)

        tab.door_command_edit.setText("open-door")
        tab.door_url_edit.setText("http://door/open")
        assert not tab.save() and "not both" in tab.message.text()
    finally:
        window.close()


def test_admin_mode_ends_after_inactivity_closing_its_dialogs(qtbot, tmp_path):
    window = AdminWindow(tmp_path)
    qtbot.addWidget(window)
    window.show()
    dialog = window.people_tab.enroll_new()
    thread = dialog.findChild(QThread)
    assert thread.isRunning()
    window.idle.set_timeout(0.3)
    with qtbot.waitSignal(window.timed_out, timeout=3_000):
        pass
    assert not window.isVisible() and not thread.isRunning() and window.people_tab.enroll_dialogs == []


# -- the kiosk's Admin entry ---------------------------------------------------------------


def test_kiosk_admin_entry_asks_for_a_pin_then_opens_admin(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("KIOSK_MODEL", str(tmp_path / "no-model.keras"))  # fast, whether a model exists or not
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), np.full((120, 160, 3), 90, np.uint8))
    window = KioskWindow(Camera(str(frames), loop=True).start(), analyse=lambda rgb: [], data_dir=tmp_path / "data")
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitUntil(window.isActiveWindow, timeout=2_000)
        qtbot.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        qtbot.waitUntil(lambda: isinstance(window._pin_dialog, SetPinDialog), timeout=2_000)
        window._pin_dialog.pin.setText("2468")
        window._pin_dialog.repeat.setText("2468")
        window._pin_dialog.ok_button.click()
        qtbot.waitUntil(lambda: window.admin_window is not None and window.admin_window.isVisible(), timeout=2_000)
        window.admin_window.close()
        assert window.admin_window is None

        window.admin_button.click()  # a PIN is set now: it is asked for
        qtbot.waitUntil(lambda: isinstance(window._pin_dialog, EnterPinDialog), timeout=2_000)
        window._pin_dialog.pin.setText("1111")
        window._pin_dialog.ok_button.click()
        assert window.admin_window is None and "Wrong PIN" in window._pin_dialog.message.text()
        window._pin_dialog.pin.setText("2468")
        window._pin_dialog.ok_button.click()
        qtbot.waitUntil(lambda: window.admin_window is not None, timeout=2_000)
        admin = window.admin_window

        dialog = admin.people_tab.enroll_new()
        dialog.start_capture()  # the kiosk's camera frames reach the dialog's worker
        qtbot.waitUntil(lambda: "model" in dialog.feedback.text(), timeout=5_000)
        assert dialog.instruction.text() == "Step 1 of 3: Look straight at the camera"
        assert dialog.feedback.text().startswith("analysis failed")
    finally:
        window.close()
    assert window.admin_window is None and not admin.isVisible()
    threads = window.findChildren(QThread)
    assert len(threads) >= 2 and not any(t.isRunning() for t in threads)


# -- enrollment ----------------------------------------------------------------------------


def test_enroll_without_a_model_reports_every_file_and_saves_nothing(qtbot, tmp_path, monkeypatch, conn):
    monkeypatch.setenv("KIOSK_MODEL", str(tmp_path / "no-model.keras"))
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    dialog = EnrollDialog(database_path(tmp_path))
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("Nobody")
    dialog.add_files([photo, tmp_path / "missing.jpg"])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert [(s.source, s.used) for s in dialog.results] == [("photo.png", False), ("missing.jpg", False)]
    assert "model" in dialog.results[0].reason
    assert not dialog.save() and Gallery(conn).people() == []
    dialog.reject()
    assert not dialog.findChild(QThread).isRunning()


needs_model = pytest.mark.skipif(not default_model_path().exists(),
                                 reason=f"no trained model at {default_model_path()} (train and export one first)")


@needs_model
def test_enroll_from_files_saves_templates_and_rejects_a_faceless_file(qtbot, tmp_path, conn, astronaut):
    faces = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(faces), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 170, np.uint8))
    dialog = EnrollDialog(database_path(tmp_path))
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("Eileen Collins")
    dialog.badge_edit.setText("STS-93")
    dialog.add_files([faces, blank])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=120_000)  # the first call loads the model
    by_file = {s.source: s for s in dialog.results}
    assert by_file["astronaut.jpg"].used and by_file["wall.png"].reason == "no face found"
    assert len(dialog.samples) == 1 and dialog.samples_view.count() == 1
    assert dialog.duplicate_warning() is None  # nobody enrolled yet
    thread = dialog.findChild(QThread)
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as signal:
        assert dialog.save()
    assert signal.args[0].name == "Eileen Collins" and signal.args[0].template_count == 1
    gallery = Gallery(conn)
    person = gallery.get_person("eileen collins")
    assert person.external_id == "STS-93"
    template = gallery.templates(person)[0]
    assert template.source == "enroll astronaut.jpg" and gallery.thumbnail(template.id) is not None
    assert not dialog.isVisible() and not thread.isRunning()

    again = EnrollDialog(database_path(tmp_path))  # the same face under another name
    qtbot.addWidget(again)
    again.name_edit.setText("Someone Else")
    again.add_files([faces])
    qtbot.waitUntil(lambda: not again.busy, timeout=60_000)
    assert "Eileen Collins" in (again.duplicate_warning() or "")
    again.reject()
    assert not again.findChild(QThread).isRunning()

    more = EnrollDialog(database_path(tmp_path), person)  # People tab: "Add samples…" for her
    qtbot.addWidget(more)
    assert more.name_edit.isReadOnly()
    more.add_files([faces])
    qtbot.waitUntil(lambda: not more.busy, timeout=60_000)
    assert more.duplicate_warning() is None  # matching herself is no warning
    with qtbot.waitSignal(more.saved, timeout=10_000):
        assert more.save()
    assert gallery.get_person(person.id).template_count == 2


@needs_model
def test_guided_capture_takes_a_frontal_frame_then_asks_to_turn(qtbot, tmp_path, conn, astronaut):
    frame = np.ascontiguousarray(astronaut[:300, 60:460])  # a head-and-shoulders camera frame
    dialog = EnrollDialog(database_path(tmp_path))
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("Eileen Collins")
    dialog.start_capture()

    def offer() -> bool:  # what the kiosk window does at every frame it shows
        dialog.offer_frame(frame)
        return len(dialog.samples) == 1

    qtbot.waitUntil(offer, timeout=120_000)
    assert dialog.samples[0].source == "camera: look straight at the camera"
    assert dialog.instruction.text() == "Step 2 of 3: Turn your head a little to your left"
    # The frame is frontal: the feedback asks for the turn and says how the head is now.
    qtbot.waitUntil(lambda: offer() and dialog.feedback.text().startswith("turn a little to your left (now "),
                    timeout=10_000)
    assert dialog.status.text() == "1 sample ready"
    dialog.stop_capture()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    with qtbot.waitSignal(dialog.saved, timeout=10_000):
        assert dialog.save()
    assert [t.source for t in Gallery(conn).templates("Eileen Collins")] == ["enroll camera: look straight at the camera"]


@needs_model
@pytest.mark.lfw
def test_enroll_an_lfw_person_from_several_photos(qtbot, tmp_path, conn, lfw):
    refs = lfw.images_of(["George_W_Bush"])[:3]
    dialog = EnrollDialog(database_path(tmp_path))
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("George W Bush")
    dialog.add_files([lfw.image_path(ref) for ref in refs])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=120_000)
    assert len(dialog.samples) >= 2, [(s.source, s.reason) for s in dialog.results]
    with qtbot.waitSignal(dialog.saved, timeout=10_000):
        dialog.save()
    assert Gallery(conn).get_person("George W Bush").template_count == len(dialog.samples)


def test_the_detail_panel_follows_the_filter_and_reasons_are_words(qtbot, admin):
    log = admin.log_tab
    qtbot.waitUntil(lambda: log.model.rowCount() == 6, timeout=5_000)
    granted = next(r for r in range(log.model.rowCount()) if log.model.event_at(r).decision == "granted")
    log.view.selectRow(granted)
    assert log.details.text().splitlines()[1] == "granted (recognised)"
    reasons = {log.model.index(r, 4).data() for r in range(log.model.rowCount())}
    assert reasons == {"recognised", "not recognised"}
    assert log.model.index(granted, 4).data(Qt.ItemDataRole.ToolTipRole) == "match"  # the code, for whoever needs it

    log.decision_combo.setCurrentIndex(log.decision_combo.findData("denied"))
    qtbot.waitUntil(lambda: log.model.rowCount() == 3, timeout=5_000)
    assert log.details.text() == "" and log.thumbnail.text() == "Select an event"  # not the grant any more
    log.view.selectRow(0)
    assert log.details.text().splitlines()[1] == "denied (not recognised)"
    log.search_edit.setText("no such camera")
    log.apply_filters()
    qtbot.waitUntil(lambda: log.model.rowCount() == 0, timeout=5_000)
    assert log.details.text() == "" and log.thumbnail.text() == "Select an event"


def test_admin_mode_never_times_out_on_an_unsaved_enrolment(qtbot, tmp_path, lfw, engine):
    photos = [lfw.image_path(ref) for ref in lfw.images_of(["Jennifer_Capriati"])[:2]]
    window = AdminWindow(tmp_path)
    qtbot.addWidget(window)
    window.show()
    try:
        dialog = window.people_tab.enroll_new()
        dialog.name_edit.setText("Jennifer Capriati")
        dialog.add_files(photos)
        qtbot.waitUntil(lambda: not dialog.busy, timeout=120_000)
        assert len(dialog.samples) == 2
        window.idle.set_timeout(0.3)
        qtbot.wait(1_500)  # five timeouts' worth without input
        assert window.isVisible() and len(dialog.samples) == 2  # nothing thrown away
        dialog.reject()  # once the work is saved or given up, the timeout applies again
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    finally:
        window.close()
