"""Sub-pixel outline of the mask body: edge points on profiles across each side + a robust
rectangle fit.

Works on a crop sampled on the coarse pose (:class:`~.geometry.CropGrid`), where the four
sides are nearly axis-aligned. For each side, profiles run across the edge every
:data:`STEP_PX` px (each the mean of :data:`AVG_PX` neighbours along the edge). The edge
strength is the colour gradient magnitude along the profile: it needs no reference colour
(the tray darkened by the mask's own soft shadow, or a print with several colours, do not
move it), and for any symmetric blur it peaks on the edge. A print has edges of its own, often
steeper than the mask's, but never further out: the edge is the **outermost** rise at least
:data:`OUTERMOST_REL_SLOPE` of the profile's strongest (unless that rise only dims the tray's
own colour and another strong rise follows: a shadow), located to sub-pixel by a parabola
through its top three samples.

Ear loops leave the body at the side edges near the corners, so profiles keep
:data:`CORNER_SKIP_MM` away from the corners, and the fit rejects outliers (loops, pleat steps,
lint on the edge) iteratively. The model is a rectangle: top/bottom ``y = m x + b``,
left/right ``x = -m y + d`` (exactly perpendicular), solved linearly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from qc_station.vision.geometry import CropGrid, MaskPose

#: Each profile runs this far outside / inside the coarse edge: the coarse outline can fall
#: short where a print's colour is close to the tray's, never by much beyond it.
SEARCH_OUT_MM = 7.0
SEARCH_IN_MM = 4.0
#: Profiles stay this far from the corners (ear loop attachments, rounded corners).
CORNER_SKIP_MM = 16.0
#: A profile is averaged over this many px along the edge (noise, prints), every STEP_PX px.
AVG_PX = 5
STEP_PX = 3
#: The edge is the outermost rise at least this fraction of the profile's steepest rise.
OUTERMOST_REL_SLOPE = 0.3
OUTERMOST_MIN_STEP = 10.0  # ...whose colour step (BGR distance) is at least this
#: A rise whose inner side is its outer side dimmed to SHADOW_DIM (same chromaticity within
#: acos(SHADOW_COS)), probed SHADOW_PROBE_PX either side, is a shadow when a strong rise follows.
SHADOW_DIM = (0.4, 0.97)
SHADOW_COS = 0.998
SHADOW_PROBE_PX = 4
#: ... except a rise within this of the segmentation's edge when the skip would go further in.
COARSE_SHADOW_TOL_MM = 1.5
#: A rise whose colour comes back to the colour outside it within THIN_LINE_PX samples
#: (to THIN_RETURN of its excursion) and stays there for THIN_TRAY_PX samples is a line on the
#: tray (a scratch, a lint fibre) when a strong rise follows further in: the fabric inside a
#: mask edge does not turn back into the tray (a light lifted layer's edge right beside the
#: fabric, as on an open seam, does not stay at the tray's colour).
THIN_LINE_PX = 8
THIN_RETURN = 0.3
THIN_TRAY_PX = 4
#: See _outermost_cluster.
OUTER_GROUP_MM = 0.5
OUTER_GROUP_FRACTION = 0.2
OUTER_GROUP_SHADOW = 0.5
#: See _faint_outer_edge: a rise of FAINT_REL_SLOPE of the strongest, at least FAINT_MIN_STEP
#: (colour units) from the tray colour (median of the profile's outer TRAY_REF_PX); just outside it
#: within FAINT_OUT_FRACTION of that step of the tray, inside it at least FAINT_IN_FRACTION of it
#: over FAINT_SUSTAIN_PX samples and up to the strong rise; not the tray dimmed (FAINT_SHADOW_COS).
FAINT_REL_SLOPE = 0.1
FAINT_MIN_STEP = 10.0
TRAY_REF_PX = 8
FAINT_OUT_FRACTION = 0.5
FAINT_IN_FRACTION = 0.3
FAINT_SUSTAIN_PX = 8
FAINT_SHADOW_COS = 0.99
#: Second pass: the edge is searched this close to the first fit.
REFINE_MM = 1.0
#: An edge point is kept when its slope is at least this fraction of the side's median.
MIN_REL_CONTRAST = 0.35
#: A hinted side (see fit_profiles) moves out only when the band it would add differs from the
#: tray's colour (the profiles' outer TRAY_REF_PX) by at least this much, and is not the tray
#: dimmed (a shadow), over HINT_BAND_SHARE of its samples; those within HINT_BAND_MARGIN_PX of
#: either edge are left out.
HINT_BAND_MIN_STEP = 4.0
HINT_BAND_MARGIN_PX = 2
HINT_BAND_SHARE = 0.6
#: ...and only when its edge is found further than this from the window's inner end.
HINT_INNER_END_MM = 0.25


@dataclass(frozen=True)
class Outline:
    """Fitted body rectangle."""

    pose: MaskPose  # refined: centre, angle, width, height (mm)
    points_mm: dict[str, np.ndarray]  # inlier edge points per side, mask frame (of the refined pose)
    residual_mm: float  # RMS distance of inlier edge points to the fitted rectangle
    inlier_fraction: float
    edge_contrast: float  # median step height (colour distance) across the edges
    #: sides moved out on a hint (see fit_profiles), mm
    moved_mm: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgeProfiles:
    """Raw profiles across the four sides (for the outline fit and the blur score)."""

    profiles: dict[str, np.ndarray]  # side -> (n, L, 3) colour, inward = increasing index
    positions: dict[str, np.ndarray]  # side -> (n,) coordinate along the edge (crop px)
    start_px: dict[str, float]  # side -> crop coordinate across the edge of profile index 0
    direction: dict[str, int]  # side -> +1 if index grows with the crop coordinate, else -1


def edge_profiles(crop: np.ndarray | Callable[[int, int, int, int], np.ndarray],
                  grid: CropGrid) -> EdgeProfiles:
    """Profiles across each side of the coarse outline, inward = increasing index.

    ``crop`` is the whole crop on ``grid``, or a function ``(c0, r0, c1, r1) -> window`` that
    samples only the window it is asked for (the pipeline samples just the four edge bands).
    """
    fetch = crop if callable(crop) else (lambda c0, r0, c1, r1: crop[r0:r1, c0:c1])
    s = grid.mm_per_px
    out_px, in_px = round(SEARCH_OUT_MM / s), round(SEARCH_IN_MM / s)
    skip = round(CORNER_SKIP_MM / s)
    x0, y0 = grid.mask_to_px(np.array([0.0, 0.0]))
    x1, y1 = grid.mask_to_px(np.array([grid.pose.width_mm, grid.pose.height_mm]))
    w, h = grid.size_px
    out_p, out_pos, out_start, out_dir = {}, {}, {}, {}
    for side in ("top", "bottom", "left", "right"):
        horizontal = side in ("top", "bottom")
        edge = (y0 if side == "top" else y1) if horizontal else (x0 if side == "left" else x1)
        lo, hi = (int(x0) + skip, int(x1) - skip) if horizontal else (int(y0) + skip, int(y1) - skip)
        lo, hi = max(lo, 0), min(hi, w if horizontal else h)
        e = round(edge)
        inward = side in ("top", "left")  # the crop coordinate grows into the mask
        a, b = (e - out_px, e + in_px + 1) if inward else (e - in_px, e + out_px + 1)
        if a < 0 or b > (h if horizontal else w) or hi - lo < AVG_PX * 4:
            continue
        if horizontal:  # (along, across, 3)
            band = np.transpose(fetch(lo, a, hi, b), (1, 0, 2)).astype(np.float32)
        else:
            band = fetch(a, lo, b, hi).astype(np.float32)
        pos0 = lo
        if not inward:
            band = band[:, ::-1]
        # average along the edge (box of AVG_PX), sample every STEP_PX
        band = cv2.blur(band, (1, AVG_PX))[AVG_PX // 2::STEP_PX]
        out_p[side] = band
        out_pos[side] = pos0 + AVG_PX // 2 + np.arange(len(band)) * STEP_PX
        out_start[side] = float(a if inward else b - 1)
        out_dir[side] = 1 if inward else -1
    return EdgeProfiles(out_p, out_pos, out_start, out_dir)


def _smoothed_gradient(prof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Profiles smoothed along their length, and the colour gradient magnitude (per px)."""
    sm = cv2.GaussianBlur(prof.astype(np.float32), (0, 0), sigmaX=1.0, sigmaY=0.01)
    g = np.zeros(sm.shape[:2], np.float32)
    d = 0.5 * (sm[:, 2:] - sm[:, :-2])
    g[:, 1:-1] = np.sqrt((d * d).sum(axis=2))
    return sm, g


def _step_height(sm: np.ndarray) -> np.ndarray:
    q = max(3, sm.shape[1] // 8)
    diff = np.median(sm[:, -q:], axis=1) - np.median(sm[:, :q], axis=1)
    return np.sqrt((diff * diff).sum(axis=1))


def peak_slopes(prof: np.ndarray, reach_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Steepest colour change of each profile (per px), and the colour step across it: between
    the samples ``reach_px`` before and after the steepest point, or between the profile's two
    ends (:func:`_step_height`) when that is larger (a long smear leaves only part of the edge's
    contrast within the reach)."""
    sm, g = _smoothed_gradient(prof)
    n = g.shape[1]
    k = np.argmax(g[:, 2:-2], axis=1) + 2
    r = np.arange(len(g))
    diff = sm[r, np.minimum(k + reach_px, n - 1)] - sm[r, np.maximum(k - reach_px, 0)]
    return g[r, k], np.maximum(np.sqrt((diff * diff).sum(axis=1)), _step_height(sm))


def _peaks(prof: np.ndarray, expected: np.ndarray | None = None, window_px: int = 0,
           coarse_px: int | None = None, tol_px: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel index of the edge on each profile, its slope and step height.

    The outermost rise of at least :data:`OUTERMOST_REL_SLOPE` of the profile's strongest,
    looking only within ``window_px`` of ``expected`` when that is given. ``coarse_px``: the
    segmentation's edge on the profiles (first pass), see the shadow rule below.
    """
    sm, g = _smoothed_gradient(prof)
    n = g.shape[1]
    r = np.arange(len(g))
    # a print edge inside the mask may be steeper than the mask's own edge, but it is never
    # further out: take the outermost strong rise (within the window, if one is given)
    inner = g.copy()
    inner[:, :2] = inner[:, -2:] = 0.0
    if expected is not None:
        idx = np.arange(n)[None, :]
        inner[np.abs(idx - np.rint(expected)[:, None]) > window_px] = 0.0
    strong = inner >= OUTERMOST_REL_SLOPE * inner.max(axis=1, keepdims=True)
    # ...that changes the colour: its step across +-SHADOW_PROBE_PX must reach OUTERMOST_MIN_STEP.
    # Where a soft shadow ramps into a fabric close to the tray's colour, the edge's slope is low
    # and tray noise reaches 0.3 of it, but noise goes back to the tray's colour a few samples on.
    # (A share of the profile's largest step instead dropped true edges beside a dark print.)
    idx = np.arange(n)
    local = np.linalg.norm(sm[:, np.minimum(idx + SHADOW_PROBE_PX, n - 1)]
                           - sm[:, np.maximum(idx - SHADOW_PROBE_PX, 0)], axis=2)
    strong &= local >= OUTERMOST_MIN_STEP
    strong |= inner >= inner.max(axis=1, keepdims=True)  # the steepest rise always counts
    strong = _skip_thin_lines(sm, inner, strong)
    k = _climb(inner, np.argmax(strong, axis=1))
    k0 = k
    # a soft shadow on the tray is a rise too: the tray colour, darker. Skip such a rise when a
    # strong one follows further in (the mask edge itself)
    for _ in range(2):
        shadow = _dimmed_at(sm, k)
        if not shadow.any():
            break
        past = np.arange(n)[None, :] > (k + SHADOW_PROBE_PX)[:, None]
        later = strong & past
        has_next = later.any(axis=1) & shadow
        if not has_next.any():
            break
        k = np.where(has_next, _climb(inner, np.argmax(later, axis=1)), k)
    if coarse_px is not None:
        # ...but not a "shadow" where the segmentation (a tray colour model) already put the
        # mask: a grey fabric on a grey tray is the tray's colour darker, and it is the edge
        fabric = (np.abs(k0 - coarse_px) <= tol_px) & (k - coarse_px > tol_px)
        k = np.where(fabric, k0, k)
    if expected is None:
        k = _faint_outer_edge(sm, inner, k)
    k = np.clip(k, 1, n - 2)
    gm, g0, gp = g[r, k - 1], g[r, k], g[r, k + 1]
    den = gm - 2 * g0 + gp
    off = np.where(den < 0, 0.5 * (gm - gp) / np.where(den < 0, den, -1), 0.0)
    off = np.clip(off, -0.5, 0.5)
    return k + off, g0, _step_height(sm)


def _skip_thin_lines(sm: np.ndarray, g: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Drop each profile's outer strong rises that are thin lines on the tray (see THIN_LINE_PX).

    A scratch or a lint fibre lying along the edge a few mm out is a rise as steep as a dark
    fabric's edge, and it is further out; but a few samples in, the colour is the tray's again.
    Only profiles whose strong samples come in separate runs can hold such a line.
    """
    n = g.shape[1]
    first = np.argmax(strong, axis=1)
    last = n - 1 - np.argmax(strong[:, ::-1], axis=1)
    rows = np.nonzero(strong.any(axis=1) & (strong.sum(axis=1) < last - first + 1))[0]
    if rows.size == 0:
        return strong
    sub, sm, g = strong[rows], sm[rows], g[rows]
    r = np.arange(len(rows))
    idx = np.arange(n)[None, :]
    for _ in range(3):
        k = _climb(g, np.argmax(sub, axis=1))
        outside = sm[r, np.maximum(k - SHADOW_PROBE_PX, 0)]
        dist = np.linalg.norm(sm - outside[:, None, :], axis=2)
        span = (idx >= k[:, None]) & (idx <= (k + THIN_LINE_PX)[:, None])
        in_span = np.where(span, dist, 0.0)
        excursion = in_span.max(axis=1)
        near = dist <= THIN_RETURN * excursion[:, None]
        # ...and stays near it for THIN_TRAY_PX samples (min over the run ahead)
        stays = cv2.erode(near.astype(np.uint8), np.ones((1, THIN_TRAY_PX), np.uint8), anchor=(0, 0),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        back = span & (idx > k[:, None]) & stays
        back &= dist < np.maximum.accumulate(in_span, axis=1)  # after the peak
        thin = back.any(axis=1)
        end = np.where(thin, np.argmax(back, axis=1), n)
        later = sub & (idx > end[:, None])
        thin &= later.any(axis=1)
        if not thin.any():
            break
        sub = np.where(thin[:, None], later, sub)
    strong = strong.copy()
    strong[rows] = sub
    return strong


def _faint_outer_edge(sm: np.ndarray, g: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Move each profile's edge ``k`` out onto a fainter rise where that rise is where the tray ends.

    A print colour close to the tray's along the edge (a dark stripe on a black tray) makes the
    mask's own edge a weak rise, under :data:`OUTERMOST_REL_SLOPE` of the print's inner edges. A
    rise of at least :data:`FAINT_REL_SLOPE` outside ``k`` is the edge when the tray colour
    (the profile's outer :data:`TRAY_REF_PX`) lies outside it (2 probes out: the mask's own soft
    shadow may already darken the tray next to the edge), and from just inside it to
    ``k`` (at least :data:`FAINT_SUSTAIN_PX` samples) the colour never comes back to the tray's:
    lint, dust and scratches are thin and return to it, a shadow is the tray's colour dimmed.
    """
    n = g.shape[1]
    p, q = SHADOW_PROBE_PX, TRAY_REF_PX
    tray = np.median(sm[:, :q], axis=1)
    dist = np.linalg.norm(sm - tray[:, None, :], axis=2).astype(np.float32)
    idx = np.arange(n)[None, :]
    # the colour's closest approach to the tray's from each sample inward, up to the strong rise k
    before_k = np.where(idx < k[:, None], dist, np.inf)
    to_k = np.minimum.accumulate(before_k[:, ::-1], axis=1)[:, ::-1]
    ahead = cv2.erode(dist, np.ones((1, FAINT_SUSTAIN_PX), np.uint8), anchor=(0, 0),
                      borderType=cv2.BORDER_REPLICATE)  # min over the next FAINT_SUSTAIN_PX samples
    inside = np.minimum(to_k, ahead)
    j = idx[:, q + 2 * p:n - p - 1]  # candidate rises, their probes inside the profile
    jj = j[0]
    gj = g[:, jj]
    step = dist[:, jj + p]
    peak = (gj >= g[:, jj - 1]) & (gj >= g[:, jj + 1])
    peak &= gj >= FAINT_REL_SLOPE * g.max(axis=1, keepdims=True)
    outer = j < (k[:, None] - p)
    clear = ((step >= FAINT_MIN_STEP) & (dist[:, jj - 2 * p] <= FAINT_OUT_FRACTION * step)
             & (inside[:, jj + p] >= FAINT_IN_FRACTION * step))
    ok = peak & outer & clear
    ok &= ~_shadow_like(tray[:, None, :], sm[:, jj + p])
    has = ok.any(axis=1)
    return np.where(has, jj[np.argmax(ok, axis=1)], k)


def _shadow_like(tray: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``inside`` is the tray colour dimmed (a soft shadow), within a looser hue tolerance."""
    nt = np.linalg.norm(tray, axis=-1) + 1e-6
    ni = np.linalg.norm(inside, axis=-1) + 1e-6
    return (ni < nt) & ((tray * inside).sum(axis=-1) / (nt * ni) > FAINT_SHADOW_COS)


def _dimmed_at(sm: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per smoothed profile: is the colour SHADOW_PROBE_PX past index ``k`` the colour as far
    before it, dimmed (a shadow's rise, not an edge's)?"""
    n, r = sm.shape[1], np.arange(len(k))
    return _darker_same_colour(sm[r, np.maximum(k - SHADOW_PROBE_PX, 0)],
                               sm[r, np.minimum(k + SHADOW_PROBE_PX, n - 1)])


def _shadow_at(prof: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per profile: is the rise at (sub-pixel) index ``k`` a shadow's (:func:`_dimmed_at`)?"""
    return _dimmed_at(_smoothed_gradient(prof)[0], np.rint(k).astype(int))


def _climb(g: np.ndarray, k: np.ndarray) -> np.ndarray:
    """From index ``k`` of each row, walk up the slope to the local maximum of ``g``."""
    n = g.shape[1]
    r = np.arange(len(g))
    for _ in range(n):
        nxt = np.minimum(k + 1, n - 2)
        up = g[r, nxt] > g[r, k]
        if not up.any():
            break
        k = np.where(up, nxt, k)
    return k


def _darker_same_colour(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """True where ``after`` is ``before`` dimmed (same chromaticity, SHADOW_DIM of the light)."""
    nb = np.linalg.norm(before, axis=1) + 1e-6
    na = np.linalg.norm(after, axis=1) + 1e-6
    cos = (before * after).sum(axis=1) / (nb * na)
    ratio = na / nb
    return (cos > SHADOW_COS) & (ratio > SHADOW_DIM[0]) & (ratio < SHADOW_DIM[1])


def _solve(rows: np.ndarray, rhs: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)[:, None]
    p, *_ = np.linalg.lstsq(rows * sw, rhs * sw[:, 0], rcond=None)
    return p


_COL = {"top": 1, "bottom": 2, "left": 3, "right": 4}


def _edge_rows(prof: EdgeProfiles, lines: np.ndarray | None, window_px: int, mm_per_px: float = 0.0):
    """Design rows / right-hand sides / side names of the rectangle fit, the median step height
    and whether each row's edge looks like a shadow (its inner side the tray's colour dimmed)."""
    rows, rhs, sides, contrast, shadow = [], [], [], [], []
    for side, p in prof.profiles.items():
        along = prof.positions[side].astype(np.float64)
        expected = None if lines is None else _expected_idx(prof, side, lines)
        coarse = round(SEARCH_OUT_MM / mm_per_px) if lines is None and mm_per_px > 0 else None
        tol = round(COARSE_SHADOW_TOL_MM / mm_per_px) if mm_per_px > 0 else 0
        idx, slope, step = _peaks(p, expected, window_px, coarse, tol)
        med = float(np.median(slope))
        if med <= 0:
            return None
        keep = slope > MIN_REL_CONTRAST * med
        across = prof.start_px[side] + prof.direction[side] * idx[keep]
        a = along[keep]
        r = np.zeros((len(a), 5))
        r[:, 0] = a if side in ("top", "bottom") else -a  # y = m x + b  /  x = -m y + d
        r[:, _COL[side]] = 1.0
        rows.append(r)
        rhs.append(across)
        sides += [side] * len(a)
        contrast.append(float(np.median(step)))
        # (only the first pass's points are grouped, see _outermost_cluster)
        shadow.append(_shadow_at(p[keep], idx[keep]) if lines is None else np.zeros(int(keep.sum()), bool))
    return (np.vstack(rows), np.concatenate(rhs), np.array(sides), float(np.median(contrast)),
            np.concatenate(shadow))


def _robust_fit(rows: np.ndarray, rhs: np.ndarray, sides: np.ndarray, floor_px: float):
    """Rectangle parameters (m, b_top, b_bottom, d_left, d_right) and inlier weights."""
    w = np.ones(len(rhs))
    for _ in range(5):
        p = _solve(rows, rhs, w)
        res = np.abs(rhs - rows @ p)
        for sd in _COL:  # each side its own scale: one noisy side must not cost the others
            on = sides == sd
            scale = 1.4826 * np.median(res[on & (w > 0)]) if (on & (w > 0)).any() else 0.0
            w[on] = res[on] < max(3.0 * scale, floor_px)
    if any((w[sides == sd] > 0).sum() < 5 for sd in _COL):
        return None
    return _solve(rows, rhs, w), w


def fit_outline(crop: np.ndarray | Callable[[int, int, int, int], np.ndarray],
                grid: CropGrid) -> Outline | None:
    """Fit the body rectangle on a crop around the coarse pose; None when edges are missing.

    Two passes: the outermost strong rise on each profile and a robust fit, then the same
    within :data:`REFINE_MM` of that fit (a lint or a loop no longer sets the threshold) and
    a robust fit again.
    """
    return fit_profiles(edge_profiles(crop, grid), grid)


_OUTWARD = {"top": -1.0, "bottom": 1.0, "left": -1.0, "right": 1.0}


def _outermost_cluster(rows: np.ndarray, rhs: np.ndarray, sides: np.ndarray, p: np.ndarray,
                       mm_per_px: float, shadow: np.ndarray) -> np.ndarray:
    """Move a side onto its outermost consistent group of edge points.

    Where a print colour close to the tray's runs along part of an edge (checks, a stripe),
    those profiles find the next print edge inside; the mask's own edge is where the other
    profiles put it, further out. So a side whose points include a group of at least
    :data:`OUTER_GROUP_FRACTION` lying more than :data:`OUTER_GROUP_MM` outside the fit is moved
    onto that group (never inwards: nothing of the mask lies outside its edge). Unless the group
    is mostly shadow (:data:`OUTER_GROUP_SHADOW`): where a light stripe meets a light tray, the
    first pass may keep the start of the mask's soft shadow, where the segmentation put the edge
    (see :func:`_peaks`); those points are consistent too, but inside them is the tray, dimmed.
    """
    p = p.copy()
    res = rhs - rows @ p
    for side, col in _COL.items():
        on = sides == side
        out = res[on] * _OUTWARD[side] * mm_per_px  # mm outside the fitted line
        outer = out > OUTER_GROUP_MM
        group = out[outer]
        shaded = outer.any() and float(shadow[on][outer].mean()) >= OUTER_GROUP_SHADOW
        if len(group) >= OUTER_GROUP_FRACTION * on.sum() and np.std(group) < OUTER_GROUP_MM and not shaded:
            p[col] += float(np.median(group)) / mm_per_px * _OUTWARD[side]
    return p


def _expected_idx(prof: EdgeProfiles, side: str, lines: np.ndarray) -> np.ndarray:
    """Index on each of a side's profiles where the line of ``lines`` crosses it."""
    along = prof.positions[side].astype(np.float64)
    m, b = lines[0], lines[_COL[side]]
    across = (m * along + b) if side in ("top", "bottom") else (-m * along + b)
    return (across - prof.start_px[side]) * prof.direction[side]


def _band_is_mask(prof: EdgeProfiles, side: str, inner: np.ndarray, outer: np.ndarray) -> bool:
    """Is the band of a side's profiles between lines ``outer`` and ``inner`` mask, not tray?

    All through it (:data:`HINT_BAND_SHARE` of its samples, median over the profiles) the colour
    must differ from the tray's (the profiles' outer :data:`TRAY_REF_PX`) by
    :data:`HINT_BAND_MIN_STEP` and not be the tray's colour dimmed (the mask's own shadow). On
    average is not enough: a light fabric's blurred glow and its shadow on the tray, side by
    side, average to something unlike the tray.
    """
    sm = _smoothed_gradient(prof.profiles[side])[0]
    n = sm.shape[1]
    lo = np.rint(_expected_idx(prof, side, outer)).astype(int) + HINT_BAND_MARGIN_PX
    hi = np.rint(_expected_idx(prof, side, inner)).astype(int) - HINT_BAND_MARGIN_PX
    idx = np.arange(n)[None, :]
    sel = (idx >= np.maximum(lo, TRAY_REF_PX)[:, None]) & (idx <= np.minimum(hi, n - 1)[:, None])
    rows = sel.any(axis=1)
    if rows.sum() < 5:
        return False
    tray = np.median(sm[:, :TRAY_REF_PX].reshape(-1, 3), axis=0)
    mask = (np.linalg.norm(sm - tray, axis=2) >= HINT_BAND_MIN_STEP) & ~_shadow_like(tray, sm)
    share = (mask & sel).sum(axis=1)[rows] / sel.sum(axis=1)[rows]
    return bool(np.median(share) >= HINT_BAND_SHARE)


def fit_profiles(prof: EdgeProfiles, grid: CropGrid,
                 hints_mm: dict[str, float] | None = None) -> Outline | None:
    """:func:`fit_outline` on profiles already taken.

    ``hints_mm``: sides whose edge may lie this much further out than the profiles' strong rises
    say (the seam tracker's :attr:`~.types.SeamResult.edge_hints_mm`). Such a side's second pass
    looks within :data:`REFINE_MM` of the moved line, and the move is kept when the band it adds is
    mask, not tray (:func:`_band_is_mask`); :attr:`Outline.moved_mm` says which sides moved.
    """
    if len(prof.profiles) < 4:
        return None
    first = _edge_rows(prof, None, 0, grid.mm_per_px)
    if first is None or (fit := _robust_fit(*first[:3], floor_px=2.0)) is None:
        return None
    found = _outermost_cluster(*first[:3], fit[0], grid.mm_per_px, first[4])
    lines = found.copy()
    for side, mm in (hints_mm or {}).items():
        lines[_COL[side]] += mm / grid.mm_per_px * _OUTWARD[side]
    window = max(2, round(REFINE_MM / grid.mm_per_px))
    second = _edge_rows(prof, lines, window)
    if second is None or (fit := _robust_fit(*second[:3], floor_px=0.6)) is None:
        return None
    rows_a, rhs_a, sides_a, contrast, _ = second
    w = fit[1]
    p = _solve(rows_a, rhs_a, w)
    if hints_mm:
        moved = {side: float((p[_COL[side]] - found[_COL[side]]) * _OUTWARD[side] * grid.mm_per_px)
                 for side in hints_mm}
        # an edge found at the window's inner end is the first edge's own blurred tail, not an edge
        kept = {side: round(mm, 3) for side, mm in moved.items()
                if mm > hints_mm[side] - REFINE_MM + HINT_INNER_END_MM
                and _band_is_mask(prof, side, found, p)}
        if kept.keys() != moved.keys():  # a hint the image does not bear out: fit without it
            return fit_profiles(prof, grid, {s: hints_mm[s] for s in kept})
    res = rhs_a - rows_a @ p
    m, bt, bb, dl, dr = p
    norm = math.sqrt(1 + m * m)
    s = grid.mm_per_px
    width = (dr - dl) / norm * s
    height = (bb - bt) / norm * s
    # centre: intersection of the mid-lines y = m x + (bt+bb)/2 and x = -m y + (dl+dr)/2
    yc0, xc0 = (bt + bb) / 2, (dl + dr) / 2
    xc = (xc0 - m * yc0) / (1 + m * m)
    yc = m * xc + yc0
    centre_mask = grid.px_to_mask(np.array([xc, yc]))
    centre_tray = grid.pose.mask_to_tray(centre_mask)
    pose = MaskPose((float(centre_tray[0]), float(centre_tray[1])),
                    grid.pose.angle_deg + math.degrees(math.atan(m)), float(width), float(height))
    inl = w > 0
    pts = {}
    for side in _COL:
        sel = inl & (sides_a == side)
        along = rows_a[sel, 0] if side in ("top", "bottom") else -rows_a[sel, 0]
        across = rhs_a[sel]
        cr = np.stack([along, across], 1) if side in ("top", "bottom") else np.stack([across, along], 1)
        pts[side] = pose.tray_to_mask(grid.pose.mask_to_tray(grid.px_to_mask(cr)))
    return Outline(
        pose=pose,
        points_mm=pts,
        residual_mm=float(np.sqrt(np.mean(res[inl] ** 2)) / norm * s),
        inlier_fraction=float(inl.mean()),
        edge_contrast=contrast,
        moved_mm=kept if hints_mm else {},
    )
