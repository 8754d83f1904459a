"""``/api/stats``: counts and pass rate overall, per batch, per hour and per reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from qc_station.api.params import BadRequestError, parse_time
from qc_station.store.queries import MeasurementPoint, Stats, measurement_series, stats


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["stats"])

    @router.get("/stats", response_model=Stats, dependencies=[Depends(ctx.auth.reader())])
    def get_stats(
        batch_id: Annotated[int | None, Query(ge=1)] = None,
        since: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
        until: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
        station_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Stats:
        """Pass rate = passed / (passed + failed); unusable frames are counted apart."""
        t0, t1 = parse_time(since, "since"), parse_time(until, "until")
        if t0 is not None and t1 is not None and t1 <= t0:
            raise BadRequestError(f"until ({until}) must be after since ({since})")
        if batch_id is not None:
            ctx.store.get_batch(batch_id)  # 404 for an unknown batch rather than empty stats
        return stats(ctx.store, station_id=station_id, batch_id=batch_id, since=t0, until=t1)

    @router.get("/measurements", response_model=list[MeasurementPoint],
                dependencies=[Depends(ctx.auth.reader())])
    def get_measurements(
        batch_id: Annotated[int | None, Query(ge=1)] = None,
        since: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
        until: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
        station_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
    ) -> list[MeasurementPoint]:
        """Width/height of each measured mask, oldest first: the input of control charts."""
        if batch_id is not None:
            ctx.store.get_batch(batch_id)
        return measurement_series(
            ctx.store, station_id=station_id, batch_id=batch_id, since=parse_time(since, "since"),
            until=parse_time(until, "until"), limit=limit,
        )

    return router
