"""``/api/events``: Server-Sent Events, one ``inspection`` event per stored result, live.

Events: ``inspection`` (the stored record, ``id`` = inspection id), ``batch`` (opened/closed),
``health`` (a fault appeared or cleared). A client that reconnects with ``Last-Event-ID``
first receives the inspections it missed (up to 500), then the live stream.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from qc_station.api.events import LiveEvent, is_closing
from qc_station.api.params import BadRequestError

KEEPALIVE_S = 15.0


def build(ctx) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["events"])

    @router.get(
        "/events",
        dependencies=[Depends(ctx.auth.reader())],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(
        request: Request,
        last_event_id: Annotated[str | None, Header(description="Resume after this inspection id")] = None,
    ) -> StreamingResponse:
        """Live results as Server-Sent Events (use the browser's EventSource)."""
        resume: int | None = None
        if last_event_id:
            try:
                resume = int(last_event_id)
            except ValueError:
                raise BadRequestError(
                    f"Last-Event-ID must be an inspection id, got {last_event_id!r}"
                ) from None
        sub = ctx.events.subscribe()

        async def stream():
            try:
                yield "retry: 2000\n\n"
                seen = resume or 0
                if resume is not None:
                    missed = ctx.store.list_inspections(station_id=ctx.station_id, after_id=resume, limit=500)
                    for rec in reversed(missed.items):
                        seen = max(seen, rec.id)
                        yield LiveEvent("inspection", rec.model_dump(mode="json"), id=rec.id).encode()
                yield LiveEvent("hello", {"station_id": ctx.station_id}).encode()
                while not ctx.events.closed:
                    event = await sub.get(KEEPALIVE_S)
                    if event is None:
                        if await request.is_disconnected():
                            break
                        yield ": keep-alive\n\n"
                        continue
                    if is_closing(event):
                        break
                    if event.kind == "inspection" and event.id is not None and event.id <= seen:
                        continue  # already sent while catching up
                    yield event.encode()
            finally:
                ctx.events.unsubscribe(sub)

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
