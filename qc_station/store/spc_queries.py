"""Dashboard and SPC queries: one filter scope (batch, station, operator, period) for everything.

Every figure on the supervisor dashboard comes from here, computed over the same
:class:`Scope`, so the tiles, charts, gallery and CSV export always describe the same masks.
The operator is the batch's operator (inspections are filed under batches). Pass rate =
passed / (passed + failed); unusable frames are re-takes and stay out of it (as in
:mod:`qc_station.store.queries`).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from qc_station.results import PLAIN_WORDS
from qc_station.spc import capability, control_chart
from qc_station.spec import MaskSpec
from qc_station.store.db import Store
from qc_station.store.queries import (
    COUNT_COLS,
    Counts,
    Scope,
    pass_rate,
)

Dimension = Literal["width", "height"]
MAX_POINTS = 5000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class BatchSummary(Counts):
    batch_id: int
    lot_id: str
    station_id: str
    operator: str
    opened_at: str
    closed_at: str | None
    cp_width: float | None = None
    cpk_width: float | None = None
    cp_height: float | None = None
    cpk_height: float | None = None


class ParetoBar(_Model):
    code: str
    plain_words: str
    count: int
    cumulative_share: float  # of all reason occurrences in scope, 0..1


class RejectCard(_Model):
    id: int
    ts: str
    verdict: str
    batch_id: int | None
    reason_codes: list[str]
    plain_words: list[str]
    image_url: str | None  # annotated overlay, else thumbnail, else full frame


class ChartPoint(_Model):
    id: int
    ts: str
    batch_id: int | None
    value: float
    moving_range: float | None


class ChartAlert(_Model):
    rule: str
    side: str
    message: str
    first_id: int
    last_id: int
    count: int


class SpcChart(_Model):
    """An I-MR chart of one dimension: limits, points (oldest first), drift alerts."""

    dimension: Dimension
    unit: str = "mm"
    n: int
    nominal: float
    lsl: float
    usl: float
    mean: float | None = None
    sigma: float | None = None
    ucl: float | None = None
    lcl: float | None = None
    mr_bar: float | None = None
    mr_ucl: float | None = None
    cp: float | None = None
    cpk: float | None = None
    points: list[ChartPoint]
    alerts: list[ChartAlert]


def recent_pass_rate(store: Store, scope: Scope, last: int = 50) -> Counts:
    """Pass rate of the last ``last`` judged masks in scope (the "now" figure)."""
    cond, params = scope.where()
    r = store.query(
        f"SELECT {COUNT_COLS} FROM (SELECT * FROM inspections i WHERE {cond} AND i.verdict != 'unusable' "
        "ORDER BY i.id DESC LIMIT ?) i",
        [*params, last],
    )[0]
    return Counts(**dict(r), pass_rate=pass_rate(r["passed"], r["failed"]))


def pareto(store: Store, scope: Scope) -> list[ParetoBar]:
    """Reject reasons, most frequent first, with the cumulative share (the Pareto line)."""
    cond, params = scope.where()
    rows = store.query(
        "SELECT r.code, COUNT(*) AS n FROM inspection_reasons r "
        f"JOIN inspections i ON i.id = r.inspection_id "
        f"WHERE {cond} AND i.verdict != 'pass' GROUP BY r.code ORDER BY n DESC, r.code",
        params,
    )
    total = sum(r["n"] for r in rows)
    bars, running = [], 0
    for r in rows:
        running += r["n"]
        bars.append(ParetoBar(code=r["code"], plain_words=PLAIN_WORDS.get(r["code"], r["code"]),
                              count=r["n"], cumulative_share=round(running / total, 4)))
    return bars


def measurement_rows(store: Store, scope: Scope, limit: int = MAX_POINTS) -> list:
    """The last ``limit`` measured masks in scope, oldest first (id, ts, batch, width, height)."""
    cond, params = scope.where()
    return store.query(
        f"SELECT * FROM (SELECT i.id, i.ts, i.batch_id, i.width_mm, i.height_mm FROM inspections i "
        f"WHERE {cond} AND i.width_mm IS NOT NULL AND i.height_mm IS NOT NULL ORDER BY i.id DESC LIMIT ?) "
        "ORDER BY id",
        [*params, limit],
    )


def spc_chart(store: Store, scope: Scope, dimension: Dimension, spec: MaskSpec,
              limit: int = MAX_POINTS) -> SpcChart:
    """I-MR chart of finished width or height in scope, with spec limits and drift alerts."""
    tol = spec.dimensions.width_mm if dimension == "width" else spec.dimensions.height_mm
    rows = measurement_rows(store, scope, limit)
    values = [r[f"{dimension}_mm"] for r in rows]
    chart = control_chart(dimension, values, nominal=tol.nominal, lsl=tol.lower, usl=tol.upper)
    points = [
        ChartPoint(id=r["id"], ts=r["ts"], batch_id=r["batch_id"], value=round(v, 3),
                   moving_range=round(abs(v - values[k - 1]), 3) if k else None)
        for k, (r, v) in enumerate(zip(rows, values, strict=True))
    ]
    alerts = [
        ChartAlert(rule=a.rule, side=a.side, message=a.message, first_id=rows[a.first]["id"],
                   last_id=rows[a.last]["id"], count=a.last - a.first + 1)
        for a in chart.alerts
    ]
    r3 = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return SpcChart(
        dimension=dimension, n=chart.n, nominal=tol.nominal, lsl=tol.lower, usl=tol.upper,
        mean=r3(chart.mean), sigma=r3(chart.sigma), ucl=r3(chart.ucl), lcl=r3(chart.lcl),
        mr_bar=r3(chart.mr_bar), mr_ucl=r3(chart.mr_ucl), cp=r3(chart.cp), cpk=r3(chart.cpk),
        points=points, alerts=alerts,
    )


def _capability(values: list[float], lsl: float, usl: float) -> tuple[float | None, float | None]:
    """Cp, Cpk with the I-MR short-term sigma, as on the control charts."""
    _, cp, cpk = capability(values, lsl=lsl, usl=usl)
    return (None if cp is None else round(cp, 4)), (None if cpk is None else round(cpk, 4))


def batch_summaries(store: Store, scope: Scope, spec: MaskSpec, limit: int = 50) -> list[BatchSummary]:
    """Per batch with inspections in scope (newest first): counts, pass rate, Cp/Cpk (I-MR sigma)."""
    cond, params = scope.where()
    rows = store.query(
        "SELECT b.id AS batch_id, b.lot_id, b.station_id, b.operator, b.opened_at, b.closed_at, "
        f"{COUNT_COLS} "
        f"FROM inspections i JOIN batches b ON b.id = i.batch_id WHERE {cond} "
        "GROUP BY b.id ORDER BY b.id DESC LIMIT ?",
        [*params, limit],
    )
    series: dict[int, list] = {r["batch_id"]: [] for r in rows}
    if series:
        marks = ",".join("?" * len(series))
        for m in store.query(
            f"SELECT i.batch_id, i.width_mm, i.height_mm FROM inspections i WHERE {cond} "
            f"AND i.batch_id IN ({marks}) AND i.width_mm IS NOT NULL AND i.height_mm IS NOT NULL "
            "ORDER BY i.id",
            [*params, *series],
        ):
            series[m["batch_id"]].append((m["width_mm"], m["height_mm"]))
    w, h = spec.dimensions.width_mm, spec.dimensions.height_mm
    out = []
    for r in rows:
        pts = series[r["batch_id"]]
        cp_w, cpk_w = _capability([p[0] for p in pts], w.lower, w.upper)
        cp_h, cpk_h = _capability([p[1] for p in pts], h.lower, h.upper)
        out.append(BatchSummary(**dict(r), cp_width=cp_w, cpk_width=cpk_w, cp_height=cp_h, cpk_height=cpk_h,
                                pass_rate=pass_rate(r["passed"], r["failed"])))
    return out


def recent_rejects(store: Store, scope: Scope, limit: int = 24) -> list[RejectCard]:
    """The newest fails and unusables in scope, each with its best stored image."""
    cond, params = scope.where()
    rows = store.query(
        f"SELECT i.id, i.ts, i.verdict, i.batch_id, i.reason_codes, "
        "(SELECT group_concat(m.kind) FROM images m WHERE m.inspection_id = i.id) AS kinds "
        f"FROM inspections i WHERE {cond} AND i.verdict != 'pass' ORDER BY i.id DESC LIMIT ?",
        [*params, limit],
    )
    cards = []
    for r in rows:
        kinds = (r["kinds"] or "").split(",")
        kind = next((k for k in ("annotated", "thumb", "frame") if k in kinds), None)
        codes = json.loads(r["reason_codes"])
        cards.append(RejectCard(
            id=r["id"], ts=r["ts"], verdict=r["verdict"], batch_id=r["batch_id"], reason_codes=codes,
            plain_words=[PLAIN_WORDS.get(c, c) for c in codes],
            image_url=f"/api/inspections/{r['id']}/image/{kind}" if kind else None,
        ))
    return cards


def filter_options(store: Store) -> dict[str, list]:
    """Values the filter menus offer: stations, operators, recent batches."""
    return {
        "stations": [r[0] for r in store.query("SELECT id FROM stations ORDER BY id")],
        "operators": [r[0] for r in store.query(
            "SELECT DISTINCT operator FROM batches WHERE operator != '' ORDER BY operator")],
        "batches": [{"id": r["id"], "lot_id": r["lot_id"], "open": r["closed_at"] is None}
                    for r in store.query("SELECT id, lot_id, closed_at FROM batches "
                                         "ORDER BY id DESC LIMIT 200")],
    }


CSV_COLUMNS = ("id", "time_utc", "station_id", "batch_id", "lot_id", "operator", "verdict", "reason_codes",
               "width_mm", "height_mm", "calibration_id", "spec_id")


def export_csv(store: Store, scope: Scope, limit: int = 100_000) -> str:
    """Every inspection in scope, oldest first, one CSV row each (what the dashboard summarises)."""
    cond, params = scope.where()
    rows = store.query(
        f"SELECT i.id, i.ts, i.station_id, i.batch_id, b.lot_id, b.operator, i.verdict, i.reason_codes, "
        f"i.width_mm, i.height_mm, i.calibration_id, i.spec_id FROM inspections i "
        f"LEFT JOIN batches b ON b.id = i.batch_id WHERE {cond} ORDER BY i.id LIMIT ?",
        [*params, limit],
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([
            r["id"], r["ts"], r["station_id"], r["batch_id"] if r["batch_id"] is not None else "",
            r["lot_id"] or "", r["operator"] or "", r["verdict"], " ".join(json.loads(r["reason_codes"])),
            "" if r["width_mm"] is None else f"{r['width_mm']:.3f}",
            "" if r["height_mm"] is None else f"{r['height_mm']:.3f}",
            r["calibration_id"] or "", r["spec_id"] or "",
        ])
    return buf.getvalue()
