"""Calibration: ChArUco / chessboard boards, intrinsics, tray-plane pose, px <-> mm.

- :mod:`.boards` the board specs (``--board``), their drawing and their detection;
- :mod:`.intrinsics` camera matrix + distortion from many views, bad views rejected;
- :mod:`.plane` the tray-plane pose from one image of the board lying on the tray;
- :mod:`.geometry` pixel <-> tray mm;
- :mod:`.station` the whole calibration -> :class:`StationCalibration` (``station.json``);
- :mod:`.printable` the board PDF / PNG.
"""

from __future__ import annotations

from importlib import resources

from qc_station.calibration.model import StationCalibration, load_calibration

__all__ = ["StationCalibration", "bundled_sim_calibration", "load_calibration"]

SIM_CALIBRATION_FILE = "sim-default.json"


def bundled_sim_calibration() -> StationCalibration:
    """The calibration of the simulator's default camera, computed by this package's own
    calibration from rendered board views (``python -m qc_station.calibration.make_sim_calibration``).

    Used by ``qc-station demo`` and by tests that need a realistic station.json.
    """
    ref = resources.files("qc_station.calibration") / "data" / SIM_CALIBRATION_FILE
    with resources.as_file(ref) as path:
        return load_calibration(path)
