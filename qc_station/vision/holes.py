"""Holes: the tray seen through the mask body.

A hole is the one appearance defect geometry can prove: inside the fitted outline, a compact
patch whose colour is the tray's, surrounded by fabric that is not. The tray's colour is
sampled on the crop's own margin (the band of tray around the mask), so nothing depends on a
tray colour chosen in advance. Seen through a hole the tray lies in the fabric's shadow, so
a patch may be darker than the open tray but not brighter, and its chromaticity must match.
This complements the ONNX classifier (which also looks for stains); a hole of any size fails
(spec ``appearance.hole_min_mm``), and the smallest patch counted is what 0.2 mm pixels show
reliably (about 1 mm across).

Where the fabric itself is tray-coloured in many places (a print that matches the tray, or
more than :data:`MAX_HOLES` hole-like dots alike) the check cannot tell a hole from the print
and reports nothing, saying why in
``HoleCheck.skipped``; the station should then use a tray that contrasts with the whole fabric.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.results import Finding
from qc_station.vision.types import MaskCrop

MIN_DIAMETER_MM = 1.0  # smaller patches are noise / thread crossings at 0.2 mm/px
MIN_SIDE_MM = 0.8  # a tray-coloured stitch is ~0.5 mm thin: a hole is wide both ways
MAX_DIAMETER_MM = 25.0  # larger is a tear or a wrong outline, not a hole
EDGE_KEEP_OUT_MM = 2.0  # the outline's own anti-aliased edge is tray-blended
TRAY_BAND_MM = (2.0, 7.0)  # where the tray reference is sampled, outside the outline
DARKER_WEIGHT = 0.35  # a hole's tray is shadowed: darkness counts a third
MIN_TRAY_DE = 8.0  # tray-likeness limit never below this (Lab units)
MAX_TRAY_LIKE_FRACTION = 0.03  # above this the print itself matches the tray: no verdict
SURROUND_FACTOR = 2.0  # the fabric around a hole must be this many limits away from the tray
#: ...and ringed by fabric all round: at most this share (percent) of the ring may be tray-like.
#: A speck of a line (a fold's crest lit across a dark print square, broken into bits by noise)
#: has the rest of its line in its ring.
RING_PERCENTILE = 10.0
RING_FACTOR = 1.0
SEAM_BAND_MM = 11.0  # the top-stitch runs 3-10 mm from the edge: thread there can match the tray
SEAM_BAND_MIN_MM = 2.0  # ... so inside that band a patch must be at least this wide both ways...
#: ...and solid: a disc of this diameter fits inside it. The top-stitch's corner, a tray-coloured
#: thread turning 90 degrees, has a 2.4 mm box but is only the thread's ~0.5 mm thick (two good
#: independent masks failed for it, seed 41).
SEAM_BAND_SOLID_MM = 1.0
#: ...and be mostly that disc: a patch over SEAM_BAND_MAX_FILL x the area of the largest disc it
#: holds is a thread's L or bar (a ~1.1 mm light thread turning the corner holds a 1.15 mm disc
#: in 4.7x its area: a good mask failed for it, bench seed 9096). A round hole fills ~1x, an oval
#: one at MAX_ELONGATION 2.5x. (A hole touching tray-coloured thread already fails the ring test.)
SEAM_BAND_MAX_FILL = 3.0
#: A hole is compact; a patch this many times longer than wide is a line: a fold's shadow or a
#: stripe that matches the shadowed tray (seen on a pale print: 1 mm x 17 mm along a pleat).
MAX_ELONGATION = 2.5
#: A mask with more hole-like patches than this, counted at the tray-likeness limit or at
#: TWIN_FACTOR x it, has a print whose dots (nearly) match the tray: 2 of 120 clean simulator
#: masks had 107 polka dots and 2 flower centres matching it; 3 of 100 more (bench seed 5151)
#: had 5-70 dots or leaves found at the limit but none at 1.5x (they merged with nearby fabric).
#: Then holes are left to the classifier.
MAX_HOLES = 3
TWIN_FACTOR = 1.5
#: A hole stays compact at TWIN_FACTOR x the limit (its box grows at most GROW_FACTOR x); a speck
#: of a fold's shadow on a pale print, the one place where the line reached the tray's colour,
#: grows into the line (a good mask failed for a 1.0 x 0.8 mm "hole", bench seed 5252).
GROW_FACTOR = 3.0


@dataclass(frozen=True)
class HoleCheck:
    """Holes found (findings in the mask frame), and why the check was skipped, if it was."""

    findings: tuple[Finding, ...]
    skipped: str | None = None


def _tray_distance(lab: np.ndarray, ref: np.ndarray) -> np.ndarray:
    d = lab - ref
    dl = d[..., 0]
    dl = np.where(dl < 0, DARKER_WEIGHT * dl, dl)
    return np.sqrt(dl * dl + d[..., 1] ** 2 + d[..., 2] ** 2)


def find_holes(crop: MaskCrop, *, min_diameter_mm: float = 0.0) -> HoleCheck:
    """Tray-coloured compact patches inside the mask's outline, as ``hole`` findings."""
    mpp = crop.mm_per_px
    h, w = crop.body.shape
    x_mm = crop.origin_mm[0] + np.arange(w, dtype=np.float32) * mpp
    y_mm = crop.origin_mm[1] + np.arange(h, dtype=np.float32) * mpp
    # distance outside the outline rectangle (0 inside), from geometry rather than morphology
    dx = np.maximum(np.maximum(-x_mm, x_mm - crop.width_mm), 0.0)
    dy = np.maximum(np.maximum(-y_mm, y_mm - crop.height_mm), 0.0)
    outside = np.hypot(dy[:, None], dx[None, :])
    band = (outside >= TRAY_BAND_MM[0]) & (outside <= TRAY_BAND_MM[1]) & ~crop.body
    band[::, 1::2] = False  # every other column is plenty for a median
    if band.sum() < 200:
        return HoleCheck((), skipped="no tray visible around the mask")
    lab = cv2.cvtColor(crop.image, cv2.COLOR_BGR2LAB).astype(np.float32)
    samples = lab[band]
    ref = np.median(samples, axis=0)
    sigma = 1.4826 * float(np.median(_tray_distance(samples, ref))) + 1e-3
    limit = max(4.0 * sigma, MIN_TRAY_DE)
    k = EDGE_KEEP_OUT_MM
    ix = (x_mm >= k) & (x_mm <= crop.width_mm - k)
    iy = (y_mm >= k) & (y_mm <= crop.height_mm - k)
    if not ix.any() or not iy.any():
        return HoleCheck((), skipped="mask too small")
    (r0, r1), (c0, c1) = np.flatnonzero(iy)[[0, -1]], np.flatnonzero(ix)[[0, -1]]
    inner = lab[r0:r1 + 1, c0:c1 + 1]
    inner = cv2.blur(inner, (3, 3))  # decide on ~0.6 mm regions, not single noisy pixels
    dist = _tray_distance(inner, ref)
    tray_like = _tray_like(dist, limit)
    fraction = float(tray_like.mean())
    if fraction > MAX_TRAY_LIKE_FRACTION:
        return HoleCheck((), skipped=f"{100 * fraction:.1f} % of the fabric matches the tray colour")
    floor_mm = max(MIN_DIAMETER_MM, min_diameter_mm)
    found = _patches(crop, tray_like, dist, limit, (int(r0), int(c0)), floor_mm)
    if found:
        # a hole is an accident; a print's dots (flower centres, polka dots, leaves, the crossings
        # of pale lines) that match the tray, or nearly, have twins all over the mask. They are
        # counted at the limit itself and at TWIN_FACTOR x it: at the wider limit nearly-matching
        # dots join in, but dots that already match may merge with fabric that is tray-like there.
        wide = _tray_like(dist, TWIN_FACTOR * limit)
        alike = len(found)
        if alike <= MAX_HOLES:
            alike = len(_patches(crop, wide, dist, TWIN_FACTOR * limit, (int(r0), int(c0)), floor_mm))
        if alike > MAX_HOLES:
            return HoleCheck((), skipped=f"{alike} hole-like dots: the print (nearly) matches the tray")
        # a hole stays compact when the limit is relaxed; a speck of a line (a fold's shadow
        # that only here reached the tray's colour) grows into the line
        found = [f for f in found if _stays_compact(crop, f, wide, (int(r0), int(c0)))]
    return HoleCheck(tuple(found))


def _stays_compact(crop: MaskCrop, f: Finding, wide: np.ndarray, origin: tuple[int, int]) -> bool:
    """The patch of ``f`` in ``wide`` (tray-like at a relaxed limit) is still a hole: its box at
    most :data:`GROW_FACTOR` x the finding's longer side, and not :data:`MAX_ELONGATION` x longer
    than wide (a line)."""
    mpp = crop.mm_per_px
    r0, c0 = origin
    x0, y0 = crop.to_px(f.box_mm[0], f.box_mm[1])
    cx, cy = round(x0 - c0 + f.box_mm[2] / (2 * mpp)), round(y0 - r0 + f.box_mm[3] / (2 * mpp))
    reach = round(MAX_DIAMETER_MM / mpp)
    ya, yb = max(0, cy - reach), min(wide.shape[0], cy + reach + 1)
    xa, xb = max(0, cx - reach), min(wide.shape[1], cx + reach + 1)
    win = wide[ya:yb, xa:xb]
    _n, labels, stats, _ = cv2.connectedComponentsWithStats(win, connectivity=8)
    lab = labels[min(cy - ya, win.shape[0] - 1), min(cx - xa, win.shape[1] - 1)]
    if lab == 0:
        return True
    _x, _y, bw, bh, _a = (int(v) for v in stats[lab])
    side = max(f.box_mm[2], f.box_mm[3]) / mpp
    return max(bw, bh) <= GROW_FACTOR * side + 2 and max(bw, bh) <= MAX_ELONGATION * min(bw, bh)


def _tray_like(dist: np.ndarray, limit: float) -> np.ndarray:
    return cv2.morphologyEx((dist < limit).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def _thread_like(blob: np.ndarray, bw: int, bh: int, mpp: float) -> bool:
    """A seam-band patch that tray-coloured thread explains: narrow, thin, or not disc-like."""
    if min(bw, bh) * mpp < SEAM_BAND_MIN_MM:
        return True
    radius_px = float(cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, 3).max())
    return (2.0 * mpp * radius_px < SEAM_BAND_SOLID_MM
            or float(blob.sum()) > SEAM_BAND_MAX_FILL * np.pi * radius_px**2)


def _patches(crop: MaskCrop, tray_like: np.ndarray, dist: np.ndarray, limit: float, origin: tuple[int, int],
             floor_mm: float) -> list[Finding]:
    """Compact tray-coloured patches ringed by fabric unlike the tray, as ``hole`` findings
    (``tray_like`` / ``dist`` cover the crop from pixel ``origin`` = (row, col) on)."""
    mpp = crop.mm_per_px
    r0, c0 = origin
    n, labels, stats, _ = cv2.connectedComponentsWithStats(tray_like, connectivity=8)
    pad = max(2, round(1.5 / mpp))
    ring_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1, 2 * pad + 1))
    hh, ww = dist.shape
    found = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        diameter_mm = 2.0 * np.sqrt(area / np.pi) * mpp
        if (not floor_mm <= diameter_mm <= MAX_DIAMETER_MM or area / float(bw * bh) < 0.35
                or min(bw, bh) * mpp < MIN_SIDE_MM or max(bw, bh) > MAX_ELONGATION * min(bw, bh)):
            continue  # too small, too large, or a line (thread, fold shadow) rather than a hole
        cx_mm, cy_mm = crop.to_mm(c0 + x + bw / 2, r0 + y + bh / 2)
        to_edge = min(cx_mm, cy_mm, crop.width_mm - cx_mm, crop.height_mm - cy_mm)
        win = (slice(max(0, y - pad), min(hh, y + bh + pad)), slice(max(0, x - pad), min(ww, x + bw + pad)))
        blob = labels[win] == i
        if to_edge < SEAM_BAND_MM and _thread_like(blob, bw, bh, mpp):
            continue  # on the stitch line: tray-coloured thread (a speck, a corner) or a needle gap
        around = cv2.dilate(blob.astype(np.uint8), ring_kernel).astype(bool) & ~blob
        ring = dist[win][around]
        if not around.any() or float(np.median(ring)) < SURROUND_FACTOR * limit or (
                float(np.percentile(ring, RING_PERCENTILE)) < RING_FACTOR * limit):
            continue  # the fabric around it is (partly) tray-coloured too: no proof of a hole
        depth = float(np.median(dist[win][blob]))
        x0_mm, y0_mm = crop.to_mm(c0 + x, r0 + y)
        found.append(Finding(
            code="hole", probability=round(float(np.clip(1.0 - depth / limit, 0.5, 0.99)), 3),
            box_mm=(round(x0_mm, 2), round(y0_mm, 2), round(bw * mpp, 2), round(bh * mpp, 2)),
            source="geometry"))
    return found
