"""1-D analysis of a seam: tracking the thread line in a strip, stitch pitch, gaps in the line.

All lengths here are in strip pixels (``step_mm`` each); the caller converts to mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from qc_station.vision.seam_strip import running_median


@dataclass(frozen=True)
class Track:
    """The thread line found in one strip: row (sub-pixel) and line strength per column."""

    v_px: np.ndarray  # (n_u,) row of the thread centre
    profile: np.ndarray  # (n_u,) line response along the track
    background: float  # typical line response of the fabric away from the track
    periodicity: float  # fraction of ACF windows agreeing on one stitch pitch
    lag_px: float | None  # that pitch
    fraction: np.ndarray  # (n_u,) 1 + share of thread colour at the track (needle holes dip)


def candidate_rows(resp: np.ndarray, lo: int, hi: int, n: int = 3) -> list[int]:
    """Rows in [lo, hi) where a line runs along most of the strip (peaks of the row-mean response)."""
    sub = resp[lo:hi, ::4]  # every 4th column is plenty for a row statistic
    prof = np.median(sub, axis=1) + sub.mean(axis=1)
    peaks = [i for i in range(1, len(prof) - 1) if prof[i] >= prof[i - 1] and prof[i] > prof[i + 1]]
    peaks.sort(key=lambda i: -prof[i])
    return [lo + i for i in peaks[:n]]


def _subpixel_peak(y: np.ndarray, i: int) -> float:
    if 0 < i < len(y) - 1:
        a, b, c = y[i - 1], y[i], y[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return i + float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return float(i)


def track_line(resp: np.ndarray, row: int, *, window_px: int, chunk_px: int,
               recentre: bool = True) -> np.ndarray:
    """Follow the line near ``row`` along the strip; returns the sub-pixel row per column.

    When the track keeps to the edge of the search window, the window only reached the flank of a
    line beside ``row``: the line is then followed from there (a track on a flank loses the thin
    line wherever something else in the window is stronger).
    """
    n_v, n_u = resp.shape
    lo, hi = max(0, row - window_px), min(n_v, row + window_px + 1)
    starts = np.arange(0, n_u, chunk_px)
    if len(starts) > 1 and n_u - starts[-1] < chunk_px // 2:
        starts = starts[:-1]  # a short last chunk joins the one before
    ends = np.append(starts[1:], n_u)
    win = resp[lo:hi].astype(np.float64)
    cols = np.add.reduceat(win, starts, axis=1) / (ends - starts)[None, :]  # (rows, chunks)
    i = np.argmax(cols, axis=0)
    k = np.arange(cols.shape[1])
    a = cols[np.maximum(i - 1, 0), k]
    b = cols[i, k]
    c = cols[np.minimum(i + 1, len(cols) - 1), k]
    den = a - 2 * b + c
    inner = (i > 0) & (i < len(cols) - 1) & (den < 0)
    off = np.where(inner, np.clip(0.5 * (a - c) / np.where(den < 0, den, -1.0), -0.5, 0.5), 0.0)
    rows_a = lo + i + off
    centres = 0.5 * (starts + ends - 1)
    if len(rows_a) >= 5:  # a chunk dominated by a print or a gap must not pull the track away
        med = running_median(rows_a, 5)
        rows_a = np.where(np.abs(rows_a - med) > 2.0, med, rows_a)
    centre = float(np.median(rows_a))
    if recentre and (centre <= lo + 1 or centre >= hi - 2) and round(centre) != row:
        return track_line(resp, round(centre), window_px=window_px, chunk_px=chunk_px, recentre=False)
    return np.interp(np.arange(n_u), centres, rows_a)


def sample_along(resp: np.ndarray, v_px: np.ndarray) -> np.ndarray:
    """Max response within +-1 row of the track, per column."""
    n_v, n_u = resp.shape
    cols = np.arange(n_u)
    r = np.round(v_px).astype(int)
    out = np.zeros(n_u, np.float32)
    for d in (-1, 0, 1):
        rr = np.clip(r + d, 0, n_v - 1)
        out = np.maximum(out, resp[rr, cols])
    return out


def background_level(resp: np.ndarray, v_px: np.ndarray, lo: int, hi: int, *, keep_out_px: float) -> float:
    """Median line response in rows [lo, hi) farther than ``keep_out_px`` from the track."""
    rows = np.arange(lo, hi)[:, None]
    far = np.abs(rows - v_px[None, ::3]) > keep_out_px
    vals = resp[lo:hi, ::3][far]
    return float(np.median(vals)) if vals.size else 0.0


def detrend(p: np.ndarray, k: int) -> np.ndarray:
    """Profile minus its running mean over ``k`` samples (removes slow shading/print changes)."""
    k = max(3, k | 1)
    ker = np.ones(k) / k
    pad = k // 2
    mean = np.convolve(np.pad(p, pad, mode="reflect"), ker, mode="valid")
    return p - mean


def window_acfs(x: np.ndarray, win: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelations of windows of ``x``; returns (acfs (n, win), window starts)."""
    starts = np.arange(0, max(1, len(x) - win + 1), hop)
    if len(x) < win:
        return np.zeros((0, win)), starts[:0]
    segs = np.stack([x[s:s + win] for s in starts])
    segs = segs - segs.mean(axis=1, keepdims=True)
    f = np.fft.rfft(segs, n=2 * win, axis=1)
    ac = np.fft.irfft(f * np.conj(f), axis=1)[:, :win]
    ac /= np.maximum(ac[:, :1], 1e-9)
    # unbiased: each lag has fewer overlapping samples
    ac *= win / np.maximum(win - np.arange(win), 1)[None, :]
    return ac, starts


def first_strong_peak(acf: np.ndarray, lo: int, hi: int, *, rel: float = 0.6) -> tuple[float, float] | None:
    """The smallest-lag ACF peak in [lo, hi] within ``rel`` of the highest; (lag sub-px, height)."""
    hi = min(hi, len(acf) - 2)
    peaks = [i for i in range(max(lo, 1), hi + 1) if acf[i] > acf[i - 1] and acf[i] >= acf[i + 1]]
    if not peaks:
        return None
    best = max(acf[i] for i in peaks)
    if best <= 0:
        return None
    for i in peaks:
        if acf[i] >= rel * best:
            return _subpixel_peak(acf, i), float(acf[i])
    return None


def refine_with_harmonics(acf: np.ndarray, lag: float, *, max_k: int = 4) -> float:
    """Least-squares pitch from the ACF peaks near k * lag (k = 1..max_k)."""
    return float(refine_many(np.atleast_2d(acf), lag, max_k=max_k)[0])


def refine_many(acfs: np.ndarray, lag: float, *, max_k: int = 4) -> np.ndarray:
    """:func:`refine_with_harmonics` for each row of ``acfs`` (vectorised)."""
    n_rows, n = acfs.shape
    num = np.zeros(n_rows)
    den = np.zeros(n_rows)
    rows = np.arange(n_rows)
    for k in range(1, max_k + 1):
        c = round(k * lag)
        if c + 3 >= n:
            break
        lo = max(1, c - 2)
        i = lo + np.argmax(acfs[:, lo:c + 3], axis=1)
        a, b, cc = acfs[rows, i - 1], acfs[rows, i], acfs[rows, i + 1]
        ok = (b >= a) & (b >= cc) & (b > 0.05)
        d2 = a - 2 * b + cc
        off = np.where(d2 < 0, np.clip(0.5 * (a - cc) / np.where(d2 < 0, d2, -1.0), -0.5, 0.5), 0.0)
        num += np.where(ok, k * (i + off), 0.0)
        den += np.where(ok, k * k, 0.0)
    return np.where(den > 0, num / np.maximum(den, 1e-9), lag)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def fill_short_runs(mask: np.ndarray, max_len: int) -> np.ndarray:
    """Set to True the False runs no longer than ``max_len`` (needle holes between stitches)."""
    out = mask.copy()
    for s, e in runs(~mask):
        if e - s <= max_len and s > 0 and e < len(mask):
            out[s:e] = True
    return out



def pitch_scores(acfs: np.ndarray, lo: float, hi: float, *, max_k: int = 4,
                 max_lag_frac: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic-comb score of each candidate pitch in [lo, hi] px for each ACF row.

    For a pitch P the score is the mean ACF at k*P minus the mean at (k - 1/2)*P. The true
    pitch scores high; twice the pitch is penalised by the peak at its half (on a pixel grid the
    needle holes alternate in depth, so the ACF at 2P can exceed the one at P).
    Returns (candidates (m,), scores (n_rows, m)).
    """
    cands, taps = _comb_taps(acfs.shape[-1], round(lo, 3), round(hi, 3), max_k, max_lag_frac)
    a = np.atleast_2d(acfs)
    out = np.zeros((a.shape[0], len(cands)))
    # explicit gathers, not a matrix product: BLAS threads are slow on a busy shared CPU
    for i0, f, weight in taps:
        out += (a[:, i0] * (1 - f) + a[:, i0 + 1] * f) * weight
    return cands, out


@lru_cache(maxsize=64)
def _comb_taps(n: int, lo: float, hi: float, max_k: int, max_lag_frac: float):
    """Interpolation taps (index, fraction, signed weight per candidate) of the harmonic comb."""
    max_lag = max_lag_frac * n
    cands = np.arange(lo, hi + 1e-9, 0.1)
    kcount = np.maximum(np.floor(max_lag / cands), 1).clip(max=max_k)
    taps = []
    for k in range(1, max_k + 1):
        use = (k * cands <= max_lag).astype(float)
        if not use.any():
            break
        for pos, sign in ((k * cands, 1.0), ((k - 0.5) * cands, -1.0)):
            i0 = np.clip(np.floor(pos).astype(int), 0, n - 2)
            f = np.clip(pos - i0, 0.0, 1.0)
            taps.append((i0, f, sign * use / kcount))
    return cands, tuple(taps)


def pitch_from_acf(acf: np.ndarray, lo: float, hi: float, **kw) -> tuple[float, float] | None:
    """Best comb pitch (px, score) of one ACF in [lo, hi], or None when nothing is periodic."""
    cands, scores = pitch_scores(acf, lo, hi, **kw)
    j = int(np.argmax(scores[0]))
    if scores[0, j] <= 0:
        return None
    return float(cands[j]), float(scores[0, j])


def dips(p: np.ndarray, width_px: int) -> np.ndarray:
    """Narrow dips of a profile (needle holes between stitches), as a clipped relative depth.

    Only dips narrower than ``width_px`` come out, so slow changes of the thread's contrast along
    the seam (a print under it, a fold's shadow) do not mimic a stitch pitch.
    """
    k = max(3, width_px | 1)
    row = p.astype(np.float32).reshape(1, -1)
    closed = cv2.morphologyEx(row, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8), borderType=cv2.BORDER_REFLECT)
    depth = ((closed - row) / np.maximum(closed, 1e-3)).ravel()
    # a few deep dips (a print crossing, a fold) must not outweigh the many regular needle holes
    pos = depth[depth > 0.02]
    if pos.size >= 8:
        depth = np.minimum(depth, np.percentile(pos, 90))
    return depth


@dataclass(frozen=True)
class PitchSearch:
    """Pixel scales of the search for a stitch line (all in strip pixels)."""

    window_px: int  # how far the track may leave its candidate row
    chunk_px: int  # tracking chunk along the line
    dip_px: int  # widest needle hole
    acf_win_px: int  # window of the autocorrelation
    acf_hop_px: int  # step between windows
    fabric_off_px: int  # where the fabric beside the thread is sampled
    lag_lo_px: float  # shortest stitch
    lag_hi_px: float  # longest stitch


def window_pitches(x: np.ndarray, ps: PitchSearch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best comb pitch and its score in each ACF window of ``x``: (pitches, scores, acfs)."""
    win = min(ps.acf_win_px, len(x))
    acfs, _ = window_acfs(x, win, max(1, ps.acf_hop_px))
    if not len(acfs):
        return np.zeros(0), np.zeros(0), acfs
    cands, scores = pitch_scores(acfs, ps.lag_lo_px, ps.lag_hi_px, max_lag_frac=0.75)
    j = np.argmax(scores, axis=1)
    return cands[j], scores[np.arange(len(j)), j], acfs


def modal_pitch(pitches: np.ndarray, scores: np.ndarray, *, min_score: float = 0.15,
                tol: float = 0.06) -> tuple[float | None, float, np.ndarray]:
    """The pitch most windows agree on: (pitch, fraction of all windows agreeing, agreeing mask).

    Voting is robust where a print or a fold spoils some windows; a plain ACF average is not.
    """
    ok = scores >= min_score
    agree = np.zeros(len(pitches), bool)
    if not ok.any():
        return None, 0.0, agree
    p_ok, s_ok = pitches[ok], scores[ok]
    close = np.abs(p_ok[:, None] - p_ok[None, :]) <= tol * p_ok[:, None]
    support = (close * s_ok[None, :]).sum(axis=1)
    i = int(np.argmax(support))
    agree[np.flatnonzero(ok)[close[i]]] = True
    pitch = float(np.median(pitches[agree]))
    return pitch, float(agree.sum() / len(pitches)), agree


def thread_fraction(img: np.ndarray, v_px: np.ndarray, off_px: int) -> np.ndarray:
    """1 + how much of the thread's colour each column shows at the track (0 = fabric, 1 = thread).

    The colour at the track minus the fabric's a little to either side, projected on the median
    thread-minus-fabric colour: all channels add up, and a print under the seam cancels out.
    """
    n_v, n_u = img.shape[:2]
    cols = np.arange(n_u)
    v = np.clip(v_px, 0, n_v - 2)
    r0 = np.floor(v).astype(int)
    f = (v - r0)[:, None]
    on = img[r0, cols] * (1 - f) + img[r0 + 1, cols] * f
    above, below = np.clip(r0 - off_px, 0, n_v - 1), np.clip(r0 + off_px + 1, 0, n_v - 1)
    fab = 0.5 * (img[above, cols] + img[below, cols])
    fab = cv2.blur(np.ascontiguousarray(fab, np.float32).reshape(1, n_u, 3), (3, 1)).reshape(n_u, 3)
    d = on - fab
    dvec = np.median(d[::2], axis=0)
    # thread colour, then per column the share of the way from the local fabric to it: a print
    # under the seam changes the fabric's colour, not the share (locally normalised)
    thread = np.median(fab[::2], axis=0) + dvec
    span = thread[None, :] - fab
    floor = 0.3 * float(np.sqrt((dvec * dvec).sum()))
    den = np.maximum((span * span).sum(axis=1), floor * floor)
    return 1.0 + (d * span).sum(axis=1) / np.maximum(den, 1e-6)


def best_track(resp: np.ndarray, lo: int, hi: int, ps: PitchSearch, image: np.ndarray) -> Track | None:
    """Among line candidates in rows [lo, hi), the track that is most clearly a row of stitches.

    A stitch line is dashed: periodicity of its needle holes first (a printed stripe is
    continuous), then its strength. Periodicity = the fraction of windows agreeing on one pitch.
    """
    best, best_score = None, -np.inf
    band = resp[lo:hi]
    for row in candidate_rows(resp, lo, hi):
        v_px = lo + track_line(band, row - lo, window_px=ps.window_px, chunk_px=ps.chunk_px)
        prof = sample_along(resp, v_px)
        bg = background_level(resp, v_px, lo, hi, keep_out_px=1.5 * ps.window_px)
        frac = thread_fraction(image, v_px, ps.fabric_off_px)
        coarse = PitchSearch(**{**ps.__dict__, "acf_hop_px": ps.acf_win_px // 2})
        pitches, scores, _ = window_pitches(dips(frac, ps.dip_px), coarse)
        pitch, per, _ = modal_pitch(pitches, scores)
        score = max(per, 0.02) * float(np.median(prof))
        if score > best_score:
            best_score = score
            best = Track(v_px, prof, bg, per, pitch, frac)
    return best


def thread_present(track: Track, use: np.ndarray) -> np.ndarray:
    """Columns where the line response is clearly above the fabric's, towards the thread's level."""
    prof = track.profile
    thread = float(np.percentile(prof[use], 70)) if use.any() else float(np.percentile(prof, 70))
    thr = track.background + 0.35 * (thread - track.background)
    smooth = np.convolve(prof, np.ones(3) / 3, mode="same")
    return smooth > thr


def comb_at(acfs: np.ndarray, pitch: float, *, rel: float = 0.04) -> np.ndarray:
    """Per ACF row, the best comb score within +-``rel`` of ``pitch`` (px)."""
    _c, sc = pitch_scores(acfs, (1 - rel) * pitch, (1 + rel) * pitch, max_lag_frac=0.75)
    return sc.max(axis=1)


def support_at(acfs: np.ndarray, pitch: float, *, max_k: int = 4, rel: float = 0.04,
               max_lag_frac: float = 0.75) -> np.ndarray:
    """Per ACF row, the mean ACF height at the multiples k * ``pitch`` (best within +-``rel``).

    A needle-hole train of pitch P has peaks at every multiple of P: 2P and 3P are supported as
    much as P, but P/2 and P/3 only at their multiples that are also multiples of P.
    """
    a = np.atleast_2d(acfs)
    n = a.shape[1]
    ks = [k for k in range(1, max_k + 1) if k * pitch * (1 + rel) <= max_lag_frac * n - 1]
    if not ks:
        return np.full(a.shape[0], -1.0)
    tot = np.zeros(a.shape[0])
    for k in ks:
        c = k * pitch
        i0, i1 = max(1, int(np.floor(c * (1 - rel)))), int(np.ceil(c * (1 + rel))) + 1
        tot += a[:, i0:i1].max(axis=1)
    return tot / len(ks)


def fundamental(acfs: np.ndarray, pitch: float, lo: float, hi: float, *,
                strong: float = 0.75) -> tuple[float, float, float]:
    """The smallest harmonic of ``pitch`` (1/3, 1/2, 1, 2, 3 x) supported ``strong`` x the best.

    The comb of the vote rejects twice the pitch but not three times it (the minus taps of 3P
    sit on the half-pitch troughs of P), and a weak needle-hole train can let the vote pick a
    half. So every harmonic's :func:`support_at` is taken on the same windows: the true pitch
    and its multiples are supported alike, its fractions much less (half: typically 0.2-0.45 of
    it), and the smallest well-supported one is the fundamental.
    Returns (pitch px, its median support, best finer harmonic's support / its support).
    """
    cands = [f * pitch for f in (1 / 3, 1 / 2, 1.0, 2.0, 3.0) if lo * 0.97 <= f * pitch <= hi * 1.03]
    med = {c: float(np.median(support_at(acfs, c))) for c in cands}
    best = max(med.values())
    if best <= 0:
        return pitch, best, 1.0
    chosen = min(c for c in cands if med[c] >= strong * best)
    finer = [med[c] for c in cands if c < 0.9 * chosen]  # passed over: how close did they come?
    rival = max(finer) / med[chosen] if finer else 0.0
    return chosen, med[chosen], rival
