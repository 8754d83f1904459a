"""The station's store: one SQLite file (WAL, synchronous=FULL) + image files beside it.

Writes go through one connection under a lock (SQLite has one writer anyway); reads use a
connection per thread, so pages and the API read while the station writes. ``record_inspection``
returns only after the row is durably committed: what it acknowledges survives a ``kill -9``
or a power cut.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from qc_station.errors import AuthError, ConflictError, NotFoundError, StorageError
from qc_station.results import PLAIN_WORDS, InspectionResult
from qc_station.store.images import DiskFullError, ImageFiles, ImagePolicy, WrittenImage, free_mb
from qc_station.store.models import (
    AuditEntry,
    BatchRecord,
    FrameInfo,
    ImageRef,
    InspectionRecord,
    Page,
    StationRecord,
    UserRecord,
)
from qc_station.store.schema import ROLES, SCHEMA_VERSION, migrate
from qc_station.store.scope import Scope

DB_NAME = "qc.sqlite3"
MAX_PAGE = 500


class ImagesNotSavedError(StorageError):
    """The inspection row was stored but its images were not (disk full); ``record`` is it."""

    def __init__(self, message: str, record: InspectionRecord) -> None:
        super().__init__(message)
        self.record = record


def utc_now_iso(epoch: float | None = None) -> str:
    t = datetime.fromtimestamp(epoch if epoch is not None else time.time(), UTC)
    return t.isoformat(timespec="milliseconds")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def hash_token(token: str) -> str:
    """Tokens are 256-bit random secrets, so a plain SHA-256 is enough (no password KDF needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """Open (creating and migrating if needed) the store in ``data_dir``."""

    def __init__(self, data_dir: str | Path, *, policy: ImagePolicy | None = None) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data folder {self.data_dir}: {exc}") from None
        self.path = self.data_dir / DB_NAME
        self.policy = policy or ImagePolicy()
        self.images = ImageFiles(self.data_dir / "images", self.policy)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            conn = _connect(self.path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"{self.path}: cannot switch to WAL journal (got {mode})")
            self.db = Database(conn)
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {found}, newer than this software "
                    f"({SCHEMA_VERSION}); upgrade qc-station"
                )
            with self._lock:
                self.schema_version = migrate(self.db)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open the store {self.path}: {exc}") from None

    # -- connections ------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query, on this thread's reader connection."""
        return self._reader().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """``ok`` when SQLite finds the file sound."""
        return self.query("PRAGMA integrity_check")[0][0]

    # -- stations -----------------------------------------------------------------------
    def ensure_station(self, station_id: str, name: str | None = None, workshop: str = "") -> StationRecord:
        with self._lock, self.db.atomic():
            self.db.execute(
                "INSERT INTO stations (id, name, workshop, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, workshop = excluded.workshop",
                (station_id, name or station_id, workshop, utc_now_iso()),
            )
        return self.get_station(station_id)

    def get_station(self, station_id: str) -> StationRecord:
        rows = self.query("SELECT * FROM stations WHERE id = ?", (station_id,))
        if not rows:
            raise NotFoundError(f"no station {station_id!r}")
        return StationRecord(**dict(rows[0]))

    # -- audit --------------------------------------------------------------------------
    def _audit(self, actor: str, action: str, target: str = "", detail: dict | None = None) -> None:
        self.db.execute(
            "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (utc_now_iso(), actor, action, target, json.dumps(detail or {}, sort_keys=True)),
        )

    def audit(self, actor: str, action: str, target: str = "", detail: dict | None = None) -> None:
        """Append one entry to the audit log (it can never be changed or deleted)."""
        with self._lock, self.db.atomic():
            self._audit(actor, action, target, detail)

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        rows = self.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (min(limit, MAX_PAGE),))
        return [AuditEntry(**{**dict(r), "detail": json.loads(r["detail"])}) for r in rows]

    # -- batches ------------------------------------------------------------------------
    def open_batch(
        self,
        station_id: str,
        lot_id: str,
        *,
        spec_name: str,
        spec_version: int,
        spec_id: str,
        workshop: str = "",
        operator: str = "",
        note: str = "",
        actor: str = "system",
    ) -> BatchRecord:
        """Open a batch; :class:`ConflictError` if this station already has an open one."""
        lot_id = lot_id.strip()
        if not lot_id:
            raise StorageError("a batch needs a non-empty lot id")
        self.get_station(station_id)
        with self._lock:
            current = self.open_batch_of(station_id)
            if current is not None:
                raise ConflictError(
                    f"station {station_id} already has batch {current.id} (lot {current.lot_id}) open; "
                    "close it first"
                )
            try:
                with self.db.atomic():
                    cur = self.db.execute(
                        "INSERT INTO batches (station_id, lot_id, spec_name, spec_version, spec_id, "
                        "workshop, operator, note, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (station_id, lot_id, spec_name, spec_version, spec_id, workshop, operator, note,
                         utc_now_iso()),
                    )
                    batch_id = cur.lastrowid
                    self._audit(actor, "batch.open", f"batch:{batch_id}", {"lot_id": lot_id})
            except sqlite3.IntegrityError:
                raise ConflictError(f"station {station_id} already has an open batch") from None
        return self.get_batch(batch_id)

    def close_batch(self, batch_id: int, *, actor: str = "system") -> BatchRecord:
        """Close an open batch; :class:`ConflictError` if it is already closed."""
        with self._lock:
            batch = self.get_batch(batch_id)
            if not batch.is_open:
                raise ConflictError(f"batch {batch_id} was already closed at {batch.closed_at}")
            with self.db.atomic():
                self.db.execute("UPDATE batches SET closed_at = ? WHERE id = ?", (utc_now_iso(), batch_id))
                self._audit(actor, "batch.close", f"batch:{batch_id}", {"lot_id": batch.lot_id})
        return self.get_batch(batch_id)

    def get_batch(self, batch_id: int) -> BatchRecord:
        rows = self.query("SELECT * FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            raise NotFoundError(f"no batch with id {batch_id}")
        return BatchRecord(**dict(rows[0]))

    def open_batch_of(self, station_id: str) -> BatchRecord | None:
        rows = self.query("SELECT * FROM batches WHERE station_id = ? AND closed_at IS NULL", (station_id,))
        return BatchRecord(**dict(rows[0])) if rows else None

    def list_batches(
        self,
        *,
        station_id: str | None = None,
        is_open: bool | None = None,
        lot_id: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> Page[BatchRecord]:
        where, params = [], []
        if station_id is not None:
            where.append("station_id = ?")
            params.append(station_id)
        if is_open is not None:
            where.append("closed_at IS NULL" if is_open else "closed_at IS NOT NULL")
        if lot_id is not None:
            where.append("lot_id = ?")
            params.append(lot_id)
        return self._page("batches", where, params, limit, before_id, lambda r: BatchRecord(**dict(r)))

    def _page(self, table, where, params, limit, before_id, build) -> Page:
        limit = max(1, min(int(limit), MAX_PAGE))
        cond = " AND ".join(where) or "1"
        total = self.query(f"SELECT COUNT(*) FROM {table} WHERE {cond}", params)[0][0]
        page_cond = cond + (" AND id < ?" if before_id is not None else "")
        page_params = [*params, before_id] if before_id is not None else list(params)
        rows = self.query(
            f"SELECT * FROM {table} WHERE {page_cond} ORDER BY id DESC LIMIT ?", [*page_params, limit + 1]
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [build(r) for r in rows]
        return Page(items=items, total=total, limit=limit, next_before_id=rows[-1]["id"] if more else None)

    # -- inspections --------------------------------------------------------------------
    def record_inspection(
        self,
        result: InspectionResult,
        *,
        station_id: str,
        batch_id: int | str | None = "open",
        frame: FrameInfo | None = None,
        frame_bgr: np.ndarray | None = None,
        annotated_bgr: np.ndarray | None = None,
        trigger: str = "",
    ) -> InspectionRecord:
        """Store one inspection: images first (atomically), then the row, committed durably.

        ``batch_id="open"`` files it under the station's open batch (or none). If the images
        cannot be written (disk full even after pruning old pass images) the row is still
        committed and :class:`ImagesNotSavedError` (a StorageError carrying the record) is raised.
        """
        now = time.time()
        uid = uuid.uuid4().hex
        if batch_id == "open":
            open_batch = self.open_batch_of(station_id)
            batch_id = open_batch.id if open_batch else None
        image_note = ""
        written: list[WrittenImage] = []
        if frame_bgr is not None or annotated_bgr is not None:
            if not self.images.has_room():
                self.prune_for_space()
            if self.images.has_room():
                try:
                    written = self.images.write_set(uid, result.verdict, frame_bgr, annotated_bgr, now)
                except DiskFullError as exc:
                    image_note = f"images not saved: {exc}"
            else:
                image_note = (
                    f"images not saved: only {free_mb(self.images.root):.0f} MB free on the data disk "
                    f"(guard {self.policy.min_free_mb:.0f} MB) after removing old pass images"
                )
        row = self._row(uid, now, result, station_id, batch_id, frame or FrameInfo(), trigger, image_note)
        try:
            with self._lock, self.db.atomic():
                cur = self.db.execute(
                    f"INSERT INTO inspections ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
                insp_id = cur.lastrowid
                self.db.conn.executemany(
                    "INSERT INTO inspection_reasons (inspection_id, code, severity) VALUES (?, ?, ?)",
                    list({r.code: (insp_id, r.code, r.severity) for r in result.reasons}.values()),
                )
                self.db.conn.executemany(
                    "INSERT INTO images (inspection_id, kind, path, bytes, verdict, created_epoch) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(insp_id, w.kind, w.rel_path, w.bytes, result.verdict, now) for w in written],
                )
        except sqlite3.IntegrityError as exc:
            self.images.remove([w.rel_path for w in written])
            raise StorageError(f"inspection not stored: {exc} (is batch {batch_id} real?)") from None
        except sqlite3.OperationalError as exc:
            self.images.remove([w.rel_path for w in written])
            raise StorageError(
                f"inspection NOT stored: {exc}. Free space on {self.data_dir} or check the disk"
            ) from None
        record = self.get_inspection(insp_id)
        if image_note:
            raise ImagesNotSavedError(f"inspection {insp_id} stored without its images: {image_note}", record)
        return record

    @staticmethod
    def _row(
        uid, now, result: InspectionResult, station_id, batch_id, frame: FrameInfo, trigger, note
    ) -> dict:
        m = result.measurements
        p = result.provenance
        dump = lambda items: json.dumps([i.model_dump(mode="json") for i in items])  # noqa: E731
        return {
            "uid": uid,
            "station_id": station_id,
            "batch_id": batch_id,
            "ts": utc_now_iso(now),
            "ts_epoch": now,
            "verdict": result.verdict,
            "reason_codes": json.dumps(result.reason_codes),
            "reasons": dump(result.reasons),
            "measurements": m.model_dump_json() if m else None,
            "width_mm": m.width_mm if m else None,
            "height_mm": m.height_mm if m else None,
            "defects": dump(result.defects),
            "anomaly_score": result.anomaly_score,
            "quality": result.quality.model_dump_json() if result.quality else None,
            "spec_name": p.spec_name if p else None,
            "spec_version": p.spec_version if p else None,
            "spec_id": p.spec_id if p else None,
            "calibration_id": p.calibration_id if p else None,
            "model_sha256": p.model_sha256 if p else None,
            "software_version": p.software_version if p else None,
            "timing_ms": json.dumps(result.timing_ms),
            "pipeline_ms": result.timing_ms.get("total", sum(result.timing_ms.values()) or None),
            "frame_seq": frame.seq,
            "frame_ts": frame.timestamp,
            "frame_source": frame.source,
            "frame_meta": json.dumps(frame.metadata, default=str),
            "image_name": result.image,
            "trigger": trigger,
            "image_note": note,
        }

    def _build_inspection(self, r: sqlite3.Row, images: list[sqlite3.Row]) -> InspectionRecord:
        codes = json.loads(r["reason_codes"])
        return InspectionRecord(
            id=r["id"],
            uid=r["uid"],
            station_id=r["station_id"],
            batch_id=r["batch_id"],
            ts=r["ts"],
            ts_epoch=r["ts_epoch"],
            verdict=r["verdict"],
            reason_codes=codes,
            reasons=json.loads(r["reasons"]),
            plain_words=[PLAIN_WORDS.get(c, c) for c in codes],
            measurements=json.loads(r["measurements"]) if r["measurements"] else None,
            defects=json.loads(r["defects"]),
            anomaly_score=r["anomaly_score"],
            quality=json.loads(r["quality"]) if r["quality"] else None,
            spec_name=r["spec_name"],
            spec_version=r["spec_version"],
            spec_id=r["spec_id"],
            calibration_id=r["calibration_id"],
            model_sha256=r["model_sha256"],
            software_version=r["software_version"],
            timing_ms=json.loads(r["timing_ms"]),
            pipeline_ms=r["pipeline_ms"],
            frame=FrameInfo(
                seq=r["frame_seq"], timestamp=r["frame_ts"], source=r["frame_source"],
                metadata=json.loads(r["frame_meta"]),
            ),
            image_name=r["image_name"],
            trigger=r["trigger"],
            image_note=r["image_note"],
            images=[
                ImageRef(
                    kind=i["kind"], url=f"/api/inspections/{r['id']}/image/{i['kind']}", bytes=i["bytes"]
                )
                for i in images
            ],
        )

    def get_inspection(self, inspection_id: int) -> InspectionRecord:
        rows = self.query("SELECT * FROM inspections WHERE id = ?", (inspection_id,))
        if not rows:
            raise NotFoundError(f"no inspection with id {inspection_id}")
        imgs = self.query("SELECT * FROM images WHERE inspection_id = ? ORDER BY id", (inspection_id,))
        return self._build_inspection(rows[0], imgs)

    def list_inspections(
        self,
        *,
        station_id: str | None = None,
        batch_id: int | None = None,
        verdict: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> Page[InspectionRecord]:
        """Newest first. Times are Unix seconds; ``reason`` is a reason code."""
        cond, params = Scope(batch_id=batch_id, station_id=station_id, since=since, until=until).where("i")
        where = [cond]
        if verdict is not None:
            where.append("i.verdict = ?")
            params.append(verdict)
        if reason is not None:
            where.append("i.id IN (SELECT inspection_id FROM inspection_reasons WHERE code = ?)")
            params.append(reason)
        if after_id is not None:
            where.append("i.id > ?")
            params.append(after_id)
        page = self._page("inspections i", where, params, limit, before_id, lambda r: r)
        ids = [r["id"] for r in page.items]
        imgs: dict[int, list] = {i: [] for i in ids}
        if ids:
            marks = ",".join("?" * len(ids))
            for im in self.query(f"SELECT * FROM images WHERE inspection_id IN ({marks}) ORDER BY id", ids):
                imgs[im["inspection_id"]].append(im)
        items = [self._build_inspection(r, imgs[r["id"]]) for r in page.items]
        return Page[InspectionRecord](
            items=items, total=page.total, limit=page.limit, next_before_id=page.next_before_id
        )

    def image_file(self, inspection_id: int, kind: str) -> Path:
        """The file of one image of an inspection; :class:`NotFoundError` if there is none (any more)."""
        self.get_inspection(inspection_id)
        rows = self.query(
            "SELECT path FROM images WHERE inspection_id = ? AND kind = ?", (inspection_id, kind)
        )
        if not rows:
            raise NotFoundError(f"inspection {inspection_id} has no {kind} image (not kept, or pruned)")
        path = self.images.path(rows[0]["path"])
        if not path.is_file():
            raise NotFoundError(f"the {kind} image of inspection {inspection_id} is missing on disk")
        return path

    # -- retention ----------------------------------------------------------------------
    def _drop_images(self, rows: list[sqlite3.Row]) -> int:
        if not rows:
            return 0
        with self._lock, self.db.atomic():
            self.db.conn.executemany("DELETE FROM images WHERE id = ?", [(r["id"],) for r in rows])
        return self.images.remove([r["path"] for r in rows])

    def prune_for_space(self, chunk: int = 200) -> int:
        """Free space down to the guard: oldest pass images first, then the oldest full frames of
        rejects, then their overlays. Inspection rows are never touched. Returns bytes freed."""
        freed = 0
        stages = [
            ("verdict = 'pass'", ()),
            ("verdict != 'pass' AND kind = 'frame'", ()),
            ("verdict != 'pass' AND kind = 'annotated'", ()),
        ]
        for cond, params in stages:
            while not self.images.has_room():
                rows = self.query(
                    f"SELECT id, path FROM images WHERE {cond} ORDER BY created_epoch LIMIT ?",
                    (*params, chunk),
                )
                if not rows:
                    break
                freed += self._drop_images(rows)
        return freed

    def enforce_retention(self, now: float | None = None) -> int:
        """Delete images older than the policy allows, then prune for space; returns bytes freed."""
        now = now or time.time()
        freed = 0
        for cond, days in (
            ("verdict = 'pass'", self.policy.keep_pass_days),
            ("verdict != 'pass'", self.policy.keep_reject_days),
        ):
            if days is None:
                continue
            while True:
                rows = self.query(
                    f"SELECT id, path FROM images WHERE {cond} AND created_epoch < ? LIMIT 500",
                    (now - days * 86400,),
                )
                if not rows:
                    break
                freed += self._drop_images(rows)
        return freed + self.prune_for_space()

    # -- users and tokens ---------------------------------------------------------------
    def add_user(self, name: str, role: str, *, actor: str = "cli") -> tuple[UserRecord, str]:
        """Create a user with a fresh token; the token is returned once and only its hash kept."""
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        name = name.strip()
        if not name:
            raise AuthError("a user needs a name")
        with self._lock:
            try:
                with self.db.atomic():
                    cur = self.db.execute(
                        "INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)",
                        (name, role, utc_now_iso()),
                    )
                    token = self._new_token(cur.lastrowid)
                    self._audit(actor, "user.add", f"user:{name}", {"role": role})
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"user {name!r} already exists (use `user token` for a new token)"
                ) from None
        return self.get_user(name), token

    def _new_token(self, user_id: int) -> str:
        secret = secrets.token_urlsafe(32)
        token = f"qcs_{secret}"
        self.db.execute(
            "INSERT INTO tokens (user_id, token_sha256, prefix, created_at) VALUES (?, ?, ?, ?)",
            (user_id, hash_token(token), token[:8], utc_now_iso()),
        )
        return token

    def new_token(self, name: str, *, actor: str = "cli") -> str:
        """Issue another token for an existing user (old ones stay valid until revoked)."""
        user = self.get_user(name)
        with self._lock, self.db.atomic():
            token = self._new_token(user.id)
            self._audit(actor, "token.new", f"user:{name}")
        return token

    def revoke_tokens(self, name: str, *, actor: str = "cli") -> int:
        user = self.get_user(name)
        with self._lock, self.db.atomic():
            n = self.db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                (utc_now_iso(), user.id),
            ).rowcount
            self._audit(actor, "token.revoke", f"user:{name}", {"count": n})
        return n

    def get_user(self, name: str) -> UserRecord:
        rows = self.query("SELECT * FROM users WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"no user {name!r}")
        return UserRecord(**{**dict(rows[0]), "disabled": bool(rows[0]["disabled"])})

    def list_users(self) -> list[UserRecord]:
        return [
            UserRecord(**{**dict(r), "disabled": bool(r["disabled"])})
            for r in self.query("SELECT * FROM users ORDER BY name")
        ]

    def authenticate(self, token: str) -> UserRecord | None:
        """The user a token belongs to, or None if it is unknown, revoked or the user disabled."""
        rows = self.query(
            "SELECT u.* FROM tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_sha256 = ? AND t.revoked_at IS NULL AND u.disabled = 0",
            (hash_token(token),),
        )
        if not rows:
            return None
        return UserRecord(**{**dict(rows[0]), "disabled": False})

    def active_token_count(self) -> int:
        return self.query(
            "SELECT COUNT(*) FROM tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.revoked_at IS NULL AND u.disabled = 0"
        )[0][0]
