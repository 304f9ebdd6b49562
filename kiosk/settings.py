"""The kiosk's own settings: a small JSON file in the data directory, edited in the admin window.

    settings = KioskSettings.load(data_dir)      # defaults when the file is missing or bad
    settings.retention_days = 30
    settings.save(data_dir)                      # atomic: the old file or the new one, never half

Loading never fails: a file that cannot be read or parsed gives the defaults, and a field
with a wrong value gives that field's default, each with a logged warning. A kiosk must
start even when someone edited its settings by hand and got it wrong.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from kiosk.atomic import atomic_write_json
from kiosk.calibration import DEFAULT_RISK, LOOSER_RISKS, RISKS
from kiosk.events import DOOR_ID
from kiosk.pacing import MAX_FPS

log = logging.getLogger(__name__)

SETTINGS_FILENAME = "settings.json"
FORMAT_VERSION = 1

# Bounds shared by validation and the admin window's widgets.
MAX_RETENTION_DAYS = 3650
MAX_DOOR_TIMEOUT_S = 300
MAX_OFFLINE_HOURS = 24 * 30
ADMIN_TIMEOUT_RANGE_S = (15, 3600)
_RATE_FIELDS = ("analysis_fps", "idle_analysis_fps")


@dataclass
class KioskSettings:
    camera: str = "0"  # as for --camera: device index, video file, image folder or stream URL
    # At most one stranger let in per `risk` visitors (kiosk.calibration: the site-calibrated door rule).
    # 1,000 is the shipped rule; a looser one (LOOSER_RISKS) needs looser_risk_confirmed as well.
    risk: int = DEFAULT_RISK
    looser_risk_confirmed: bool = False
    liveness: bool = True  # ask each recognised person for a head move before granting (kiosk.liveness)
    retention_days: int = 90  # access events older than this are purged; 0 keeps them forever
    door_command: str = ""  # run (split like a shell) on a grant; empty = none
    door_url: str = ""  # or POSTed to on a grant; empty = none
    door_timeout_s: float = 5.0  # how long the door action may take
    store_thumbnails: bool = False  # keep a face thumbnail with each access event (personal data)
    # Or only with denials, so a guard can see who tried: less personal data than every event.
    denied_thumbnails: bool = False
    sound: bool = True
    admin_timeout_s: int = 120  # leave admin mode after this long without input
    analysis_fps: float = 15.0  # frames analysed a second at most while someone is in view; 0 = all
    idle_analysis_fps: float = 5.0  # and while nobody is (kiosk.pacing); 0 = all
    mirror_preview: bool = True  # show the camera as a mirror (what people expect); analysis sees it unmirrored
    # Events out (kiosk.events, docs/events.md); read at start. Secrets stay in the environment.
    mqtt: str = ""  # mqtt://[USER@]HOST[:PORT] or mqtts://; empty = no MQTT
    mqtt_prefix: str = "face-kiosk"  # topics are PREFIX/DOOR/...
    mqtt_ca: str = ""  # CA certificate file for mqtts:// (empty: the system's)
    webhook: str = ""  # http(s) URL that receives every event; empty = none
    door_id: str = ""  # this door's name in topics and events; empty = the host name
    # With a site database (kiosk.sitedb): how long the door keeps deciding from the gallery it last
    # loaded while the server is unreachable; after that nobody is recognised until it is back.
    offline_hours: float = 24.0

    # -- validation ------------------------------------------------------------

    def problems(self) -> list[str]:
        """What is wrong with these values, in words; empty when they are all fine."""
        found = []
        for field in fields(self):
            problem = _field_problem(field.name, getattr(self, field.name))
            if problem:
                found.append(f"{field.name}: {problem}")
        if self.door_command.strip() and self.door_url.strip():
            found.append("door_command and door_url: give one way to open the door, not both")
        if self.risk in LOOSER_RISKS and not self.looser_risk_confirmed:
            found.append(f"risk: 1 in {self.risk} lets in more strangers than the shipped 1 in {DEFAULT_RISK}; "
                         f"confirm it with looser_risk_confirmed")
        rates_valid = not any(problem.startswith(_RATE_FIELDS) for problem in found)
        if rates_valid and _idle_rate_above_busy(self.analysis_fps, self.idle_analysis_fps):
            found.append("idle_analysis_fps: must not be above analysis_fps (0 counts as no cap)")
        return found

    def pace_problems(self) -> list[str]:
        """problems() of the two analysis rates only."""
        return [problem for problem in self.problems() if problem.startswith(_RATE_FIELDS)]

    def with_rates(self, analysis_fps: float | None, idle_analysis_fps: float | None) -> KioskSettings:
        """A copy with the given analysis rates (None keeps this one's), e.g. from command-line
        options laid over the saved settings; not validated."""
        return replace(self, analysis_fps=self.analysis_fps if analysis_fps is None else analysis_fps,
                       idle_analysis_fps=self.idle_analysis_fps if idle_analysis_fps is None else idle_analysis_fps)

    def validate(self) -> None:
        """Raise ValueError listing every problem, if there are any."""
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    # -- files -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: Any, source: str = "settings") -> KioskSettings:
        """Settings from parsed JSON; unknown keys are ignored, bad values replaced by defaults."""
        defaults = cls()
        if not isinstance(raw, dict):
            log.warning("%s: expected a JSON object, got %s; using the defaults", source, type(raw).__name__)
            return defaults
        values = {}
        for field in fields(cls):
            if field.name not in raw:
                continue
            value = _coerce(field.name, raw[field.name])
            problem = _field_problem(field.name, value)
            if problem:
                log.warning("%s: %s %s; using the default %r", source, field.name, problem,
                            getattr(defaults, field.name))
                continue
            values[field.name] = value
        settings = cls(**values)
        if settings.door_command.strip() and settings.door_url.strip():
            log.warning("%s: both door_command and door_url are set; ignoring both", source)
            settings.door_command = settings.door_url = ""
        if "threshold" in raw and raw["threshold"] is not None:
            # An older kiosk's raw similarity override: it could loosen the door by accident, and a
            # score means nothing at another site. The risk setting replaces it.
            log.warning("%s: the similarity threshold override (%r) is no longer used; the door follows the risk "
                        "setting (now 1 in %d visitors)", source, raw["threshold"], settings.risk)
        if settings.risk in LOOSER_RISKS and not settings.looser_risk_confirmed:
            log.warning("%s: risk 1 in %d is looser than the shipped 1 in %d and not confirmed; using 1 in %d",
                        source, settings.risk, DEFAULT_RISK, DEFAULT_RISK)
            settings.risk = DEFAULT_RISK
        if _idle_rate_above_busy(settings.analysis_fps, settings.idle_analysis_fps):
            log.warning("%s: idle_analysis_fps %g is above analysis_fps %g; using %g for both", source,
                        settings.idle_analysis_fps, settings.analysis_fps, settings.analysis_fps)
            settings.idle_analysis_fps = settings.analysis_fps
        return settings

    def to_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def load(cls, data_dir: str | os.PathLike) -> KioskSettings:
        """The settings saved in `data_dir`, or the defaults (with a warning unless the file is absent)."""
        path = settings_path(data_dir)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("%s: cannot read (%s); using the defaults", path, exc)
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            log.warning("%s: not valid JSON (%s); using the defaults", path, exc)
            return cls()
        return cls.from_dict(raw, source=str(path))

    def save(self, data_dir: str | os.PathLike) -> Path:
        """Write the settings to `data_dir` atomically; ValueError (nothing written) if any is invalid."""
        self.validate()
        path = settings_path(data_dir)
        atomic_write_json(path, self.to_dict())
        return path


def settings_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / SETTINGS_FILENAME


def _coerce(name: str, value: Any) -> Any:
    """Forgive what JSON and hand-editing make of a value: 30.0 for 30, 1 for a float."""
    if name in ("retention_days", "admin_timeout_s", "risk") and isinstance(value, float) and value.is_integer():
        return int(value)
    if name in ("analysis_fps", "idle_analysis_fps", "door_timeout_s", "offline_hours") and isinstance(value, int) \
            and not isinstance(value, bool):
        return float(value)
    return value


def _field_problem(name: str, value: Any) -> str | None:
    if name in ("liveness", "store_thumbnails", "denied_thumbnails", "sound", "looser_risk_confirmed",
                "mirror_preview"):
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if name in ("camera", "door_command", "door_url", "mqtt", "mqtt_prefix", "mqtt_ca", "webhook", "door_id"):
        if not isinstance(value, str):
            return f"must be text, got {value!r}"
        if name in ("camera", "mqtt_prefix") and not value.strip():
            return "must not be empty"
        if name in ("door_url", "webhook") and value.strip() \
                and not value.strip().lower().startswith(("http://", "https://")):
            return f"must start with http:// or https://, got {value!r}"
        if name == "mqtt" and value.strip() and not value.strip().lower().startswith(("mqtt://", "mqtts://")):
            return f"must start with mqtt:// or mqtts://, got {value!r}"
        if name == "door_id" and value and not DOOR_ID.fullmatch(value):
            return f"must be 1 to 64 of a-z, 0-9, - and _, got {value!r}"
        return None
    if name == "door_timeout_s":
        if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
            return f"must be a number of seconds, got {value!r}"
        return None if 0 < value <= MAX_DOOR_TIMEOUT_S else f"must be above 0 and at most {MAX_DOOR_TIMEOUT_S}, got {value}"
    if name == "risk":
        if isinstance(value, bool) or not isinstance(value, int) or value not in RISKS:
            return f"must be one of {', '.join(str(r) for r in RISKS)} (visitors per stranger let in), got {value!r}"
        return None
    if name in ("analysis_fps", "idle_analysis_fps"):
        if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
            return f"must be a number of frames a second, got {value!r}"
        return None if 0.0 <= value <= MAX_FPS else f"must be 0 (no cap) to {MAX_FPS:g}, got {value}"
    if name == "offline_hours":
        if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
            return f"must be a number of hours, got {value!r}"
        return None if 0.0 <= value <= MAX_OFFLINE_HOURS else f"must be 0..{MAX_OFFLINE_HOURS} hours, got {value}"
    if name == "retention_days":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number of days, got {value!r}"
        return None if 0 <= value <= MAX_RETENTION_DAYS else f"must be 0..{MAX_RETENTION_DAYS}, got {value}"
    if name == "admin_timeout_s":
        low, high = ADMIN_TIMEOUT_RANGE_S
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number of seconds, got {value!r}"
        return None if low <= value <= high else f"must be {low}..{high} seconds, got {value}"
    return None


def _idle_rate_above_busy(busy_fps: float, idle_fps: float) -> bool:
    """A faster look at an empty corridor than at a person makes no sense (0 = no cap = fastest)."""
    return busy_fps != 0 and (idle_fps == 0 or idle_fps > busy_fps)
