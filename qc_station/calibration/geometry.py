"""Pure conversions between image pixels and millimetres on the tray plane.

A pixel is undistorted into a viewing ray, and the ray is intersected with the tray plane
``z = 0`` of the tray frame (mm, x right, y down, z into the tray, origin at the board origin
of the plane image). The inverse is OpenCV's projection with the lens distortion.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np


class TrayCamera(Protocol):
    """What the conversions need: a :class:`StationCalibration` (or anything shaped like it)."""

    @property
    def K(self) -> np.ndarray: ...

    @property
    def dist(self) -> np.ndarray: ...

    @property
    def rvec(self) -> np.ndarray: ...

    @property
    def tvec(self) -> np.ndarray: ...


def camera_centre_tray_mm(cal: TrayCamera) -> np.ndarray:
    """The camera's optical centre in the tray frame (mm); its z is negative (above the tray)."""
    R, _ = cv2.Rodrigues(cal.rvec)
    return (-R.T @ cal.tvec.reshape(3, 1)).ravel()


def undistort_to_normalized(cal: TrayCamera, pts_px: np.ndarray) -> np.ndarray:
    """(N, 2) distorted pixels -> (N, 2) ideal normalised image coordinates (x/z, y/z).

    Iterated to 1e-12 (OpenCV's default stops after 5 iterations, ~0.1 px off in the corners of
    a strongly distorted lens).
    """
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    return cv2.undistortPoints(pts, cal.K, cal.dist, criteria=criteria).reshape(-1, 2)


def pixel_to_tray_mm(cal: TrayCamera, pts_px: np.ndarray) -> np.ndarray:
    """Map (N, 2) distorted pixel coordinates to (N, 2) tray-plane coordinates in mm.

    Pixels whose ray does not meet the tray in front of the camera come back as NaN.

    >>> # xy_mm = pixel_to_tray_mm(load_calibration("station.json"), [[1152, 648]])
    """
    pts = np.asarray(pts_px, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    norm = undistort_to_normalized(cal, pts)
    R, _ = cv2.Rodrigues(cal.rvec)
    centre = camera_centre_tray_mm(cal)
    rays = np.column_stack([norm, np.ones(len(norm))]) @ R  # rows: R.T @ (x, y, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = -centre[2] / rays[:, 2]
    out = centre[:2] + lam[:, None] * rays[:, :2]
    out[~(lam > 0)] = np.nan
    return out


def tray_mm_to_pixel(cal: TrayCamera, pts_mm: np.ndarray) -> np.ndarray:
    """Map (N, 2) tray-plane points in mm (or (N, 3) tray points) to (N, 2) distorted pixels."""
    pts = np.asarray(pts_mm, dtype=np.float64)
    pts = pts.reshape(-1, pts.shape[-1]) if pts.ndim else pts.reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    px, _ = cv2.projectPoints(pts, cal.rvec, cal.tvec, cal.K, cal.dist)
    return px.reshape(-1, 2)


def mm_per_px_at(cal: TrayCamera, pixel: tuple[float, float]) -> tuple[float, float]:
    """Tray mm spanned by one pixel at ``pixel`` along x and along y (back-projecting +-0.5 px)."""
    u, v = pixel
    p = pixel_to_tray_mm(cal, [[u - 0.5, v], [u + 0.5, v], [u, v - 0.5], [u, v + 0.5]])
    return float(np.linalg.norm(p[1] - p[0])), float(np.linalg.norm(p[3] - p[2]))
