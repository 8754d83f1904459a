"""The frame gate: is this picture good enough to judge a mask? (``no_mask``, ``blur``, ``exposure``)

Thresholds (module constants, chosen for the operating envelope: ~0.2 mm/px, mild defocus
must pass, motion blur and badly exposed frames must not):

- **exposure** is judged on the whole frame (grey, every 4th pixel): too dark when its
  brightest 1 % are at grey :data:`DARK_P99_MAX` or less (an empty black tray is brighter than
  that; it is ``no_mask``), or more than :data:`MAX_CLIPPED_LOW` of the frame is crushed to
  <= 5, or a mask is found but its median colour is within :data:`MIN_MASK_CONTRAST` grey
  levels of the tray's (a contrasting mask, dimmed until it is not); too bright when more than
  :data:`MAX_CLIPPED_HIGH` of the frame is >= 250, or more than :data:`MAX_CLIPPED_MASK` of the
  mask area has all three channels >= 250 (a light fabric washed out hides its seams; one
  saturated channel is just a vivid colour).
- **no_mask**: no region of at least :data:`MIN_AREA_FRACTION` of the spec's nominal area.
- **blur**: the sharpness of the mask's own outline, measured on the profiles across its four
  sides in the rectified crop (:func:`edge_sharpness`): the steepest slope of each profile over
  the step across it (:data:`STEP_REACH_MM` either side, or across the whole profile when that
  is larger), median per side, worst side (motion blur smears one direction only), in 1/mm.
  The whole-profile step catches long motion smears: 16-28 px of motion left only a third of
  the edge's contrast within the reach, and the steepest point of that read 1.1-1.3/mm (bench
  seeds 9097 and 9120); over the whole step they read 0.31-0.43, and 504 frames without blur
  0.48 or more. A soft side whose opposite side is sharp is left out:
  that is a soft shadow on one side, not the camera. A sharp edge seen at ~0.2 mm/px with mild
  defocus scores ~0.6-1.2; a frame below :data:`MIN_SHARPNESS_PER_MM` (an edge blurred by a
  Gaussian wider than ~0.9 mm, where 2.5 mm stitches are no longer separable) is ``blur``.

The score does not improve with more blur: for an edge blurred by a Gaussian of width s the
score is 1 / (sqrt(2 pi) s), at most 1 / (sqrt(2 pi) s erf(reach / (sqrt(2) s))) where the
profile's ends differ less than the edge's step; both fall as s grows (tested on frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.vision.outline import EdgeProfiles, peak_slopes

DARK_P99_MAX = 18.0
#: A mask this close to the tray in grey levels (median colours) is in a too dark frame.
MIN_MASK_CONTRAST = 12.0
MAX_CLIPPED_LOW = 0.5
MAX_CLIPPED_HIGH = 0.25
MAX_CLIPPED_MASK = 0.6
MIN_AREA_FRACTION = 0.3
MIN_SHARPNESS_PER_MM = 0.45
#: The step height is taken this far either side of the steepest point, or between the profile's
#: ends where that is larger (a soft shadow on a light tray inflates the ends' step: good frames
#: still read 0.48/mm or more, see the module docstring).
STEP_REACH_MM = 1.5
#: A side's softness is its own (a shadow), not the frame's, when the opposite side is this sharp.
ONE_SIDED_SHARP = 0.8
_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


@dataclass(frozen=True)
class ExposureStats:
    mean_level: float
    clipped_high: float
    clipped_low: float
    p99: float


@dataclass(frozen=True)
class GateIssue:
    """One reason a frame is unusable, with the figure and the limit it broke."""

    code: str  # no_mask | blur | exposure
    message: str
    value: float
    lower: float | None = None
    upper: float | None = None
    unit: str | None = None


def exposure_stats(image_bgr: np.ndarray) -> ExposureStats:
    """Grey-level statistics of the frame (subsampled 4x: these are global figures)."""
    small = image_bgr[::4, ::4]
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    n = grey.size
    hist = np.bincount(grey.ravel(), minlength=256)
    cum = np.cumsum(hist)
    p99 = float(np.searchsorted(cum, 0.99 * n))
    return ExposureStats(
        mean_level=float(grey.mean()),
        clipped_high=float(hist[250:].sum() / n),
        clipped_low=float(hist[:6].sum() / n),
        p99=p99,
    )


def exposure_issue(stats: ExposureStats, clipped_on_mask: float | None = None,
                   mask_contrast: float | None = None) -> GateIssue | None:
    """``exposure`` when the frame is too dark or too bright (see the module docstring)."""
    if stats.p99 <= DARK_P99_MAX:
        return GateIssue("exposure", f"too dark: brightest 1% at grey {stats.p99:.0f} <= {DARK_P99_MAX:.0f}",
                         stats.p99, lower=DARK_P99_MAX, unit="grey level")
    if stats.clipped_low > MAX_CLIPPED_LOW:
        return GateIssue("exposure", f"too dark: {stats.clipped_low:.0%} of the frame is black",
                         stats.clipped_low, upper=MAX_CLIPPED_LOW, unit="fraction")
    if stats.clipped_high > MAX_CLIPPED_HIGH:
        return GateIssue("exposure", f"too bright: {stats.clipped_high:.0%} of the frame is saturated",
                         stats.clipped_high, upper=MAX_CLIPPED_HIGH, unit="fraction")
    if mask_contrast is not None and mask_contrast < MIN_MASK_CONTRAST:
        return GateIssue("exposure", f"too dark: the mask differs from the tray by {mask_contrast:.0f} grey "
                         f"levels only (< {MIN_MASK_CONTRAST:.0f})", mask_contrast, lower=MIN_MASK_CONTRAST,
                         unit="grey levels")
    if clipped_on_mask is not None and clipped_on_mask > MAX_CLIPPED_MASK:
        return GateIssue("exposure", f"too bright: {clipped_on_mask:.0%} of the mask is saturated",
                         clipped_on_mask, upper=MAX_CLIPPED_MASK, unit="fraction")
    return None


def no_mask_issue(area_mm2: float, nominal_area_mm2: float) -> GateIssue | None:
    """``no_mask`` when the largest foreground region is far smaller than a mask."""
    need = MIN_AREA_FRACTION * nominal_area_mm2
    if area_mm2 < need:
        return GateIssue("no_mask", f"no mask found (largest object {area_mm2:.0f} mm2 < {need:.0f} mm2)",
                         area_mm2, lower=need, unit="mm2")
    return None


def edge_sharpness(profiles: EdgeProfiles, mm_per_px: float) -> float:
    """Outline sharpness in 1/mm (higher is sharper): worst side's median slope/step.

    A side counts only if the side opposite it is soft too (under :data:`ONE_SIDED_SHARP`), or
    has no profile: motion and defocus soften both sides of an axis, a soft shadow merging into
    the fabric only the side away from the light (a sharp good mask on a light tray was
    ``blur`` at 0.53/mm on its bottom side with 1.23/mm on its top, bench seed 9096).
    """
    per_side = {}
    for side, prof in profiles.profiles.items():
        # the step is the whole profile's where that is larger: a long motion smear leaves only
        # part of the edge's contrast within the reach, and the steepest point of that looks sharp
        slope, step = peak_slopes(prof, round(STEP_REACH_MM / mm_per_px))
        ok = step > 1e-3
        if ok.sum() >= 5:
            per_side[side] = float(np.median(slope[ok] / step[ok])) / mm_per_px
    if not per_side:
        return 0.0
    counted = [v for side, v in per_side.items() if per_side.get(_OPPOSITE[side], 0.0) < ONE_SIDED_SHARP]
    return min(counted) if counted else min(per_side.values())


def blur_issue(sharpness_per_mm: float) -> GateIssue | None:
    """``blur`` when the outline is softer than :data:`MIN_SHARPNESS_PER_MM`."""
    if sharpness_per_mm < MIN_SHARPNESS_PER_MM:
        return GateIssue("blur", f"blurred: edge sharpness {sharpness_per_mm:.2f}/mm < "
                         f"{MIN_SHARPNESS_PER_MM:.2f}/mm", sharpness_per_mm,
                         lower=MIN_SHARPNESS_PER_MM, unit="1/mm")
    return None
