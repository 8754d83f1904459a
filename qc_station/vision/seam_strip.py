"""Straightened bands along each side of a mask crop, and a thread-line detector on them.

A side strip is the band of fabric along one edge resampled so that ``u`` runs along the edge and
``v`` runs inward from the *local* edge (found per position on the body mask). A top-stitch that
follows the edge becomes a horizontal line in the strip whatever the outline's small wiggles.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.vision.types import MaskCrop

SIDES = ("top", "bottom", "left", "right")
EDGE_SEARCH_MM = 4.0  # the local edge is looked for this far either side of the measured outline


@dataclass(frozen=True)
class SideStrip:
    """One side's band: ``image`` is (n_v, n_u, 3) float32, row i at ``v0_mm + i * step_mm`` inward."""

    side: str
    image: np.ndarray
    u_mm: np.ndarray  # (n_u,) position along the side in the mask frame (x for top/bottom, y else)
    edge_mm: np.ndarray  # (n_u,) smoothed local edge position across the side (y for top/bottom, x else)
    edge_raw_mm: np.ndarray  # (n_u,) unsmoothed edge (a notch shows here)
    v0_mm: float
    step_mm: float

    def to_mask_mm(self, u_mm: float, v_mm: float, edge_mm: float) -> tuple[float, float]:
        """Strip (u along, v inward from ``edge_mm``) -> mask-frame (x, y) mm."""
        if self.side == "top":
            return u_mm, edge_mm + v_mm
        if self.side == "bottom":
            return u_mm, edge_mm - v_mm
        if self.side == "left":
            return edge_mm + v_mm, u_mm
        return edge_mm - v_mm, u_mm


def _local_edge(crop: MaskCrop, side: str, u_mm: np.ndarray) -> np.ndarray:
    """Edge position across ``side`` for each ``u_mm``, from the body mask (mask-frame mm)."""
    s = crop.mm_per_px
    n = int(np.ceil(2 * EDGE_SEARCH_MM / s))
    if side in ("top", "bottom"):
        outline = 0.0 if side == "top" else crop.height_mm
        start = outline - EDGE_SEARCH_MM
        rows = np.round(np.array([crop.to_px(0, start + k * s)[1] for k in range(n)])).astype(int)
        cols = np.round((u_mm - crop.origin_mm[0]) / s).astype(int)
        rows = np.clip(rows, 0, crop.body.shape[0] - 1)
        cols = np.clip(cols, 0, crop.body.shape[1] - 1)
        win = crop.body[np.ix_(rows, cols)]  # (n, n_u)
    else:
        outline = 0.0 if side == "left" else crop.width_mm
        start = outline - EDGE_SEARCH_MM
        cols = np.round(np.array([crop.to_px(start + k * s, 0)[0] for k in range(n)])).astype(int)
        rows = np.round((u_mm - crop.origin_mm[1]) / s).astype(int)
        rows = np.clip(rows, 0, crop.body.shape[0] - 1)
        cols = np.clip(cols, 0, crop.body.shape[1] - 1)
        win = crop.body[np.ix_(rows, cols)].T  # (n, n_u)
    inside = win.sum(axis=0).astype(np.float64)
    # body pixels counted from outside inwards: the edge is where they start (half a pixel before)
    if side in ("top", "left"):
        return start + (n - inside) * s - 0.5 * s
    return start + inside * s + 0.5 * s


def running_median(a: np.ndarray, k: int, *, block: int = 1) -> np.ndarray:
    """Running median over ``k`` samples; with ``block`` > 1 on block medians (fast, coarse)."""
    k = max(1, k | 1)
    if block > 1 and len(a) >= 2 * block:
        nb = len(a) // block
        med = np.median(a[: nb * block].reshape(nb, block), axis=1)
        sm = running_median(med, max(1, round(k / block)))
        centres = np.arange(nb) * block + (block - 1) / 2
        return np.interp(np.arange(len(a)), centres, sm)
    if k == 1 or len(a) < k:
        return a.copy()
    pad = k // 2
    ap = np.pad(a, pad, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(ap, k)
    return np.median(win, axis=1)


def straight_edge(u_mm: np.ndarray, edge_raw_mm: np.ndarray, outline_mm: float) -> np.ndarray:
    """A robust straight line through the local edge positions.

    The crop is de-rotated, so each side is close to a straight line; fitting one (and not
    following every wiggle of the body mask) keeps the seam straight in the strip even where
    the segmentation bites into a dark print or an open seam notches the outline.
    """
    e = edge_raw_mm
    keep = np.abs(e - np.median(e)) < 1.0
    line = np.full_like(e, outline_mm)
    for tol in (0.6, 0.3):
        if keep.sum() < max(10, 0.3 * len(e)):
            break
        u, y = u_mm[keep], e[keep]
        du = u - u.mean()
        slope = float((du * (y - y.mean())).sum() / max(float((du * du).sum()), 1e-9))
        line = y.mean() + slope * (u_mm - u.mean())
        keep = np.abs(e - line) < tol
    return np.clip(line, outline_mm - EDGE_SEARCH_MM + 0.5, outline_mm + EDGE_SEARCH_MM - 0.5)


def side_strip(crop: MaskCrop, side: str, *, v_range_mm: tuple[float, float], u_range_mm: tuple[float, float],
               step_mm: float) -> SideStrip:
    """Resample the band ``v_range_mm`` inward from the local edge of ``side`` into a strip."""
    u_mm = np.arange(u_range_mm[0], u_range_mm[1], step_mm)
    v_mm = np.arange(v_range_mm[0], v_range_mm[1], step_mm)
    edge_raw = _local_edge(crop, side, u_mm)
    outline = {"top": 0.0, "bottom": crop.height_mm, "left": 0.0, "right": crop.width_mm}[side]
    edge = straight_edge(u_mm, edge_raw, outline)
    sign = 1.0 if side in ("top", "left") else -1.0
    across = edge[None, :] + sign * v_mm[:, None]  # (n_v, n_u)
    along = np.broadcast_to(u_mm[None, :], across.shape)
    x_mm, y_mm = (along, across) if side in ("top", "bottom") else (across, along)
    map_x = ((x_mm - crop.origin_mm[0]) / crop.mm_per_px).astype(np.float32)
    map_y = ((y_mm - crop.origin_mm[1]) / crop.mm_per_px).astype(np.float32)
    src = crop.image
    if crop.mm_per_px < 0.8 * step_mm:  # finer crop: pre-smooth so resampling does not alias
        src = cv2.GaussianBlur(src, (0, 0), 0.4 * step_mm / crop.mm_per_px)
    img = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return SideStrip(side, img.astype(np.float32), u_mm, edge, edge_raw, float(v_range_mm[0]), step_mm)


def line_response(strip_img: np.ndarray, *, half_width_px: int = 2) -> np.ndarray:
    """Strength of a thin line running along ``u`` (rows), either polarity, any colour.

    Per channel, the centre is compared with both sides at +-``half_width_px``..+1 rows; only a
    difference of the same sign on both sides counts (a step edge of a print gives nothing),
    and the smaller of the two is kept. Channels combine as a vector norm, so the thread may be
    darker or lighter than the fabric, or only differ in hue.
    """
    img = cv2.GaussianBlur(strip_img, (0, 0), sigmaX=1.0, sigmaY=0.6)
    k = half_width_px
    c = img[k + 1:-(k + 1)]
    above = 0.5 * (img[1:-(2 * k + 1)] + img[0:-(2 * k + 2)])
    below = 0.5 * (img[2 * k + 1:-1] + img[2 * k + 2:])
    d1 = c - above
    d2 = c - below
    same = (d1 * d2) > 0
    m = np.where(same, np.minimum(np.abs(d1), np.abs(d2)), 0.0)
    r = np.sqrt((m * m).sum(axis=2))
    out = np.zeros(strip_img.shape[:2], np.float32)
    out[k + 1:-(k + 1)] = r
    return out
