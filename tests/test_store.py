"""Store: schema, append-only tables, batches, inspections + images, retention, space guard, users."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

import cv2
import pytest
from station_factories import image, result

from qc_station.errors import AuthError, ConflictError, NotFoundError, StorageError
from qc_station.store import FrameInfo, ImagePolicy, ImagesNotSavedError, Store, queries
from qc_station.store import images as images_mod
from qc_station.store.schema import SCHEMA_VERSION

SPEC = dict(spec_name="resilience-pleated", spec_version=1, spec_id="resilience-pleated@1:test")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", policy=ImagePolicy(min_free_mb=0))
    s.ensure_station("st-1", "Station 1", "Workshop A")
    yield s
    s.close()


def test_schema_is_strict_wal_full_and_versioned(store: Store, tmp_path: Path) -> None:
    conn = store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    sql = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    for table in ("stations", "batches", "inspections", "images", "users", "tokens", "audit"):
        assert sql[table].rstrip().endswith("STRICT"), table
    with pytest.raises(sqlite3.IntegrityError):  # strict: a text in an INTEGER column is refused
        conn.execute("INSERT INTO users (id, name, role, created_at) VALUES ('x', 'a', 'admin', 'now')")
    store.close()
    again = Store(tmp_path / "data")  # reopening applies nothing twice
    assert again.schema_version == SCHEMA_VERSION
    assert again.query("SELECT COUNT(*) FROM _sqlite_migrations")[0][0] == SCHEMA_VERSION
    again.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    again.close()
    with pytest.raises(StorageError, match="newer than this software"):
        Store(tmp_path / "data")


def test_results_and_audit_are_append_only(store: Store) -> None:
    rec = store.record_inspection(result("fail", "width"), station_id="st-1")
    store.audit("alice", "test", "x")
    for sql in (
        "UPDATE inspections SET verdict = 'pass'",
        "DELETE FROM inspections",
        "DELETE FROM inspection_reasons",
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.execute(sql)
    assert store.get_inspection(rec.id).verdict == "fail"
    assert [a.actor for a in store.list_audit()] == ["alice"]


def test_one_open_batch_per_station(store: Store) -> None:
    b1 = store.open_batch("st-1", "LOT-1", operator="ann", workshop="W", **SPEC)
    assert b1.is_open and b1.spec_version == 1 and b1.operator == "ann"
    with pytest.raises(ConflictError, match="already has batch"):
        store.open_batch("st-1", "LOT-2", **SPEC)
    with pytest.raises(sqlite3.IntegrityError):  # the database enforces it too
        store.db.execute(
            "INSERT INTO batches (station_id, lot_id, spec_name, spec_version, spec_id, opened_at) "
            "VALUES ('st-1', 'X', 's', 1, 's', 'now')"
        )
    closed = store.close_batch(b1.id, actor="ann")
    assert closed.closed_at is not None
    with pytest.raises(ConflictError, match="already closed"):
        store.close_batch(b1.id)
    with pytest.raises(NotFoundError):
        store.close_batch(999)
    b2 = store.open_batch("st-1", "LOT-2", **SPEC)
    assert store.open_batch_of("st-1").id == b2.id
    assert [b.lot_id for b in store.list_batches().items] == ["LOT-2", "LOT-1"]
    assert [a.action for a in store.list_audit()][:3] == ["batch.open", "batch.close", "batch.open"]


def test_images_kept_by_verdict_and_row_content(store: Store) -> None:
    batch = store.open_batch("st-1", "LOT-1", **SPEC)
    frame, overlay = image(1280, 720, 1), image(1280, 720, 2)
    info = FrameInfo(seq=7, timestamp=time.time() - 0.2, source="sim:test", metadata={"exposure_us": 9000})
    rec = store.record_inspection(
        result("fail", "stain", "hole"), station_id="st-1", frame=info, frame_bgr=frame,
        annotated_bgr=overlay,
        trigger="placement",
    )
    assert rec.batch_id == batch.id and rec.verdict == "fail"
    assert rec.reason_codes == ["stain", "hole"] and rec.plain_words == ["stain", "hole"]
    assert rec.frame.seq == 7 and rec.frame.metadata == {"exposure_us": 9000}
    assert rec.calibration_id == "cal-000000000000" and rec.model_sha256 == "ab" * 32
    assert rec.spec_version == 1 and rec.measurements.width_mm == 180.0 and rec.pipeline_ms == 120.0
    assert sorted(i.kind for i in rec.images) == ["annotated", "frame", "thumb"]
    full = cv2.imread(str(store.image_file(rec.id, "frame")))
    thumb = cv2.imread(str(store.image_file(rec.id, "thumb")))
    assert full.shape == (720, 1280, 3) and thumb.shape == (360, 640, 3)

    ok = store.record_inspection(result("pass"), station_id="st-1", frame_bgr=frame, annotated_bgr=overlay)
    assert [i.kind for i in ok.images] == ["thumb"]
    with pytest.raises(NotFoundError, match="no frame image"):
        store.image_file(ok.id, "frame")
    bad = store.record_inspection(result("unusable", "blur"), station_id="st-1", frame_bgr=frame)
    assert sorted(i.kind for i in bad.images) == ["frame", "thumb"]  # no overlay given
    assert not list((store.data_dir / "images").rglob("*.tmp"))


def test_listing_filters_and_keyset_pages(store: Store) -> None:
    b1 = store.open_batch("st-1", "A", **SPEC)
    verdicts = ["pass", "fail", "pass", "unusable", "fail", "pass", "pass"]
    codes = {1: ("width",), 3: ("blur",), 4: ("stain", "width")}
    for i, v in enumerate(verdicts):
        store.record_inspection(result(v, *codes.get(i, ())), station_id="st-1")
    store.close_batch(b1.id)
    store.open_batch("st-1", "B", **SPEC)
    store.record_inspection(result("fail", "hole"), station_id="st-1")

    assert store.list_inspections().total == 8
    assert store.list_inspections(batch_id=b1.id).total == 7
    assert [r.verdict for r in store.list_inspections(verdict="fail").items] == ["fail"] * 3
    assert [r.id for r in store.list_inspections(reason="width").items] == [5, 2]
    seen, before = [], None
    while True:
        page = store.list_inspections(limit=3, before_id=before)
        seen += [r.id for r in page.items]
        if page.next_before_id is None:
            break
        before = page.next_before_id
    assert seen == [8, 7, 6, 5, 4, 3, 2, 1]
    assert store.list_inspections(after_id=6).total == 2
    now = time.time()
    assert store.list_inspections(since=now + 60).total == 0
    assert store.list_inspections(since=now - 60, until=now + 60).total == 8


def test_stats_per_batch_hour_reason(store: Store) -> None:
    b1 = store.open_batch("st-1", "A", **SPEC)
    for v, c in [("pass", ()), ("pass", ()), ("pass", ()), ("fail", ("width",)), ("unusable", ("blur",))]:
        store.record_inspection(result(v, *c), station_id="st-1")
    store.close_batch(b1.id)
    b2 = store.open_batch("st-1", "B", **SPEC)
    store.record_inspection(result("fail", "width", "stain"), station_id="st-1")
    s = queries.stats(store)
    assert (s.overall.total, s.overall.passed, s.overall.failed, s.overall.unusable) == (6, 3, 2, 1)
    assert s.overall.pass_rate == pytest.approx(3 / 5)  # unusable frames are not in the rate
    by_batch = {b.lot_id: b for b in s.by_batch}
    assert by_batch["A"].pass_rate == pytest.approx(3 / 4) and by_batch["B"].pass_rate == 0.0
    assert sum(h.total for h in s.by_hour) == 6
    assert [(r.code, r.count) for r in s.by_reason] == [("width", 2), ("blur", 1), ("stain", 1)]
    assert s.by_reason[0].plain_words == "wrong width"
    assert s.by_reason[0].share == pytest.approx(2 / 3, abs=1e-4)
    only_b2 = queries.stats(store, batch_id=b2.id)
    assert only_b2.overall.total == 1 and [b.batch_id for b in only_b2.by_batch] == [b2.id]


def test_retention_drops_old_pass_images_never_rows(tmp_path: Path) -> None:
    store = Store(tmp_path, policy=ImagePolicy(min_free_mb=0, keep_pass_days=1, keep_reject_days=None))
    store.ensure_station("st-1")
    old_pass = store.record_inspection(result("pass"), station_id="st-1", frame_bgr=image())
    old_fail = store.record_inspection(result("fail", "hole"), station_id="st-1", frame_bgr=image())
    new_pass = store.record_inspection(result("pass"), station_id="st-1", frame_bgr=image())
    store.db.execute("UPDATE images SET created_epoch = created_epoch - 2 * 86400 WHERE inspection_id < 3")
    pass_file = store.image_file(old_pass.id, "thumb")
    assert store.enforce_retention() > 0
    assert not pass_file.exists()
    assert store.get_inspection(old_pass.id).images == []  # the result is kept, without its picture
    assert len(store.get_inspection(old_fail.id).images) == 2
    assert len(store.get_inspection(new_pass.id).images) == 1
    assert store.list_inspections().total == 3


def test_space_guard_prunes_oldest_pass_images_first(tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path, policy=ImagePolicy(min_free_mb=1.0, keep_pass_days=None))
    store.ensure_station("st-1")
    recs = [store.record_inspection(result(v, *(("hole",) if v == "fail" else ())), station_id="st-1",
                                    frame_bgr=image(640, 360, i))
            for i, v in enumerate(["pass", "fail", "pass", "pass"])]
    used = sum(f.stat().st_size for f in (tmp_path / "images").rglob("*.jpg"))
    one_pass = store.get_inspection(recs[0].id).images[0].bytes
    # a fake disk: 1 MiB guard, space for what is there now minus one pass image's worth
    capacity = used + 2**20 - one_pass

    def fake_free(path) -> float:
        return (capacity - sum(f.stat().st_size for f in (tmp_path / "images").rglob("*.jpg"))) / 2**20

    monkeypatch.setattr("qc_station.store.db.free_mb", fake_free)
    monkeypatch.setattr(images_mod, "free_mb", fake_free)
    store.prune_for_space(chunk=1)
    kept = [len(store.get_inspection(r.id).images) for r in recs]
    assert kept == [0, 2, 1, 1]  # the oldest pass went first; reject evidence untouched

    capacity = 0  # nothing can be freed enough: the row is still stored, without images
    with pytest.raises(ImagesNotSavedError, match="stored without its images") as err:
        store.record_inspection(result("fail", "stain"), station_id="st-1", frame_bgr=image())
    rec = err.value.record
    assert store.get_inspection(rec.id).verdict == "fail" and rec.images == []
    assert "MB free" in rec.image_note
    assert isinstance(err.value, StorageError)


def test_disk_full_while_writing_keeps_the_row(store: Store, monkeypatch) -> None:
    real_open = open

    def full_open(path, mode="r", *a, **kw):
        if "w" in mode and str(path).endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(ImagesNotSavedError, match="disk full") as err:
        store.record_inspection(result("fail", "hole"), station_id="st-1", frame_bgr=image())
    monkeypatch.undo()
    assert store.get_inspection(err.value.record.id).image_note.startswith("images not saved: disk full")
    assert not list((store.data_dir / "images").rglob("*.jpg"))


def test_unknown_batch_is_a_storage_error_not_a_crash(store: Store) -> None:
    with pytest.raises(StorageError, match="not stored"):
        store.record_inspection(result("pass"), station_id="st-1", batch_id=42, frame_bgr=image())
    assert not list((store.data_dir / "images").rglob("*.jpg"))  # its images were removed again


def test_users_tokens_are_hashed(store: Store) -> None:
    user, token = store.add_user("alice", "supervisor")
    assert user.role == "supervisor" and token.startswith("qcs_") and len(token) > 40
    assert store.authenticate(token).name == "alice"
    assert store.authenticate(token + "x") is None
    raw = b"".join(p.read_bytes() for p in store.data_dir.glob("qc.sqlite3*"))
    assert token.encode() not in raw  # only the hash is stored
    with pytest.raises(ConflictError):
        store.add_user("alice", "admin")
    with pytest.raises(AuthError, match="unknown role"):
        store.add_user("bob", "boss")
    second = store.new_token("alice")
    assert store.active_token_count() == 2
    assert store.revoke_tokens("alice") == 2
    assert store.authenticate(token) is None and store.authenticate(second) is None
    assert [a.action for a in store.list_audit()][:3] == ["token.revoke", "token.new", "user.add"]
