"""``/api/health``: camera, pipeline, model, calibration age, disk, store. Always open (no token)."""

from __future__ import annotations

from fastapi import APIRouter

from qc_station.station import ComponentHealth, StationHealth, assemble_health, disk_health


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["health"])

    @router.get("/health", response_model=StationHealth)
    def health() -> StationHealth:
        """Overall ``ok`` / ``degraded`` / ``fault`` and each component with a message to act on."""
        if ctx.station is not None:
            return ctx.station.health()
        absent = ComponentHealth(
            ok=False, state="absent", message="no camera: this server only serves the store"
        )
        return assemble_health(
            ctx.station_id, False, camera=absent, pipeline=absent, model=absent, calibration=absent,
            disk=disk_health(ctx.store),
            store=ComponentHealth(ok=True, state="ok", details={"schema_version": ctx.store.schema_version}),
        )

    return router
