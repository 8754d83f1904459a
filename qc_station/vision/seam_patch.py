"""The stitch detector on a close-up of a straight, roughly horizontal seam (no mask edge in view).

Same detector as the perimeter tracker (thin-line response, needle-hole comb pitch, gaps), used
to check it on real seams (StitchingNet close-ups) and usable on any patch of a seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qc_station.vision import seam_profile as sp
from qc_station.vision.seam_strip import line_response

PITCH_RANGE_MM = (1.2, 5.0)
MIN_PERIODICITY = 0.15
LONG_STITCH_RATIO = 1.7  # needle holes this many stitch lengths apart = a floating (skipped) stitch


@dataclass(frozen=True)
class StitchPatch:
    """What the detector saw on one patch."""

    found: bool  # a periodic stitch line was found
    row_px: float  # median row of the thread
    periodicity: float  # comb score of the needle-hole train (0 = none)
    stitch_length_mm: float | None
    longest_gap_mm: float  # longest stretch without thread between two stretches with thread
    skipped: bool  # longest gap > max_gap_stitches x stitch length
    longest_stitch_ratio: float = 0.0  # longest distance between needle holes / stitch length
    long_stitch: bool = False  # a floating stitch (thread present, needle holes missing)


def analyze_stitch_patch(image: np.ndarray, *, mm_per_px: float = 0.2, max_gap_stitches: float = 2.0,
                         nominal_stitch_mm: float = 2.5) -> StitchPatch:
    """Find the stitch line in a BGR patch whose seam runs roughly along the rows.

    >>> patch = np.full((60, 200, 3), 120, np.uint8); patch[30:32, ::12] = 0
    >>> analyze_stitch_patch(patch).row_px  # doctest: +SKIP
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be H x W x 3")
    img = image.astype(np.float32)
    resp = line_response(img)
    n_v, n_u = resp.shape
    step = mm_per_px
    ps = sp.PitchSearch(window_px=max(2, round(0.8 / step)), chunk_px=max(8, round(4.0 / step)),
                        dip_px=max(3, round(1.4 / step)), acf_win_px=min(n_u, round(16.0 / step)),
                        acf_hop_px=max(4, round(4.0 / step)), fabric_off_px=max(3, round(1.2 / step)),
                        lag_lo_px=PITCH_RANGE_MM[0] / step, lag_hi_px=PITCH_RANGE_MM[1] / step)
    track = sp.best_track(resp, 4, n_v - 4, ps, img)
    if track is None:
        return StitchPatch(False, float("nan"), 0.0, None, 0.0, False)
    use = np.ones(n_u, bool)
    strength = float(np.median(track.profile))
    found = track.periodicity >= MIN_PERIODICITY and strength >= 3.0 * track.background
    pitch_px = sp.refine_with_harmonics(_mean_acf(track, ps), track.lag_px) if track.lag_px else None
    stitch_mm = pitch_px * step if pitch_px else None
    nominal_px = (pitch_px or nominal_stitch_mm / step)
    present = sp.fill_short_runs(sp.thread_present(track, use), round(0.6 * nominal_px))
    gaps = [(e - s) for s, e in sp.runs(~present) if s > 0 and e < n_u]
    longest = max(gaps, default=0) * step
    limit = max_gap_stitches * nominal_px * step
    ratio = _longest_stitch(track, ps, pitch_px) if pitch_px else 0.0
    return StitchPatch(found, float(np.median(track.v_px)), float(track.periodicity), stitch_mm, longest,
                       longest > limit, ratio, ratio > LONG_STITCH_RATIO)


def _longest_stitch(track: sp.Track, ps: sp.PitchSearch, pitch_px: float) -> float:
    """Longest distance between consecutive needle holes, in stitch lengths.

    On a lockstitch a skipped stitch usually leaves the thread floating over two stitch lengths
    (no gap in the thread), so the needle holes are what is missing.
    """
    d = sp.dips(track.fraction, ps.dip_px)
    pos = d[d > 0.02]
    if pos.size < 5:
        return 0.0
    thr = 0.5 * float(np.percentile(pos, 90))
    inner = d[1:-1]
    holes = np.flatnonzero((inner >= thr) & (inner >= d[:-2]) & (inner >= d[2:])) + 1
    if len(holes) < 2:
        return 0.0
    return float(np.diff(holes).max() / pitch_px)


def _mean_acf(track: sp.Track, ps: sp.PitchSearch) -> np.ndarray:
    win = min(ps.acf_win_px, len(track.profile))
    acfs, _ = sp.window_acfs(sp.dips(track.fraction, ps.dip_px), win, max(1, win // 2))
    return acfs.mean(axis=0)
