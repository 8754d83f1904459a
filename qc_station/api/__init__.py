"""The station's HTTP API (FastAPI): ``create_app(settings, store, station=None)``."""

from qc_station.api.app import ROUTES, AppContext, create_app

__all__ = ["ROUTES", "AppContext", "create_app"]
