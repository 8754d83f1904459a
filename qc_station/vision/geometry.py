"""Mask frame <-> tray frame, and sampling a de-rotated metric crop of the mask."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
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

    def to_view_affine(self, view: TrayView) -> np.ndarray:
        """2x3 matrix taking this grid's pixel (col, row, 1) to ``view``'s pixel (col, row)."""
        c, s = self.pose._rot()
        k = self.mm_per_px / view.mm_per_px
        # mask mm -> tray mm: centre + R (u - w/2, v - h/2); tray mm -> view px: (t - origin) / s_view
        u0 = self.origin_mm[0] - self.pose.width_mm / 2
        v0 = self.origin_mm[1] - self.pose.height_mm / 2
        tx = (self.pose.center_tray_mm[0] + c * u0 - s * v0 - view.origin_mm[0]) / view.mm_per_px
        ty = (self.pose.center_tray_mm[1] + s * u0 + c * v0 - view.origin_mm[1]) / view.mm_per_px
        return np.array([[c * k, -s * k, tx], [s * k, c * k, ty]], np.float64)

    def sample(self, view: TrayView, image: np.ndarray,
               window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The camera image resampled on this grid (one interpolation of the camera pixels);
        ``window`` = (c0, r0, c1, r1) samples only that part of the grid."""
        w, h = self.size_px
        c0, r0, c1, r1 = window or (0, 0, w, h)
        a = self.to_view_affine(view)
        a[:, 2] += a[:, 0] * c0 + a[:, 1] * r0  # the window's own origin
        # the grid is a similarity of the view's: warp its tables (exact nodes, smooth between)
        maps = cv2.warpAffine(view.map_xy, a, (c1 - c0, r1 - r0),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(-1.0, -1.0, 0, 0))
        return cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def resample_view(self, view: TrayView, view_image: np.ndarray) -> np.ndarray:
        """An image of ``view`` (e.g. its foreground) on this grid, nearest neighbour."""
        w, h = self.size_px
        return cv2.warpAffine(view_image, self.to_view_affine(view), (w, h),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
