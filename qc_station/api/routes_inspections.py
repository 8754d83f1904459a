"""``/api/inspections``: list (filters, keyset pages), one inspection, its images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from qc_station.api.params import BadRequestError, check_reason, parse_time
from qc_station.results import Verdict
from qc_station.store import InspectionRecord, Page
from qc_station.store.models import ImageKind


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api/inspections", tags=["inspections"])
    reader = Depends(ctx.auth.reader())

    @router.get("", response_model=Page[InspectionRecord], dependencies=[reader])
    def list_inspections(
        batch_id: Annotated[int | None, Query(ge=1, description="Only this batch")] = None,
        verdict: Annotated[Verdict | None, Query(description="pass, fail or unusable")] = None,
        reason: Annotated[str | None, Query(description="A reason code, e.g. width, stain, blur")] = None,
        since: Annotated[str | None, Query(description="From this time (ISO 8601 or Unix s)")] = None,
        until: Annotated[str | None, Query(description="Before this time (ISO 8601 or Unix s)")] = None,
        station_id: Annotated[str | None, Query(max_length=64)] = None,
        after_id: Annotated[int | None, Query(ge=0, description="Only ids above this (catch-up)")] = None,
        before_id: Annotated[int | None, Query(ge=1, description="Next page: next_before_id")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Page[InspectionRecord]:
        """Inspections, newest first. Continue with ``before_id=<next_before_id>``."""
        t0, t1 = parse_time(since, "since"), parse_time(until, "until")
        if t0 is not None and t1 is not None and t1 <= t0:
            raise BadRequestError(f"until ({until}) must be after since ({since})")
        return ctx.store.list_inspections(
            station_id=station_id, batch_id=batch_id, verdict=verdict, reason=check_reason(reason),
            since=t0, until=t1, after_id=after_id, before_id=before_id, limit=limit,
        )

    @router.get("/{inspection_id}", response_model=InspectionRecord, dependencies=[reader])
    def get_inspection(inspection_id: int) -> InspectionRecord:
        """One inspection with its reasons, measurements, provenance and image links."""
        return ctx.store.get_inspection(inspection_id)

    @router.get(
        "/{inspection_id}/image/{kind}",
        response_class=FileResponse,
        dependencies=[reader],
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "not kept or pruned"}},
    )
    def get_image(inspection_id: int, kind: ImageKind) -> FileResponse:
        """An image of an inspection: ``frame`` (full), ``annotated`` (overlay) or ``thumb``."""
        path = ctx.store.image_file(inspection_id, kind)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    return router
