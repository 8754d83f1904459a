"""Camera intrinsics + lens distortion from many views of the board, with bad views rejected.

The fit is OpenCV's ``calibrateCamera`` (Zhang's method + Levenberg-Marquardt). Views are
rejected before the fit when the board cannot be used (see :func:`detect_board`) and after a
first fit when their own reprojection error stands out (a moved board, motion blur, a wrong
corner): such a view is dropped and the rest refitted, so one bad photo cannot bend the lens model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.calibration.boards import BoardDetection
from qc_station.errors import CalibrationError

MIN_VIEWS = 6
MAX_RMS_PX = 1.0
#: A view is an outlier when its RMS exceeds both this factor times the median and the floor below.
OUTLIER_FACTOR = 3.0
OUTLIER_FLOOR_PX = 0.5


@dataclass(frozen=True)
class RejectedView:
    """A view not used, and why (in words an operator can act on)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Intrinsics:
    """The fitted camera: ``K`` 3x3, ``dist`` (k1, k2, p1, p2, k3), errors and the views behind it."""

    K: np.ndarray
    dist: np.ndarray
    image_size: tuple[int, int]
    rms_px: float
    views_used: tuple[str, ...]
    per_view_rms_px: tuple[float, ...]
    rejected: tuple[RejectedView, ...]
    rvecs: tuple[np.ndarray, ...]
    tvecs: tuple[np.ndarray, ...]


def calibrate_intrinsics(
    views: Sequence[tuple[str, BoardDetection]],
    *,
    min_views: int = MIN_VIEWS,
    max_rms_px: float = MAX_RMS_PX,
    fix_k3: bool = False,
    outlier_factor: float = OUTLIER_FACTOR,
    outlier_floor_px: float = OUTLIER_FLOOR_PX,
) -> Intrinsics:
    """Fit intrinsics from ``(name, detection)`` pairs; :class:`CalibrationError` if it cannot be trusted.

    Views whose detection failed are listed as rejected with the detector's reason. After a first
    fit, views with a per-view RMS above ``max(outlier_factor * median, outlier_floor_px)`` are
    rejected one at a time (worst first) and the rest refitted. The result is refused when fewer
    than ``min_views`` views remain or the final RMS exceeds ``max_rms_px``; the message lists every
    rejected view with its reason. ``fix_k3`` keeps k3 = 0 (fewer, wide-angle-free views).
    """
    if not views:
        raise CalibrationError("no calibration images given")
    sizes = {det.image_size for _, det in views}
    if len(sizes) > 1:
        listing = ", ".join(f"{name}: {det.image_size[0]}x{det.image_size[1]}" for name, det in views)
        raise CalibrationError(f"calibration images differ in size ({listing}); use one camera mode")
    image_size = next(iter(sizes))
    rejected = [RejectedView(name, det.reason) for name, det in views if not det.ok]
    usable = [(name, det) for name, det in views if det.ok]

    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    while True:
        if len(usable) < min_views:
            raise CalibrationError(_refusal(
                f"only {len(usable)} usable view(s) of {len(views)}; need at least {min_views}", rejected))
        fit = _fit(usable, image_size, flags)
        errors = np.asarray(fit[5])
        limit = max(outlier_factor * float(np.median(errors)), outlier_floor_px)
        worst = int(np.argmax(errors))
        if errors[worst] <= limit:
            break
        name = usable[worst][0]
        rejected.append(RejectedView(
            name, f"reprojection error {errors[worst]:.2f} px is an outlier (limit {limit:.2f} px "
                  f"= {outlier_factor:g} x median); board moved or corners misread"))
        del usable[worst]

    rms, K, dist, rvecs, tvecs, per_view = fit
    if not np.isfinite(rms) or rms > max_rms_px:
        raise CalibrationError(_refusal(
            f"RMS reprojection error {rms:.3f} px is above the limit {max_rms_px:g} px", rejected,
            used=[(n, e) for (n, _), e in zip(usable, per_view, strict=True)]))
    return Intrinsics(
        K=K, dist=dist.ravel()[:5].copy(), image_size=image_size, rms_px=float(rms),
        views_used=tuple(n for n, _ in usable), per_view_rms_px=tuple(float(e) for e in per_view),
        rejected=tuple(rejected), rvecs=tuple(rvecs), tvecs=tuple(tvecs),
    )


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run OpenCV single-threaded inside: its threaded reductions make the fits differ in the last
    bits from run to run, and Levenberg-Marquardt can turn that into 1e-6 differences, which would
    change the calibration's content-hash id for the same photos. The fits take milliseconds."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _fit(usable: list[tuple[str, BoardDetection]], image_size: tuple[int, int], flags: int):
    obj = [det.object_points_mm.reshape(-1, 1, 3).astype(np.float32) for _, det in usable]
    img = [det.image_points_px.reshape(-1, 1, 2).astype(np.float32) for _, det in usable]
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    try:
        with single_threaded():
            rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(
                obj, img, image_size, None, None, flags=flags, criteria=criteria)
    except cv2.error as exc:
        raise CalibrationError(f"the calibration fit failed ({exc.err}); take more varied views") from None
    per_view = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(o, r, t, K, dist)
        per_view.append(float(np.sqrt(np.mean(np.sum((proj - i).reshape(-1, 2) ** 2, axis=1)))))
    return float(rms), K, dist, rvecs, tvecs, per_view


def _refusal(headline: str, rejected: list[RejectedView], used: list[tuple[str, float]] | None = None) -> str:
    lines = [f"calibration refused: {headline}."]
    if used:
        lines.append("per-view RMS of the views used:")
        lines += [f"  {name}: {err:.3f} px" for name, err in used]
    if rejected:
        lines.append("rejected views:")
        lines += [f"  {r.name}: {r.reason}" for r in rejected]
    lines.append("Take more views: the whole board sharp and well lit, tilted up to ~40 degrees in "
                 "different directions, covering the corners of the image too.")
    return "\n".join(lines)
