"""Pleat count from the shading the folds cast across the width.

Each fold runs across the whole width and leaves a thin shadow line (darker than the fabric on
both sides), whatever the light does elsewhere. In the de-rotated crop the central band of
the mask (away from the side seams and the ear-loop attachments) is reduced to one colour per
row (median over the row: dots, flowers, stains and lint drop out), then:

1. Shading is separated from the print. A fold changes brightness, not chromaticity (all
   channels scale together), while a print's colours differ in chromaticity. On a print
   (chromaticity spread above :data:`PRINT_CHROMA_SPREAD`) each pixel's log brightness is taken
   relative to the mean of the pixels of its own chromaticity: horizontal stripes and checks,
   which otherwise look just like folds, flatten out, the fold shadows stay.
2. Folds are thin valleys of the shading profile: ``depth(y) = min(max above, max below) -
   value(y)`` within :data:`VALLEY_HALF_MM` windows; a plain step (a print edge the regression
   missed, the light falling off) has no depth.
3. Valleys deeper than :data:`MIN_DEPTH` (log units, ~6 % darker) and at least
   :data:`MIN_SPACING_MM` apart are counted.

Rows closer than :data:`EDGE_MARGIN_MM` to the top/bottom edge are left out (the top-stitch
and hem lie there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.vision.types import MaskCrop

EDGE_MARGIN_MM = 11.0
SIDE_MARGIN_FRACTION = 0.15
VALLEY_HALF_MM = (1.5, 3.0)
MIN_DEPTH = 0.06
MIN_SPACING_MM = 5.0
#: Chromaticity spread (90th percentile of the distance to the median) above which the fabric
#: counts as a print (then normalised per colour).
PRINT_CHROMA_SPREAD = 0.012
CHROMA_BIN = 0.025
#: A valley also has to be this fraction of the deepest one (a pleat count is about folds
#: of one mask, which cast similar shadows).
MIN_REL_DEPTH = 0.3


@dataclass(frozen=True)
class PleatResult:
    count: int
    lines_mm: tuple[float, ...]  # y of each fold (mask frame)
    depths: tuple[float, ...]


def shading_profile(crop: MaskCrop) -> tuple[np.ndarray, np.ndarray]:
    """(y_mm, log shading) over the central band of the crop, one value per row."""
    s = crop.mm_per_px
    c0, r0 = crop.to_px(SIDE_MARGIN_FRACTION * crop.width_mm, EDGE_MARGIN_MM)
    c1, r1 = crop.to_px((1 - SIDE_MARGIN_FRACTION) * crop.width_mm, crop.height_mm - EDGE_MARGIN_MM)
    c0, r0, c1, r1 = int(c0), int(r0), int(c1), int(r1)
    if r1 - r0 < 10 or c1 - c0 < 10:
        return np.zeros(0), np.zeros(0)
    band = crop.image[r0:r1, c0:c1:2].astype(np.float32)
    total = band.sum(axis=2) + 3.0
    shade = np.log(total)
    chroma = band[..., :2] / total[..., None]  # (b, g) fractions: unchanged by shading
    sample = chroma[::4, ::4].reshape(-1, 2)
    # a print's minority colours lie far from the median chromaticity (a MAD would miss them)
    spread = float(np.percentile(np.abs(sample - np.median(sample, axis=0)).max(axis=1), 90))
    if spread > PRINT_CHROMA_SPREAD:
        # a print: each pixel's brightness relative to the mean of its own colour
        q = np.clip((chroma / CHROMA_BIN).astype(np.int32), 0, 63)
        key = (q[..., 0] * 64 + q[..., 1]).ravel()
        sums = np.bincount(key, weights=shade.ravel(), minlength=4096)
        counts = np.bincount(key, minlength=4096)
        shade = shade - (sums / np.maximum(counts, 1))[key].reshape(shade.shape)
    rows = np.median(shade, axis=1)
    rows = cv2.GaussianBlur(rows.astype(np.float32).reshape(-1, 1), (1, 0), sigmaX=0.01,
                            sigmaY=0.3 / s).ravel()
    y = (np.arange(r0, r1) * s) + crop.origin_mm[1]
    return y, rows


def valley_depth(profile: np.ndarray, half_px: int) -> np.ndarray:
    """min(max of the ``half_px`` samples above, max below) - value; >= 0 on thin valleys."""
    n = len(profile)
    pad = np.concatenate([np.full(half_px, -np.inf), profile, np.full(half_px, -np.inf)])
    above = np.full(n, -np.inf)
    below = np.full(n, -np.inf)
    for k in range(1, half_px + 1):
        above = np.maximum(above, pad[half_px - k:half_px - k + n])
        below = np.maximum(below, pad[half_px + k:half_px + k + n])
    return np.maximum(np.minimum(above, below) - profile, 0.0)


def count_pleats(crop: MaskCrop) -> PleatResult:
    """Count the folds across the width of a de-rotated mask crop."""
    y, prof = shading_profile(crop)
    if len(prof) < 10:
        return PleatResult(0, (), ())
    s = crop.mm_per_px
    depth = np.max([valley_depth(prof, max(2, round(h / s))) for h in VALLEY_HALF_MM], axis=0)
    depth[:2] = depth[-2:] = 0.0
    sep = max(1, round(MIN_SPACING_MM / s))
    lines, depths = [], []
    order = np.argsort(depth)[::-1]
    floor = max(MIN_DEPTH, MIN_REL_DEPTH * float(depth.max()))
    for i in order:
        if depth[i] < floor:
            break
        if all(abs(i - j) >= sep for j in lines):
            lines.append(int(i))
            depths.append(float(depth[i]))
    idx = np.argsort(lines)
    return PleatResult(len(lines), tuple(float(y[lines[k]]) for k in idx), tuple(depths[k] for k in idx))
