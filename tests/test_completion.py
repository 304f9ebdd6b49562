"""Tab completion for face-kiosk-admin: the script `completion bash` prints, run by a real bash."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from kiosk.cli import main as cli_main

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def complete(script: str, line: str, cwd) -> list[str]:
    """What bash offers for `line` (the cursor at its end), as after pressing Tab."""
    program = (f"{script}\n"
               'read -ra COMP_WORDS <<< "$LINE"; [[ "$LINE" == *" " ]] && COMP_WORDS+=("")\n'
               "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _face_kiosk_admin\n"
               'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "--norc", "-c", program], env={"LINE": line, "PATH": "/usr/bin:/bin"},
                          cwd=cwd, capture_output=True, text=True, timeout=30, check=True)
    assert done.stderr == ""
    return sorted(filter(None, done.stdout.splitlines()))


def test_completion_offers_commands_actions_options_choices_and_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    assert cli_main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert not (tmp_path / "data").exists()  # read at every shell start: it makes no data folder
    (tmp_path / "photos").mkdir()
    (tmp_path / "ada.jpg").write_bytes(b"")

    assert complete(script, "face-kiosk-admin peo", tmp_path) == ["people"]
    assert complete(script, "face-kiosk-admin people ", tmp_path) == ["exempt", "remove", "rename"]
    assert complete(script, "face-kiosk-admin --data-dir /srv/kiosk people re", tmp_path) == ["remove", "rename"]
    assert complete(script, "face-kiosk-admin people exempt Ada --", tmp_path) == sorted(
        ["--data-dir", "--database", "--door-id", "--help", "--json", "--log-file", "--log-json", "--log-level",
         "--model", "--off"])
    assert complete(script, "face-kiosk-admin log --decision ", tmp_path) == ["denied", "granted"]
    assert complete(script, "face-kiosk-admin enroll --ba", tmp_path) == ["--badge"]
    assert complete(script, "face-kiosk-admin --data-dir ", tmp_path) == ["photos"]  # folders only
    assert complete(script, "face-kiosk-admin identify ", tmp_path) == ["ada.jpg", "photos"]
    assert complete(script, "face-kiosk-admin completion ", tmp_path) == ["bash"]
