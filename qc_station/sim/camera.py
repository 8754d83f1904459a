"""A real pinhole + Brown-Conrady camera looking down at the tray (the simulator's eye).

Tray frame: origin at a tray corner region, x right, y down, z into the tray (mm). The camera
pose is OpenCV's: a tray point ``P`` has camera coordinates ``R @ P + t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics, distortion and pose of a simulated station camera."""

    image_size: tuple[int, int]  # (width, height) px
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)  # k1, k2, p1, p2, k3
    rvec: tuple[float, float, float] = (0.0, 0.0, 0.0)  # tray -> camera rotation (Rodrigues)
    tvec_mm: tuple[float, float, float] = (0.0, 0.0, 350.0)
    name: str = field(default="sim", compare=False)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def dist_array(self) -> np.ndarray:
        return np.asarray(self.dist, dtype=np.float64)

    def project(self, points_tray_mm: np.ndarray) -> np.ndarray:
        """Project Nx3 (or Nx2, z=0) tray points in mm to Nx2 distorted pixel coordinates."""
        pts = np.asarray(points_tray_mm, dtype=np.float64).reshape(-1, points_tray_mm.shape[-1])
        if pts.shape[1] == 2:
            pts = np.hstack([pts, np.zeros((len(pts), 1))])
        px, _ = cv2.projectPoints(
            pts, np.asarray(self.rvec, float), np.asarray(self.tvec_mm, float), self.K,
            self.dist_array,
        )
        return px.reshape(-1, 2)
