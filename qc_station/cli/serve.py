"""``qc-station serve --config station.toml``: the real station (camera loop + web app)."""

from __future__ import annotations

import argparse
import logging
import signal

EPILOG = """\
examples:
  qc-station serve --config /etc/qc-station/station.toml
  qc-station serve --config station.toml --host 0.0.0.0   # LAN: needs `qc-station user add` first

The config file is documented in docs/config.md. Off loopback every request needs an API token
(see docs/api.md); the server refuses to start on a LAN address while no token exists.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the station: camera, inspection loop, store, web app",
        description="Run the station from its config file: frame source -> trigger -> inspection -> "
        "store, with the operator screen at / and the API under /api.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="station.toml (see docs/config.md)")
    p.add_argument("--host", help="override [api] host")
    p.add_argument("--port", type=int, help="override [api] port")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)


def _run(args) -> int:
    from qc_station.config import load_config

    config = load_config(args.config)
    api = config.api.model_copy(update={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    config = config.model_copy(update={"api": type(config.api).model_validate(api.model_dump())})
    return run_station(config, log_level=args.log_level)


def run_station(config, *, log_level: str = "info", setup=None, banner: str = "") -> int:
    """Open the store, build and start the station, serve until Ctrl-C / SIGTERM, then shut down."""
    import uvicorn

    from qc_station.api import create_app
    from qc_station.station import build_station, image_policy
    from qc_station.store import Store

    logging.basicConfig(
        level=getattr(logging, log_level.upper()), format="%(asctime)s %(levelname)s %(message)s"
    )
    store = Store(config.data_dir, policy=image_policy(config))
    try:
        from qc_station.api.auth import check_bind_security

        check_bind_security(config, store)  # before touching the camera
        station = build_station(config, store)
        app = create_app(config, store, station)  # refuses a LAN bind without tokens
        if setup is not None:
            setup(store, station)
        station.start()
        server = _Server(uvicorn.Config(app, host=config.api.host, port=config.api.port, log_level="warning",
                                        timeout_graceful_shutdown=2, access_log=False, lifespan="off"))
        server.on_exit = station.events.close
        host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::") else config.api.host

        def announce() -> None:  # only once the port is listening, so the URL works when printed
            print(banner or "Mask QC station", flush=True)
            print(f"  operator screen: http://{host}:{config.api.port}/", flush=True)
            print(f"  API docs:        http://{host}:{config.api.port}/docs", flush=True)
            print(f"  data:            {config.data_dir.resolve()}", flush=True)
            print("  stop with Ctrl-C", flush=True)

        server.on_started = announce
        try:
            server.run()
        finally:
            station.stop()
        if not server.started:
            from qc_station.errors import ConfigError

            raise ConfigError(
                f"could not listen on {config.api.host}:{config.api.port} (port in use? try --port)"
            )
    finally:
        store.close()
    return 0


def _make_server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn that first ends the live streams (so shutdown does not wait on open browsers) and
        treats Ctrl-C / SIGTERM as a normal stop: the station and store shut down, exit code 0."""

        on_exit = None
        on_started = None

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.on_started is not None:
                self.on_started()

        def handle_exit(self, sig, frame) -> None:
            if self.on_exit is not None:
                self.on_exit()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for connections
            self.should_exit = True  # not re-raised after shutdown, unlike uvicorn's default

    return Server


def _Server(config):
    return _make_server_class()(config)
