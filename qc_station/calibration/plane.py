"""The tray plane: the board's pose in one image of it lying flat on the tray, and checks on it.

The tray frame is the board frame of that image (mm, origin at the board origin, x right,
y down, z into the tray), so the board's squares measured through the calibration are a
direct check of the whole chain (intrinsics + distortion + plane pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.calibration.boards import BoardDetection, BoardSpec, detect_board, parse_board
from qc_station.calibration.geometry import (
    TrayCamera,
    camera_centre_tray_mm,
    mm_per_px_at,
    pixel_to_tray_mm,
    undistort_to_normalized,
)
from qc_station.calibration.intrinsics import single_threaded
from qc_station.errors import CalibrationError

MAX_TRAY_RMS_PX = 1.5


@dataclass(frozen=True)
class _Cam:
    K: np.ndarray
    dist: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray


@dataclass(frozen=True)
class TrayPose:
    """Tray plane in the camera frame (tray point ``P`` -> ``R(rvec) P + tvec_mm``) and what follows."""

    rvec: np.ndarray
    tvec_mm: np.ndarray
    rms_px: float
    mm_per_px: float  # at the image centre, geometric mean of x and y
    mm_per_px_xy: tuple[float, float]
    camera_height_mm: float
    tilt_deg: float
    n_corners: int


def estimate_tray_pose(K: np.ndarray, dist: np.ndarray, detection: BoardDetection,
                       *, max_rms_px: float = MAX_TRAY_RMS_PX) -> TrayPose:
    """Pose of the board lying on the tray, from its detection in the plane image.

    Planar PnP (IPPE) on the undistorted corners, then Levenberg-Marquardt on the pixel error with
    the full lens model. :class:`CalibrationError` if the board was not usable or the fit is poor.
    """
    if not detection.ok:
        raise CalibrationError(f"tray-plane image unusable: {detection.reason}")
    obj = detection.object_points_mm.reshape(-1, 3).astype(np.float64)
    img = detection.image_points_px.reshape(-1, 2).astype(np.float64)
    with single_threaded():
        norm = undistort_to_normalized(_Cam(K, dist, np.zeros(3), np.zeros(3)), img)
        ok, rvec, tvec = cv2.solvePnP(obj, norm.reshape(-1, 1, 2), np.eye(3), None, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            raise CalibrationError("tray-plane pose could not be solved from the plane image")
        rvec, tvec = cv2.solvePnPRefineLM(obj, img.reshape(-1, 1, 2), K, dist, rvec, tvec,
                                          (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
    if rms > max_rms_px:
        raise CalibrationError(
            f"tray-plane pose fits poorly: RMS {rms:.2f} px (max {max_rms_px:g}); is the board flat on "
            "the tray, and were the intrinsics taken with the same focus and resolution?")
    cam = _Cam(K, dist, rvec.reshape(3, 1), tvec.reshape(3, 1))
    centre = camera_centre_tray_mm(cam)
    if centre[2] >= 0:
        raise CalibrationError("tray-plane pose puts the camera below the tray; check the board's face")
    w, h = detection.image_size
    mx, my = mm_per_px_at(cam, ((w - 1) / 2.0, (h - 1) / 2.0))
    R, _ = cv2.Rodrigues(rvec)
    axis_tray = R.T @ np.array([0.0, 0.0, 1.0])  # the optical axis in the tray frame
    tilt = float(np.degrees(np.arccos(np.clip(axis_tray[2], -1.0, 1.0))))
    return TrayPose(
        rvec=rvec.ravel(), tvec_mm=tvec.ravel(), rms_px=rms, mm_per_px=float(np.sqrt(mx * my)),
        mm_per_px_xy=(mx, my), camera_height_mm=float(-centre[2]), tilt_deg=tilt,
        n_corners=detection.n_corners,
    )


def measured_square_sizes_mm(cal: TrayCamera, detection: BoardDetection, board: BoardSpec) -> np.ndarray:
    """Every side between neighbouring detected corners, measured on the tray plane (mm)."""
    nx, _ = board.inner_corners
    tray = pixel_to_tray_mm(cal, detection.image_points_px)
    where = {int(i): k for k, i in enumerate(detection.ids)}
    sides = []
    for i, k in where.items():
        for step, same_row in ((1, True), (nx, False)):
            j = i + step
            if j in where and (not same_row or j // nx == i // nx):
                sides.append(np.linalg.norm(tray[where[j]] - tray[k]))
    return np.asarray(sides)


def measure_board_squares(cal, plane_image: np.ndarray, board: BoardSpec | str | None = None) -> float:
    """Mean size (mm) of the board's squares seen in ``plane_image``, measured on the tray plane.

    The check of a calibration: a 25 mm board must measure 25.00 mm. ``board`` defaults to the
    calibration's own (``cal.board``). Raises :class:`CalibrationError` if the board is not found.
    """
    spec = parse_board(board if board is not None else getattr(cal, "board", None))
    det = detect_board(spec, plane_image)
    if not det.ok:
        raise CalibrationError(f"board not usable in the check image: {det.reason}")
    sides = measured_square_sizes_mm(cal, det, spec)
    if len(sides) == 0:
        raise CalibrationError("no two neighbouring corners found in the check image")
    return float(np.mean(sides))
