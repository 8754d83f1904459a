"""The supervisor dashboard: the page at ``/dashboard`` and its data under ``/api/dashboard``, ``/api/spc``.

All routes take the same filters (batch, station, operator, since/until) so the page, its
charts and the CSV export always describe the same inspections. Reading them needs the
supervisor role when tokens are in use.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from qc_station.api.params import BadRequestError, parse_time
from qc_station.spec import MaskSpec, load_spec
from qc_station.store.models import BatchRecord
from qc_station.store.queries import Counts, HourCounts, Scope, counts_in, hourly_counts
from qc_station.store.spc_queries import (
    BatchSummary,
    Dimension,
    ParetoBar,
    RejectCard,
    SpcChart,
    batch_summaries,
    export_csv,
    filter_options,
    pareto,
    recent_pass_rate,
    recent_rejects,
    spc_chart,
)


class OpenBatchView(BaseModel):
    batch: BatchRecord
    counts: Counts


class Dashboard(BaseModel):
    """What ``/dashboard`` shows for one filter scope."""

    scope: dict
    spec_name: str
    overall: Counts
    now: Counts  # the last 50 judged masks in scope
    today: Counts  # since local midnight on the station
    by_hour: list[HourCounts]
    by_batch: list[BatchSummary]
    pareto: list[ParetoBar]
    rejects: list[RejectCard]
    open_batch: OpenBatchView | None
    options: dict


def _scope(batch_id, station_id, operator, since, until) -> Scope:
    t0, t1 = parse_time(since, "since"), parse_time(until, "until")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise BadRequestError(f"until ({until}) must be after since ({since})")
    return Scope(batch_id=batch_id, station_id=station_id or None, operator=operator or None,
                 since=t0, until=t1)


def _filters(
    batch_id: Annotated[int | None, Query(ge=1, description="Only this batch")] = None,
    station_id: Annotated[str | None, Query(max_length=64, description="Only this station")] = None,
    operator: Annotated[str | None, Query(max_length=64, description="Only batches of this operator")] = None,
    since: Annotated[str | None, Query(description="From (ISO 8601 or Unix s)")] = None,
    until: Annotated[str | None, Query(description="Before (ISO 8601 or Unix s)")] = None,
) -> Scope:
    return _scope(batch_id, station_id, operator, since, until)


def spec_for(ctx, name: str | None) -> MaskSpec:
    """The spec a batch was inspected against (the station's, unless the batch names another)."""
    if not name or name == ctx.spec.name:
        return ctx.spec
    try:
        return load_spec(name)
    except Exception:  # a spec file no longer at hand: the current one still gives the limits
        return ctx.spec


def build(ctx) -> APIRouter:
    router = APIRouter(tags=["dashboard"])
    supervisor = Depends(ctx.auth.role("supervisor"))
    page = resources.files("qc_station.web") / "static" / "dashboard.html"

    def scoped_spec(scope: Scope) -> MaskSpec:
        if scope.batch_id is not None:
            return spec_for(ctx, ctx.store.get_batch(scope.batch_id).spec_name)
        return ctx.spec

    @router.get("/dashboard", include_in_schema=False)
    def dashboard_page() -> FileResponse:
        # the page itself is static; its data calls carry the token and are checked
        return FileResponse(str(page), headers={"Cache-Control": "no-cache"})

    @router.get("/api/dashboard", response_model=Dashboard, dependencies=[supervisor])
    def dashboard(scope: Scope = Depends(_filters)) -> Dashboard:
        """Tiles, per-hour and per-batch figures, Pareto of reasons and recent rejects for a scope."""
        spec = scoped_spec(scope)
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        today = scope.narrowed(since=max(midnight, scope.since or midnight))
        current = ctx.store.open_batch_of(ctx.station_id)
        return Dashboard(
            scope={k: v for k, v in scope.__dict__.items() if v is not None},
            spec_name=spec.name,
            overall=counts_in(ctx.store, scope),
            now=recent_pass_rate(ctx.store, scope),
            today=counts_in(ctx.store, today),
            by_hour=hourly_counts(ctx.store, scope),
            by_batch=batch_summaries(ctx.store, scope, spec),
            pareto=pareto(ctx.store, scope),
            rejects=recent_rejects(ctx.store, scope),
            open_batch=OpenBatchView(batch=current, counts=counts_in(ctx.store, Scope(batch_id=current.id)))
            if current else None,
            options=filter_options(ctx.store),
        )

    @router.get("/api/spc", response_model=SpcChart, dependencies=[supervisor])
    def spc(
        dimension: Annotated[Dimension, Query(description="width or height (finished mask, mm)")] = "width",
        limit: Annotated[int, Query(ge=2, le=5000, description="At most this many newest points")] = 500,
        scope: Scope = Depends(_filters),
    ) -> SpcChart:
        """Individuals + moving-range chart: limits, points and Western Electric / Nelson alerts."""
        return spc_chart(ctx.store, scope, dimension, scoped_spec(scope), limit)

    @router.get("/api/dashboard/export.csv", dependencies=[supervisor],
                responses={200: {"content": {"text/csv": {}}}})
    def export(scope: Scope = Depends(_filters)) -> Response:
        """Every inspection in the scope as CSV (what the dashboard is showing)."""
        if scope.batch_id is not None:
            ctx.store.get_batch(scope.batch_id)
        name = f"inspections-{datetime.now():%Y%m%d-%H%M}.csv"
        return Response(export_csv(ctx.store, scope), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return router
