"""Result types that cross module borders: reasons, measurements, findings, inspections.

Light on purpose (pydantic only, no OpenCV / numpy), so ``store``, ``api`` and
``certificates`` can import them cheaply. Vision code produces these; everything
downstream consumes them.

Coordinates: every box is in millimetres in the **mask frame**: origin at the top-left
corner of the finished mask outline, x along the mask width, y along its height
(downwards in the image once the mask is de-rotated). The tray frame (``*_tray_mm``) has
its origin where the calibration board's origin lay, x right, y down, in mm.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["pass", "fail", "unusable"]

#: Reasons a usable mask fails. Fixed vocabulary; documented in docs/reasons.md.
DefectCode = Literal[
    "width",
    "height",
    "pleats",
    "ear_loop",
    "stitch_length",
    "seam_position",
    "skipped_stitch",
    "open_seam",
    "stain",
    "hole",
    "anomaly",
]
#: Reasons a frame cannot be judged.
UnusableCode = Literal["no_mask", "blur", "exposure", "unreadable"]
ReasonCode = DefectCode | UnusableCode

DEFECT_CODES: tuple[str, ...] = DefectCode.__args__  # type: ignore[attr-defined]
UNUSABLE_CODES: tuple[str, ...] = UnusableCode.__args__  # type: ignore[attr-defined]
REASON_CODES: tuple[str, ...] = DEFECT_CODES + UNUSABLE_CODES

Severity = Literal["critical", "major", "minor"]

#: Plain words for operators (the screen shows these, not codes).
PLAIN_WORDS: dict[str, str] = {
    "width": "wrong width",
    "height": "wrong height",
    "pleats": "wrong number of pleats",
    "ear_loop": "ear loop missing or extra",
    "stitch_length": "stitches too long or too short",
    "seam_position": "seam too close to / too far from the edge",
    "skipped_stitch": "skipped stitches",
    "open_seam": "open seam",
    "stain": "stain",
    "hole": "hole",
    "anomaly": "looks unusual - check by hand",
    "no_mask": "no mask on the tray",
    "blur": "picture is blurred - hold still",
    "exposure": "picture too dark or too bright",
    "unreadable": "picture could not be read",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reason(_Frozen):
    """Why a mask failed or a frame is unusable, with the measured value and the limit."""

    code: ReasonCode
    message: str = Field(description="Human-readable sentence, e.g. 'width 172.4 mm < 175.0 mm'")
    severity: Severity = "major"
    value: float | None = Field(None, description="Measured value (unit in `unit`)")
    lower: float | None = Field(None, description="Lowest accepted value, if any")
    upper: float | None = Field(None, description="Highest accepted value, if any")
    unit: str | None = None
    box_mm: tuple[float, float, float, float] | None = Field(
        None, description="Where on the mask (x, y, w, h) in the mask frame, mm"
    )


class Finding(_Frozen):
    """One located appearance defect from the classifier or the seam tracker."""

    code: DefectCode
    probability: float = Field(ge=0.0, le=1.0)
    box_mm: tuple[float, float, float, float]
    source: Literal["classifier", "seam", "geometry", "anomaly"] = "classifier"


class Measurements(_Frozen):
    """What the geometry stages measured on a usable frame (mm, on the tray plane)."""

    width_mm: float
    height_mm: float
    angle_deg: float = Field(description="Mask rotation on the tray, degrees")
    center_tray_mm: tuple[float, float]
    pleats: int
    ear_loops: int
    ear_loops_left: int
    ear_loops_right: int
    stitch_length_mm: float | None = None
    stitch_length_p90_mm: float | None = None
    seam_distance_mm: float | None = Field(None, description="Median top-stitch to edge")
    seam_coverage: float | None = Field(
        None, description="Fraction of the perimeter where the seam was found"
    )
    skipped_stitches: int = 0
    open_seams: int = 0


class Quality(_Frozen):
    """Frame quality figures the gate decided on (kept for every frame)."""

    sharpness: float = Field(description="Higher is sharper: edge sharpness in 1/mm (see vision/quality.py)")
    mean_level: float = Field(description="Mean grey level 0-255")
    clipped_high: float = Field(description="Fraction of pixels >= 250")
    clipped_low: float = Field(description="Fraction of pixels <= 5")


class Provenance(_Frozen):
    """Which spec, calibration and model produced a result."""

    spec_name: str
    spec_version: int
    spec_id: str
    calibration_id: str
    model_sha256: str | None = None
    software_version: str


class InspectionResult(_Frozen):
    """The full outcome of inspecting one frame; what ``inspect --json`` prints."""

    image: str | None = None
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()
    measurements: Measurements | None = None
    defects: tuple[Finding, ...] = ()
    anomaly_score: float | None = None
    quality: Quality | None = None
    provenance: Provenance | None = None
    timing_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def reason_codes(self) -> list[str]:
        """The codes of the reasons, in order."""
        return [r.code for r in self.reasons]
