"""``/api/station``: what the operator screen shows at load (station, spec, open batch, counters)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from qc_station.api.auth import Actor
from qc_station.store import BatchRecord, InspectionRecord
from qc_station.store.queries import Counts, overall_counts


class StationView(BaseModel):
    station_id: str
    name: str
    workshop: str
    spec_id: str
    spec_name: str
    spec_version: int
    trigger_mode: str
    tokens_required: bool
    you: str
    your_role: str | None
    open_batch: BatchRecord | None
    batch_counts: Counts | None
    last_inspection: InspectionRecord | None


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["station"])

    @router.get("/station", response_model=StationView)
    def station(actor: Actor = Depends(ctx.auth.reader())) -> StationView:
        """The station, its spec, the open batch with its counters, and the latest inspection."""
        batch = ctx.store.open_batch_of(ctx.station_id)
        last = ctx.store.list_inspections(station_id=ctx.station_id, limit=1).items
        s = ctx.settings.station
        return StationView(
            station_id=s.id, name=s.name, workshop=s.workshop, spec_id=ctx.spec.spec_id,
            spec_name=ctx.spec.name, spec_version=ctx.spec.version, trigger_mode=ctx.settings.trigger.mode,
            tokens_required=ctx.auth.tokens_required, you=actor.name, your_role=actor.role,
            open_batch=batch,
            batch_counts=overall_counts(ctx.store, batch_id=batch.id) if batch else None,
            last_inspection=last[0] if last else None,
        )

    return router
