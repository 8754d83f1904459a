"""Running the app with uvicorn: in the foreground (``serve``/``demo``) or in a thread (tests, bench)."""

from __future__ import annotations

import threading
import time

from qc_station.errors import ConfigError


class ServerThread:
    """uvicorn serving ``app`` from a background thread; ``port=0`` picks a free port.

    ``stop()`` ends the live event streams first so shutdown does not wait on open SSE clients.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning") -> None:
        import uvicorn

        self.app = app
        self.config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2,
            access_log=False, lifespan="off",
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="qc-station-http", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise ConfigError(f"the web server could not start on {self.host}:{self.port} (port in use?)")
            if time.monotonic() > deadline:
                raise ConfigError("the web server did not start in time")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        ctx = getattr(self.app.state, "ctx", None)
        if ctx is not None:
            ctx.events.close()
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
