"""The gallery: enrolled people and their face templates (embeddings).

Embeddings and thumbnails are stored sealed (kiosk.sealing: AES-GCM, bound to the template's
id, person and dimension), so a copy of the database file alone reveals no face. matrix()
opens them once per gallery version and keeps the result in memory for matching.

A removed template's id is recorded beside the key file (kiosk.sealstate) before the removal
commits, so its row put back from an older copy of the database is refused. A row that fails
either check is skipped and reported (``damaged``), and everyone else is still recognised.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kiosk.connection import DatabaseUnavailable, next_id, timestamp, transaction
from kiosk.errors import KioskError
from kiosk.sealing import SealError, sealer, template_aad, template_thumbnail_aad
from kiosk.sealstate import SealState, id_ranges, load_state, update_state

log = logging.getLogger(__name__)

# Stored embedding format: float32, little-endian, whatever the host's byte order.
_STORED_DTYPE = np.dtype("<f4")
# Templates must be unit vectors (matching uses plain dot products); this allows
# for float32 rounding, not for a forgotten normalisation.
_UNIT_NORM_TOLERANCE = 1e-3


class GalleryError(KioskError):
    """A gallery operation was refused: unknown person, duplicate name, bad embedding..."""


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    external_id: str | None
    active: bool
    created: str  # ISO 8601 UTC
    template_count: int
    liveness_exempt: bool = False  # granted without the liveness challenge (cannot turn their head)


# eq=False: dataclass equality would compare the arrays element-wise and fail.
@dataclass(frozen=True, eq=False)
class Template:
    id: int
    person_id: int
    embedding: np.ndarray  # float32, 1-D, read-only
    quality: float
    source: str
    created: str  # ISO 8601 UTC


@dataclass(frozen=True)
class DamagedTemplate:
    """A template row that is not used: it cannot be opened, or belongs to a removed template."""

    template_id: int
    person_id: int
    problem: str


PersonRef = int | str | Person  # an id, a name (any case) or a Person


MAX_NAME_LENGTH = 100
MAX_BADGE_LENGTH = 64
# Control characters (newline, escape), invisible formatting (zero-width joiners, right-to-left
# overrides), line and paragraph separators, private-use and unassigned code points, and the
# surrogates a name that is not valid UTF-8 arrives with: each can make a name print as
# something else, or two names look alike.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}


def check_label(text: str, what: str, limit: int) -> str:
    """`text` NFC-normalised with surrounding whitespace removed, or GalleryError saying why not."""
    cleaned = unicodedata.normalize("NFC", text).strip()
    if not cleaned:
        raise GalleryError(f"{what} cannot be empty")
    if len(cleaned) > limit:
        raise GalleryError(f"{what} is {len(cleaned)} characters long; at most {limit} are allowed")
    for char in cleaned:
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            raise GalleryError(f"{what} contains an invisible or control character (U+{ord(char):04X}); "
                               "use visible letters, digits, spaces and punctuation")
    return cleaned


def normalise_name(name: str) -> str:
    """The name as stored: NFC, surrounding whitespace removed; refuses empty and over-long names
    and names with control or invisible characters."""
    return check_label(name, "a person's name", MAX_NAME_LENGTH)


def normalise_badge(badge: str | None) -> str | None:
    """A badge or employee number as stored (checked like a name); None when empty."""
    if badge is None or not badge.strip():
        return None
    return check_label(badge, "a badge", MAX_BADGE_LENGTH)


def name_key(name: str) -> str:
    """The case-insensitive key that names are unique by and looked up with.

    Not checked like a new name: a person enrolled before names were checked can still be found.
    """
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise GalleryError("a person's name cannot be empty")
    return cleaned.casefold()


_PERSON_COLUMNS = """
    SELECT p.id, p.name, p.external_id, p.active, p.created,
           (SELECT count(*) FROM template t WHERE t.person_id = p.id), p.liveness_exempt
    FROM person p"""

_TEMPLATE_COLUMNS = (
    "SELECT id, person_id, dim, key_id, embedding, quality, source, created FROM template"
)


_REMOVED = ("template {} was removed, and its row was put back into the database "
            "(from an older copy?); it is not used")


def _person(row: Sequence) -> Person:
    return Person(row[0], row[1], row[2], bool(row[3]), row[4], row[5], bool(row[6]))


def _as_embedding(value: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        raise GalleryError(
            f"embedding {index} must be a non-empty 1-D float array, "
            f"got shape {array.shape} dtype {array.dtype}"
        )
    array = array.astype(_STORED_DTYPE)
    if not np.all(np.isfinite(array)):
        raise GalleryError(f"embedding {index} contains NaN or infinity")
    norm = float(np.linalg.norm(array))
    if abs(norm - 1.0) > _UNIT_NORM_TOLERANCE:
        raise GalleryError(f"embedding {index} is not L2-normalised (norm {norm:.4f})")
    return array


class Gallery:
    """People and templates in the kiosk database (one instance per connection)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._sealer = sealer(conn)  # refuses a connection without keys
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None
        self._matrix_version = -1
        self.damaged: tuple[DamagedTemplate, ...] = ()  # rows the last matrix() skipped
        self._names: dict[int, str] = {}  # site database: the active people's names as last loaded

    @property
    def connection(self) -> sqlite3.Connection:
        """The database connection this gallery works through (for changes that span tables)."""
        return self._conn

    # People

    def add_person(self, name: str, external_id: str | None = None) -> Person:
        name = normalise_name(name)
        external_id = normalise_badge(external_id)
        with transaction(self._conn):
            self._check_name_free(name)
            if external_id is not None and self._conn.execute(
                "SELECT 1 FROM person WHERE external_id = ?", (external_id,)
            ).fetchone():
                raise GalleryError(f"external id {external_id!r} is already in use")
            cursor = self._conn.execute(
                "INSERT INTO person (name, name_key, external_id, created) VALUES (?, ?, ?, ?)",
                (name, name.casefold(), external_id, timestamp()),
            )
            return self._person_by_id(cursor.lastrowid)

    def enroll(
        self,
        name: str,
        external_id: str | None,
        embeddings: Sequence[np.ndarray],
        qualities: Sequence[float],
        sources: Sequence[str],
        thumbnails: Sequence[bytes | None] | None = None,
    ) -> Person:
        """Add a new person with their templates in one transaction: both or neither.

        A process killed half-way, or a full disk, never leaves a person without templates.
        """
        if not len(embeddings):
            raise GalleryError("a new person needs at least one template")
        with transaction(self._conn):
            person = self.add_person(name, external_id)
            self.add_templates(person, embeddings, qualities, sources, thumbnails)
            return self._person_by_id(person.id)

    def get_person(self, name_or_id: PersonRef) -> Person:
        """The person by id, name or Person; raises GalleryError if there is none."""
        if isinstance(name_or_id, Person):
            return self._person_by_id(name_or_id.id)
        if isinstance(name_or_id, int):
            try:
                return self._person_by_id(name_or_id)
            except DatabaseUnavailable:
                # The site's server is away: the door goes on deciding from what it last loaded.
                if name_or_id not in self._names:
                    raise
                return Person(name_or_id, self._names[name_or_id], None, True, "", 0)
        person = self.find_person(name_or_id)
        if person is None:
            raise GalleryError(f"no person named {name_or_id!r}")
        return person

    def find_person(self, name: str) -> Person | None:
        row = self._conn.execute(
            f"{_PERSON_COLUMNS} WHERE p.name_key = ?", (name_key(name),)
        ).fetchone()
        return _person(row) if row else None

    def people(self, include_inactive: bool = True) -> list[Person]:
        where = "" if include_inactive else " WHERE p.active = 1"
        rows = self._conn.execute(f"{_PERSON_COLUMNS}{where} ORDER BY p.name_key").fetchall()
        return [_person(row) for row in rows]

    def rename(self, old: PersonRef, new: str) -> Person:
        new = normalise_name(new)
        with transaction(self._conn):
            person = self.get_person(old)
            self._check_name_free(new, except_id=person.id)
            self._conn.execute(
                "UPDATE person SET name = ?, name_key = ? WHERE id = ?",
                (new, new.casefold(), person.id),
            )
            return self._person_by_id(person.id)

    def set_active(self, name: PersonRef, active: bool) -> Person:
        with transaction(self._conn):
            person = self.get_person(name)
            self._conn.execute(
                "UPDATE person SET active = ? WHERE id = ?", (int(bool(active)), person.id)
            )
            return self._person_by_id(person.id)

    def set_liveness_exempt(self, name: PersonRef, exempt: bool) -> Person:
        """Grant this person without the liveness challenge (or ask them again); the access log
        says so with each grant made without it."""
        with transaction(self._conn):
            person = self.get_person(name)
            self._conn.execute(
                "UPDATE person SET liveness_exempt = ? WHERE id = ?", (int(bool(exempt)), person.id)
            )
            return self._person_by_id(person.id)

    def remove(self, name: PersonRef) -> int:
        """Delete a person, their templates and thumbnails; returns the number of templates removed.

        The rows are overwritten on disk (secure_delete). Access-log entries keep the name but
        lose the link (ON DELETE SET NULL); kiosk.privacy.remove_person can erase them too.
        """
        with transaction(self._conn):
            person = self.get_person(name)
            ids = [row[0] for row in self._conn.execute("SELECT id FROM template WHERE person_id = ?", (person.id,))]
            self._conn.execute("DELETE FROM person WHERE id = ?", (person.id,))
            self._record_removed(ids)
            return person.template_count

    # Templates

    def add_templates(
        self,
        person: PersonRef,
        embeddings: Sequence[np.ndarray],
        qualities: Sequence[float],
        sources: Sequence[str],
        thumbnails: Sequence[bytes | None] | None = None,
    ) -> list[Template]:
        """Store templates for one person, all or none.

        Embeddings must be L2-normalised 1-D float vectors, all of the gallery's
        dimension. Thumbnails are small JPEGs of the samples, for the admin window.
        """
        if thumbnails is None:
            thumbnails = [None] * len(embeddings)
        if not len(embeddings) == len(qualities) == len(sources) == len(thumbnails):
            raise GalleryError(
                "embeddings, qualities, sources and thumbnails must have the same length"
            )
        arrays = [_as_embedding(e, i) for i, e in enumerate(embeddings)]
        if len({a.size for a in arrays}) > 1:
            raise GalleryError("embeddings in one call must all have the same dimension")
        created = timestamp()
        with transaction(self._conn):
            person_id = self.get_person(person).id
            if arrays:
                self.check_dimension(arrays[0].size)
            ids = []
            for array, quality, source, thumbnail in zip(arrays, qualities, sources, thumbnails):
                template_id = next_id(self._conn, "template")  # the sealed data is bound to it
                key_id, sealed = self._sealer.seal(
                    self._conn, array.tobytes(), template_aad(template_id, person_id, array.size)
                )
                self._conn.execute(
                    "INSERT INTO template (id, person_id, dim, key_id, embedding, quality, source, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (template_id, person_id, array.size, key_id, sealed, float(quality), str(source), created),
                )
                ids.append(template_id)
                if thumbnail is not None:
                    key_id, sealed = self._sealer.seal(
                        self._conn, bytes(thumbnail), template_thumbnail_aad(template_id)
                    )
                    self._conn.execute(
                        "INSERT INTO template_thumbnail (template_id, key_id, jpeg) VALUES (?, ?, ?)",
                        (template_id, key_id, sealed),
                    )
            return [self._template_by_id(i) for i in ids]

    def templates(self, person: PersonRef | None = None) -> list[Template]:
        """The usable templates (of one person, or all); damaged rows are left out (damaged_templates)."""
        if person is None:
            rows = self._conn.execute(f"{_TEMPLATE_COLUMNS} ORDER BY id").fetchall()
        else:
            rows = self._conn.execute(
                f"{_TEMPLATE_COLUMNS} WHERE person_id = ? ORDER BY id",
                (self.get_person(person).id,),
            ).fetchall()
        state = self._state()
        return [self._template(row) for row in rows if self._problem(state, *row[:5]) is None]

    def damaged_templates(self) -> list[DamagedTemplate]:
        """Every template row that is not used (of active and inactive people), and why."""
        state = self._state()
        rows = self._conn.execute(
            "SELECT id, person_id, dim, key_id, embedding FROM template ORDER BY id").fetchall()
        return [DamagedTemplate(row[0], row[1], problem) for row in rows
                if (problem := self._problem(state, *row)) is not None]

    def remove_template(self, template_id: int) -> None:
        with transaction(self._conn):
            cursor = self._conn.execute("DELETE FROM template WHERE id = ?", (int(template_id),))
            if cursor.rowcount == 0:
                raise GalleryError(f"no template with id {template_id}")
            self._record_removed([int(template_id)])

    def thumbnail(self, template_id: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT key_id, jpeg FROM template_thumbnail WHERE template_id = ?", (int(template_id),)
        ).fetchone()
        if row is None:
            return None
        return self._sealer.open(
            row[0], row[1], template_thumbnail_aad(template_id), f"thumbnail of template {template_id}"
        )

    # Matching

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(N x D float32 embeddings, N int64 person ids) of the active people's templates.

        Rows are grouped by person id, which lets matching skip a sort. The arrays
        are cached and read-only; the cache is rebuilt (and the templates opened)
        only when gallery_state.version (bumped by triggers, so changes from other
        processes count) moves, never per query. On a site database the version comes from the
        door's gallery watch (LISTEN/NOTIFY, kiosk.sitedb), and while the server is away the
        last matrix is used for as long as the settings allow (then an empty one: nobody is
        recognised).
        """
        if getattr(self._conn, "backend", "sqlite") == "postgresql":
            return self._site_matrix()
        if self._matrix is not None and self._version() == self._matrix_version:
            return self._matrix
        return self._load_matrix()

    def _site_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        watch = self._conn.start_watch()
        copy = self._conn.copy
        if watch.online or self._matrix is None:
            if self._matrix is not None and watch.version is not None and watch.version <= self._matrix_version:
                if copy is not None and watch.online:
                    copy.confirm(self._matrix_version)
                return self._matrix
            try:
                return self._load_matrix()
            except DatabaseUnavailable:
                if self._matrix is None:
                    if copy is None or not copy.exists():
                        raise
                    self._load_copy()  # a door started while the server is away
        limit = self._conn.offline_limit_s
        if limit is None or watch.offline_for() <= limit:
            return self._matrix
        if self._matrix[1].size:
            log.warning("site database away for %.0f s, more than the settings allow: nobody is recognised",
                        watch.offline_for())
        empty = np.empty((0, self._matrix[0].shape[1]), np.float32), np.empty(0, np.int64)
        for array in empty:
            array.flags.writeable = False
        return empty

    def _load_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        site = getattr(self._conn, "backend", "sqlite") == "postgresql"
        with transaction(self._conn, "DEFERRED"):  # one snapshot for version, size and rows
            version = self._version()
            keys = self._check_site_key() if site else None  # never a gallery this door cannot open
            count, dim = self._conn.execute(
                "SELECT count(*), max(t.dim) FROM template t"
                " JOIN person p ON p.id = t.person_id WHERE p.active = 1"
            ).fetchone()
            embeddings = np.empty((count, dim or 0), dtype=np.float32)
            person_ids = np.empty(count, dtype=np.int64)
            rows = self._conn.execute(
                "SELECT t.id, t.person_id, t.dim, t.key_id, t.embedding FROM template t"
                " JOIN person p ON p.id = t.person_id WHERE p.active = 1"
                " ORDER BY t.person_id, t.id"
            )
            state = self._state()
            damaged: list[DamagedTemplate] = []
            sealed_rows: list[tuple] = []  # a site door's local copy keeps them as read (sealed)
            keep_sealed = site and self._conn.copy is not None
            used = 0
            # Filled row by row so a large gallery is not held twice in memory.
            for template_id, person_id, dim, key_id, blob in rows:
                if keep_sealed:
                    sealed_rows.append((template_id, person_id, dim, key_id, blob))
                try:
                    if state.is_removed(template_id):
                        raise SealError(_REMOVED.format(template_id))
                    embeddings[used] = self._open_embedding(template_id, person_id, dim, key_id, blob)
                except (SealError, TypeError, ValueError) as exc:  # a size that is not dim, a blob not bytes
                    damaged.append(DamagedTemplate(template_id, person_id, str(exc)))
                    log.warning("template %d (person %d) skipped: %s", template_id, person_id, exc)
                    continue
                person_ids[used] = person_id
                used += 1
            if used < count:
                embeddings, person_ids = embeddings[:used].copy(), person_ids[:used].copy()
            if site:
                self._names = dict(self._conn.execute("SELECT id, name FROM person WHERE active = 1").fetchall())
        if site and self._conn.copy is not None:
            self._save_copy(version, sealed_rows, keys)
        return self._keep_matrix(embeddings, person_ids, version, damaged)

    def _keep_matrix(self, embeddings: np.ndarray, person_ids: np.ndarray, version: int,
                     damaged: list[DamagedTemplate]) -> tuple[np.ndarray, np.ndarray]:
        self.damaged = tuple(damaged)
        embeddings.flags.writeable = False
        person_ids.flags.writeable = False
        self._matrix, self._matrix_version = (embeddings, person_ids), version
        return self._matrix

    # A site's gallery: the key it is sealed with, and the door's local copy (kiosk.site_copy)

    def _check_site_key(self) -> tuple[int, bytes, bytes]:
        """KeyFileError unless this door holds the site's current data key (the key file is read
        again first: after a `keys rotate`, copying the new file to the door is enough)."""
        from kiosk.site_keys import check_site_key
        from kiosk.sitedb import redacted_url

        current, check, log_check = self._conn.execute(
            "SELECT k.current_key, c.sealed, k.log_check FROM key_state k"
            " LEFT JOIN key_check c ON c.key_id = k.current_key").fetchone()
        check_site_key(self._sealer, current, check, log_check, f"the site {redacted_url(self._conn.url)}")
        return current, bytes(check), bytes(log_check)

    def _save_copy(self, version: int, rows: list[tuple], keys: tuple[int, bytes, bytes]) -> None:
        from kiosk.site_settings import site_values

        try:
            model = self._conn.execute("SELECT identity FROM gallery_model").fetchone()
            self._conn.copy.save(version, rows, self._names, *keys, model[0] if model else None,
                                 site_values(self._conn))
        except (DatabaseUnavailable, sqlite3.Error, OSError) as exc:  # the door goes on; the copy is older
            log.warning("cannot update the local copy of the site's gallery: %s", exc)

    def _load_copy(self) -> tuple[np.ndarray, np.ndarray]:
        """The matrix from the door's local copy of the site's gallery (the server is away)."""
        from kiosk.site_keys import check_site_key

        copy = self._conn.copy
        state = copy.state()
        check_site_key(self._sealer, state.key_id, state.key_check, state.log_check,
                       f"this door's gallery copy {copy.path}")
        rows, names = copy.rows()
        dim = max((row[2] for row in rows), default=0)
        embeddings = np.empty((len(rows), dim), dtype=np.float32)
        person_ids = np.empty(len(rows), dtype=np.int64)
        damaged: list[DamagedTemplate] = []
        removed = self._state()
        used = 0
        for template_id, person_id, dim, key_id, blob in rows:
            try:
                if removed.is_removed(template_id):
                    raise SealError(_REMOVED.format(template_id))
                embeddings[used] = self._open_embedding(template_id, person_id, dim, key_id, blob)
            except (SealError, TypeError, ValueError) as exc:
                damaged.append(DamagedTemplate(template_id, person_id, str(exc)))
                continue
            person_ids[used] = person_id
            used += 1
        if used < len(rows):
            embeddings, person_ids = embeddings[:used].copy(), person_ids[:used].copy()
        self._names = names
        log.warning("site database unreachable: deciding from the local copy of its gallery (%d people, "
                    "%.0f min old)", len(names), state.age_s() / 60)
        return self._keep_matrix(embeddings, person_ids, state.version, damaged)

    # Helpers

    def _state(self) -> SealState:
        return load_state(self._sealer.keyring.path, self._sealer.log_key)

    def _problem(self, state: SealState, template_id: int, person_id: int, dim: int, key_id: int,
                 blob: bytes) -> str | None:
        if state.is_removed(template_id):
            return _REMOVED.format(template_id)
        try:
            self._open_embedding(template_id, person_id, dim, key_id, blob)
        except (SealError, TypeError, ValueError) as exc:
            return str(exc)
        return None

    def _record_removed(self, template_ids: Iterable[int]) -> None:
        """Before the removal commits: from now on these ids are refused, whatever their rows hold."""
        ids = list(template_ids)
        if ids:
            update_state(self._sealer.keyring.path, self._sealer.log_key,
                         lambda state: state.with_removed(id_ranges(ids)))

    def _open_embedding(self, template_id: int, person_id: int, dim: int, key_id: int, blob: bytes) -> np.ndarray:
        plain = self._sealer.open(key_id, blob, template_aad(template_id, person_id, dim), f"template {template_id}")
        if len(plain) != 4 * dim:
            raise ValueError(f"template {template_id} holds {len(plain)} bytes, not {dim} values")
        return np.frombuffer(plain, dtype=_STORED_DTYPE)

    def _template(self, row: Sequence) -> Template:
        embedding = self._open_embedding(*row[:5]).astype(np.float32, copy=False)
        embedding.flags.writeable = False
        return Template(row[0], row[1], embedding, row[5], row[6], row[7])

    def _version(self) -> int:
        return self._conn.execute("SELECT version FROM gallery_state").fetchone()[0]

    def _person_by_id(self, person_id: int) -> Person:
        row = self._conn.execute(f"{_PERSON_COLUMNS} WHERE p.id = ?", (int(person_id),)).fetchone()
        if row is None:
            raise GalleryError(f"no person with id {person_id}")
        return _person(row)

    def _template_by_id(self, template_id: int) -> Template:
        row = self._conn.execute(f"{_TEMPLATE_COLUMNS} WHERE id = ?", (template_id,)).fetchone()
        return self._template(row)

    def _check_name_free(self, name: str, except_id: int | None = None) -> None:
        row = self._conn.execute(
            "SELECT id FROM person WHERE name_key = ?", (name.casefold(),)
        ).fetchone()
        if row is not None and row[0] != except_id:
            raise GalleryError(f"a person named {name!r} already exists")

    def check_model(self, dim: int, identity: str) -> None:
        """GalleryError if the gallery's templates were made by another model than the one
        `identity` names (ModelCard.identity) or are not `dim`-d (a gallery enrolled before models
        were recorded belongs to none: refused). Reads only: every process that matches faces
        against this gallery checks it first (kiosk, `identify`)."""
        try:
            self.check_dimension(dim)
            row = self._conn.execute("SELECT identity FROM gallery_model").fetchone()
            enrolled = self._conn.execute("SELECT 1 FROM template LIMIT 1").fetchone() is not None
        except DatabaseUnavailable:
            # A site door starting while the server is away: the model its copy was made with.
            state = self._conn.copy.state() if getattr(self._conn, "copy", None) is not None else None
            if state is None:
                raise
            rows = self._conn.copy.rows()[0]
            if rows and rows[0][2] != dim:
                raise GalleryError(f"embedding dimension {dim} does not match the gallery's {rows[0][2]}: its templates "
                                   "were made by another model") from None
            row, enrolled = (state.model,) if state.model else None, bool(rows)
        if enrolled and row is not None and row[0] != identity:
            raise GalleryError(f"the gallery's templates were made by another model ({row[0]}), not by this "
                               f"one ({identity}); re-enrol everyone, or run the model they were enrolled with")

    def bind_model(self, dim: int, identity: str) -> None:
        """check_model, then the gallery is marked as that model's: called just before storing
        templates (CLI and window enrolment), so a read-only command never writes."""
        with transaction(self._conn):
            self.check_model(dim, identity)
            row = self._conn.execute("SELECT identity FROM gallery_model").fetchone()
            if row is None or row[0] != identity:
                self._conn.execute("INSERT INTO gallery_model (id, identity) VALUES (1, ?)"
                                   " ON CONFLICT (id) DO UPDATE SET identity = excluded.identity", (identity,))

    def check_dimension(self, dim: int) -> None:
        """GalleryError unless the gallery is empty or its templates are `dim`-d: templates made by
        a model with another embedding cannot be compared with this one's (re-enrol after a change
        of model)."""
        row = self._conn.execute("SELECT dim FROM template LIMIT 1").fetchone()
        if row is not None and row[0] != dim:
            raise GalleryError(f"embedding dimension {dim} does not match the gallery's {row[0]}: its templates were "
                               f"made by another model; re-enrol everyone, or run the model they were enrolled with")
