"""Mask frame <-> tray frame, and sampling a de-rotated metric crop of the mask."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qc_station.vision.rectify import TrayView


@dataclass(frozen=True)
class MaskPose:
    """Where the mask lies: its outline centre in the tray frame, rotation and size (mm).

    Mask-frame point ``(u, v)`` is at tray ``center + R(angle) @ (u - w/2, v - h/2)`` with
    ``R`` the rotation by ``angle_deg`` in the tray's (x right, y down) axes.
    """

    center_tray_mm: tuple[float, float]
    angle_deg: float
    width_mm: float
    height_mm: float

    def _rot(self) -> tuple[float, float]:
        a = math.radians(self.angle_deg)
        return math.cos(a), math.sin(a)

    def mask_to_tray(self, uv_mm: np.ndarray) -> np.ndarray:
        """Mask-frame mm (..., 2) -> tray mm (..., 2)."""
        uv = np.asarray(uv_mm, dtype=np.float64)
        c, s = self._rot()
        du = uv[..., 0] - self.width_mm / 2
        dv = uv[..., 1] - self.height_mm / 2
        return np.stack([self.center_tray_mm[0] + c * du - s * dv,
                         self.center_tray_mm[1] + s * du + c * dv], -1)

    def tray_to_mask(self, xy_mm: np.ndarray) -> np.ndarray:
        """Tray mm (..., 2) -> mask-frame mm (..., 2)."""
        xy = np.asarray(xy_mm, dtype=np.float64)
        c, s = self._rot()
        dx = xy[..., 0] - self.center_tray_mm[0]
        dy = xy[..., 1] - self.center_tray_mm[1]
        return np.stack([c * dx + s * dy + self.width_mm / 2, -s * dx + c * dy + self.height_mm / 2], -1)


@dataclass(frozen=True)
class CropGrid:
    """A de-rotated metric grid in the mask frame: pixel (col, row) -> mask mm."""

    pose: MaskPose
    origin_mm: tuple[float, float]  # mask-frame mm of pixel (0, 0)
    mm_per_px: float
    size_px: tuple[int, int]  # (width, height)

    @classmethod
    def around(cls, pose: MaskPose, margin_mm: float, mm_per_px: float) -> CropGrid:
        """The mask's outline plus ``margin_mm`` on every side."""
        w = math.ceil((pose.width_mm + 2 * margin_mm) / mm_per_px) + 1
        h = math.ceil((pose.height_mm + 2 * margin_mm) / mm_per_px) + 1
        return cls(pose, (-margin_mm, -margin_mm), mm_per_px, (w, h))

    def px_to_mask(self, cr: np.ndarray) -> np.ndarray:
        cr = np.asarray(cr, dtype=np.float64)
        return cr * self.mm_per_px + np.asarray(self.origin_mm)

    def mask_to_px(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, dtype=np.float64)
        return (uv - np.asarray(self.origin_mm)) / self.mm_per_px

    def sample(self, view: TrayView, image: np.ndarray,
               window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The camera image resampled on this grid (one interpolation of the camera pixels);
        ``window`` = (c0, r0, c1, r1) samples only that part of the grid."""
        w, h = self.size_px
        c0, r0, c1, r1 = window or (0, 0, w, h)
        u = self.origin_mm[0] + np.arange(c0, c1, dtype=np.float32) * self.mm_per_px
        v = self.origin_mm[1] + np.arange(r0, r1, dtype=np.float32) * self.mm_per_px
        c, s = self.pose._rot()
        du = (u - self.pose.width_mm / 2)[None, :]
        dv = (v - self.pose.height_mm / 2)[:, None]
        tx = (self.pose.center_tray_mm[0] + c * du - s * dv).astype(np.float32)
        ty = (self.pose.center_tray_mm[1] + s * du + c * dv).astype(np.float32)
        return view.sample_grid(image, tx, ty)
