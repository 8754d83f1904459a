"""``qc-station demo``: the whole station on the simulated camera, zero configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  qc-station demo                         # http://127.0.0.1:8000, data in ./qc-data/
  qc-station demo --port 8080 --rate 2    # two masks a second
  qc-station demo --data /tmp/qc-demo

The simulator renders a conveyor of masks (mostly good, some with defects, a few unusable
frames) through the bundled simulator calibration; each is inspected by the real pipeline,
stored, and shown live on the operator screen. A demo batch is opened if none is open.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run a simulated station with its web pages (no camera needed)",
        description="Run the whole station on the simulated camera: inspects a mask every second or "
        "so and serves the operator screen on http://127.0.0.1:PORT/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--data", type=Path, default=Path("qc-data"), help="data folder (default ./qc-data)")
    p.add_argument("--rate", type=float, default=1.0, help="masks per second (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="simulator seed (default: a new one per run)")
    p.set_defaults(func=_run)


def demo_config(data: Path, port: int, rate: float, seed: int):
    """The demo's station config: simulated conveyor, every frame inspected, paced to ``rate``."""
    from qc_station.config import parse_config

    if not 0 < rate <= 20:
        from qc_station.errors import ConfigError

        raise ConfigError(f"--rate must be between 0 and 20 masks per second, got {rate}")
    return parse_config(
        {
            "data_dir": str(data),
            "station": {"id": "demo", "name": "Demo station (simulated camera)", "workshop": "Demo workshop"},
            "capture": {"type": "sim", "mode": "conveyor", "seed": seed},
            "trigger": {"mode": "every_frame", "min_interval_s": 1.0 / rate},
            "calibration": "sim",
            "api": {"host": "127.0.0.1", "port": port},
        },
        source="demo defaults",
    )


def open_demo_batch(store, station) -> None:
    """Open a demo batch unless one is open already (a restarted demo keeps its batch)."""
    import time

    if store.open_batch_of(station.station_id) is None:
        spec = station.spec
        store.open_batch(
            station.station_id, time.strftime("DEMO-%Y%m%d-%H%M"), spec_name=spec.name,
            spec_version=spec.version, spec_id=spec.spec_id, workshop="Demo workshop", operator="demo",
            actor="demo",
        )


def _run(args) -> int:
    import random

    from qc_station.cli.serve import run_station

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    config = demo_config(args.data, args.port, args.rate, seed)
    return run_station(
        config, log_level="warning", setup=open_demo_batch,
        banner=f"Mask QC station demo (simulated camera, seed {seed}, {args.rate:g} mask/s)",
    )
