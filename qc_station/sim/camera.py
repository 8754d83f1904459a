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

    @property
    def R(self) -> np.ndarray:
        """Tray -> camera rotation matrix."""
        return cv2.Rodrigues(np.asarray(self.rvec, dtype=np.float64))[0]

    @property
    def center_tray_mm(self) -> np.ndarray:
        """The camera's optical centre in tray coordinates (z < 0: above the tray)."""
        return -self.R.T @ np.asarray(self.tvec_mm, dtype=np.float64)

    @property
    def height_mm(self) -> float:
        """Height of the optical centre above the tray plane."""
        return float(-self.center_tray_mm[2])


def camera_looking_at(
    target_tray_mm: tuple[float, float],
    *,
    height_mm: float,
    mm_per_px: float,
    tilt_deg: float,
    tilt_dir_deg: float,
    roll_deg: float = 0.0,
    image_size: tuple[int, int] = (2304, 1296),
    principal_offset_px: tuple[float, float] = (0.0, 0.0),
    dist: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0),
    aspect: float = 1.0,
    name: str = "sim",
) -> CameraModel:
    """A camera ``height_mm`` above the tray whose optical axis meets the tray at ``target_tray_mm``.

    ``tilt_deg`` is the angle between the optical axis and the tray normal, ``tilt_dir_deg`` the
    direction (in the tray plane) the camera leans towards, ``roll_deg`` a rotation about the
    optical axis. Focal length ``height / mm_per_px`` gives ``mm_per_px`` on the axis.
    """
    w, h = image_size
    f = height_mm / mm_per_px
    a = np.deg2rad(tilt_dir_deg)
    axis = np.array([-np.sin(a), np.cos(a), 0.0]) * np.deg2rad(tilt_deg)
    r_tilt = cv2.Rodrigues(axis)[0]
    r_roll = cv2.Rodrigues(np.array([0.0, 0.0, np.deg2rad(roll_deg)]))[0]
    R = r_roll @ r_tilt  # tray -> camera
    optical_axis_tray = R.T @ np.array([0.0, 0.0, 1.0])
    target = np.array([target_tray_mm[0], target_tray_mm[1], 0.0])
    centre = target - optical_axis_tray * (height_mm / optical_axis_tray[2])
    t = -R @ centre
    rvec = cv2.Rodrigues(R)[0].ravel()
    return CameraModel(
        image_size=(w, h),
        fx=float(f),
        fy=float(f * aspect),
        cx=float((w - 1) / 2 + principal_offset_px[0]),
        cy=float((h - 1) / 2 + principal_offset_px[1]),
        dist=tuple(float(d) for d in dist),
        rvec=(float(rvec[0]), float(rvec[1]), float(rvec[2])),
        tvec_mm=(float(t[0]), float(t[1]), float(t[2])),
        name=name,
    )


#: Where the camera looks on the tray: the middle of the default ChArUco board lying at the
#: tray origin (200 x 150 mm), so the plane view shows the board roughly central.
TRAY_VIEW_CENTER_MM = (100.0, 75.0)


def default_camera() -> CameraModel:
    """The deterministic station camera: 2304x1296, 350 mm up, ~0.20 mm/px, 2 deg tilt, mild distortion."""
    return camera_looking_at(
        TRAY_VIEW_CENTER_MM,
        height_mm=350.0,
        mm_per_px=0.20,
        tilt_deg=2.0,
        tilt_dir_deg=30.0,
        roll_deg=0.6,
        principal_offset_px=(7.5, -4.5),
        dist=(0.045, -0.03, 0.0006, -0.0004, 0.0),
        name="default",
    )


def random_camera(rng: np.random.Generator) -> CameraModel:
    """A camera anywhere in the station envelope (340-360 mm, tilt <= 5 deg, 0.19-0.22 mm/px)."""
    w, h = 2304, 1296
    k1 = float(rng.uniform(-0.05, 0.08))
    k2 = float(rng.uniform(-0.06, 0.04))
    if k1 < 0:  # keep barrel lenses monotonic over the frame
        k2 = max(k2, -0.01)
    return camera_looking_at(
        (TRAY_VIEW_CENTER_MM[0] + rng.uniform(-15, 15), TRAY_VIEW_CENTER_MM[1] + rng.uniform(-10, 10)),
        height_mm=float(rng.uniform(340.0, 360.0)),
        mm_per_px=float(rng.uniform(0.19, 0.22)),
        tilt_deg=float(rng.uniform(0.0, 5.0)),
        tilt_dir_deg=float(rng.uniform(0.0, 360.0)),
        roll_deg=float(rng.uniform(-3.0, 3.0)),
        principal_offset_px=(float(rng.uniform(-0.02, 0.02) * w), float(rng.uniform(-0.02, 0.02) * h)),
        dist=(k1, k2, float(rng.uniform(-1e-3, 1e-3)), float(rng.uniform(-1e-3, 1e-3)),
              float(rng.uniform(-0.01, 0.01))),
        aspect=float(1.0 + rng.uniform(-0.002, 0.002)),
        name="random",
    )
