"""Typed values passed between vision stages (pure data, numpy arrays inside)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qc_station.results import Finding


@dataclass(frozen=True)
class MaskCrop:
    """The mask, rectified to the tray plane and de-rotated, at a known scale.

    ``image`` is BGR uint8. Pixel ``(col, row)`` is at mask-frame mm
    ``(origin_mm[0] + col * mm_per_px, origin_mm[1] + row * mm_per_px)``; the mask frame's
    origin is the top-left corner of the finished outline, x along the width. ``origin_mm`` is
    negative: the crop keeps a margin of tray around the mask. ``body`` is a bool array of the
    same shape, True on the mask body (ear loops excluded). ``width_mm`` / ``height_mm`` are the
    measured finished size, so the outline runs from (0, 0) to (width_mm, height_mm).
    """

    image: np.ndarray
    body: np.ndarray
    mm_per_px: float
    origin_mm: tuple[float, float]
    width_mm: float
    height_mm: float

    def to_px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Mask-frame mm -> crop pixel (col, row)."""
        return ((x_mm - self.origin_mm[0]) / self.mm_per_px, (y_mm - self.origin_mm[1]) / self.mm_per_px)

    def to_mm(self, col: float, row: float) -> tuple[float, float]:
        """Crop pixel (col, row) -> mask-frame mm."""
        return (self.origin_mm[0] + col * self.mm_per_px, self.origin_mm[1] + row * self.mm_per_px)


@dataclass(frozen=True)
class SeamResult:
    """What the seam tracker measured along the perimeter top-stitch."""

    found: bool
    distance_mm: float | None  # median distance of the stitch line from the edge
    stitch_length_mm: float | None  # median stitch length
    stitch_length_p90_mm: float | None
    coverage: float  # fraction of the perimeter where stitches were found
    skipped: tuple[Finding, ...] = ()  # gaps longer than spec.seam.max_gap_stitches
    open_seams: tuple[Finding, ...] = ()  # edge open / seam missing over open_seam_min_mm
    #: sides whose clearly dashed seam lies closer to the edge than elsewhere: mm the edge there
    #: may lie further out (the pipeline asks the outline to look again)
    edge_hints_mm: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DefectPrediction:
    """What the ONNX classifier found on one mask crop."""

    findings: tuple[Finding, ...]
    anomaly_score: float
    anomaly_threshold: float
    anomaly_box_mm: tuple[float, float, float, float] | None = None  # the most unusual cell
