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
   missed, the light falling off) has no depth. A fold is also a *thin line across the whole
   width* (a crease shadow ~0.5-1 mm), which a print's bands and rows of dots are not: the band
   is cut into :data:`STRIP_MM` strips, each strip's valleys are taken at the thin scales
   :data:`THIN_HALF_MM` (a band or dot wider than ~2-3 mm has no depth there), allowing
   :data:`DRIFT_MM` of drift between strips (a domed cloth bends the fold), and the median over
   the strips is kept. The depth used is the smaller of the two: a gingham whose colours share
   one hue (so step 1 cannot flatten it) no longer out-shades the folds.
3. Candidates are valleys deeper than :data:`MIN_DEPTH` (log units, ~2 % darker) and than
   :data:`MIN_REL_DEPTH` of the deepest, at least :data:`MIN_SPACING_MM` apart.
4. Folds are sewn evenly spaced. When the candidates are nothing but an evenly spaced comb
   (each at least :data:`COMB_REL_DEPTH` of the deepest), they are all folds (a faint fold on an
   otherwise clean profile). Else the strong candidates (:data:`STRONG_REL_DEPTH` of the deepest
   and at least :data:`STRONG_MIN_DEPTH`, ~5 % darker) are folds,
   except one that breaks their even spacing (a print line that survived step 1); weaker
   candidates (and a dropped strong one) count where that spacing puts a fold (a fold whose
   shadow is fainter; a fold the first, coarser spacing wrongly dropped). The comb's
   end folds must stand out (:data:`DISTINCT_RATIO`) from every valley the comb leaves
   unexplained, and its fainter inner folds must not drown among them
   (:data:`INNER_DISTINCT_RATIO`): a print line that happens to lie one step beyond the last fold,
   or half-way between two, is one of the print's lines, not a fold. An end fold that lies
   exactly one step beyond its neighbour (:data:`EXACT_END_MM`) need only be the deepest of them.

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
#: Step 2b: strip width, thin valley scales (a crease shadow is ~0.5-1 mm; a gingham band or a
#: dot is wider) and how far a fold may drift from strip to strip (a domed cloth bends it).
STRIP_MM = 12.0
THIN_HALF_MM = (1.0, 1.5)
DRIFT_MM = 1.0
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
#: Candidates that are only an evenly spaced comb (2..MAX_COMB valleys, each >= COMB_REL_DEPTH of
#: the deepest, gaps within COMB_GAP_RATIO of each other) are all folds.
MAX_COMB = 5
COMB_REL_DEPTH = 0.25
COMB_GAP_RATIO = 1.35
#: The comb's end folds must be this much deeper than any valley the comb leaves unexplained;
#: a fainter fold between two others (its place fixed by both) this fraction of it.
DISTINCT_RATIO = 1.1
INNER_DISTINCT_RATIO = 0.6
#: An end fold within EXACT_END_MM of where its two neighbours' spacing puts it need only be
#: deeper than every unexplained valley (a print line lands that exactly by chance seldom).
EXACT_END_MM = 0.6
EXACT_END_RATIO = 1.0
#: With one strong fold and no flanking pair, one fainter valley (>= FLANK_REL_DEPTH of it) that is
#: PAIR_RATIO deeper than every other valley is the second fold.
PAIR_RATIO = 1.5


@dataclass(frozen=True)
class PleatResult:
    count: int
    lines_mm: tuple[float, ...]  # y of each fold (mask frame)
    depths: tuple[float, ...]


def _band_shading(crop: MaskCrop) -> tuple[np.ndarray, np.ndarray]:
    """(y_mm per row, log shading per pixel) over the central band, print colours normalised."""
    s = crop.mm_per_px
    c0, r0 = crop.to_px(SIDE_MARGIN_FRACTION * crop.width_mm, EDGE_MARGIN_MM)
    c1, r1 = crop.to_px((1 - SIDE_MARGIN_FRACTION) * crop.width_mm, crop.height_mm - EDGE_MARGIN_MM)
    c0, r0, c1, r1 = int(c0), int(r0), int(c1), int(r1)
    if r1 - r0 < 10 or c1 - c0 < 10:
        return np.zeros(0), np.zeros((0, 0))
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
    return (np.arange(r0, r1) * s) + crop.origin_mm[1], shade


def _smooth_rows(a: np.ndarray, mm_per_px: float) -> np.ndarray:
    a = a.astype(np.float32).reshape(len(a), -1)
    return cv2.GaussianBlur(a, (1, 0), sigmaX=0.01, sigmaY=PROFILE_SIGMA_MM / mm_per_px)


def _row_profile(shade: np.ndarray, mm_per_px: float) -> np.ndarray:
    """One smoothed value per row: the median over the band (dots, flowers, stains drop out)."""
    return _smooth_rows(np.median(shade, axis=1), mm_per_px).ravel()


def shading_profile(crop: MaskCrop) -> tuple[np.ndarray, np.ndarray]:
    """(y_mm, log shading) over the central band of the crop, one value per row."""
    y, shade = _band_shading(crop)
    if len(y) == 0:
        return y, np.zeros(0)
    return y, _row_profile(shade, crop.mm_per_px)


def strip_depth(shade: np.ndarray, mm_per_px: float) -> np.ndarray:
    """Thin-valley depth per row that holds across the width (step 2b of the module docstring).

    ``shade`` is the band's per-pixel log shading (every second column). The band is cut into
    :data:`STRIP_MM` strips, each reduced to its row median; each strip's valleys at the thin
    scales :data:`THIN_HALF_MM`; a fold may drift :data:`DRIFT_MM` between strips (a domed
    cloth bends it); the median over the strips is the depth a line across the width leaves.
    """
    w = max(2, round(STRIP_MM / (2 * mm_per_px)))  # columns are every second pixel
    n = shade.shape[1] // w
    if n < 1:
        return np.zeros(len(shade))
    strips = np.median(shade[:, :n * w].reshape(len(shade), n, w), axis=2)
    strips = _smooth_rows(strips, mm_per_px)
    d = np.max([valley_depth(strips, max(2, round(h / mm_per_px))) for h in THIN_HALF_MM], axis=0)
    k = max(1, round(DRIFT_MM / mm_per_px))
    d = cv2.dilate(d.astype(np.float32), np.ones((2 * k + 1, 1), np.uint8))
    return np.median(d, axis=1)


def valley_depth(profile: np.ndarray, half_px: int) -> np.ndarray:
    """min(max of the ``half_px`` samples above, max below) - value; >= 0 on thin valleys.
    Along axis 0 (a 2-D array: each column on its own)."""
    n = len(profile)
    edge = np.full((half_px, *profile.shape[1:]), -np.inf)
    pad = np.concatenate([edge, profile, edge])
    above = np.full(profile.shape, -np.inf)
    below = np.full(profile.shape, -np.inf)
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
    gaps = np.diff(pos)
    if (2 <= len(pos) <= MAX_COMB and depth.min() >= COMB_REL_DEPTH * top and gaps.min() >= MIN_SPACING_MM
            and gaps.max() <= COMB_GAP_RATIO * gaps.min()):
        return list(range(len(pos)))  # nothing but an evenly spaced comb: every valley is a fold
    chosen = _select(pos, depth)
    # a fold must stand out from the valleys the comb leaves unexplained (a print's own lines)
    rest = [float(depth[i]) for i in range(len(pos)) if i not in chosen]
    worst = max(rest, default=0.0)
    ratio = {i: INNER_DISTINCT_RATIO for i in chosen}
    if chosen:
        ratio[chosen[0]] = ratio[chosen[-1]] = DISTINCT_RATIO
    if len(chosen) >= 3:  # an end fold exactly where its neighbours' spacing puts it
        for end, a, b in ((chosen[0], chosen[1], chosen[2]), (chosen[-1], chosen[-2], chosen[-3])):
            if abs(pos[end] - (2 * pos[a] - pos[b])) <= EXACT_END_MM:
                ratio[end] = EXACT_END_RATIO
    return [i for i in chosen if depth[i] >= top or depth[i] > ratio[i] * worst]


def _select(pos: np.ndarray, depth: np.ndarray) -> list[int]:
    top = float(depth.max())
    bar = max(STRONG_REL_DEPTH * top, STRONG_MIN_DEPTH)
    strong = [i for i in range(len(pos)) if depth[i] >= bar]
    weak = [i for i in range(len(pos)) if depth[i] < bar]
    # drop the strong valleys that break an otherwise even spacing (a print line)
    dropped: list[int] = []
    while len(strong) > 2 and not _regular([pos[i] for i in strong]):
        trials = [[j for j in strong if j != i] for i in strong]
        ok = [t for t in trials if _regular([pos[i] for i in t])]
        pick = ok or trials
        kept = max(pick, key=lambda t: sum(depth[i] for i in t))
        dropped += [i for i in strong if i not in kept]
        strong = kept
        if not ok:
            break
    # ...but where the spacing, once refined, puts a fold, a dropped valley may be that fold
    weak = sorted(weak + dropped, key=lambda i: pos[i])
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
        elif weak:  # one fainter fold, clearly deeper than every other valley: two folds
            order = sorted(weak, key=lambda i: -depth[i])
            b = order[0]
            second = depth[order[1]] if len(order) > 1 else 0.0
            if (depth[b] >= FLANK_REL_DEPTH * depth[c] and depth[b] >= PAIR_RATIO * second
                    and abs(pos[b] - pos[c]) >= MIN_SPACING_MM):
                chosen = sorted([b, c], key=lambda k: pos[k])
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
    y, shade = _band_shading(crop)
    if len(y) < 10:
        return PleatResult(0, (), ())
    s = crop.mm_per_px
    prof = _row_profile(shade, s)
    depth = np.max([valley_depth(prof, max(2, round(h / s))) for h in VALLEY_HALF_MM], axis=0)
    # a fold is a valley of the whole row AND a thin line across the strips (see step 2)
    depth = np.minimum(depth, strip_depth(shade, s))
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
