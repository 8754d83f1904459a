"""``/api/audit``: the append-only audit log (who opened/closed batches, added users). Supervisor+."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from qc_station.store import AuditEntry


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["audit"])

    @router.get(
        "/audit", response_model=list[AuditEntry], dependencies=[Depends(ctx.auth.role("supervisor"))]
    )
    def audit(limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[AuditEntry]:
        """Newest first. Needs role supervisor or higher when a token is used."""
        return ctx.store.list_audit(limit)

    return router
