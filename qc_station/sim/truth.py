"""Exact ground truth of a rendered scene, from how it was drawn (never from ``vision/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Defect codes the simulator can render (same vocabulary as ``qc_station.results``).
SIM_DEFECTS = (
    "width",
    "height",
    "pleats",
    "ear_loop",
    "stitch_length",
    "skipped_stitch",
    "open_seam",
    "stain",
    "hole",
)
#: Unusable cases the simulator can render.
SIM_UNUSABLE = ("no_mask", "blur", "exposure")


@dataclass(frozen=True)
class DefectTruth:
    """One rendered defect: its code and where it is, (x, y, w, h) mm in the mask frame."""

    code: str
    box_mm: tuple[float, float, float, float]
    size_mm: float = 0.0  # e.g. stain / hole diameter, gap length


@dataclass(frozen=True)
class MaskTruth:
    """What was drawn for one mask (mm on the tray plane)."""

    width_mm: float
    height_mm: float
    center_tray_mm: tuple[float, float]
    angle_deg: float
    pleats: int
    ear_loops_left: int
    ear_loops_right: int
    stitch_length_mm: float
    seam_distance_mm: float
    defects: tuple[DefectTruth, ...] = ()

    @property
    def ear_loops(self) -> int:
        return self.ear_loops_left + self.ear_loops_right

    @property
    def defect_codes(self) -> tuple[str, ...]:
        return tuple(sorted({d.code for d in self.defects}))


@dataclass(frozen=True)
class SceneTruth:
    """Truth of one rendered frame: the mask (if any), and why the frame is unusable (if so)."""

    mask: MaskTruth | None
    unusable: tuple[str, ...] = ()  # subset of SIM_UNUSABLE
    mm_per_px_center: float = 0.0
    params: dict = field(default_factory=dict, compare=False)  # renderer knobs, for debugging

    def expected_verdict(self, spec) -> str:
        """The verdict a perfect inspector gives for this scene under ``spec``."""
        if self.unusable or self.mask is None:
            return "unusable"
        return "fail" if self.expected_codes(spec) else "pass"

    def expected_codes(self, spec) -> tuple[str, ...]:
        """Defect codes a perfect inspector reports under ``spec`` (sorted)."""
        m = self.mask
        if m is None:
            return ()
        codes = {d.code for d in m.defects} - {"width", "height", "pleats", "ear_loop",
                                              "stitch_length"}
        if not spec.dimensions.width_mm.contains(m.width_mm):
            codes.add("width")
        if not spec.dimensions.height_mm.contains(m.height_mm):
            codes.add("height")
        if m.pleats != spec.construction.pleats:
            codes.add("pleats")
        per_side = spec.construction.ear_loops_per_side
        if m.ear_loops_left != per_side or m.ear_loops_right != per_side:
            codes.add("ear_loop")
        if not spec.seam.stitch_length_mm.contains(m.stitch_length_mm):
            codes.add("stitch_length")
        return tuple(sorted(codes))


@dataclass(frozen=True)
class BoardViewTruth:
    """Truth of one calibration-board view: the board pose and where its corners project.

    ``rvec`` / ``tvec_mm``: board -> camera (a board point ``B`` has camera coordinates
    ``R B + t``), OpenCV convention, mm. ``corners_px``: every chessboard (inner) corner in the
    board's own order (ChArUco: ``board.getChessboardCorners()``, index = corner id), projected
    with the camera's distortion; ``in_view``: whether each lies inside the image.
    """

    board: str
    rvec: tuple[float, float, float]
    tvec_mm: tuple[float, float, float]
    corners_px: tuple[tuple[float, float], ...] = ()
    in_view: tuple[bool, ...] = ()

    @property
    def visible_fraction(self) -> float:
        return sum(self.in_view) / len(self.in_view) if self.in_view else 0.0
