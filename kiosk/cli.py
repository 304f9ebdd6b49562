"""The command line: ``face-kiosk-admin COMMAND`` (installed), or ``python -m kiosk COMMAND``.

    face-kiosk-admin enroll "Ada Lovelace" ada1.jpg ada2.jpg ada3.jpg --badge 1042
    face-kiosk-admin identify visitor.jpg
    face-kiosk-admin verify a.jpg b.jpg
    face-kiosk-admin people | people rename OLD NEW | people remove NAME [--erase-log]
    face-kiosk-admin people exempt NAME [--off]     # no liveness head move for NAME (or again)
    face-kiosk-admin log --since 2h --decision denied | log --export events.csv | log verify
    face-kiosk-admin keys | keys rotate
    face-kiosk-admin completion bash                # source <(...) in ~/.bashrc: Tab completes
    face-kiosk-admin run --camera 0 --headless --door-command "gpio-pulse 17"

Global options (before or after the command): --data-dir (else $KIOSK_DATA_DIR, else the
platform's per-user data folder), --model (else $KIOSK_MODEL, else the shipped model) and
--json (one JSON object per line on stdout). Problems end with exit status 1 and one line
``error: ...`` on stderr; usage mistakes with status 2. Admin commands (enroll, people
rename/remove, keys) and run refuse a data directory or database that group or others can
write to, run also such a settings file (SECURITY.md). enroll refuses a photo whose face does
not match the name unless --allow-mismatch; log --export writes only new files outside the
data directory unless --force.

The face detector and model are loaded only by the commands that need them (enroll, identify,
verify, run); --help, people and log start instantly.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kiosk import __version__, logsetup
from kiosk.accesslog import AccessLog
from kiosk.calibration import GRANT_LINE
from kiosk.database import SchemaVersionError, database_path
from kiosk.datadir import ENV_VAR as DATA_DIR_ENV_VAR
from kiosk.errors import InvalidImageError, KioskError
from kiosk.gallery import INVISIBLE_CATEGORIES, Gallery, GalleryError, normalise_badge, normalise_name

log = logging.getLogger(__name__)

PROG = "face-kiosk-admin"  # the installed command; `python -m kiosk` passes its own name
START_TIMEOUT_S = 10.0  # how long `run` waits for a live camera's first frame
SITE_RETRY_S = 2.0  # how often a door with nothing to decide from tries its site's server again


class CliError(KioskError):
    """A problem to report as `error: ...` with a non-zero exit status."""


# -- output -------------------------------------------------------------------


class Output:
    """Text for people or one JSON object per line for programs, on stdout; errors on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def emit(self, obj: dict[str, Any], text: str | None) -> None:
        if self.json:
            line = json.dumps(obj, ensure_ascii=False)
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:  # a file name that is not UTF-8: JSON's \u escapes keep it exact
                line = json.dumps(obj)
            print(line, flush=True)
        elif text is not None:
            print(terminal_safe(text), flush=True)

    def text(self, text: str) -> None:
        """A line only people want (nothing in --json mode)."""
        if not self.json:
            print(terminal_safe(text), flush=True)

    @staticmethod
    def note(text: str) -> None:
        print(terminal_safe(text), file=sys.stderr, flush=True)

    @staticmethod
    def error(text: str) -> None:
        print(f"error: {terminal_safe(text)}", file=sys.stderr, flush=True)
        log.error("%s", terminal_safe(text), extra={logsetup.SHOWN: True})  # and in the operator's log file


def terminal_safe(text: str) -> str:
    """Text as printed: control and invisible characters (an escape sequence in a name, a
    right-to-left override, a file name that is not UTF-8) shown as escapes, line breaks kept."""
    return "".join(
        char if char == "\n" or unicodedata.category(char) not in INVISIBLE_CATEGORIES
        else ascii(char)[1:-1]
        for char in text
    )


def _score(value: float | None) -> float | None:
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else round(float(value), 4)


# -- shared resources -----------------------------------------------------------

def _engine(model: str | None):
    """The FaceEngine for --model, built once per process (tests call main() many times)."""
    from kiosk.engine import shared_engine

    return shared_engine(model)


def _data_dir(args: argparse.Namespace) -> Path:
    from kiosk.datadir import resolve_data_dir

    try:
        return resolve_data_dir(args.data_dir)
    except OSError as exc:
        raise CliError(f"cannot use the data directory {args.data_dir or ''}: {exc}") from exc


def _store(args: argparse.Namespace):
    """Where this command's database is: --database, else $KIOSK_DATABASE_URL (a site's PostgreSQL
    server), else the data directory's file (kiosk.store, as the kiosk window opens it)."""
    from kiosk.store import Store

    try:
        return Store.choose(_data_dir(args), getattr(args, "database", None), getattr(args, "door_id", None))
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _site_url(args: argparse.Namespace) -> str | None:
    """The site database's URL; None for the data directory's file."""
    return _store(args).url


def _open_database(args: argparse.Namespace) -> sqlite3.Connection:
    store = _store(args)
    if store.url is not None:
        try:
            import kiosk.site  # noqa: F401
        except ImportError as exc:
            raise CliError(f"a site database needs psycopg ({exc}): pip install 'face-kiosk[site]'") from exc
    try:
        return store.open()
    except ValueError as exc:  # a door name that cannot be one
        raise CliError(str(exc)) from exc


def _stored_text(text: str) -> str:
    """A file name as stored and printed: one that is not valid UTF-8 gets U+FFFD for the bad bytes."""
    return os.fsencode(text).decode("utf-8", "replace")


def _open_admin_database(args: argparse.Namespace) -> sqlite3.Connection:
    """The database, for a command that changes who gets in or how data is protected."""
    from kiosk.datadir import require_private

    folder = _data_dir(args)
    require_private(folder, database_path(folder))
    return _open_database(args)


def _strip_name(message: str, name: str) -> str:
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _load(path: str):
    from kiosk.images import load_image

    return load_image(path)


# -- enroll ---------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace, out: Output) -> int:
    from kiosk.enrollment import assess_image, check_badge, save_enrolment

    try:
        normalise_name(args.name)
        badge = normalise_badge(args.badge)
    except GalleryError as exc:
        raise CliError(str(exc)) from exc
    conn = _open_admin_database(args)  # before the model loads: a refusal should not wait for it
    try:
        engine = _engine(args.model)
        gallery = Gallery(conn)
        existing = gallery.find_person(args.name)
        check_badge(gallery, existing, badge)  # before the photos are analysed

        from kiosk.settings import KioskSettings

        identity = _IdentityCheck(engine, gallery, existing, KioskSettings.load(_data_dir(args)).risk)
        samples = []
        for image in args.images:
            try:
                rgb = _load(image)
            except InvalidImageError as exc:
                reason = _strip_name(str(exc), image)
                out.emit({"image": image, "used": False, "reason": reason}, f"  skipped {image}: {reason}")
                continue
            sample = assess_image(engine, rgb, _stored_text(Path(image).name))
            if not sample.used:
                out.emit({"image": image, "used": False, "reason": sample.reason},
                         f"  skipped {image}: {sample.reason}")
                continue
            mismatch = identity.problem(sample.embedding, args.name)
            if mismatch is not None and not args.allow_mismatch:
                out.emit({"image": image, "used": False, "reason": mismatch, "mismatch": True},
                         f"  refused {image}: {mismatch} (--allow-mismatch stores it anyway)")
                continue
            samples.append(sample)
            out.emit(
                {"image": image, "used": True, "reason": None, "mismatch": mismatch is not None,
                 "warning": mismatch},
                f"  used    {image} (face {sample.face.width:.0f} px, sharpness {sample.face.quality.sharpness:.0f})"
                + (f"; allowed although it {mismatch}" if mismatch else ""),
            )
        if not samples:
            raise CliError(
                f"no usable face in {len(args.images)} image{'s' if len(args.images) != 1 else ''}; "
                f"{args.name} was not {'changed' if existing else 'enrolled'}"
            )
        person = save_enrolment(gallery, engine, samples, name=args.name, badge=badge,
                                person_id=existing.id if existing is not None else None)
    finally:
        conn.close()
    added = len(samples)
    out.emit(
        {"name": person.name, "person_id": person.id, "badge": person.external_id, "new": existing is None,
         "templates_added": added, "templates": person.template_count},
        f"enrolled {person.name}{' (new person)' if existing is None else ''}: {added} template"
        f"{'s' if added != 1 else ''} from {added} of {len(args.images)} image{'s' if len(args.images) != 1 else ''}"
        f" ({person.template_count} in all)",
    )
    return 0


class _IdentityCheck:
    """Whose face a photo shows, before it is stored under a name: as the admin window warns
    (kiosk.enrollment.IdentityCheck), but the command line refuses unless --allow-mismatch."""

    def __init__(self, engine, gallery: Gallery, person, risk: int) -> None:
        from kiosk.enrollment import IdentityCheck

        self._person = person
        self._threshold = engine.threshold  # one comparison: does the photo show this person?
        # Someone else's face: would the door let this photo in as them?
        self._others = IdentityCheck(engine, gallery, risk, None if person is None else person.id)
        own = [t.embedding for t in gallery.templates(person)] if person is not None else []
        self._own = np.stack(own) if own else None

    def problem(self, embedding: np.ndarray, name: str) -> str | None:
        """Why this face should not go under `name` (None: nothing against it)."""
        other = self._others.lookalike(embedding)
        t = self._threshold
        if self._person is None:
            if other is None:
                return None
            return (f"is the face of {other.name}, who is already enrolled "
                    f"(match {other.percent}/100; the door opens at {GRANT_LINE})")
        if self._own is None or self._own.shape[1] != embedding.size:
            return None  # nothing usable to compare with (add_templates refuses another model's size)
        own = float(np.max(self._others.scoring.matrix(np.asarray(embedding, np.float32)[None], self._own)[0]))
        if own < t:
            return (f"does not match {self._person.name}'s enrolled photos "
                    f"(best similarity {own:.2f}, threshold {t:.2f})")
        if other is not None and other.score > own:
            return f"looks more like {other.name} ({other.score:.2f}) than {self._person.name} ({own:.2f})"
        return None


# -- identify / verify -------------------------------------------------------------


def cmd_identify(args: argparse.Namespace, out: Output) -> int:
    from kiosk.engine import RiskEngine
    from kiosk.settings import KioskSettings

    engine = RiskEngine(_engine(args.model), KioskSettings.load(_data_dir(args)).risk)  # the door's own rule
    conn = _open_database(args)
    failed = 0
    try:
        gallery = Gallery(conn)
        gallery.check_model(engine.embedding_size, engine.model_identity)  # one clear refusal, not one per image
        templates, person_ids = gallery.matrix()
        rule = engine.door_rule(templates, person_ids)
        for image in args.images:
            try:
                rgb = _load(image)
                faces = engine.detect(rgb)
                if not faces:
                    raise CliError(f"{image}: no face found")
            except (InvalidImageError, CliError) as exc:
                out.error(str(exc))
                failed += 1
                continue
            match = engine.match(engine.embed_faces(rgb, faces[:1]), templates, person_ids)[0]
            name = gallery.get_person(match.person_id).name if match.verdict == "match" else None
            score = _score(match.score) if match.person_id is not None else None
            percent = rule.match_percent(match.score) if score is not None else None
            if match.verdict == "match":
                text = f"{image}: {name} (match {percent}/100)"
            elif score is None:
                text = f"{image}: unknown (no one is enrolled)"
            else:
                text = f"{image}: {match.verdict} (best match {percent}/100; the door opens at {GRANT_LINE})"
            if len(faces) > 1:
                text += f" [largest of {len(faces)} faces]"
            out.emit({"image": image, "name": name, "verdict": match.verdict, "match": percent, "score": score,
                      "threshold": _score(rule.threshold), "rule": rule.source, "faces": len(faces)}, text)
    finally:
        conn.close()
    return 1 if failed else 0


def _one_face_embedding(engine, image: str):
    rgb = _load(image)
    faces = engine.detect(rgb)
    if not faces:
        raise CliError(f"{image}: no face found")
    if len(faces) > 1:
        raise CliError(f"{image}: {len(faces)} faces found; verify needs exactly one face per image")
    return engine.embed_faces(rgb, faces)[0]


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    engine = _engine(args.model)
    first = _one_face_embedding(engine, args.image1)
    second = _one_face_embedding(engine, args.image2)
    score = engine.similarity(first, second)
    same = score >= engine.threshold
    out.emit(
        {"image1": args.image1, "image2": args.image2, "score": _score(score),
         "threshold": _score(engine.threshold), "same": same},
        f"{'same person' if same else 'different people'} (score {score:.3f}, threshold {engine.threshold:.3f})",
    )
    return 0


# -- people --------------------------------------------------------------------


def cmd_people(args: argparse.Namespace, out: Output) -> int:
    action = getattr(args, "people_command", None)
    conn = _open_admin_database(args) if action else _open_database(args)
    try:
        gallery = Gallery(conn)
        if action == "rename":
            before = gallery.get_person(args.old)
            person = gallery.rename(before, args.new)
            out.emit({"renamed": before.name, "name": person.name, "person_id": person.id},
                     f"renamed {before.name} to {person.name}")
        elif action == "exempt":
            person = gallery.set_liveness_exempt(args.name, not args.off)
            text = (f"{person.name} is let in without the liveness head move; each such grant is recorded "
                    "in the access log" if person.liveness_exempt else f"{person.name} is asked for the head move again")
            out.emit({"name": person.name, "person_id": person.id, "liveness_exempt": person.liveness_exempt}, text)
        elif action == "remove":
            from kiosk.privacy import remove_person

            gone = remove_person(conn, args.name, erase_log=args.erase_log)
            text = f"removed {gone.name} and {gone.templates} template{'s' if gone.templates != 1 else ''}"
            if args.erase_log:
                text += f"; erased {gone.events_erased} access event{'s' if gone.events_erased != 1 else ''}"
            out.emit({"removed": gone.name, "person_id": gone.person_id, "templates": gone.templates,
                      "events_erased": gone.events_erased}, text)
        else:
            people = gallery.people()
            damaged = gallery.damaged_templates()
            if not people:
                out.text("no one is enrolled")
            width = max((len(terminal_safe(p.name)) for p in people), default=4)
            for p in people:
                unusable = [d for d in damaged if d.person_id == p.id]
                out.emit(
                    {"id": p.id, "name": p.name, "badge": p.external_id, "templates": p.template_count,
                     "active": p.active, "created": p.created, "liveness_exempt": p.liveness_exempt,
                     "damaged": [{"template": d.template_id, "problem": d.problem} for d in unusable]},
                    f"{terminal_safe(p.name):<{width}}  templates {p.template_count:>3}  badge {p.external_id or '-'}"
                    f"  enrolled {p.created[:10]}{'' if p.active else '  (inactive)'}"
                    + ("  (no head move)" if p.liveness_exempt else "")
                    + (f"  ({len(unusable)} damaged, not used)" if unusable else ""),
                )
            for d in damaged:
                out.note(f"warning: template {d.template_id} (person {d.person_id}) is skipped: {d.problem}")
    finally:
        conn.close()
    return 0


# -- completion ----------------------------------------------------------------


def cmd_completion(args: argparse.Namespace, out: Output) -> int:
    from kiosk.completion import bash_script

    sys.stdout.write(bash_script(build_parser(PROG)))
    return 0


# -- log -----------------------------------------------------------------------

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str) -> datetime:
    """ISO 8601 (a time without a zone is local time) or an age like 30m, 2h, 7d."""
    cleaned = text.strip()
    age = _AGE.fullmatch(cleaned.lower())
    try:
        if age:
            return datetime.now(timezone.utc) - timedelta(**{_AGE_UNITS[age.group(2)]: float(age.group(1))})
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"the age {text!r} reaches back before the year 1") from None
    try:
        when = datetime.fromisoformat(cleaned[:-1] + "+00:00" if cleaned.endswith(("Z", "z")) else cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r}; give ISO 8601 (2024-05-01, 2024-05-01T08:30, ...Z) or an age (30m, 2h, 7d)"
        ) from None
    try:  # in UTC now: a time at the edge of the calendar fails here, not in the query
        return (when.astimezone() if when.utcoffset() is None else when).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"the time {text!r} is outside the calendar (years 1 to 9999)") from None


def cmd_log(args: argparse.Namespace, out: Output) -> int:
    conn = _open_database(args)
    try:
        access_log = AccessLog(conn)
        if getattr(args, "log_command", None) == "verify":
            return _verify_log(access_log, out)
        filters = {"since": args.since, "until": args.until, "person": args.person, "decision": args.decision,
                   "door_name": args.door}
        if args.export:
            from kiosk.exports import check_export_target
            from kiosk.keystore import key_file_path

            folder = _data_dir(args)
            target = check_export_target(args.export, folder, key_file_path(folder), force=args.force)
            rows = access_log.export_csv(target, limit=args.limit, **filters)
            out.emit({"exported": rows, "file": str(args.export)},
                     f"exported {rows} event{'s' if rows != 1 else ''} to {args.export}")
            return 0
        events = access_log.query(limit=args.limit, **filters)
        if not events:
            out.text("no access events match")
        for e in events:
            score = _score(e.score)
            out.emit(
                {"id": e.id, "time": e.time, "camera": e.camera, "decision": e.decision, "reason": e.reason,
                 "person_id": e.person_id, "name": e.name, "score": score, "liveness": e.liveness, "door": e.door,
                 "redacted": e.redacted, "door_name": e.door_name},
                f"{e.time}  {e.door_name or '-':<12}  {e.decision:<7}  {e.reason:<13}  "
                f"{'(erased)' if e.redacted else e.name or '-':<20}  "
                f"{'-' if score is None else f'{score:.3f}':>6}  door {e.door or '-'}  {e.camera}",
            )
    finally:
        conn.close()
    return 0


def _verify_log(access_log: AccessLog, out: Output) -> int:
    report = access_log.verify()
    counts = (f"{report.entries} entries, {report.events} events ({report.redacted} erased), "
              f"head {report.head_seq} {report.head_digest[:16]}"
              + (f", entries up to {report.anchor_seq} purged" if report.anchor_seq else ""))
    if report.recorded_head_seq is not None:
        counts += f"; recorded head {report.recorded_head_seq}"
    if report.chains:
        counts += f"; the chains of {len(report.chains)} other door{'s' if len(report.chains) != 1 else ''} verified too"
    first = report.first
    if first is None:
        out.emit(report.as_dict(), f"access log intact: {counts}")
        return 0
    where = f"entry {first.seq}" if first.seq is not None else "outside the chain"
    if first.event_id is not None:
        where += f" (event {first.event_id}, {first.time})"
    out.emit(report.as_dict(), "\n".join(
        [f"access log BROKEN: {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}; {counts}"]
        + [f"  {p.time or '-'}  {'entry ' + str(p.seq) if p.seq is not None else 'no entry'}: {p.problem}"
           for p in report.problems]
    ))
    out.error(f"access log chain broken at {where}: {first.problem}")
    return 1


# -- keys ------------------------------------------------------------------------


def cmd_keys(args: argparse.Namespace, out: Output) -> int:
    from kiosk.rotation import rotate_keys, rows_by_key

    conn = _open_admin_database(args)
    try:
        site = getattr(conn, "backend", "sqlite") == "postgresql"
        if getattr(args, "keys_command", None) == "rotate":
            done = rotate_keys(conn, progress=out.note)
            text = (f"rotated {'the site ' if site else ''}to key {done.new_key}: re-sealed {done.resealed} rows; "
                    f"old key{'s' if len(done.old_keys) != 1 else ''} "
                    f"{', '.join(map(str, done.old_keys))} removed from the key file")
            if site:  # docs/site.md, "Rotating the site key"
                text += (f"\ncopy {conn.sealer.keyring.path} to every other door of the site now: until a door "
                         f"holds key {done.new_key} it refuses to decide")
            out.emit({"rotated": True, "old_keys": list(done.old_keys), "new_key": done.new_key,
                      "resealed": done.resealed, "key_file": str(conn.sealer.keyring.path), "site": site}, text)
            return 0
        ring = conn.sealer.keyring
        rows = rows_by_key(conn)
        out.emit({"key_file": str(ring.path), "current_key": ring.current, "retiring": list(ring.retiring),
                  "rows_by_key": {str(k): v for k, v in sorted(rows.items())}},
                 f"key file {ring.path}: data key {ring.current} seals "
                 f"{rows.get(ring.current, 0)} rows" + (f"; rotation from {list(ring.retiring)} unfinished"
                                                       if ring.retiring else ""))
    finally:
        conn.close()
    return 0


# -- site ------------------------------------------------------------------------


def _site_settings(settings, conn):
    from kiosk.site_settings import with_site

    return with_site(settings, conn)


def cmd_site(args: argparse.Namespace, out: Output) -> int:
    from kiosk.site import import_kiosk
    from kiosk.site_settings import SITE_WIDE, SiteSettingError, set_site_values, site_values

    if _site_url(args) is None:
        raise CliError(f"site {args.site_command} needs the site database: --database postgresql://... "
                       "or $KIOSK_DATABASE_URL")
    conn = _open_admin_database(args)
    try:
        if args.site_command == "settings":
            assignments = {}
            for item in args.assignments:
                name, equals, value = item.partition("=")
                if not equals:
                    raise CliError(f"give a setting as NAME=VALUE, got {item!r}")
                assignments[name.strip()] = value.strip()
            try:
                values = set_site_values(conn, assignments) if assignments else site_values(conn)
            except SiteSettingError as exc:
                raise CliError(str(exc)) from exc
            out.emit({"site_settings": values}, "\n".join(
                f"{name} = {json.dumps(values[name]) if name in values else '(each door its own)'}"
                for name in SITE_WIDE))
            return 0
        done = import_kiosk(conn, args.source, progress=out.note)
        out.emit({"imported": {"people": done.people, "templates": done.templates, "events": done.events},
                  "door": conn.door},
                 f"imported {done.people} people, {done.templates} templates and {done.events} events "
                 f"from {args.source} as door {conn.door}")
    finally:
        conn.close()
    return 0


# -- run -------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    from kiosk.camera import Camera, CameraError, parse_source
    from kiosk.datadir import require_private
    from kiosk.door import DoorAction
    from kiosk.loop import KioskLoop, open_events
    from kiosk.settings import KioskSettings, settings_path

    if not args.headless:
        raise CliError("the command line runs the kiosk with --headless only; the kiosk window is `face-kiosk`")
    folder = _data_dir(args)
    # The kiosk decides who gets in: it vouches for its files (and the liveness switch in the
    # settings) as the admin commands do.
    require_private(folder, database_path(folder), settings_path(folder), refusing="refusing to run the kiosk")
    settings = _run_settings(args, KioskSettings.load(folder))
    # Before the model loads, a bad option (or setting) fails at once.
    try:
        DoorAction.from_config(settings.door_command, settings.door_url, settings.door_timeout_s)
        events = open_events(settings, folder)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        try:
            live = parse_source(args.camera).live
            # Files are analysed frame by frame unless --realtime; live sources are real time anyway.
            camera = Camera(args.camera, loop=args.loop, realtime=None if live or args.realtime else False)
        except CameraError as exc:
            raise CliError(str(exc)) from exc
        problems = settings.pace_problems() if camera.realtime else []
        if problems:
            raise CliError("; ".join(problems).replace("idle_analysis_fps", "--idle-analysis-fps")
                           .replace("analysis_fps", "--analysis-fps"))
        engine = _engine(args.model)
        conn = _open_door_database(args, out)
    except BaseException:
        if events is not None:
            events.close(0)
        raise
    settings = _site_settings(settings, conn)  # on a site database, the site-wide risk and retention
    kiosk = None
    try:
        def door_outcome(event_id: int, outcome: str) -> None:
            if not out.json:
                out.note(f"door for event {event_id}: {outcome}")

        kiosk = KioskLoop(camera, engine, conn, folder, settings, events=events, on_door_outcome=door_outcome,
                          open_database=lambda: _open_database(args))
        kiosk.start()
        camera.start()
        if camera.spec.live and camera.latest(timeout=args.start_timeout) is None:
            raise CliError(f"no picture from {camera.spec.label} within {args.start_timeout:g} s ({camera.message})")
        runner = kiosk.runner
        if runner.pace is not None:
            out.note(f"{camera.spec.label}: {runner.pace.describe()}")
        out.note(kiosk.rule.describe())
        counts = {"granted": 0, "denied": 0}
        with _stop_on_signals(runner):
            try:
                for result in kiosk.results():
                    if result.decision is None:
                        _emit_challenge(out, result)
                    else:
                        counts[result.decision.decision] += 1
                        _emit_decision(out, result, kiosk.rule)
            except KeyboardInterrupt:
                runner.stop()
        out.note(f"{camera.message}: {counts['granted']} granted, {counts['denied']} denied")
    except CameraError as exc:
        raise CliError(str(exc)) from exc
    finally:
        camera.stop()
        if kiosk is not None:
            kiosk.close(args.events_drain)
        elif events is not None:
            events.close(0)
        conn.close()
    return 0


def _open_door_database(args: argparse.Namespace, out: Output) -> sqlite3.Connection:
    """The database for a running door. A site door whose server cannot be reached and that holds no
    copy of the site's gallery says so once and tries again until it can (or is stopped)."""
    from kiosk.connection import DatabaseUnavailable

    said = False
    while True:
        try:
            return _open_database(args)
        except DatabaseUnavailable as exc:
            if not said:
                out.note(f"cannot decide yet: {exc}; trying again every {SITE_RETRY_S:g} s")
                said = True
            time.sleep(SITE_RETRY_S)


def _run_settings(args: argparse.Namespace, settings):
    """The admin's settings with run's options laid over them (an option given wins)."""
    from dataclasses import replace

    changes: dict[str, Any] = {}
    if args.door_command is not None or args.door_url is not None:
        changes.update(door_command=args.door_command or "", door_url=args.door_url or "")
    if args.door_timeout is not None:
        changes["door_timeout_s"] = args.door_timeout
    if args.thumbnails is not None:
        changes["store_thumbnails"] = args.thumbnails
    for field in ("mqtt", "mqtt_prefix", "mqtt_ca", "webhook", "door_id"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    return replace(settings.with_rates(args.analysis_fps, args.idle_analysis_fps), **changes)


def _emit_challenge(out: Output, result) -> None:
    """The line that tells the person at the door what to do (a liveness challenge started)."""
    from kiosk.connection import timestamp

    challenge = result.challenge
    seconds = round(result.challenge_left_s)
    out.emit({"time": timestamp(), "challenge": challenge.value, "prompt": challenge.prompt, "seconds": seconds},
             f"{timestamp()}  CHALLENGE  {challenge.prompt} (within {seconds} s)")


def _emit_decision(out: Output, result, rule) -> None:
    """One line per decision; the match on the 0-100 scale of `rule` (the door's rule in force)."""
    event, decision = result.event, result.decision
    score = _score(decision.score)
    percent = None if score is None else rule.match_percent(decision.score)
    # The reason, or what went wrong in words (liveness, rate limiting); a passed check is noted.
    words = decision.detail or decision.reason
    if decision.granted and decision.liveness:
        words += ", liveness passed"
    out.emit(
        {"time": event.time, "decision": decision.decision, "name": decision.name, "match": percent, "score": score,
         "reason": decision.reason, "detail": decision.detail, "liveness": decision.liveness,
         "person_id": decision.person_id, "event_id": event.id, "camera": event.camera},
        f"{event.time}  {decision.decision.upper():<7}  {decision.name or '-':<20}  "
        f"{'-' if percent is None else f'match {percent:>3}':>9}  {words}",
    )


class _stop_on_signals:
    """SIGTERM (and SIGINT) stop the runner cleanly; only possible on the main thread."""

    def __init__(self, runner) -> None:
        self._runner = runner
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM,):
            self._previous[signum] = signal.signal(signum, lambda *_: self._runner.stop())

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# -- parser ----------------------------------------------------------------------


MAX_LIMIT = 2**63 - 1  # SQLite's largest integer


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text[:40]}")
        if value > MAX_LIMIT:
            raise argparse.ArgumentTypeError(f"too large, at most {MAX_LIMIT}")
        return value

    return parse


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    def add_globals(parser: argparse.ArgumentParser, default: Any) -> None:
        # Given to the top parser with real defaults and to every command with SUPPRESS, so
        # that they work before or after the command name.
        group = parser.add_argument_group("global options")
        group.add_argument("--data-dir", metavar="DIR", default=default,
                           help=f"where the database lives (else ${DATA_DIR_ENV_VAR}, else the per-user data folder)")
        group.add_argument("--json", action="store_true", default=default if default is argparse.SUPPRESS else False,
                           help="one JSON object per line on stdout")
        group.add_argument("--database", metavar="URL", default=default,
                           help="a site's shared PostgreSQL database, postgresql://USER@HOST/DB "
                                "(else $KIOSK_DATABASE_URL, else the data directory's own file)")
        group.add_argument("--door-id", metavar="ID", default=default,
                           help="this door's name in the access log, topics and events: a-z, 0-9, - and _ "
                                "(default: the host name)")
        group.add_argument("--model", metavar="FILE", default=default,
                           help="the .keras model with its .card.json (else $KIOSK_MODEL, else the shipped model)")
        logsetup.add_options(group, default)

    parser = argparse.ArgumentParser(
        prog=prog, description="Face-recognition access kiosk: enrol people, recognise faces, run the door.",
        epilog="The kiosk screen itself is the command face-kiosk.",
    )
    parser.add_argument("--version", action="version", version=f"face-kiosk {__version__}")
    add_globals(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, handler, parent=commands, **kwargs) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help, **kwargs)
        add_globals(sub, argparse.SUPPRESS)
        sub.set_defaults(handler=handler)
        return sub

    enroll = command("enroll", "enrol a person from photos, or add photos to someone enrolled", cmd_enroll)
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("images", metavar="IMAGE", nargs="+", help="photos with this person's face only")
    enroll.add_argument("--badge", metavar="ID", help="badge or employee number (new people only)")
    enroll.add_argument("--allow-mismatch", action="store_true",
                        help="store photos even when they do not match NAME's enrolled face, or show someone "
                             "else who is enrolled (refused otherwise)")

    identify = command("identify", "say who is in each photo (largest face), or unknown", cmd_identify)
    identify.add_argument("images", metavar="IMAGE", nargs="+")

    verify = command("verify", "say whether two photos show the same person", cmd_verify)
    verify.add_argument("image1", metavar="IMAGE1")
    verify.add_argument("image2", metavar="IMAGE2")

    people = command("people", "list the people enrolled (or rename / remove one)", cmd_people)
    people_commands = people.add_subparsers(dest="people_command", metavar="ACTION")
    rename = command("rename", "rename a person", cmd_people, parent=people_commands)
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    exempt = command("exempt", "let a person in without the liveness head move (someone who cannot turn "
                     "their head); each such grant is recorded in the access log", cmd_people, parent=people_commands)
    exempt.add_argument("name", metavar="NAME")
    exempt.add_argument("--off", action="store_true", help="ask them for the head move again")
    remove = command("remove", "remove a person and all their templates", cmd_people, parent=people_commands)
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--erase-log", action="store_true",
                        help="also erase their details (name, score, thumbnail) from the access log")

    log = command("log", "show or export the access log (newest first)", cmd_log)
    log.add_argument("--since", type=parse_when, metavar="TIME", help="from this time (ISO 8601, or an age: 2h, 7d)")
    log.add_argument("--until", type=parse_when, metavar="TIME", help="before this time")
    log.add_argument("--person", metavar="NAME", help="only this person's events")
    log.add_argument("--decision", choices=("granted", "denied"))
    log.add_argument("--limit", type=_positive(int), metavar="N", help="at most N events")
    log.add_argument("--door", metavar="ID", help="only this door's events")
    log.add_argument("--export", metavar="FILE.csv", type=Path,
                     help="write the events to a new CSV file instead (owner-only; never inside the data directory)")
    log.add_argument("--force", action="store_true", help="with --export: replace an existing file")
    log_commands = log.add_subparsers(dest="log_command", metavar="ACTION")
    command("verify", "check the access log's tamper-evident chain; exit status 1 if broken", cmd_log,
            parent=log_commands)

    completion = command("completion", f"print a shell completion script (source <({PROG} completion bash))",
                         cmd_completion)
    completion.add_argument("shell", choices=("bash",))

    site = command("site", "a site database shared by several doors (see --database)", cmd_site)
    site_commands = site.add_subparsers(dest="site_command", metavar="ACTION", required=True)
    site_import = command("import", "copy a kiosk's own database (people, templates, events) into the site "
                          "database, as this door's", cmd_site, parent=site_commands)
    site_import.add_argument("source", metavar="DATA_DIR", type=Path,
                             help="the kiosk's data directory (its kiosk.db and key file)")
    site_settings = command("settings", "show the settings every door shares, or set them: risk, "
                            "looser_risk_confirmed, retention_days", cmd_site, parent=site_commands)
    site_settings.add_argument("assignments", metavar="NAME=VALUE", nargs="*")

    keys = command("keys", "show the key file that protects templates and the log (or rotate its key)", cmd_keys)
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    command("rotate", "re-seal every template and thumbnail with a new key", cmd_keys, parent=keys_commands)

    run = command("run", "run the kiosk on a camera: recognise, decide, log, open the door", cmd_run)
    run.add_argument("--camera", metavar="SOURCE", default="0",
                     help="camera index, video file, image folder or rtsp/http URL (default: 0)")
    run.add_argument("--headless", action="store_true", help="no window: print each decision (required for now)")
    run.add_argument("--loop", action="store_true", help="play a video file or image folder over and over")
    run.add_argument("--realtime", action="store_true",
                     help="play a file at its own pace, skipping frames like a live camera "
                          "(default: analyse every frame of a file)")
    # Each option below, when given, wins over the kiosk's settings (settings.json, the admin window).
    run.add_argument("--door-command", metavar="CMD",
                     help="command run on each grant (no shell; gets $KIOSK_PERSON and $KIOSK_EVENT; "
                          "default: the settings' door action)")
    run.add_argument("--door-url", metavar="URL", help="URL that receives a JSON POST on each grant")
    run.add_argument("--door-timeout", type=_positive(float), metavar="S",
                     help="seconds the door action may take (default: the settings', 5)")
    run.add_argument("--thumbnails", action=argparse.BooleanOptionalAction,
                     help="store a small face picture with each event, or not (default: the settings')")
    run.add_argument("--analysis-fps", type=float, metavar="N",
                     help="analyse at most N frames a second while someone is in view, 0 for every frame "
                          "(default: the kiosk settings', 15; real-time sources only)")
    run.add_argument("--idle-analysis-fps", type=float, metavar="N",
                     help="at most N frames a second while nobody is in view, 0 for every frame "
                          "(default: the settings', 5; never above --analysis-fps)")
    run.add_argument("--start-timeout", type=_positive(float), default=START_TIMEOUT_S, metavar="S",
                     help=f"seconds to wait for a live camera's first picture (default: {START_TIMEOUT_S:g})")
    events = run.add_argument_group(
        "events out", "access decisions, lockouts, camera states and tamper findings as JSON (docs/events.md); "
                      "kept in an outbox in the data directory until delivered; default: the settings'")
    events.add_argument("--mqtt", metavar="URL", help="MQTT broker, mqtt://[USER@]HOST[:PORT] or mqtts:// for TLS "
                                                      "(password: $KIOSK_MQTT_PASSWORD)")
    events.add_argument("--mqtt-prefix", metavar="TOPIC",
                        help="topic prefix (default: the settings', face-kiosk); topics are PREFIX/DOOR/...")
    events.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate for mqtts:// (default: the system's)")
    events.add_argument("--webhook", metavar="URL", help="URL that receives every event as a JSON POST "
                                                         "(Authorization: $KIOSK_WEBHOOK_AUTH; HMAC signature "
                                                         "with $KIOSK_WEBHOOK_SECRET)")
    events.add_argument("--events-drain", type=float, default=5.0, metavar="S",
                        help="seconds to keep delivering queued events when the run ends (default: 5)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    out = Output(args.json)
    if args.handler is cmd_completion:  # read from a shell's start-up file: no log, no data directory
        return cmd_completion(args, out)
    try:
        logsetup.configure_from(args, lambda: _data_dir(args))
        return args.handler(args, out)
    except (KioskError, SchemaVersionError) as exc:
        out.error(str(exc))
    except sqlite3.Error as exc:
        out.error(f"database: {exc}")
    except OSError as exc:
        out.error(str(exc))
    except UnicodeError as exc:  # a name or path that is not valid UTF-8 reached SQLite or a file
        out.error(f"text that is not valid UTF-8 ({exc.reason}); give names and paths in UTF-8")
    except KeyboardInterrupt:
        return 130
    return 1
