"""deploy/: the systemd user units and the XDG autostart entry start real commands with options
those commands accept, restart on failure and put the screen full screen; systemd itself
(systemd-analyze verify) accepts the units, with the installed commands where the units look."""
from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.app import parse_args as screen_args
from kiosk.cli import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ("face-kiosk.service", "face-kiosk-headless.service")


def read(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(DEPLOY / name, encoding="utf-8")
    return parser


def command_line(name: str, section: str, key: str) -> list[str]:
    return shlex.split(read(name)[section][key])


def test_the_screen_unit_and_autostart_entry_start_the_kiosk_full_screen():
    for argv in (command_line("face-kiosk.service", "Service", "ExecStart"),
                 command_line("face-kiosk.desktop", "Desktop Entry", "Exec")):
        assert Path(argv[0]).name == "face-kiosk"
        assert screen_args(argv[1:]).fullscreen
    unit = read("face-kiosk.service")
    assert unit["Service"]["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "graphical-session.target"


def test_the_headless_unit_runs_the_command_line_and_restarts():
    argv = command_line("face-kiosk-headless.service", "Service", "ExecStart")
    assert Path(argv[0]).name == "face-kiosk-admin"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.headless
    unit = read("face-kiosk-headless.service")
    assert unit["Service"]["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "default.target"


# The targets a user manager has (systemd.special(7), "Special User Units"). It cannot see the
# system's (network-online.target, multi-user.target): a dependency on one is silently void.
USER_TARGETS = {"default.target", "basic.target", "exit.target", "shutdown.target", "sockets.target",
                "timers.target", "paths.target", "graphical-session.target", "graphical-session-pre.target",
                "xdg-desktop-autostart.target", "bluetooth.target", "printer.target", "smartcard.target",
                "sound.target"}
DEPENDENCIES = {"Unit": ("Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "After", "Before"),
                "Install": ("WantedBy", "RequiredBy", "UpheldBy")}


def test_the_user_units_name_only_targets_a_user_manager_has():
    for name in UNITS:
        unit = read(name)
        named = {target for section, keys in DEPENDENCIES.items() for key in keys
                 for target in unit[section].get(key, "").split() if target.endswith(".target")}
        assert named <= USER_TARGETS, f"{name}: {sorted(named - USER_TARGETS)} not in a user manager"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    # %h/.local/bin is where `pipx install` and `pip install --user` put the commands.
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    for command in ("face-kiosk", "face-kiosk-admin"):
        installed = Path(sys.executable).parent / command
        assert installed.exists(), f"{installed} missing: reinstall the checkout (pip install -e .)"
        (home / ".local" / "bin" / command).symlink_to(installed)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(["systemd-analyze", "--user", "verify", *(str(DEPLOY / unit) for unit in UNITS)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
