"""The FastAPI application, built by :func:`create_app` from its dependencies.

Each resource has its own module ``routes_<name>.py`` exposing ``build(ctx) -> APIRouter``;
:data:`ROUTES` lists them, so adding a resource (dashboard, certificates, ...) is one line
here. Domain errors (:mod:`qc_station.errors`) become HTTP answers in one handler.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from qc_station import __version__
from qc_station.api.auth import Auth, check_bind_security
from qc_station.api.events import LiveEvents
from qc_station.config import StationConfig
from qc_station.errors import QCError
from qc_station.spec import MaskSpec, load_spec
from qc_station.store import Store

if TYPE_CHECKING:
    from qc_station.station import Station

log = logging.getLogger(__name__)

#: Route modules of ``qc_station.api``, each with ``build(ctx) -> APIRouter``.
ROUTES = [
    "routes_health",
    "routes_station",
    "routes_inspections",
    "routes_batches",
    "routes_stats",
    "routes_events",
    "routes_trigger",
    "routes_audit",
    "routes_dashboard",
    "routes_certificates",
]


@dataclass
class AppContext:
    """What every route may use; passed to each module's ``build``."""

    settings: StationConfig
    store: Store
    station: Station | None
    events: LiveEvents
    auth: Auth
    spec: MaskSpec

    @property
    def station_id(self) -> str:
        return self.settings.station.id


def _error_body(status: int, kind: str, detail: str, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": kind, "detail": detail, **extra})


def create_app(settings: StationConfig, store: Store, station: Station | None = None) -> FastAPI:
    """The station's web app: API under ``/api``, operator screen at ``/``, docs at ``/docs``."""
    check_bind_security(settings, store)
    events = station.events if station is not None else LiveEvents()
    spec = station.spec if station is not None else load_spec(settings.spec)
    store.ensure_station(settings.station.id, settings.station.name, settings.station.workshop)
    ctx = AppContext(
        settings=settings,
        store=store,
        station=station,
        events=events,
        auth=Auth(store, tokens_required=settings.api.tokens_required),
        spec=spec,
    )
    app = FastAPI(
        title="Mask QC station",
        version=__version__,
        description="Inspections, batches, live results and health of one mask QC station. "
        "See docs/api.md for authentication (tokens and roles).",
    )

    @app.exception_handler(QCError)
    async def _qc_error(request: Request, exc: QCError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        resp = _error_body(exc.http_status, type(exc).__name__, str(exc))
        if headers:
            resp.headers.update(headers)
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such route: {request.method} {request.url.path} (see /docs)"
        resp = _error_body(exc.status_code, "HTTPError", detail)
        resp.headers.update(exc.headers or {})
        return resp

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()))
            problems.append(f"{loc}: {e.get('msg')}")
        return _error_body(422, "ValidationError", "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unexpected error on %s", request.url.path)
        return _error_body(500, "InternalError", f"unexpected {type(exc).__name__}; see the station log")

    for name in ROUTES:
        module = importlib.import_module(f"qc_station.api.{name}")
        app.include_router(module.build(ctx))

    static = resources.files("qc_station.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def operator_screen() -> FileResponse:
        return FileResponse(str(static / "operator.html"), headers={"Cache-Control": "no-cache"})

    app.state.ctx = ctx  # for tests and the next helpers' introspection; routes get ctx via build()
    return app
