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
3. Candidates are valleys deeper than :data:`MIN_DEPTH` (log units, ~2 % darker) and than
   :data:`MIN_REL_DEPTH` of the deepest, at least :data:`MIN_SPACING_MM` apart.
4. Folds are sewn evenly spaced. The strong candidates (:data:`STRONG_REL_DEPTH` of the deepest
   and at least :data:`STRONG_MIN_DEPTH`, ~5 % darker) are folds,
   except one that breaks their even spacing (a print line that survived step 1); weaker
   candidates count where that spacing puts a fold (a fold whose shadow is fainter).

Rows closer than :data:`EDGE_MARGIN_MM` to the top/bottom edge are left out (the top-stitch
and hem lie there).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.vision.types import MaskCrop

EDGE_MARGIN_MM = 11.0
#: Smoothing of the row profile (a fold's crease shadow can be only ~0.5 mm wide).
PROFILE_SIGMA_MM = 0.3
SIDE_MARGIN_FRACTION = 0.15
VALLEY_HALF_MM = (1.5, 3.0)
MIN_DEPTH = 0.02
STRONG_MIN_DEPTH = 0.05
MIN_SPACING_MM = 6.0
#: Chromaticity spread (90th percentile of the distance to the median) above which the fabric
#: counts as a print (then normalised per colour).
PRINT_CHROMA_SPREAD = 0.012
CHROMA_BIN = 0.025
#: Candidates: valleys at least this fraction of the deepest one ...
MIN_REL_DEPTH = 0.2
#: ... of which those above this fraction are folds for sure, unless they break the even
#: spacing of the others (gaps differing by more than MAX_GAP_RATIO); weaker ones count where
#: the spacing puts a fold (within FOLD_TOL_MM or 12 % of the spacing).
STRONG_REL_DEPTH = 0.5
MAX_GAP_RATIO = 1.5
FOLD_TOL_MM = 2.0
#: With one strong fold, two fainter valleys evenly spaced with it (either side or on one side,
#: each at least this fraction of its depth) are folds too.
FLANK_REL_DEPTH = 0.35


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
                            sigmaY=PROFILE_SIGMA_MM / s).ravel()
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


def _regular(pos: list[float]) -> bool:
    gaps = np.diff(sorted(pos))
    return len(gaps) < 2 or gaps.max() <= MAX_GAP_RATIO * gaps.min()


def select_folds(pos: np.ndarray, depth: np.ndarray) -> list[int]:
    """Indices of the candidate valleys that are folds (see the module docstring, step 4)."""
    if len(pos) == 0:
        return []
    top = float(depth.max())
    bar = max(STRONG_REL_DEPTH * top, STRONG_MIN_DEPTH)
    strong = [i for i in range(len(pos)) if depth[i] >= bar]
    weak = [i for i in range(len(pos)) if depth[i] < bar]
    # drop the strong valleys that break an otherwise even spacing (a print line)
    while len(strong) > 2 and not _regular([pos[i] for i in strong]):
        trials = [[j for j in strong if j != i] for i in strong]
        ok = [t for t in trials if _regular([pos[i] for i in t])]
        pick = ok or trials
        strong = max(pick, key=lambda t: sum(depth[i] for i in t))
        if not ok:
            break
    chosen = sorted(strong, key=lambda i: pos[i])
    if len(chosen) == 1:  # one clear fold: fainter ones may flank it evenly
        c = chosen[0]
        # two fainter valleys evenly spaced with it: either side, or both on one side
        trios = [sorted((a, b, c), key=lambda k: pos[k]) for a, b in itertools.combinations(weak, 2)
                 if min(depth[a], depth[b]) >= FLANK_REL_DEPTH * depth[c]]
        trios = [t for t in trios if pos[t[1]] - pos[t[0]] >= MIN_SPACING_MM
                 and abs((pos[t[1]] - pos[t[0]]) - (pos[t[2]] - pos[t[1]])) <= FOLD_TOL_MM]
        if trios:
            chosen = max(trios, key=lambda t: min(depth[k] for k in t))
    if len(chosen) < 2:
        return chosen
    step = float(np.median(np.diff([pos[i] for i in chosen])))
    if len(chosen) == 2:  # two strong folds may have fainter ones evenly between them
        for parts in (2, 3):
            sub = step / parts
            if sub < MIN_SPACING_MM:
                break
            inner = [min(weak, key=lambda i, w=pos[chosen[0]] + sub * k: abs(pos[i] - w), default=None)
                     for k in range(1, parts)]
            if all(i is not None and abs(pos[i] - (pos[chosen[0]] + sub * k)) <= max(FOLD_TOL_MM, 0.12 * sub)
                   for k, i in enumerate(inner, start=1)):
                chosen = sorted([*chosen, *inner], key=lambda i: pos[i])
                step = sub
                break
    tol = max(FOLD_TOL_MM, 0.12 * step)
    # add weaker valleys where the even spacing says a fold should be (ends or a gap)
    changed = True
    while changed:
        changed = False
        ps = [pos[i] for i in chosen]
        want = [ps[0] - step, ps[-1] + step] + [
            a + step * k for a, b in itertools.pairwise(ps) for k in range(1, round((b - a) / step))]
        for w in want:
            near = [i for i in weak if abs(pos[i] - w) <= tol and i not in chosen]
            if near:
                chosen.append(max(near, key=lambda i: depth[i]))
                chosen.sort(key=lambda i: pos[i])
                changed = True
                break
    return chosen


def count_pleats(crop: MaskCrop) -> PleatResult:
    """Count the folds across the width of a de-rotated mask crop."""
    y, prof = shading_profile(crop)
    if len(prof) < 10:
        return PleatResult(0, (), ())
    s = crop.mm_per_px
    depth = np.max([valley_depth(prof, max(2, round(h / s))) for h in VALLEY_HALF_MM], axis=0)
    depth[:2] = depth[-2:] = 0.0
    sep = max(1, round(MIN_SPACING_MM / s))
    cand: list[int] = []
    floor = max(MIN_DEPTH, MIN_REL_DEPTH * float(depth.max()))
    for i in np.argsort(depth)[::-1]:
        if depth[i] < floor:
            break
        if all(abs(i - j) >= sep for j in cand):
            cand.append(int(i))
    cand.sort()
    pos, dep = y[cand], depth[cand]
    keep = select_folds(pos, dep)
    return PleatResult(len(keep), tuple(float(pos[k]) for k in keep), tuple(float(dep[k]) for k in keep))
