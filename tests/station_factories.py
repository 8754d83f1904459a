"""Builders of InspectionResult objects and images for the store / API / station tests.

These are hand-made results (not a pipeline): they test storage and serving, not vision.
"""

from __future__ import annotations

import numpy as np

from qc_station.results import InspectionResult, Measurements, Provenance, Reason

PROVENANCE = Provenance(
    spec_name="resilience-pleated", spec_version=1, spec_id="resilience-pleated@1:test",
    calibration_id="cal-000000000000", model_sha256="ab" * 32, software_version="test",
)


def measurements(width_mm: float = 180.0, height_mm: float = 95.0) -> Measurements:
    return Measurements(
        width_mm=width_mm, height_mm=height_mm, angle_deg=2.0, center_tray_mm=(100.0, 80.0), pleats=3,
        ear_loops=2, ear_loops_left=1, ear_loops_right=1, stitch_length_mm=2.5,
    )


def result(verdict: str = "pass", *codes: str, width_mm: float = 180.0) -> InspectionResult:
    """A result with the given verdict and reason codes (unusable ones have no measurements)."""
    reasons = tuple(
        Reason(code=c, message=f"{c} out of spec", value=1.0, lower=0.0, upper=0.5, unit="mm") for c in codes
    )
    return InspectionResult(
        image="frame.png", verdict=verdict, reasons=reasons,
        measurements=None if verdict == "unusable" else measurements(width_mm),
        anomaly_score=0.1, provenance=PROVENANCE, timing_ms={"total": 120.0, "segment": 30.0},
    )


def image(width: int = 480, height: int = 270, seed: int = 0) -> np.ndarray:
    """A textured BGR image (so JPEG sizes are realistic)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(img, np.ones((8, 8, 1), dtype=np.uint8)))
