"""``/api/trigger``: inspect the next frame now (the screen's button, a foot pedal script)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from qc_station.api.auth import Actor
from qc_station.errors import CameraError


class TriggerAccepted(BaseModel):
    accepted: bool = True
    detail: str = "the next frame will be inspected; the result arrives on /api/events"


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["trigger"])

    @router.post("/trigger", response_model=TriggerAccepted, status_code=202)
    def trigger(actor: Actor = Depends(ctx.auth.role("operator"))) -> TriggerAccepted:
        """Manual trigger. 503 when this server has no running camera loop."""
        if ctx.station is None:
            raise CameraError("this server has no camera loop (started without a station)")
        ctx.station.request_trigger()
        return TriggerAccepted()

    return router
