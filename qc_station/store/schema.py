"""The store's schema, declared as ordered migrations (sqlite-utils ``Migrations``).

Every table is STRICT. ``inspections`` and ``audit`` are append-only: triggers refuse UPDATE
and DELETE, so a result, once acknowledged, can only be added to, never changed (certificates
rely on that). Image files are tracked in ``images``, the one table retention may prune.

Add a migration by appending a new ``@MIGRATIONS()`` function; never edit an applied one.
``PRAGMA user_version`` mirrors the number of applied migrations (:data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("qc_station")

ROLES = ("operator", "supervisor", "coordinator", "admin")
VERDICTS = ("pass", "fail", "unusable")
IMAGE_KINDS = ("frame", "annotated", "thumb")


def _append_only(db: Database, table: str) -> None:
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
        )


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    """Stations, batches, inspections (+ reasons), images, users, tokens, audit log."""
    verdicts = ", ".join(f"'{v}'" for v in VERDICTS)
    roles = ", ".join(f"'{r}'" for r in ROLES)
    kinds = ", ".join(f"'{k}'" for k in IMAGE_KINDS)
    db.executescript(
        f"""
        CREATE TABLE stations (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            workshop TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        ) STRICT;

        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            station_id TEXT NOT NULL REFERENCES stations(id),
            lot_id TEXT NOT NULL,
            spec_name TEXT NOT NULL,
            spec_version INTEGER NOT NULL,
            spec_id TEXT NOT NULL,
            workshop TEXT NOT NULL DEFAULT '',
            operator TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT '',
            opened_at TEXT NOT NULL,
            closed_at TEXT
        ) STRICT;
        -- at most one open batch per station, enforced by the database itself
        CREATE UNIQUE INDEX batches_one_open ON batches(station_id) WHERE closed_at IS NULL;
        CREATE INDEX batches_lot ON batches(lot_id);

        CREATE TABLE inspections (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            station_id TEXT NOT NULL REFERENCES stations(id),
            batch_id INTEGER REFERENCES batches(id),
            ts TEXT NOT NULL,
            ts_epoch REAL NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ({verdicts})),
            reason_codes TEXT NOT NULL DEFAULT '[]',
            reasons TEXT NOT NULL DEFAULT '[]',
            measurements TEXT,
            width_mm REAL,
            height_mm REAL,
            defects TEXT NOT NULL DEFAULT '[]',
            anomaly_score REAL,
            quality TEXT,
            spec_name TEXT,
            spec_version INTEGER,
            spec_id TEXT,
            calibration_id TEXT,
            model_sha256 TEXT,
            software_version TEXT,
            timing_ms TEXT NOT NULL DEFAULT '{{}}',
            pipeline_ms REAL,
            frame_seq INTEGER,
            frame_ts REAL,
            frame_source TEXT,
            frame_meta TEXT NOT NULL DEFAULT '{{}}',
            image_name TEXT,
            trigger TEXT NOT NULL DEFAULT '',
            image_note TEXT NOT NULL DEFAULT ''
        ) STRICT;
        CREATE INDEX inspections_batch ON inspections(batch_id, id);
        CREATE INDEX inspections_time ON inspections(ts_epoch);
        CREATE INDEX inspections_verdict ON inspections(verdict, id);

        CREATE TABLE inspection_reasons (
            inspection_id INTEGER NOT NULL REFERENCES inspections(id),
            code TEXT NOT NULL,
            severity TEXT NOT NULL,
            PRIMARY KEY (inspection_id, code)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX inspection_reasons_code ON inspection_reasons(code, inspection_id);

        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            inspection_id INTEGER NOT NULL REFERENCES inspections(id),
            kind TEXT NOT NULL CHECK (kind IN ({kinds})),
            path TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            created_epoch REAL NOT NULL,
            UNIQUE (inspection_id, kind)
        ) STRICT;
        CREATE INDEX images_age ON images(verdict, created_epoch);

        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ({roles})),
            created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        ) STRICT;

        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            token_sha256 TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        ) STRICT;

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{{}}'
        ) STRICT;
        """
    )
    _append_only(db, "inspections")
    _append_only(db, "inspection_reasons")
    _append_only(db, "audit")


SCHEMA_VERSION = len(MIGRATIONS._migrations)


def migrate(db: Database) -> int:
    """Apply pending migrations; returns the schema version now in the file."""
    MIGRATIONS.apply(db)
    version = len(MIGRATIONS.applied(db))
    db.execute(f"PRAGMA user_version = {version}")
    return version
