"""Fault 3: SIGKILL while enrolling, logging, saving the settings and the admin PIN.

Every write a killed process reported committed must be there afterwards, intact; the database
must pass PRAGMA integrity_check and open normally; the JSON files must hold the old value or the
new one, never half. The script (benchmarks/faults.py) runs 50+ kills of each kind.
"""
from __future__ import annotations

import os
import time

import pytest

from kiosk.atomic import STALE_TEMPORARY_S
from kiosk.settings import KioskSettings

from . import kills

KILLS = 6


def assert_nothing_lost(figures: kills.KillFigures) -> None:
    summary = figures.to_dict()
    assert figures.kills == KILLS and figures.committed > 0, summary
    assert figures.lost == 0 and figures.verdict.partial == 0, summary
    assert figures.integrity_failures == 0, summary
    if figures.mode in ("enroll", "log"):
        assert figures.verdict.checked == figures.committed, summary


def test_sigkill_while_enrolling_loses_no_committed_person(tmp_path):
    assert_nothing_lost(kills.kill_database_writer("enroll", tmp_path, KILLS, seed=1))


def test_sigkill_while_logging_loses_no_committed_event(tmp_path):
    figures = kills.kill_database_writer("log", tmp_path, KILLS, seed=2)
    assert_nothing_lost(figures)
    assert figures.log_verify == "ok", figures.log_verify


@pytest.mark.parametrize("mode", ["settings", "pin"])
def test_sigkill_while_saving_a_json_file_leaves_the_old_or_the_new(tmp_path, mode):
    assert_nothing_lost(kills.kill_file_writer(mode, tmp_path, KILLS, seed=3))


def test_sigkill_while_enrolling_leaves_no_person_without_templates(tmp_path):
    figures = kills.kill_database_writer("enroll", tmp_path, 12, seed=4)  # Gallery.enroll: one transaction
    assert figures.verdict.orphans == 0, figures.to_dict()


def test_temporaries_left_by_a_killed_save_are_cleared_by_the_next_one(tmp_path):
    # A SIGKILL between mkstemp and rename leaves .settings.json.*.tmp behind (the finally never runs).
    stale, fresh = tmp_path / ".settings.json.dead1.tmp", tmp_path / ".settings.json.busy2.tmp"
    stale.write_text("{half")
    fresh.write_text("{another process, writing now")
    old = time.time() - STALE_TEMPORARY_S - 60
    os.utime(stale, (old, old))
    KioskSettings(retention_days=7).save(tmp_path)
    assert not stale.exists() and fresh.exists()
    assert KioskSettings.load(tmp_path).retention_days == 7
