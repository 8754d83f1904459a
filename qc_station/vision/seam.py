"""The perimeter top-stitch: where it runs, how long its stitches are, where it is broken.

Method (all in mm of the mask frame, whatever the fabric's print or the thread's colour):

1. For each side, the band 0-13 mm inward from the local edge is resampled into a straight strip
   (``seam_strip.side_strip``): ``u`` along the edge, ``v`` inward.
2. A thin-line detector (``seam_strip.line_response``) scores, per pixel, a line of thread running
   along the edge, darker or lighter, in any channel; step edges of prints give nothing.
3. Candidate rows in the expected seam band (spec distance +-1.5 mm) are tracked along the side;
   the one whose response is strong *and* periodic at a stitch pitch wins (a printed stripe
   parallel to the edge is continuous, a top-stitch is dashed). The seam is sewn at one distance
   all round: a side whose track lies off the distance the others agree on is tracked again
   near it (a plaid line can out-score the stitches).
4. The needle holes along the track are a 1-D profile: 16 mm windows vote for a comb pitch in
   1.2-5 mm, the pitch's harmonics (1/3 .. 3x) are checked against the holes' autocorrelation,
   and sides must agree (or three sides each vote for it); an unclear pitch gives
   ``stitch_length_mm=None``. Columns where a print
   edge crosses the seam obliquely (fabric above and below the track unlike) are bridged first:
   there the thread share is meaningless and would pose as needle holes. Thresholding the
   line response between the fabric's and the thread's level gives where thread is present.
5. A run without thread longer than ``max_gap_stitches`` x the pitch is a skipped stitch; a run of
   at least ``open_seam_min_mm`` where the edge also shows a notch, or a very long run, or a side
   without any seam, is an open seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.results import Finding
from qc_station.spec.model import MaskSpec
from qc_station.vision import seam_profile as sp
from qc_station.vision.seam_strip import SIDES, SideStrip, line_response, side_strip
from qc_station.vision.types import MaskCrop, SeamResult

STEP_MM = 0.2  # working resolution of the strips
PITCH_RANGE_MM = (1.2, 5.0)  # stitch lengths looked for (spec 2-3 mm, defects outside it)
ACF_WINDOW_MM = 16.0  # ~6 stitches per autocorrelation window
ACF_HOP_MM = 4.0
DIP_MAX_MM = 1.4  # needle holes between stitches are narrower than this
CHUNK_MM = 8.0  # tracking chunk along the side
EDGE_CLEAR_MM = 2.0  # keep this far from the perpendicular seam at the corners
NOTCH_MM = 0.6  # outline this far inside the fitted edge (over a few mm) = the layers are separated
EDGE_CUE_ALONG_MM = 4.0  # edge cues are averaged along the edge over this length
FAINT_THREAD_SHARE = 0.45  # the thread's colour share at the track that is thread, however faint...
FAINT_LINE_SYMMETRY = 0.5  # ...where the fabric above and below it differ less than this x the line
OCCLUDED_SHARE = 0.35  # track this close to the thread colour = thread hidden by a print
VISIBLE_SHARE = 0.5  # fabric beside the track this unlike the thread = a thread there would show
#: Where the fabric beside the track has a colour (within SAME_FABRIC_SHARE of the thread's
#: contrast) that shows the thread along less than HIDING_SHOWN of the rest of the side (at least
#: HIDING_MIN_MM of it outside the gap), that colour hides the thread: a diagonal stripe of about
#: the thread's colour left three 12 mm "gaps" on a good mask, one per stripe.
SAME_FABRIC_SHARE = 0.35
HIDING_SHOWN = 0.3
HIDING_MIN_MM = 6.0
SEPARATED_FRACTION = 0.25  # share of a gap with edge cues that makes it an open seam
EDGE_REF_MM = 30.0  # the edge band's usual look: running median over this length
EDGE_DEV_FACTOR = 3.0  # edge band this many times more unlike its usual look than typical...
EDGE_DEV_MIN = 10.0  # ...and by at least this much (BGR distance) = the layers gape
EDGE_LINE_FROM_MM = 0.5  # a line along the edge from here to the seam = a lifted layer's edge
EDGE_LINE_FACTOR = 4.0
EDGE_LINE_MIN = 12.0
TRACK_AGREE_MM = 1.0  # sides whose tracks lie this close (distance from the edge) agree on the seam
RETRACK_BAND_MM = 1.5  # a side off that distance is tracked again this far either side of it
EDGE_HINT_MM = 1.5  # a clearly dashed track this much closer to its edge: that edge may be further out
NEAR_EDGE_FROM_MM = -0.5  # ...a side without one is looked at again from here to the search band
MIN_DASH_MM = 0.6  # thread seen along less than this between two empty stretches is not a stitch
LONG_GAP_STITCHES = 8.0  # a gap this long (in stitches) is an open seam even without a notch
MIN_LINE_LEVEL = 6.0  # grey levels of line response a thread must reach
MIN_PERIODICITY = 0.25  # fraction of 16 mm windows agreeing on one stitch pitch
CLEAR_PERIODICITY = 0.6  # ...this many: a faint line is still the seam
CLEAN_LINE_RATIO = 10.0  # ...or a faint periodic line this far above a clean fabric's response
MIN_SIDE_WINDOWS = 6  # a side with this many 16 mm windows is asked on its own...
SIDE_PITCH_TOL = 0.08  # ...and must find the pitch or a multiple of it within this share
CLEAR_SIDE_SUPPORT = 0.5  # a side's own finer train this clear sets the pitch
MIN_SIDES = 2  # sides that must be asked (one side alone can lock on a print)
MIN_PITCH_SUPPORT = 0.3  # median ACF height at the pitch's multiples (independent renders: a
#                           pitch read wrong had <= 0.22 at the true one; a clear train 0.4-0.95)
VOTE_TOL = 0.06  # windows within this share of each other's pitch agree (the vote, pooled or per side)
VOTING_SIDES = 3  # sides whose own windows vote for the pitch (each on its own, independent evidence)...
SIDE_VOTE_SHARE = 0.3  # ...with at least this share of the side's windows agreeing...
VOTING_MIN_SUPPORT = 0.15  # ...make a pitch with this lower ACF support (and no close finer rival) clear
MAX_RIVAL = 0.6  # a finer harmonic scoring this share of the pitch's: ambiguous
FAINT_PITCH_SUPPORT = 0.2  # a lower support is enough when FAINT_VOTE_SHARE of all windows voted
FAINT_VOTE_SHARE = 0.5  # for the pitch (within SIDE_PITCH_TOL), no finer harmonic scores more
FAINT_MAX_RIVAL = 0.3  # than this share of it, and MIN_SIDES sides each see it at that support
#: Where the fabric 1.2 mm above and below the track differ this many times more than the thread
#: differs from the fabric, a print edge crosses the seam (obliquely): the thread share there is
#: meaningless (a diagonal stripe gave share -2 and 7 at each edge, and its edges, not the needle
#: holes, set a confident 2.1 mm pitch on 1.36 mm stitches), so the pitch bridges those columns.
#: There the ratio was over 6 on a fifth of the columns; at 3 a faint thread over a perpendicular
#: stripe lost its (right) pitch.
PRINT_EDGE_RATIO = 5.0


@dataclass(frozen=True)
class _Side:
    strip: SideStrip
    resp: np.ndarray
    track: sp.Track
    found: bool  # a thread line runs along this side
    periodic: bool  # ...and its needle holes give a clear pitch (used for the stitch length)
    valid: np.ndarray  # columns inside the corner clearance


def _search(step: float) -> sp.PitchSearch:
    return sp.PitchSearch(window_px=round(1.0 / step), chunk_px=round(CHUNK_MM / step),
                          dip_px=round(DIP_MAX_MM / step), acf_win_px=round(ACF_WINDOW_MM / step),
                          acf_hop_px=round(ACF_HOP_MM / step), fabric_off_px=round(1.2 / step),
                          lag_lo_px=PITCH_RANGE_MM[0] / step, lag_hi_px=PITCH_RANGE_MM[1] / step)


def _analyse_side(crop: MaskCrop, spec: MaskSpec, side: str, step: float) -> _Side:
    d = spec.seam.distance_mm
    length = crop.width_mm if side in ("top", "bottom") else crop.height_mm
    strip = side_strip(crop, side, v_range_mm=(-1.0, d.upper + 3.0), u_range_mm=(1.5, length - 1.5),
                       step_mm=step)
    return _track_side(strip, line_response(strip.image), _band_mm(spec), step)


def _band_mm(spec: MaskSpec) -> tuple[float, float]:
    """Where the seam is looked for, inward from the edge (mm): the spec's distance +-1.5 mm."""
    d = spec.seam.distance_mm
    return max(1.0, d.lower - 1.5), d.upper + 1.5


def _track_side(strip: SideStrip, resp: np.ndarray, band_mm: tuple[float, float], step: float) -> _Side:
    """The most stitch-like thread line of ``strip`` between ``band_mm`` (inward from the edge)."""
    lo = max(0, round((band_mm[0] - strip.v0_mm) / step))
    hi = min(resp.shape[0], round((band_mm[1] - strip.v0_mm) / step))
    best = sp.best_track(resp, lo, hi, _search(step), strip.image)
    if best is None:  # no line at all in the band
        n_u = resp.shape[1]
        best = sp.Track(np.full(n_u, (lo + hi) / 2), np.zeros(n_u, np.float32), 1.0, 0.0, None, np.ones(n_u))
    strength = float(np.median(best.profile))
    # a thread line: clearly above the fabric's response, or weak but with a clear stitch pitch
    found = strength >= 3.0 * best.background and (
        strength >= MIN_LINE_LEVEL or best.periodicity >= CLEAR_PERIODICITY
        or (strength >= CLEAN_LINE_RATIO * best.background and best.periodicity >= MIN_PERIODICITY))
    periodic = found and best.periodicity >= MIN_PERIODICITY
    return _Side(strip, resp, best, found, periodic, np.ones(resp.shape[1], bool))


def _track_distance_mm(s: _Side) -> float:
    """Median distance of a side's track from its local edge (mm, inward)."""
    return float(s.strip.v0_mm + np.median(s.track.v_px) * s.strip.step_mm)


def _agreed_distance_mm(dist: dict[str, float]) -> float | None:
    """The track distance at least two sides agree on (within :data:`TRACK_AGREE_MM`), None when
    no two do or two rival groups are as large."""
    groups = [[m for m in dist if abs(dist[m] - dist[n]) <= TRACK_AGREE_MM] for n in dist]
    if not groups:
        return None
    size = max(len(g) for g in groups)
    best = {tuple(sorted(g)) for g in groups if len(g) == size}
    if size < 2 or len(best) > 1:
        return None
    return float(np.median([dist[n] for n in next(iter(best))]))


def _edge_hints(sides: dict[str, _Side], crop: MaskCrop, near_mm: tuple[float, float],
                step: float) -> dict[str, float]:
    """Sides whose fitted edge may lie further out, and by how much (mm).

    A clearly dashed track is the seam itself. When it lies more than :data:`EDGE_HINT_MM`
    closer to the fitted edge than the distance the other sides agree on, the likelier story is
    an edge found too far in (a stripe of the tray's colour along it: black on a black tray) than
    a seam sewn that far off on one side only. The outline decides, on the image, whether the
    mask really reaches out there (:func:`~qc_station.vision.outline.fit_profiles`). Distances
    are to the fitted outline, not to the strip's local edge: that one follows the segmentation,
    which may stop at a stripe the outline saw past.

    A side without a clearly dashed track is looked at again between ``near_mm`` (closer to the
    edge than the search band): with its edge found several mm inside, its seam lies at the
    fitted edge, out of the band, and the track went to something else. A line found there
    counts only at the stitch pitch of the clearly dashed sides (within :data:`SIDE_PITCH_TOL`):
    a print's rows of squares or flowers along the edge are dashed too.
    """
    dist = {n: _outline_distance_mm(s, crop) for n, s in sides.items() if s.found}
    if (ref := _agreed_distance_mm(dist)) is None:
        return {}
    # ...and it must be the same seam: the stitch pitch of the clearly dashed sides at that distance
    lags = [sides[n].track.lag_px for n, d in dist.items() if abs(d - ref) <= TRACK_AGREE_MM
            and sides[n].track.periodicity >= CLEAR_PERIODICITY and sides[n].track.lag_px]
    lag = float(np.median(lags)) if lags else None
    hints = {}
    for name, s in sides.items():
        seam = s
        if s.track.periodicity < CLEAR_PERIODICITY and lag is not None:
            near = _track_side(s.strip, s.resp, near_mm, step)
            near_lag = near.track.lag_px
            if near_lag and abs(near_lag - lag) <= SIDE_PITCH_TOL * lag:
                seam = near
        if seam.found and seam.track.periodicity >= CLEAR_PERIODICITY:
            off = ref - _outline_distance_mm(seam, crop)
            if off > EDGE_HINT_MM:
                hints[name] = round(off, 3)
    return hints


def _consistent_tracks(sides: dict[str, _Side], step: float) -> dict[str, _Side]:
    """Re-track the sides whose line lies far from the distance most sides agree on.

    The top-stitch is sewn at one distance from the edge all round. A plaid's line or a stripe
    parallel to a side can out-score the stitches there and take the track, and then a gap in
    the real seam on that side goes unseen. When at least two sides agree on the distance (and
    no other pair agrees on another), a side off it is tracked again within
    :data:`RETRACK_BAND_MM` of it, and keeps the new track if a thread line is found there that
    is at least as dashed (periodic at a stitch pitch) as the first.
    """
    dist = {n: _track_distance_mm(s) for n, s in sides.items() if s.found}
    if (ref := _agreed_distance_mm(dist)) is None:
        return sides
    out = dict(sides)
    for name, s in sides.items():
        # a side without a thread line stays so: a line near the others' distance may be a
        # print's, and the whole side's seam may be missing. A clearly dashed track is the seam
        # itself: its distance is off because that side's edge was found off (a black stripe
        # along the edge on a black tray), not because a print took the track
        if (not s.found or abs(dist[name] - ref) <= TRACK_AGREE_MM
                or s.track.periodicity >= CLEAR_PERIODICITY):
            continue
        again = _track_side(s.strip, s.resp, (ref - RETRACK_BAND_MM, ref + RETRACK_BAND_MM), step)
        if again.found and again.track.periodicity >= s.track.periodicity:
            out[name] = again
    return out


def _outline_distance_mm(s: _Side, crop: MaskCrop) -> float:
    """Median distance of a side's track from the fitted outline (mm, inward)."""
    return float(np.median(np.abs(_seam_position_mm(s) - _outline_mm(s.strip.side, crop))))


def _outline_mm(side: str, crop: MaskCrop) -> float:
    """The fitted outline's coordinate across ``side`` (mask frame, mm)."""
    return {"top": 0.0, "bottom": crop.height_mm, "left": 0.0, "right": crop.width_mm}[side]


def _seam_position_mm(s: _Side) -> np.ndarray:
    """Across-side mask-frame coordinate of the thread centre per column."""
    v_mm = s.strip.v0_mm + s.track.v_px * s.strip.step_mm
    sign = 1.0 if s.strip.side in ("top", "left") else -1.0
    return s.strip.edge_mm + sign * v_mm


def _box(s: _Side, c0: int, c1: int, *, to_edge: bool) -> tuple[float, float, float, float]:
    """Mask-frame box over columns [c0, c1) of a side: around the seam, or from edge to seam."""
    st = s.strip
    u0, u1 = float(st.u_mm[c0]), float(st.u_mm[min(c1, len(st.u_mm) - 1)])
    seam = float(np.median(_seam_position_mm(s)[c0:c1]))
    edge = float(np.median(st.edge_mm[c0:c1]))
    sign = 1.0 if st.side in ("top", "left") else -1.0
    a, b = (edge - sign * 0.5, seam + sign * 1.0) if to_edge else (seam - 1.0, seam + 1.0)
    lo, hi = min(a, b), max(a, b)
    if st.side in ("top", "bottom"):
        return (u0, lo, u1 - u0, hi - lo)
    return (lo, u0, hi - lo, u1 - u0)


def _probability(ratio: float) -> float:
    """Map (measured / limit) to a probability: 0.5 at the limit, ~0.9 at 1.5x."""
    return float(np.clip(0.5 + 0.5 * np.tanh(2.2 * (ratio - 1.0)), 0.0, 1.0))


@dataclass(frozen=True)
class _PitchEvidence:
    """How the stitch pitch was decided (strip px), and why it may not be trusted."""

    voted_px: float  # the pitch most windows voted for
    pitch_px: float  # the fundamental after the harmonic check
    support: float  # its median ACF height at its multiples, over all windows of the periodic sides
    rival: float  # best finer harmonic's support / its support
    sides: tuple[float, ...]  # per side with enough windows: its own fundamental / the pitch
    confident: bool


def _pitch_evidence(per_side: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    ps: sp.PitchSearch) -> _PitchEvidence | None:
    """Vote, then test the voted pitch's harmonics (1/3, 1/2, 2x, 3x) on the needle-hole ACFs.

    Confident only if no finer harmonic comes close, and either the fundamental's ACF peaks are
    clear and at least two sides with enough windows agree (each sees it or a multiple, one
    clearly), or three sides each vote for it on their own (:data:`VOTING_SIDES`).
    """
    pitches = np.concatenate([p for p, _, _ in per_side])
    scores = np.concatenate([sc for _, sc, _ in per_side])
    acfs = np.concatenate([a for _, _, a in per_side if len(a)])
    voted, _, _ = sp.modal_pitch(pitches, scores, tol=VOTE_TOL)
    if voted is None:
        return None
    lo, hi = ps.lag_lo_px, ps.lag_hi_px
    pitch, support, rival = sp.fundamental(acfs, voted, lo, hi)
    def own_at(p: float) -> list[tuple[float, float, float]]:
        """Each side with enough windows on its own: (fundamental, its support, finer rival)."""
        return [sp.fundamental(a, p, lo, hi) for _p, _s, a in per_side if len(a) >= MIN_SIDE_WINDOWS]

    own = own_at(pitch)
    # needle holes can fade every other one on some sides (pixel grid), never appear in between:
    # a side with a clear finer train sets the pitch
    finer = [(q, sup) for q, sup, riv in own if q < 0.9 * pitch and sup >= CLEAR_SIDE_SUPPORT
             and riv <= MAX_RIVAL]
    if finer:
        pitch, support = min(finer)  # that side's clear train is the evidence (others: multiples)
        own = own_at(pitch)
        rival = 0.0
    # consistent sides see the pitch or a multiple of it; a side with a plausible finer train
    # contradicts it, and at least one side must see the pitch itself clearly
    ratios = [q / pitch for q, _sup, _riv in own]
    multiple = [abs(r - round(r)) <= SIDE_PITCH_TOL * round(r) and round(r) >= 1 for r in ratios]
    # a faint train (light thread on a light print) has low ACF peaks, but when most windows
    # voted for this very pitch and no finer harmonic comes near, the pitch is still clear
    # (then at least two sides must each see the pitch itself at that support)
    voted_for = float(np.mean(np.abs(pitches / pitch - 1) <= SIDE_PITCH_TOL)) if len(pitches) else 0.0
    faint = voted_for >= FAINT_VOTE_SHARE and rival <= FAINT_MAX_RIVAL and support < MIN_PITCH_SUPPORT
    bar = FAINT_PITCH_SUPPORT if faint else MIN_PITCH_SUPPORT
    contra = any(q < 0.9 * pitch and sup >= MIN_PITCH_SUPPORT for q, sup, _riv in own)
    seeing = sum(abs(q / pitch - 1) <= SIDE_PITCH_TOL and sup >= bar for q, sup, _riv in own)
    sees = seeing >= (MIN_SIDES if faint else 1)
    sides = tuple(float(r) for r in ratios)
    agree = len(own) >= MIN_SIDES and all(multiple) and not contra and sees
    # a print crossing two sides' seams blurs their needle holes and drags the pooled support
    # down: MIN_SIDES sides that each clearly find this very pitch on their own are enough
    clear_sides = sum(abs(q / pitch - 1) <= SIDE_PITCH_TOL and sup >= MIN_PITCH_SUPPORT and riv <= MAX_RIVAL
                      for q, sup, riv in own)
    # a print along the seam spoils some windows of every side and drags the pooled ACF support
    # down; three sides whose own windows still vote for this very pitch are independent evidence
    voting = sum(q is not None and abs(q / pitch - 1) <= VOTE_TOL and share >= SIDE_VOTE_SHARE
                 for q, share, _ in (sp.modal_pitch(p, sc, tol=VOTE_TOL) for p, sc, _a in per_side))
    # ...unless a side's own harmonic check prefers a multiple of it: then the votes may be for
    # a half of long stitches (a mid-stitch dip), which would read inside the spec
    coarser = any(round(r) >= 2 for r in ratios)
    confident = rival <= MAX_RIVAL and (
        ((support >= bar or clear_sides >= MIN_SIDES) and agree)
        or (voting >= VOTING_SIDES and support >= VOTING_MIN_SUPPORT and not contra
            and not coarser))
    return _PitchEvidence(voted, pitch, support, rival, tuple(sides), confident)


def _stitch_length(sides: dict[str, _Side], step: float) -> tuple[float | None, float | None]:
    """Median stitch length and P90 (mm) from the needle-hole trains of all found sides.

    Every 16 mm window votes for its comb pitch; the pitch most windows agree on is then checked
    against its harmonics (:func:`_pitch_evidence`). When the needle holes do not pin the pitch
    down (weak comb, a finer harmonic nearly as strong, sides disagreeing), the stitch length is
    None: not measurable is said, not guessed. Otherwise the windows agreeing with the pitch are
    refined with their harmonics: their median and P90 are reported.
    """
    ps = _search(step)
    per_side = []
    for s in sides.values():
        if s.periodic:
            x = sp.dips(_bridge_print_edges(s, step), ps.dip_px)[s.valid]
            per_side.append(sp.window_pitches(x, ps))
    if not per_side:
        return None, None
    ev = _pitch_evidence(per_side, ps)
    if ev is None or not ev.confident:
        return None, None
    pitch = ev.pitch_px
    acfs = np.concatenate([a for _, _, a in per_side if len(a)])
    agree = sp.comb_at(acfs, pitch, rel=0.06) >= 0.15
    refined = sp.refine_many(acfs[agree], pitch, max_k=3) if agree.any() else np.zeros(0)
    refined = refined[np.abs(refined - pitch) <= 0.1 * pitch] * step
    if not refined.size:
        return pitch * step, pitch * step
    return float(np.median(refined)), float(np.percentile(refined, 90))


def _bridge_print_edges(s: _Side, step: float) -> np.ndarray:
    """The track's thread share, interpolated over the columns where a print edge crosses the
    seam (:data:`PRINT_EDGE_RATIO`), so that print edges do not pose as needle holes."""
    frac = s.track.fraction
    on, above, below = _track_samples(s, step)
    contrast = float(np.linalg.norm(np.median((on - 0.5 * (above + below))[::2], axis=0)))
    edge = np.linalg.norm(above - below, axis=1) > PRINT_EDGE_RATIO * contrast
    edge = cv2.dilate(edge.astype(np.uint8).reshape(1, -1), np.ones((1, 3), np.uint8)).ravel().astype(bool)
    keep = np.flatnonzero(~edge)
    if not edge.any() or len(keep) < 2:
        return frac
    out = frac.copy()
    out[edge] = np.interp(np.flatnonzero(edge), keep, frac[keep])
    return out


def _faint_thread(s: _Side, fill_px: int, step: float) -> np.ndarray:
    """Columns where the track still shows :data:`FAINT_THREAD_SHARE` of the thread's colour
    (averaged over ``fill_px``, past the needle holes) though its line response is weak: a light
    thread over a light print stripe. Only where the fabric just above and below the track look
    alike (a line between them, not a print edge running along the track), and the track differs
    from them: a skipped stitch leaves the fabric's own colour there.
    """
    k = max(3, 2 * fill_px + 1)
    share = np.convolve(s.track.fraction - 1.0, np.ones(k) / k, mode="same")
    on, above, below = _track_samples(s, step)
    line = np.linalg.norm(on - 0.5 * (above + below), axis=1)
    step_across = np.linalg.norm(above - below, axis=1)
    box = np.ones(k) / k
    line, step_across = np.convolve(line, box, mode="same"), np.convolve(step_across, box, mode="same")
    return (share >= FAINT_THREAD_SHARE) & (step_across < FAINT_LINE_SYMMETRY * line)


def _track_samples(s: _Side, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: the colour on the track, and the fabric's 1.2 mm above and below it."""
    img = s.strip.image
    n_v, n_u = img.shape[:2]
    cols = np.arange(n_u)
    r = np.clip(np.round(s.track.v_px).astype(int), 0, n_v - 1)
    off = round(1.2 / step)
    return img[r, cols], img[np.clip(r - off, 0, n_v - 1), cols], img[np.clip(r + off, 0, n_v - 1), cols]


def _track_colours(s: _Side, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the colour on the track, and the fabric's 1.2 mm either side of it (their mean)."""
    on, above, below = _track_samples(s, step)
    return on, 0.5 * (above + below)


def _smooth_along(x: np.ndarray) -> np.ndarray:
    """Colours per column averaged over 5 columns (1 mm): past single needle holes and noise."""
    n = len(x)
    return cv2.blur(np.ascontiguousarray(x, np.float32).reshape(1, n, 3), (5, 1)).reshape(n, 3)


def _hidden(on: np.ndarray, beside: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: (track shows the thread's colour, a thread there would be visible).

    ``on`` / ``beside``: :func:`_track_colours`; ``use``: columns where the thread shows.
    Over a print of about the thread's colour the thread vanishes for the line filter: the colour
    at the track is then the thread's, and the fabric beside it is close to the thread's colour.
    Only the part of a gap where the fabric beside the track clearly differs from the thread (and
    the track does not show the thread's colour) is evidence that stitches are missing.
    """
    n_u = len(use)
    if use.sum() < 20:
        return np.zeros(n_u, bool), np.ones(n_u, bool)
    thread = np.median(on[use], axis=0)
    fabric = np.median(beside[use], axis=0)
    contrast = max(float(np.linalg.norm(thread - fabric)), 1e-3)

    def near(x: np.ndarray, ref: np.ndarray, share: float) -> np.ndarray:
        return np.linalg.norm(_smooth_along(x) - ref[None, :], axis=1) < share * contrast

    # a missing thread is visible where the fabric beside the track differs from the thread
    return near(on, thread, OCCLUDED_SHARE), ~near(beside, thread, VISIBLE_SHARE)


def _hiding_colour(on: np.ndarray, beside: np.ndarray, present: np.ndarray, valid: np.ndarray,
                   gaps: list[tuple[int, int]], step: float) -> np.ndarray:
    """Columns of the ``gaps`` whose fabric colour hides the thread elsewhere on the side.

    The fabric beside the track (1.2 mm either side, :func:`_track_colours`) of each gap is
    compared column by column with the rest of the side outside that gap: where that colour recurs
    (:data:`HIDING_MIN_MM` at least) and the thread shows along less than :data:`HIDING_SHOWN` of
    it, a thread over it would not show here either. A real skipped stitch lies on fabric that
    shows the thread elsewhere.
    """
    hides = np.zeros(len(present), bool)
    beside = _smooth_along(beside)
    use = present & valid
    if use.sum() < 20:
        return hides
    contrast = max(float(np.linalg.norm(np.median(on[use], axis=0) - np.median(beside[use], axis=0))), 1e-3)
    for g0, g1 in gaps:
        rest = valid.copy()
        rest[g0:g1] = False
        dist = np.linalg.norm(beside[g0:g1, None, :] - beside[None, rest, :], axis=2)  # (gap, rest)
        same = dist < SAME_FABRIC_SHARE * contrast
        n_same = same.sum(axis=1)
        shown = (same & present[rest][None, :]).sum(axis=1) / np.maximum(n_same, 1)
        hides[g0:g1] = (n_same * step >= HIDING_MIN_MM) & (shown < HIDING_SHOWN)
    return hides


def _image_edge_mm(st: SideStrip, step: float) -> np.ndarray:
    """Where the image itself shows the edge, inward from the fitted edge (mm), per column.

    The first strong step across the band from outside (half the column's strongest); the body
    mask can be too coarse to show the small bite of an open seam, the image shows it.
    """
    e0 = max(1, round((-1.0 - st.v0_mm) / step))
    e1 = round((2.5 - st.v0_mm) / step)
    img = st.image
    g = np.abs(img[e0 + 1:e1 + 1] - img[e0 - 1:e1 - 1]).sum(axis=2)  # (rows, n_u)
    strong = g >= 0.5 * g.max(axis=0, keepdims=True)
    first = np.argmax(strong, axis=0)
    pos = st.v0_mm + (e0 + first) * step
    return pos - float(np.median(pos))


def _edge_disturbed(s: _Side, step: float) -> np.ndarray:
    """Columns where the edge looks separated (evidence for an open seam rather than a skip).

    Three cues, each along a few mm so a print's short features do not count: the outline bites
    in (a notch in the body mask), a line runs along the edge between edge and seam (the lifted
    edge of the top layer), or the band between edge and seam looks unlike the rest of that band
    (the inner layer or the tray showing through).
    """
    st = s.strip
    n_u = st.image.shape[1]
    blk = round(1.0 / step)
    along = round(EDGE_CUE_ALONG_MM / step) | 1

    def smooth(x: np.ndarray) -> np.ndarray:
        return cv2.blur(np.ascontiguousarray(x, np.float32).reshape(1, -1), (along, 1)).ravel()

    notch = smooth((st.edge_raw_mm - st.edge_mm) * (1.0 if st.side in ("top", "left") else -1.0))
    notch = np.maximum(notch, smooth(_image_edge_mm(st, step)))
    seam_v_mm = _track_distance_mm(s)
    r0 = max(0, round((0.2 - st.v0_mm) / step))
    r1 = max(r0 + 2, round((min(seam_v_mm - 1.0, 3.0) - st.v0_mm) / step))
    # each column's look across the band (rows x channels), against the side's usual look
    band = st.image[r0:r1].transpose(1, 0, 2).reshape(n_u, -1)
    nb = n_u // blk
    blocks = np.median(band[: nb * blk].reshape(nb, blk, -1), axis=1)
    k = max(1, round(EDGE_REF_MM / (blk * step)) | 1)
    pad = np.pad(blocks, ((k // 2, k // 2), (0, 0)), mode="edge")
    ref_b = np.median(np.lib.stride_tricks.sliding_window_view(pad, k, axis=0), axis=2)
    idx = np.clip(np.arange(n_u) // blk, 0, nb - 1)
    dev = smooth(np.sqrt(((band - ref_b[idx]) ** 2).mean(axis=1)))
    # the lifted lip: a line along the edge, averaged along the edge per row, strongest row
    l0 = max(0, round((EDGE_LINE_FROM_MM - st.v0_mm) / step))
    rows = s.resp[l0:max(l0 + 1, r1)]
    lip = cv2.blur(np.ascontiguousarray(rows, np.float32), (along, 1)).max(axis=0)
    use = s.valid if s.valid.any() else np.ones(n_u, bool)
    return ((notch > NOTCH_MM)
            | (dev > max(EDGE_DEV_FACTOR * float(np.median(dev[use])), EDGE_DEV_MIN))
            | (lip > max(EDGE_LINE_FACTOR * float(np.median(lip[use])), EDGE_LINE_MIN)))


def _gaps(present: np.ndarray, c_lo: int, c_hi: int, min_px: float) -> list[tuple[int, int]]:
    """Runs without thread longer than ``min_px`` between two runs with thread, in [c_lo, c_hi)."""
    out = []
    for g0, g1 in sp.runs(~present[c_lo:c_hi]):
        # a gap must be bounded by thread on both sides (at the corners: loops, the turn)
        if g0 > 0 and g1 < c_hi - c_lo and g1 - g0 > min_px:
            out.append((g0 + c_lo, g1 + c_lo))
    return out


def analyze_seam(crop: MaskCrop, spec: MaskSpec) -> SeamResult:
    """Track the perimeter top-stitch of ``crop`` and judge it against ``spec.seam``.

    Returns the median distance of the stitch line from the edge, the median stitch length and
    its P90 (mm), the fraction of the perimeter where thread was found, and located findings for
    skipped stitches and open seams (boxes in the mask frame, mm).
    """
    if crop.image.ndim != 3 or crop.image.shape[:2] != crop.body.shape:
        raise ValueError("crop.image must be HxWx3 and crop.body HxW")
    step = max(STEP_MM, crop.mm_per_px)
    first = {name: _analyse_side(crop, spec, name, step) for name in SIDES}
    hints = _edge_hints(first, crop, (NEAR_EDGE_FROM_MM, _band_mm(spec)[0]), step)
    sides = _consistent_tracks(first, step)
    # the perpendicular seams cross each band near the corners: analyse only between them
    dist = {name: _outline_distance_mm(s, crop) if s.found else spec.seam.distance_mm.nominal
            for name, s in sides.items()}
    for name, s in sides.items():
        a, b = ("left", "right") if name in ("top", "bottom") else ("top", "bottom")
        u = s.strip.u_mm
        length = crop.width_mm if name in ("top", "bottom") else crop.height_mm
        s.valid[:] = (u >= dist[a] + EDGE_CLEAR_MM) & (u <= length - dist[b] - EDGE_CLEAR_MM)

    stitch_mm, p90_mm = _stitch_length(sides, step)

    # presence of thread along each side, then gaps
    nominal_mm = stitch_mm or spec.seam.stitch_length_mm.nominal
    skip_limit_mm = spec.seam.max_gap_stitches * nominal_mm
    skipped: list[Finding] = []
    opened: list[Finding] = []
    present_len = 0
    total_len = 0
    distances: list[np.ndarray] = []
    for name, s in sides.items():
        n_valid = int(s.valid.sum())
        total_len += n_valid
        if n_valid == 0:
            continue
        idx = np.flatnonzero(s.valid)
        c_lo, c_hi = int(idx[0]), int(idx[-1]) + 1
        if not s.found:
            length_mm = n_valid * step
            opened.append(Finding(code="open_seam", source="seam", box_mm=_box(s, c_lo, c_hi, to_edge=True),
                                  probability=_probability(length_mm / spec.seam.open_seam_min_mm)))
            continue
        fill = round(0.6 * nominal_mm / step)
        present = sp.fill_short_runs(sp.thread_present(s.track, s.valid) | _faint_thread(s, fill, step), fill)
        seen = np.ones_like(present)  # where a missing thread would be visible
        hides = np.zeros_like(present)  # ...and where a print colour hides it
        # a thread response shorter than any stitch's dash (a print speck's edge) does not end a gap
        dashes = ~sp.fill_short_runs(~present, round(MIN_DASH_MM / step))
        gaps = _gaps(dashes, c_lo, c_hi, skip_limit_mm / step)
        if gaps:  # only then pay for the finer checks
            on, beside = _track_colours(s, step)
            occluded, visible = _hidden(on, beside, present & s.valid)
            seen = visible & ~occluded
            hides = _hiding_colour(on, beside, present, s.valid, gaps, step)
        present_len += int((present | ~seen)[s.valid].sum())
        distances.append(np.abs(_seam_position_mm(s) - _outline_mm(name, crop))[present & s.valid])
        disturbed = _edge_disturbed(s, step) if gaps else None
        for g0, g1 in gaps:
            gap_mm = (g1 - g0) * step
            seen_mm = float((seen[g0:g1] & ~hides[g0:g1]).sum()) * step  # where it could be seen
            if seen_mm <= skip_limit_mm:
                continue  # mostly over a print: the thread may be there, hidden
            separated = float(disturbed[g0:g1].mean()) >= SEPARATED_FRACTION
            long_gap = gap_mm >= LONG_GAP_STITCHES * nominal_mm
            if (gap_mm >= spec.seam.open_seam_min_mm and separated) or long_gap:
                opened.append(Finding(code="open_seam", source="seam", box_mm=_box(s, g0, g1, to_edge=True),
                                      probability=_probability(gap_mm / spec.seam.open_seam_min_mm)))
            else:
                skipped.append(Finding(code="skipped_stitch", source="seam",
                                       box_mm=_box(s, g0, g1, to_edge=False),
                                       probability=_probability(gap_mm / skip_limit_mm)))
    found = any(s.found for s in sides.values())
    dist_all = np.concatenate(distances) if distances else np.zeros(0)
    return SeamResult(
        found=found,
        distance_mm=float(np.median(dist_all)) if dist_all.size else None,
        stitch_length_mm=stitch_mm,
        stitch_length_p90_mm=p90_mm,
        coverage=present_len / total_len if total_len else 0.0,
        skipped=tuple(skipped),
        open_seams=tuple(opened),
        edge_hints_mm=hints,
    )
