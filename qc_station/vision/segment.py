"""Mask vs tray on a coarse rectified view: foreground, the mask body (loops removed), its pose.

The tray is modelled, not assumed: its colour (CIE Lab) is fitted per channel as a smooth
quadratic surface over the view from pixels away from the mask, which absorbs vignetting and
uneven light. A pixel is foreground when its colour distance from that surface is above a
threshold chosen per frame (Otsu on the distance, but never below a multiple of the tray's
own spread, so dust, lint, scratches and noise on an empty tray stay background). The mask is
the largest foreground region with its holes filled (prints with tray-like colours).

Ear loops are thin (cord 2-4 mm, flat elastic up to ~8 mm) and attached at the side edges;
a morphological opening with a disk wider than any loop but much narrower than the mask
(:data:`LOOP_OPENING_MM`) keeps only the body, whose minimum-area rectangle gives a first pose
(about 0.5 mm / 0.5 deg), refined later by sub-pixel edge fits (:mod:`.outline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Disk diameter of the opening that separates ear loops from the body (wider than any loop).
LOOP_OPENING_MM = 16.0
#: Gaps in a print (tray-like colours inside the fabric) closed before holes are filled.
CLOSING_MM = 5.0
#: Pieces of at least this fraction of the largest region, whose centres are closer than
#: PIECE_RADIUS_MM to its centre, belong to the mask too.
PIECE_MIN_FRACTION = 0.1
PIECE_RADIUS_MM = 110.0
#: The foreground threshold is never below this many tray-spreads (robust sigma) above the tray.
MIN_CONTRAST_SIGMAS = 6.0
#: ... nor below this colour distance (delta E), whatever the tray noise.
MIN_CONTRAST_DE = 6.0
#: Holes in the mask region smaller than this are print gaps (filled); larger ones are the
#: tray seen through an ear loop (kept open so the opening can separate the loop).
MAX_HOLE_MM2 = 500.0
#: Weight of lightness against chroma in the colour distance (soft shadows change L mostly).
L_WEIGHT = 0.7


@dataclass(frozen=True)
class Foreground:
    """Foreground of a coarse rectified view and the tray model behind it."""

    fg: np.ndarray  # bool, the mask region (body + loops), holes filled
    raw: np.ndarray  # bool, every pixel above threshold (before keeping the largest region)
    distance: np.ndarray  # float32 colour distance from the tray model
    threshold: float
    tray_sigma: float  # robust spread of the distance on the tray


@dataclass(frozen=True)
class CoarsePose:
    """First estimate of the mask body: rectangle in view pixels."""

    body: np.ndarray  # bool, body only (opening removed the loops)
    center_px: tuple[float, float]
    size_px: tuple[float, float]  # (long side, short side)
    angle_deg: float  # of the long side, in (-90, 90], image axes (y down)
    area_px: float


def _disk(diameter_px: float) -> np.ndarray:
    d = max(3, round(diameter_px) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def _quadratic_fit(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, shape) -> np.ndarray:
    """Least-squares quadratic surface through (xs, ys, values), evaluated on the whole grid."""
    h, w = shape
    sx, sy = 2.0 / w, 2.0 / h  # normalised coordinates keep the system well conditioned
    x, y = xs * sx - 1, ys * sy - 1
    a = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], 1)
    coef, *_ = np.linalg.lstsq(a, values, rcond=None)
    gx = np.arange(w, dtype=np.float32) * sx - 1
    gy = np.arange(h, dtype=np.float32)[:, None] * sy - 1
    out = np.empty((h, w, values.shape[1]), np.float32)
    for c in range(values.shape[1]):
        k = coef[:, c]
        out[..., c] = k[0] + k[1] * gx + k[2] * gy + k[3] * gx * gx + k[4] * gx * gy + k[5] * gy * gy
    return out


def _otsu(values: np.ndarray, hi: float) -> float:
    scaled = np.clip(values / hi * 255.0, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) * hi / 255.0


def lab_of(image_bgr: np.ndarray) -> np.ndarray:
    """CIE Lab as float32 with L in 0-100 (from OpenCV's fast 8-bit conversion)."""
    lab = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2Lab).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def foreground(view_bgr: np.ndarray, valid: np.ndarray, mm_per_px: float, *,
               smooth_mm: float = 0.0) -> Foreground:
    """Separate mask (and loops) from the tray on a rectified view. See the module docstring.

    ``smooth_mm`` > 0 decides on regions instead of pixels: the colour difference from the tray
    colour is averaged over a Gaussian of that sigma before anything is decided, so the tray's pixel
    noise (a dark tray's chroma noise) averages out while a whole fabric region keeps its
    contrast; the floor of :data:`MIN_CONTRAST_SIGMAS` is then taken on that smoothed spread.
    Used as a retry when the per-pixel pass finds no mask-sized object.
    """
    lab = lab_of(view_bgr)
    lab[..., 0] *= L_WEIGHT
    if smooth_mm > 0:
        lab = cv2.GaussianBlur(lab, (0, 0), smooth_mm / mm_per_px)
    h, w = valid.shape
    step = 2
    ys, xs = np.nonzero(valid[::step, ::step])
    samples = lab[ys * step, xs * step]
    # pass 1: one tray colour (the tray covers most of the view)
    med = np.median(samples, axis=0)
    d0 = np.sqrt(((samples - med) ** 2).sum(axis=1))
    hi = float(np.percentile(d0, 99.5)) + 1e-3
    t0 = max(_otsu(d0, hi), MIN_CONTRAST_DE)
    # pass 2: smooth tray surface fitted away from (a dilation of) the first foreground
    fg0 = np.zeros(valid[::step, ::step].shape, np.uint8)
    fg0[ys, xs] = d0 > t0
    fg0 = cv2.dilate(fg0, _disk(20.0 / (mm_per_px * step)))
    keep = fg0[ys, xs] == 0
    if keep.sum() < 50:
        keep = np.ones_like(keep)
    model = _quadratic_fit(samples[keep], (ys[keep] * step).astype(np.float32),
                           (xs[keep] * step).astype(np.float32), (h, w))
    diff = lab - model
    dist = np.sqrt(np.einsum("hwc,hwc->hw", diff, diff))
    dist[~valid] = 0.0
    tray_d = dist[ys[keep] * step, xs[keep] * step]
    sigma = float(1.4826 * np.median(tray_d)) + 1e-3  # d is a norm: its median tracks the spread
    floor = max(MIN_CONTRAST_SIGMAS * sigma, MIN_CONTRAST_DE)
    dv = dist[ys * step, xs * step]
    hi = float(np.percentile(dv, 99.5)) + 1e-3
    threshold = max(_otsu(dv, hi), floor)
    raw = (dist > threshold) & valid
    fg = _main_region(raw, mm_per_px)
    return Foreground(fg=fg, raw=raw, distance=dist, threshold=threshold, tray_sigma=sigma)


def grow_foreground(fgr: Foreground, valid: np.ndarray, mm_per_px: float, sigmas: float) -> Foreground:
    """``fgr`` grown by hysteresis: its pixels above the threshold are seeds, and every connected
    pixel above ``sigmas`` tray-spreads joins them (same tray model and distances, no second pass).

    A low-contrast fabric on a mottled tray (whose spread sets a high floor) is then found whole
    as long as some of it (its edge, its loops) stands out; tray blotches with no such seed stay
    background.
    """
    low = max(sigmas * fgr.tray_sigma, MIN_CONTRAST_DE)
    n, labels = cv2.connectedComponents(((fgr.distance > low) & valid).astype(np.uint8), connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[np.unique(labels[fgr.raw])] = True
    seeded[0] = False
    raw = seeded[labels]
    return Foreground(fg=_main_region(raw, mm_per_px), raw=raw, distance=fgr.distance,
                      threshold=fgr.threshold, tray_sigma=fgr.tray_sigma)


def _largest_with_neighbours(binary: np.ndarray, mm_per_px: float) -> np.ndarray | None:
    """The largest region plus big pieces close to it (a print stripe as dark as the tray can cut
    the mask in two); None when there is nothing."""
    n, labels, stats, cents = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas))
    near = np.hypot(*(cents[1:] - cents[1 + best]).T) * mm_per_px < PIECE_RADIUS_MM
    keep = np.zeros(n, np.uint8)
    keep[1:] = (areas >= PIECE_MIN_FRACTION * areas[best]) & near
    return keep[labels]


def _main_region(raw: np.ndarray, mm_per_px: float) -> np.ndarray:
    """The mask's region after closing print gaps, with its holes filled."""
    m = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_CLOSE, _disk(CLOSING_MM / mm_per_px))
    region = _largest_with_neighbours(m, mm_per_px)
    if region is None:
        return np.zeros(raw.shape, bool)
    # fill holes left by tray-like print colours, but not the tray seen through an ear loop
    contours, hier = cv2.findContours(region, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    max_hole_px = MAX_HOLE_MM2 / mm_per_px**2
    for i, cnt in enumerate(contours):
        if hier[0][i][3] >= 0 and cv2.contourArea(cnt) < max_hole_px:
            cv2.drawContours(region, contours, i, 1, thickness=cv2.FILLED)
    return region.astype(bool)


def coarse_pose(fg: np.ndarray, mm_per_px: float) -> CoarsePose | None:
    """The body (loops opened away) and its minimum-area rectangle; None if nothing is left."""
    opened = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, _disk(LOOP_OPENING_MM / mm_per_px))
    body = _largest_with_neighbours(opened, mm_per_px)
    if body is None:
        return None
    contours, _ = cv2.findContours(body, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    (cx, cy), (a, b), ang = cv2.minAreaRect(np.concatenate(contours))
    if b > a:  # make the first side the long one
        a, b, ang = b, a, ang + 90.0
    ang = (ang + 90.0) % 180.0 - 90.0
    if ang <= -90.0:
        ang += 180.0
    return CoarsePose(body=body.astype(bool), center_px=(cx, cy), size_px=(a, b), angle_deg=float(ang),
                      area_px=float(body.sum()))
