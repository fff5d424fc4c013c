"""Import of the public RPPS extract into the registry: streamed, chunked, idempotent, with events.

How it works
------------
1. A raw pre-scan of the file (IDNPS column only, a 16 MB bitmap whatever the size) finds the professionals
   listed in more than one run of lines: the rows of one professional are contiguous in the national file, and
   one that comes back later must not lose the activities of its first run. Their rows are held back and
   imported together at the end of the file.
2. The file is read line by line (`extract.RppsExtract`); rows are filtered by profession and by the
   département of their site (from the commune code, else the postcode through cpts_geo, else the
   `Code Département (structure)` column), grouped by IDNPS, and handled in chunks of `chunk_size`
   professionals. Memory stays constant: one chunk (two on PostgreSQL, where the next one is read while the
   server writes the previous one), the held-back professionals, caches of commune lookups.
3. Per chunk, one transaction. The existing professionals of the chunk are read in ONE query. The
   `content_hash` (md5 of the columns the registry takes from the professional's rows, and of where its sites
   were located) tells the unchanged ones, which cost nothing more. New and changed ones are written with bulk
   upserts (`upsert(dialect, table).on_conflict_do_update`: sites, professionals, activities; a changed
   professional's activities are replaced) and their events go to the outbox in the same transaction:
   `ProfessionalRegistered` and `ProfessionalSitesChanged` (its first sites) for a new professional,
   `ProfessionalUpdated` when its snapshot changed (or it comes back after a deactivation),
   `ProfessionalSitesChanged` when its sites, as events show them, changed. `updated` counts the changed
   professionals written, whether or not an event showed the change (a phone number is not in any event).
   A bad line is reported and skipped, never fatal; a failing chunk rolls back whole and stops the import.
4. A full import (by default when no filter is given; `full=True` forces it) then deactivates the
   professionals imported from the RPPS before (`source = "rpps-import"`) and absent from this file
   (`ProfessionalDeactivated`, reason `absent-from-rpps-import`). With filters and `full=True`, only the
   professionals of the filtered professions whose main commune is in the filtered départements can be
   deactivated. The ids seen are kept in a temporary table of the import's connection, not in memory; the
   IDNPS of a rejected line counts as seen, so a malformed line never deactivates anyone.

Professionals registered through the API (`source = "api"`) that appear in the file are taken over by the
import (their source becomes `rpps-import`). Sites are shared between professionals and never deleted.

Events: the outbox rows are those `add_events` would write (`OutboxEncoder` derives their headers from
`cpts_events.encode`, byte for byte), written in bulk in the chunk's transaction (`OutboxInsert`), with
time-ordered (version 7) UUIDs as event ids so that the outbox's unique index takes them in order.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from cpts_events import CATALOGUE, Event, encode
from cpts_events.envelope import EventPayload
from cpts_events.registry import (
    ProfessionalDeactivated,
    ProfessionalRegistered,
    ProfessionalSitesChanged,
    ProfessionalUpdated,
)
from cpts_geo.communes import Commune, communes, fold
from cpts_platform.db import Database, upsert

from cpts_registry.repository import ActivityRow, MembershipRow, PracticeSiteRow, ProfessionalRow
from cpts_registry.rpps.extract import RejectedLine, RppsExtract, RppsRow, SkippedLine, scan_reappearing

SOURCE = "rpps-import"
EVENT_SOURCE = "/cpts/registry"
DEACTIVATION_REASON = "absent-from-rpps-import"
DEFAULT_CHUNK_SIZE = 5000
SQLITE_CACHE_KIB = 32 * 1024
SQLITE_CHECKPOINT_PAGES = 10_000
YIELD_EVERY = 250  # professionals between two turns of the event loop while a chunk is planned

professional_table: sa.Table = ProfessionalRow.__table__  # type: ignore[attr-defined]
site_table: sa.Table = PracticeSiteRow.__table__  # type: ignore[attr-defined]
activity_table: sa.Table = ActivityRow.__table__  # type: ignore[attr-defined]
membership_table: sa.Table = MembershipRow.__table__  # type: ignore[attr-defined]

# The ids seen by a full import: a temporary table of the import's connection (dropped at the end).
_seen_metadata = sa.MetaData()
seen_table = sa.Table("rpps_import_seen", _seen_metadata, sa.Column("idnps", sa.String(12), primary_key=True),
                      prefixes=["TEMPORARY"])

INSEE = re.compile(r"\d{5}|2[AB]\d{3}")
CIVILITIES = {"DR": "Dr", "PR": "Pr", "M": "M", "MME": "Mme", "MLLE": "Mlle"}
SNAPSHOT_FIELDS = ("civility", "family_name", "given_name", "profession_code", "profession_label",
                   "specialty_code", "specialty_label", "commune_insee")

Progress = Callable[[str, int, int, int], None]
"""progress(phase, bytes_read, total_bytes, rows_read); phase is "scan" then "import"."""


@dataclass
class ImportSummary:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    rejected: int = 0
    skipped_out_of_territory: int = 0
    skipped_other_profession: int = 0
    skipped_without_site: int = 0
    events: int = 0
    seconds: float = 0.0
    encoding: str = "utf-8"
    full: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


@dataclass
class ImportResult:
    summary: ImportSummary
    rejected: list[RejectedLine] = field(default_factory=list)


@dataclass(slots=True)
class Site:
    site_id: str
    name: str | None
    address: str | None
    postcode: str | None
    commune_insee: str | None
    phone: str | None
    lat: float | None
    lon: float | None


@dataclass(slots=True)
class Professional:
    idnps: str
    civility: str | None
    family_name: str
    given_name: str
    profession_code: str
    profession_label: str | None
    specialty_code: str | None
    specialty_label: str | None
    commune_insee: str | None
    sites: list[Site]
    activities: list[tuple[str, str | None, str | None]]  # (site_id, practice mode, sector code), file order
    content_hash: str = ""

    def snapshot(self) -> tuple:
        return tuple(getattr(self, name) for name in SNAPSHOT_FIELDS)

    def event_sites(self) -> list[tuple]:
        """The sites as `PracticeSite` shows them: (site_id, name, commune, postcode, lat, lon, mode, address,
        phone)."""
        modes = {site_id: mode for site_id, mode, _ in self.activities}
        return [(s.site_id, s.name, s.commune_insee, s.postcode, s.lat, s.lon, modes[s.site_id], s.address, s.phone)
                for s in self.sites]


def _none(value: str, limit: int | None = None) -> str | None:
    if not value:
        return None
    return value[:limit] if limit else value


def departement_of_insee(insee: str) -> str:
    return insee[:3] if insee.startswith("97") else insee[:2]


def normalise_departement(code: str) -> str:
    code = code.strip().upper()
    return code.zfill(2) if code.isdigit() and len(code) < 2 else code


@dataclass(frozen=True, slots=True)
class Location:
    commune_insee: str | None
    departement: str | None
    lat: float | None
    lon: float | None

    @property
    def token(self) -> str:
        """What the content hash takes of a location."""
        return f"{self.commune_insee or ''}\x1f{self.lat!r}\x1f{self.lon!r}"


class Locator:
    """Where a site is: commune (code, else postcode + name), département, the commune's point. Cached."""

    def __init__(self) -> None:
        self.directory = communes()
        self._cache: dict[tuple[str, str, str, str, str], Location] = {}

    def locate(self, row: RppsRow) -> Location:
        key = (row.commune_code, row.postcode, row.commune_label, row.cedex_office, row.departement_code)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._locate(*key)
        return found

    def _locate(self, code: str, postcode: str, label: str, cedex: str, departement: str) -> Location:
        if code:
            commune = self.directory.get(code)
            if commune is not None:
                return self._of(commune)
        if postcode:
            candidates = self.directory.by_postcode(postcode)
            if len(candidates) > 1:
                office = cedex.removeprefix(postcode)
                names = {fold(n.strip()).replace("-", " ") for n in (label, office) if n.strip()}
                named = [c for c in candidates if fold(c.name).replace("-", " ") in names]
                if len(named) == 1:
                    candidates = named
            if len(candidates) == 1:
                return self._of(candidates[0])
            if candidates and len({c.departement for c in candidates}) == 1:
                return Location(None, candidates[0].departement, None, None)
        if code and INSEE.fullmatch(code):
            # A commune code unknown to cpts_geo (e.g. a commune merged since): keep it, no point.
            return Location(code, departement_of_insee(code), None, None)
        return Location(None, normalise_departement(departement) if departement else None, None, None)

    @staticmethod
    def _of(commune: Commune) -> Location:
        return Location(commune.insee, commune.departement, commune.lat, commune.lon)


def _address(row: RppsRow) -> str | None:
    number = " ".join(p for p in (row.street_number, row.street_index) if p)
    street_type = row.street_type_label or row.street_type_code
    street = " ".join(p for p in (number, street_type, row.street_name) if p)
    parts = [p for p in (row.geo_complement, street, row.distribution) if p]
    return ", ".join(parts)[:300] or None


def build_professional(group: Group) -> Professional:
    """One professional from its rows (all in scope, all with a site), in file order."""
    rows, locations = group.rows, group.locations
    first = rows[0]
    specialty = next((r for r in rows if r.skill_code and r.skill_type_code == "S"), None) or next(
        (r for r in rows if r.skill_code), None)
    civility = (CIVILITIES.get(first.practice_civility_code.upper())
                or CIVILITIES.get(first.civility_code.upper()))
    if civility is None:
        civility = _none(first.practice_civility_code or first.civility_code, 20)
    sites: list[Site] = []
    activities: list[tuple[str, str | None, str | None]] = []
    seen: set[str] = set()
    for row, location in zip(rows, locations):
        site_id = row.site_id
        if site_id in seen:
            continue
        seen.add(site_id)
        sites.append(Site(
            site_id=site_id,
            name=_none(row.company_name or row.brand_name, 200),
            address=_address(row),
            postcode=_none(row.postcode, 10),
            commune_insee=location.commune_insee,
            phone=_none(row.phone.replace(" ", ""), 20),
            lat=location.lat,
            lon=location.lon,
        ))
        activities.append((site_id, _none(row.practice_mode), _none(row.sector_code)))
    return Professional(
        idnps=first.idnps,
        civility=civility,
        family_name=first.family_name[:100],
        given_name=first.given_name[:100],
        profession_code=first.profession_code,
        profession_label=_none(first.profession_label, 100),
        specialty_code=specialty.skill_code if specialty else None,
        specialty_label=_none(specialty.skill_label, 150) if specialty else None,
        commune_insee=sites[0].commune_insee,
        sites=sites,
        activities=activities,
        content_hash=group.content_hash,
    )


# The columns the registry takes from a row: the content hash is computed on them (and on the located
# commune), so an unchanged professional is recognised without building anything. Bump HASH_VERSION when
# the way rows become professionals changes, so that the next import rewrites them all.
HASH_VERSION = "rpps-import/1"
_HASHED = attrgetter(
    "idnps", "practice_civility_code", "civility_code", "family_name", "given_name", "profession_code",
    "profession_label", "skill_type_code", "skill_code", "skill_label", "practice_mode",
    "former_structure_id", "structure_id", "company_name", "brand_name", "geo_complement", "street_number",
    "street_index", "street_type_code", "street_type_label", "street_name", "distribution", "postcode",
    "phone", "sector_code",
)


@dataclass(slots=True)
class Group:
    """The in-scope rows of one professional and their content hash."""

    idnps: str
    rows: list[RppsRow]
    locations: list[Location]
    content_hash: str = ""

    def seal(self) -> Group:
        parts = [HASH_VERSION]
        for row, location in zip(self.rows, self.locations):
            parts.extend(_HASHED(row))
            parts.append(location.token)
        self.content_hash = hashlib.md5("\x1e".join(parts).encode(), usedforsecurity=False).hexdigest()
        return self


# --- events -------------------------------------------------------------------------------------------------

def new_event_ids(count: int, now: datetime) -> list[str]:
    """`count` time-ordered UUIDs (version 7: milliseconds of `now`, 74 random bits), in increasing order.

    Random (version 4) ids land all over the outbox's unique index on `event_id`: at a million events that is
    one dirty page per event. Ordered ids are appended at its end.
    """
    prefix = f"{int(now.timestamp() * 1000):012x}"
    head = f"{prefix[:8]}-{prefix[8:]}-7"
    h = os.urandom(10 * count).hex()
    ids = [f"{head}{h[i:i + 3]}-{_VARIANT[h[i + 3]]}{h[i + 4:i + 7]}-{h[i + 7:i + 19]}"
           for i in range(0, 20 * count, 20)]
    ids.sort()
    return ids


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class OutboxRecord(NamedTuple):
    event_id: str
    event_type: str
    topic: str
    key: bytes
    value: bytes
    headers: str  # JSON text of [[name, value], ...], as `add_events` stores it

    def row(self, created_at: datetime) -> dict:
        """The row `add_events` would write for this event."""
        return {"event_id": self.event_id, "event_type": self.event_type, "topic": self.topic,
                "key": self.key, "value": self.value, "headers": json.loads(self.headers),
                "created_at": created_at}


_ID, _SUBJECT = "\x00id\x00", "\x00subject\x00"


class OutboxEncoder:
    """Outbox records for many events at once, exactly as `add_events` would store them.

    `add_events` calls `cpts_events.encode` once per event; here `encode` is called once per event type and
    chunk, on a model event, and its headers serve as a template where only the id and the subject change (all
    the events of a chunk share their time). The value is the payload's JSON, as `encode` writes it; the
    payload has been validated by its pydantic model when it was built.
    """

    def __init__(self, source: str = EVENT_SOURCE) -> None:
        self.source = source

    def _template(self, payload: EventPayload, now: datetime) -> tuple[str, str, list[str], Callable]:
        record = encode(Event(type=type(payload).__event_type__, source=self.source, payload=payload, key="",
                              subject=_SUBJECT, id=_ID, time=now))
        headers = json.dumps([[name, value.decode()] for name, value in record.headers])
        before, _, rest = headers.partition(_json_string(_ID)[1:-1])
        middle, _, after = rest.partition(_json_string(_SUBJECT)[1:-1])
        parts = [before, middle, after]
        if "\\u0000" in "".join(parts) or not rest or not after:
            raise RuntimeError("unexpected CloudEvents headers: the id, then the subject, each once")
        spec = CATALOGUE[type(payload).__event_type__]
        return spec.name, record.topic, parts, spec.key

    def encode(self, payloads: Sequence[tuple[EventPayload, str]], now: datetime,
               ids: Sequence[str] | None = None) -> list[OutboxRecord]:
        """Records for (payload, subject) pairs, all at time `now`; `ids`: their event ids (None: new)."""
        templates: dict[type, tuple] = {}
        records = []
        for event_id, (payload, subject) in zip(ids or new_event_ids(len(payloads), now), payloads):
            cls = type(payload)
            template = templates.get(cls)
            if template is None:
                template = templates[cls] = self._template(payload, now)
            name, topic, (before, middle, after), key = template
            if subject:
                headers = f"{before}{event_id}{middle}{_json_string(subject)[1:-1]}{after}"
                record = OutboxRecord(event_id, name, topic, key(payload).encode(),
                                      payload.model_dump_json().encode(), headers)
            else:  # no ce_subject header at all: the template does not apply
                full = encode(Event(type=name, source=self.source, payload=payload, key=key(payload),
                                    id=event_id, time=now))
                record = OutboxRecord(event_id, name, topic, full.key, full.value,
                                      json.dumps([[n, v.decode()] for n, v in full.headers]))
            records.append(record)
        return records


def _snapshot_payload(cls, p: Professional, cpts_ids: list[str]):
    return cls.model_validate({
        "idnps": p.idnps, "civility": p.civility, "family_name": p.family_name, "given_name": p.given_name,
        "profession_code": p.profession_code, "profession_label": p.profession_label,
        "specialty_code": p.specialty_code, "specialty_label": p.specialty_label,
        "commune_insee": p.commune_insee, "cpts_ids": cpts_ids, "active": True,
    })


def _sites_payload(p: Professional) -> ProfessionalSitesChanged:
    return ProfessionalSitesChanged.model_validate({
        "idnps": p.idnps,
        "sites": [{"site_id": s[0], "name": s[1], "commune_insee": s[2], "postcode": s[3], "lat": s[4],
                   "lon": s[5], "practice_mode": s[6], "address": s[7], "phone": s[8]} for s in p.event_sites()],
    })


def _by_site(site: tuple) -> str:
    return site[0]


# --- the import ---------------------------------------------------------------------------------------------

class BulkUpsert:
    """`upsert(dialect, table).on_conflict_do_update(...)` of many rows given as a list of dicts.

    SQLite: one executemany. PostgreSQL: one statement whose rows travel as one array per column
    (`INSERT ... SELECT unnest(...)`), several times faster there than an executemany of as many rows.
    """

    def __init__(self, dialect: str, table: sa.Table, columns: Sequence[str], *, update: Sequence[str] = (),
                 extra_set: dict | None = None) -> None:
        self.columns = list(columns)
        self.postgresql = dialect == "postgresql"
        stmt = upsert(dialect, table)
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import ARRAY

            stmt = stmt.from_select(self.columns, sa.select(*[
                sa.func.unnest(sa.bindparam(name, type_=ARRAY(table.c[name].type))).label(name)
                for name in self.columns]))
        keys = [c.name for c in table.primary_key.columns]
        set_ = {name: stmt.excluded[name] for name in update}
        for name, source in (extra_set or {}).items():
            set_[name] = stmt.excluded[source]
        self.statement = stmt.on_conflict_do_update(index_elements=keys, set_=set_) if set_ else \
            stmt.on_conflict_do_nothing(index_elements=keys)

    async def __call__(self, connection, rows: list[dict]) -> None:
        if not rows:
            return
        if self.postgresql:
            await connection.execute(self.statement, {name: [r[name] for r in rows] for name in self.columns})
        else:
            await connection.execute(self.statement, rows)


class OutboxInsert:
    """The outbox rows of a chunk in one go: the driver's executemany of prepared tuples (SQLite), or one
    `INSERT ... SELECT unnest(...)` (PostgreSQL). Written in the transaction of the chunk, as `add_events`
    does."""

    COLUMNS = ("event_id", "event_type", "topic", "key", "value", "headers", "created_at")

    def __init__(self, table: sa.Table, dialect: sa.Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import ARRAY

            def array(name, item_type):
                return sa.func.unnest(sa.bindparam(name, type_=ARRAY(item_type)))

            self.statement = sa.insert(table).from_select(list(self.COLUMNS), sa.select(
                array("event_id", sa.String), array("event_type", sa.String), array("topic", sa.String),
                array("key", sa.LargeBinary), array("value", sa.LargeBinary),
                sa.cast(array("headers", sa.Text), sa.JSON),
                sa.bindparam("created_at", type_=table.c.created_at.type),
            ))
        else:
            self.sql = sa.insert(table).compile(dialect=dialect, column_keys=list(self.COLUMNS),
                                                for_executemany=True).string
            created = table.c.created_at.type.dialect_impl(dialect)
            self._created = created.bind_processor(dialect) or (lambda value: value)

    async def __call__(self, connection, records: Sequence[OutboxRecord], now: datetime) -> None:
        if not records:
            return
        if self.postgresql:
            await connection.execute(self.statement, {
                "event_id": [r.event_id for r in records], "event_type": [r.event_type for r in records],
                "topic": [r.topic for r in records], "key": [r.key for r in records],
                "value": [r.value for r in records], "headers": [r.headers for r in records],
                "created_at": now,
            })
        else:
            created = self._created(now)
            await connection.exec_driver_sql(self.sql, [
                (r.event_id, r.event_type, r.topic, r.key, r.value, r.headers, created) for r in records])


class _Statements:
    def __init__(self, database: Database) -> None:
        dialect = database.dialect
        p, s, a = professional_table.c, site_table.c, activity_table.c
        site_columns = ("site_id", "name", "address", "postcode", "commune_insee", "phone", "lat", "lon")
        self.site = BulkUpsert(dialect, site_table, site_columns, update=site_columns[1:])
        self.professional = BulkUpsert(
            dialect, professional_table,
            ("idnps", *SNAPSHOT_FIELDS, "active", "source", "content_hash", "registered_at"),
            update=(*SNAPSHOT_FIELDS, "active", "source", "content_hash"),
            extra_set={"updated_at": "registered_at"},
        )
        self.activity = BulkUpsert(dialect, activity_table,
                                   ("idnps", "site_id", "practice_mode", "sector_code"),
                                   update=("practice_mode", "sector_code"))
        # The ids of a chunk travel as ONE parameter (a JSON array on SQLite, an array on PostgreSQL).
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            unnest = sa.func.unnest(sa.bindparam("ids", type_=ARRAY(sa.String)))
            ids = sa.select(unnest.column_valued("idnps"))
            self.ids_param = list
        else:
            each = sa.func.json_each(sa.bindparam("ids", type_=sa.String)).table_valued("value")
            ids = sa.select(each.c.value)
            self.ids_param = json.dumps
        self.seen = upsert(dialect, seen_table).from_select(["idnps"], ids.where(sa.true())) \
            .on_conflict_do_nothing(index_elements=["idnps"])
        self.existing = sa.select(
            p.idnps, p.content_hash, p.active, p.source, *[p[n] for n in SNAPSHOT_FIELDS],
        ).where(p.idnps.in_(ids))
        self.existing_sites = (
            sa.select(a.idnps, a.site_id, s.name, s.commune_insee, s.postcode, s.lat, s.lon, a.practice_mode,
                      s.address, s.phone)
            .select_from(activity_table.join(site_table, a.site_id == s.site_id))
            .where(a.idnps.in_(ids))
        )
        m = membership_table.c
        self.memberships = sa.select(m.idnps, m.cpts_id).where(m.idnps.in_(ids), m.status != "left") \
            .order_by(m.idnps, m.cpts_id)
        self.delete_activities = sa.delete(activity_table).where(a.idnps.in_(ids))
        self.deactivate = sa.update(professional_table).where(p.idnps.in_(ids), p.active.is_(True)) \
            .values(active=False, updated_at=sa.bindparam("now", type_=p.updated_at.type))
        self.outbox = OutboxInsert(database.tables.outbox, database.engine.dialect)

    def ids(self, ids: Sequence[str]) -> dict:
        return {"ids": self.ids_param(list(ids))}


@contextmanager
def _quiet_gc():
    """Fewer collections while millions of short-lived rows go by (none of them forms a cycle)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), threshold[1], max(threshold[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@dataclass
class Plan:
    """What one chunk writes, ready for its transaction."""

    seen: list[str]
    now: datetime | None = None
    sites: list[dict] = field(default_factory=list)
    professionals: list[dict] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)
    activities: list[dict] = field(default_factory=list)
    outbox: list[OutboxRecord] = field(default_factory=list)


class RppsImporter:
    def __init__(self, database: Database, *, departements: Iterable[str] = (),
                 professions: Iterable[str] = (), full: bool | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None) -> None:
        self.database = database
        self.departements = frozenset(normalise_departement(d) for d in departements if d.strip())
        self.professions = frozenset(p.strip() for p in professions if p.strip())
        self.full = (not self.departements and not self.professions) if full is None else full
        self.chunk_size = chunk_size
        self.progress = progress
        self.locator = Locator()
        self.summary = ImportSummary(full=self.full)
        self.rejected: list[RejectedLine] = []
        self.statements = _Statements(database)
        self.encoder = OutboxEncoder()
        self._pending: asyncio.Future | None = None
        self.connection = None  # the connection that writes (one transaction per chunk)
        self.reader = None  # PostgreSQL: the connection that plans the next chunk meanwhile

    async def run(self, path: str | Path) -> ImportResult:
        started = time.perf_counter()
        path = Path(path)
        total = path.stat().st_size
        progress = self.progress
        scanned = (lambda done: progress("scan", done, total, 0)) if progress else None
        held_ids = scan_reappearing(path, progress=scanned)
        extract = RppsExtract(path)
        with _quiet_gc():
            async with AsyncExitStack() as stack:
                self.connection = connection = await stack.enter_async_context(self.database.engine.connect())
                if self.database.dialect == "postgresql":
                    self.reader = await stack.enter_async_context(self.database.engine.connect())
                restore = await self._tune(connection)
                if self.full:
                    async with connection.begin():
                        await connection.run_sync(lambda c: seen_table.drop(c, checkfirst=True))
                        await connection.run_sync(lambda c: seen_table.create(c))
                try:
                    await self._import_rows(extract, held_ids)
                    if self.full:
                        await self._deactivate_absent()
                finally:
                    if self._pending is not None:  # an error while reading: let the chunk in flight finish
                        await asyncio.gather(self._pending, return_exceptions=True)
                        self._pending = None
                    if self.full:
                        async with connection.begin():
                            await connection.run_sync(lambda c: seen_table.drop(c, checkfirst=True))
                    for statement in restore:
                        await connection.exec_driver_sql(statement)
                    await connection.commit()
                    self.reader = None
        self.summary.encoding = extract.encoding
        self.summary.seconds = time.perf_counter() - started
        if progress:
            progress("import", total, total, self.summary.rows_read)
        return ImportResult(summary=self.summary, rejected=self.rejected)

    async def _tune(self, connection) -> list[str]:
        """SQLite: a larger page cache, fewer WAL checkpoints on the import's connection (restored after)."""
        if self.database.dialect != "sqlite":
            return []
        restore = []
        pragmas = (("cache_size", -SQLITE_CACHE_KIB), ("wal_autocheckpoint", SQLITE_CHECKPOINT_PAGES))
        for pragma, value in pragmas:
            previous = (await connection.exec_driver_sql(f"PRAGMA {pragma}")).scalar()
            await connection.exec_driver_sql(f"PRAGMA {pragma}={value}")
            restore.append(f"PRAGMA {pragma}={previous}")
        await connection.commit()
        return restore

    async def _import_rows(self, extract: RppsExtract, held_ids: set[str]) -> None:
        summary = self.summary
        professions, departements = self.professions, self.departements
        locate = self.locator.locate
        held: dict[str, Group] = {}
        chunk: list[Group] = []
        protected: list[str] = []
        group: Group | None = None
        total = extract.total_bytes
        chunk_size = self.chunk_size

        for item in extract:
            summary.rows_read += 1
            if type(item) is not RppsRow:
                if type(item) is SkippedLine:
                    summary.skipped_out_of_territory += 1
                else:
                    summary.rejected += 1
                    self.rejected.append(item)
                    if item.idnps:
                        protected.append(item.idnps)
                continue
            row: RppsRow = item
            if professions and row.profession_code not in professions:
                summary.skipped_other_profession += 1
                continue
            if not row.site_id:
                summary.skipped_without_site += 1
                continue
            location = locate(row)
            if departements and location.departement not in departements:
                summary.skipped_out_of_territory += 1
                continue
            idnps = row.idnps
            if idnps in held_ids:
                later = held.get(idnps)
                if later is None:
                    held[idnps] = Group(idnps, [row], [location])
                else:
                    later.rows.append(row)
                    later.locations.append(location)
                continue
            if group is not None and group.idnps == idnps:
                group.rows.append(row)
                group.locations.append(location)
                continue
            if group is not None:
                chunk.append(group.seal())
                if len(chunk) >= chunk_size:
                    await self._submit(chunk, protected)
                    chunk, protected = [], []
                    if self.progress:
                        self.progress("import", extract.bytes_read, total, summary.rows_read)
                elif self._pending is not None and not len(chunk) % 250:
                    await asyncio.sleep(0)  # let the chunk being written go on (its statement has come back)
            group = Group(idnps, [row], [location])
        if group is not None:
            chunk.append(group.seal())
        for later in held.values():
            chunk.append(later.seal())
            if len(chunk) >= chunk_size:
                await self._submit(chunk, protected)
                chunk, protected = [], []
        if chunk or protected:
            await self._submit(chunk, protected)
        await self._drain()

    async def _submit(self, chunk: list[Group], protected: list[str]) -> None:
        """Write a chunk: plan it (read what exists, build, encode), then apply the plan in one transaction.

        On SQLite both happen in one transaction, one chunk after the other: the database works in this
        process, and writing while parsing would only make both wait. On PostgreSQL the server works in its
        own process: the next chunk is read and planned (on a second connection) while the server applies
        the previous plan. Chunks never share a professional, so a plan never depends on the one being
        applied.
        """
        if self.reader is None:
            async with self.connection.begin():
                plan = await self._plan(self.connection, chunk, protected)
                await self._apply(self.connection, plan)
            return
        async with self.reader.begin():
            plan = await self._plan(self.reader, chunk, protected)
        await self._drain()
        self._pending = asyncio.ensure_future(self._apply_in_transaction(plan))

    async def _apply_in_transaction(self, plan: Plan) -> None:
        async with self.connection.begin():
            await self._apply(self.connection, plan)

    async def _drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def _plan(self, connection, chunk: list[Group], protected: list[str]) -> Plan:
        st, summary = self.statements, self.summary
        ids = [g.idnps for g in chunk]
        plan = Plan(seen=ids + protected if self.full else [])
        if not ids:
            return plan
        existing = {r.idnps: r for r in (await connection.execute(st.existing, st.ids(ids))).all()}
        new: list[Professional] = []
        changed: list[Professional] = []
        for i, g in enumerate(chunk):
            row = existing.get(g.idnps)
            if row is None:
                new.append(build_professional(g))
            elif row.content_hash == g.content_hash and row.active and row.source == SOURCE:
                summary.unchanged += 1
            else:
                changed.append(build_professional(g))
            if not i % YIELD_EVERY:
                # On PostgreSQL, let the plan being applied send its next statement as soon as it may.
                await asyncio.sleep(0)
        if not new and not changed:
            return plan
        plan.now = now = datetime.now(UTC)
        plan.changed_ids = changed_ids = [p.idnps for p in changed]
        old_sites: dict[str, list[tuple]] = {}
        cpts_ids: dict[str, list[str]] = {}
        if changed_ids:
            for r in (await connection.execute(st.existing_sites, st.ids(changed_ids))).all():
                old_sites.setdefault(r.idnps, []).append(tuple(r)[1:])
            for r in (await connection.execute(st.memberships, st.ids(changed_ids))).all():
                cpts_ids.setdefault(r.idnps, []).append(r.cpts_id)

        payloads: list[tuple[EventPayload, str]] = []
        for i, p in enumerate(new):
            subject = f"professional/{p.idnps}"
            payloads.append((_snapshot_payload(ProfessionalRegistered, p, []), subject))
            payloads.append((_sites_payload(p), subject))
            if not i % YIELD_EVERY:
                await asyncio.sleep(0)
        for p in changed:
            subject = f"professional/{p.idnps}"
            row = existing[p.idnps]
            if not row.active or tuple(row)[4:] != p.snapshot():
                snapshot = _snapshot_payload(ProfessionalUpdated, p, cpts_ids.get(p.idnps, []))
                payloads.append((snapshot, subject))
            if sorted(old_sites.get(p.idnps, []), key=_by_site) != sorted(p.event_sites(), key=_by_site):
                payloads.append((_sites_payload(p), subject))
        plan.outbox = []
        event_ids = new_event_ids(len(payloads), now)
        for start in range(0, len(payloads), 2 * YIELD_EVERY):
            await asyncio.sleep(0)
            end = start + 2 * YIELD_EVERY
            plan.outbox.extend(self.encoder.encode(payloads[start:end], now, event_ids[start:end]))
        await asyncio.sleep(0)

        written = (*new, *changed)
        sites: dict[str, Site] = {}
        for p in written:
            for s in p.sites:
                sites.setdefault(s.site_id, s)
        plan.sites = [
            {"site_id": s.site_id, "name": s.name, "address": s.address, "postcode": s.postcode,
             "commune_insee": s.commune_insee, "phone": s.phone, "lat": s.lat, "lon": s.lon}
            for s in sites.values()
        ]
        plan.professionals = [
            {"idnps": p.idnps, "civility": p.civility, "family_name": p.family_name,
             "given_name": p.given_name, "profession_code": p.profession_code,
             "profession_label": p.profession_label, "specialty_code": p.specialty_code,
             "specialty_label": p.specialty_label, "commune_insee": p.commune_insee, "active": True,
             "source": SOURCE, "content_hash": p.content_hash, "registered_at": now}
            for p in written
        ]
        plan.activities = [
            {"idnps": p.idnps, "site_id": site_id, "practice_mode": mode, "sector_code": sector}
            for p in written for site_id, mode, sector in p.activities
        ]
        summary.created += len(new)
        summary.updated += len(changed)
        summary.events += len(payloads)
        return plan

    async def _apply(self, connection, plan: Plan) -> None:
        st = self.statements
        if plan.professionals:
            await st.site(connection, plan.sites)
            await st.professional(connection, plan.professionals)
            if plan.changed_ids:
                await connection.execute(st.delete_activities, st.ids(plan.changed_ids))
            await st.activity(connection, plan.activities)
            await st.outbox(connection, plan.outbox, plan.now)
        if plan.seen:
            await connection.execute(st.seen, st.ids(plan.seen))

    async def _deactivate_absent(self) -> None:
        connection, st, summary = self.connection, self.statements, self.summary
        p = professional_table.c
        query = sa.select(p.idnps).where(
            p.source == SOURCE, p.active.is_(True),
            ~sa.exists().where(seen_table.c.idnps == p.idnps),
        ).order_by(p.idnps)
        if self.professions:
            query = query.where(p.profession_code.in_(sorted(self.professions)))
        if self.departements:
            query = query.where(sa.or_(*[p.commune_insee.like(f"{d}%") for d in sorted(self.departements)]))
        async with connection.begin():
            absent = list((await connection.execute(query)).scalars())
        for start in range(0, len(absent), self.chunk_size):
            ids = absent[start:start + self.chunk_size]
            now = datetime.now(UTC)
            async with connection.begin():
                await connection.execute(st.deactivate, {**st.ids(ids), "now": now})
                payloads = [(ProfessionalDeactivated(idnps=i, reason=DEACTIVATION_REASON),
                             f"professional/{i}") for i in ids]
                await st.outbox(connection, self.encoder.encode(payloads, now), now)
            summary.deactivated += len(ids)
            summary.events += len(ids)


async def import_rpps(database: Database, path: str | Path, *, departements: Iterable[str] = (),
                      professions: Iterable[str] = (), full: bool | None = None,
                      chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None) -> ImportResult:
    """Import an RPPS extract into the registry's database (see the module's documentation)."""
    importer = RppsImporter(database, departements=departements, professions=professions, full=full,
                            chunk_size=chunk_size, progress=progress)
    return await importer.run(path)


async def import_into_registry(path: str | Path, *, database_url: str | None = None, migrate: bool = True,
                               **options) -> ImportResult:
    """The import as `cpts registry import-rpps` runs it: the registry's database from its settings
    (`CPTS_REGISTRY_DATABASE_URL`...), migrated first, then `import_rpps(..., **options)`."""
    from cpts_platform.migrations import upgrade

    from cpts_registry.app import service
    from cpts_registry.settings import Settings

    database = Database(database_url or Settings().database_url, service.tables)
    try:
        if migrate:
            await upgrade(database, service.migrations, service.metadata)
        return await import_rpps(database, path, **options)
    finally:
        await database.dispose()


def write_rejected_report(rejected: Iterable[RejectedLine], path: str | Path) -> int:
    """The rejected lines as `line<TAB>reason`, one a line (no value of the file, only column names)."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as f:
        f.write("line\treason\n")
        for item in rejected:
            f.write(f"{item.line_no}\t{item.reason}\n")
            count += 1
    return count
