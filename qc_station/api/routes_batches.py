"""``/api/batches``: open, close, list; at most one open batch per station."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from qc_station.api.auth import Actor
from qc_station.store import BatchRecord, Page


class OpenBatch(BaseModel):
    """What an operator types to open a batch (the spec is the station's current spec)."""

    model_config = ConfigDict(extra="forbid")

    lot_id: str = Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="Lot / batch number")
    operator: str = Field("", max_length=64)
    workshop: str | None = Field(None, max_length=128, description="Default: the station's workshop")
    note: str = Field("", max_length=500)


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api/batches", tags=["batches"])
    reader = Depends(ctx.auth.reader())

    @router.get("", response_model=Page[BatchRecord], dependencies=[reader])
    def list_batches(
        is_open: Annotated[bool | None, Query(description="true: the open one; false: closed ones")] = None,
        lot_id: Annotated[str | None, Query(max_length=64)] = None,
        station_id: Annotated[str | None, Query(max_length=64)] = None,
        before_id: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Page[BatchRecord]:
        """Batches, newest first."""
        return ctx.store.list_batches(
            station_id=station_id, is_open=is_open, lot_id=lot_id, limit=limit, before_id=before_id
        )

    @router.get("/current", response_model=BatchRecord | None, dependencies=[reader])
    def current_batch() -> BatchRecord | None:
        """This station's open batch, or null."""
        return ctx.store.open_batch_of(ctx.station_id)

    @router.get("/{batch_id}", response_model=BatchRecord, dependencies=[reader])
    def get_batch(batch_id: int) -> BatchRecord:
        return ctx.store.get_batch(batch_id)

    @router.post("", response_model=BatchRecord, status_code=201)
    def open_batch(body: OpenBatch, actor: Actor = Depends(ctx.auth.role("operator"))) -> BatchRecord:
        """Open a batch on this station (409 if one is open). Needs role operator."""
        spec = ctx.spec
        batch = ctx.store.open_batch(
            ctx.station_id, body.lot_id, spec_name=spec.name, spec_version=spec.version, spec_id=spec.spec_id,
            workshop=ctx.settings.station.workshop if body.workshop is None else body.workshop,
            operator=body.operator or (actor.name if actor.role else ""), note=body.note, actor=actor.label,
        )
        _announce(ctx, "opened", batch)
        return batch

    @router.post("/{batch_id}/close", response_model=BatchRecord)
    def close_batch(batch_id: int, actor: Actor = Depends(ctx.auth.role("operator"))) -> BatchRecord:
        """Close a batch (409 if already closed). Needs role operator."""
        batch = ctx.store.close_batch(batch_id, actor=actor.label)
        _announce(ctx, "closed", batch)
        return batch

    return router


def _announce(ctx, action: str, batch: BatchRecord) -> None:
    from qc_station.api.events import LiveEvent

    ctx.events.publish(LiveEvent("batch", {"action": action, "batch": batch.model_dump(mode="json")}))
