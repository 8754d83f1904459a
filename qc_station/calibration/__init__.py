"""Calibration: ChArUco / chessboard boards, intrinsics, tray-plane pose, px <-> mm."""

from qc_station.calibration.model import StationCalibration, load_calibration

__all__ = ["StationCalibration", "load_calibration"]
