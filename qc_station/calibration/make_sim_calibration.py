"""Regenerate the bundled calibration of the simulator's default camera.

    python -m qc_station.calibration.make_sim_calibration [--views 20] [--seed 2026] [--out FILE]

Renders board views and a plane view of ``qc_station.sim.default_camera()`` and runs this
package's own calibration on them (no simulator truth goes into the file), then writes
``qc_station/calibration/data/sim-default.json``. Run it again whenever the simulator's default
camera changes; ``tests/test_calibration_sim.py`` fails while the bundled file is stale. The file
is rewritten only when its content (its id) changes, so reruns keep ``created_at``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qc_station.calibration.model import StationCalibration, load_calibration
from qc_station.calibration.station import calibrate
from qc_station.errors import CalibrationError

DATA_FILE = Path(__file__).resolve().parent / "data" / "sim-default.json"
N_VIEWS = 20
SEED = 2026


def make_sim_calibration(n_views: int = N_VIEWS, seed: int = SEED) -> StationCalibration:
    """Calibrate the simulator's default camera from ``n_views`` rendered board views (+ a plane view)."""
    from qc_station import sim

    camera = sim.default_camera()
    rng = np.random.default_rng(seed)
    views = sim.render_board_views(camera, n_views, rng)
    plane = sim.render_plane_view(camera, rng)
    named = [(f"sim-default-view-{k:02d}", image) for k, (image, _truth) in enumerate(views)]
    return calibrate(named, ("sim-default-plane", plane), "charuco")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=N_VIEWS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=DATA_FILE)
    args = parser.parse_args(argv)
    cal = make_sim_calibration(args.views, args.seed)
    if args.out.is_file():
        try:
            if load_calibration(args.out).id == cal.id:
                print(f"{args.out} is up to date ({cal.id})")
                return 0
        except CalibrationError:
            pass  # a broken or edited old file is simply replaced
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    print(f"wrote {args.out} ({cal.id}): RMS {cal.rms_px:.3f} px, {cal.mm_per_px:.4f} mm/px, "
          f"{len(cal.views_used)} views used, {len(cal.views_rejected)} rejected")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
