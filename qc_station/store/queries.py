"""Statistics over stored inspections: counts and pass rate per batch, per hour, per reason.

Pass rate = passed / (passed + failed): unusable frames are re-takes, not verdicts on a mask,
so they are counted but kept out of the rate. All functions read through ``Store.query`` and
return typed rows, ready for the API (and the supervisor dashboard built on top of it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from qc_station.results import PLAIN_WORDS
from qc_station.store.db import Store
from qc_station.store.scope import Scope


class Counts(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int = 0
    passed: int = 0
    failed: int = 0
    unusable: int = 0
    pass_rate: float | None = None


class BatchCounts(Counts):
    batch_id: int
    lot_id: str
    opened_at: str
    closed_at: str | None


class HourCounts(Counts):
    hour: str  # ISO hour start, UTC, e.g. 2026-11-28T14:00Z


class ReasonCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    plain_words: str
    count: int
    share: float  # of the inspections in scope that were failed or unusable


class Stats(BaseModel):
    model_config = ConfigDict(frozen=True)

    overall: Counts
    by_batch: list[BatchCounts]
    by_hour: list[HourCounts]
    by_reason: list[ReasonCount]


COUNT_COLS = (
    "COUNT(i.id) AS total, "
    "COALESCE(SUM(i.verdict = 'pass'), 0) AS passed, "
    "COALESCE(SUM(i.verdict = 'fail'), 0) AS failed, "
    "COALESCE(SUM(i.verdict = 'unusable'), 0) AS unusable"
)


def pass_rate(passed: int, failed: int) -> float | None:
    """passed / (passed + failed), rounded; None when nothing was judged."""
    return round(passed / (passed + failed), 4) if passed + failed else None


def _scope(station_id: str | None, batch_id: int | None, since: float | None, until: float | None):
    return Scope(batch_id=batch_id, station_id=station_id, since=since, until=until).where()


def counts_in(store: Store, scope: Scope) -> Counts:
    """Counts and pass rate of the inspections in ``scope``."""
    cond, params = scope.where()
    r = store.query(f"SELECT {COUNT_COLS} FROM inspections i WHERE {cond}", params)[0]
    return Counts(**dict(r), pass_rate=pass_rate(r["passed"], r["failed"]))


def hourly_counts(store: Store, scope: Scope) -> list[HourCounts]:
    """Per UTC hour, oldest first (hours without inspections are left out)."""
    cond, params = scope.where()
    rows = store.query(
        f"SELECT strftime('%Y-%m-%dT%H:00Z', i.ts_epoch, 'unixepoch') AS hour, {COUNT_COLS} "
        f"FROM inspections i WHERE {cond} GROUP BY hour ORDER BY hour",
        params,
    )
    return [HourCounts(**dict(r), pass_rate=pass_rate(r["passed"], r["failed"])) for r in rows]


def overall_counts(store: Store, *, station_id=None, batch_id=None, since=None, until=None) -> Counts:
    return counts_in(store, Scope(batch_id=batch_id, station_id=station_id, since=since, until=until))


def counts_by_batch(
    store: Store, *, station_id=None, batch_id=None, since=None, until=None, limit: int = 100
) -> list[BatchCounts]:
    """Per batch (newest first), including batches that have no inspection yet."""
    cond, params = _scope(station_id, None, since, until)
    bcond, bparams = ["1"], []
    if station_id is not None:
        bcond.append("b.station_id = ?")
        bparams.append(station_id)
    if batch_id is not None:
        bcond.append("b.id = ?")
        bparams.append(batch_id)
    rows = store.query(
        f"SELECT b.id AS batch_id, b.lot_id, b.opened_at, b.closed_at, "
        f"{COUNT_COLS} "
        f"FROM batches b LEFT JOIN inspections i ON i.batch_id = b.id AND {cond} "
        f"WHERE {' AND '.join(bcond)} GROUP BY b.id ORDER BY b.id DESC LIMIT ?",
        [*params, *bparams, limit],
    )
    return [BatchCounts(**dict(r), pass_rate=pass_rate(r["passed"], r["failed"])) for r in rows]


def counts_by_hour(
    store: Store, *, station_id=None, batch_id=None, since=None, until=None
) -> list[HourCounts]:
    """Per UTC hour, oldest first (hours without inspections are left out)."""
    return hourly_counts(store, Scope(batch_id=batch_id, station_id=station_id, since=since, until=until))


def counts_by_reason(
    store: Store, *, station_id=None, batch_id=None, since=None, until=None
) -> list[ReasonCount]:
    """How often each reason code occurred (most frequent first): the Pareto of rejects."""
    cond, params = _scope(station_id, batch_id, since, until)
    rejects = store.query(
        f"SELECT COUNT(*) FROM inspections i WHERE {cond} AND i.verdict != 'pass'", params
    )[0][0]
    rows = store.query(
        f"SELECT r.code, COUNT(*) AS count FROM inspection_reasons r "
        f"JOIN inspections i ON i.id = r.inspection_id WHERE {cond} "
        "GROUP BY r.code ORDER BY count DESC, r.code",
        params,
    )
    return [
        ReasonCount(
            code=r["code"], plain_words=PLAIN_WORDS.get(r["code"], r["code"]), count=r["count"],
            share=round(r["count"] / rejects, 4) if rejects else 0.0,
        )
        for r in rows
    ]


def stats(store: Store, *, station_id=None, batch_id=None, since=None, until=None) -> Stats:
    """Everything ``/api/stats`` shows, for one scope."""
    kw = dict(station_id=station_id, batch_id=batch_id, since=since, until=until)
    return Stats(
        overall=overall_counts(store, **kw),
        by_batch=counts_by_batch(store, **kw),
        by_hour=counts_by_hour(store, **kw),
        by_reason=counts_by_reason(store, **kw),
    )


class MeasurementPoint(BaseModel):
    """One usable inspection's dimensions, for control charts (SPC)."""

    model_config = ConfigDict(frozen=True)

    id: int
    batch_id: int | None
    ts_epoch: float
    verdict: str
    width_mm: float
    height_mm: float


def measurement_series(
    store: Store, *, station_id=None, batch_id=None, since=None, until=None, limit: int = 5000
) -> list[MeasurementPoint]:
    """Width and height of every measured mask in scope, oldest first (the last ``limit`` of them)."""
    cond, params = _scope(station_id, batch_id, since, until)
    rows = store.query(
        f"SELECT * FROM (SELECT i.id, i.batch_id, i.ts_epoch, i.verdict, i.width_mm, i.height_mm "
        f"FROM inspections i WHERE {cond} AND i.width_mm IS NOT NULL AND i.height_mm IS NOT NULL "
        f"ORDER BY i.id DESC LIMIT ?) ORDER BY id",
        [*params, limit],
    )
    return [MeasurementPoint(**dict(r)) for r in rows]
