"""The verdict: measurements + seam + classifier findings + frame gate + spec -> verdict, reasons.

Pure and light (no OpenCV): every reason carries the measured value, the spec limit(s) and the
severity the spec assigns to its code. Codes come from the fixed vocabulary of
:mod:`qc_station.results` (documented in ``docs/reasons.md``).

Order of precedence: a frame with any gate reason (``unreadable``, ``exposure``, ``no_mask``,
``blur``) is ``unusable`` and carries only those; otherwise any defect reason makes it ``fail``;
otherwise ``pass``.
"""

from __future__ import annotations

from collections.abc import Sequence

from qc_station.results import Finding, Measurements, Reason, Verdict
from qc_station.spec import MaskSpec, Tolerance
from qc_station.vision.types import DefectPrediction, SeamResult

#: Ear-loop reasons are boxed over this band beside the side edge (mm).
LOOP_BAND_MM = 30.0


def _tol_reason(code: str, label: str, value: float | None, tol: Tolerance, spec: MaskSpec, *,
                unit: str = "mm", box=None, fmt: str = ".1f") -> Reason | None:
    if value is None or tol.contains(value):
        return None
    if value < tol.lower:
        msg = f"{label} {value:{fmt}} {unit} < {tol.lower:{fmt}} {unit}"
    else:
        msg = f"{label} {value:{fmt}} {unit} > {tol.upper:{fmt}} {unit}"
    return Reason(code=code, message=msg, severity=spec.severity_of(code), value=round(float(value), 3),
                  lower=tol.lower, upper=tol.upper, unit=unit, box_mm=box)


def _finding_size(f: Finding) -> float:
    return float(max(f.box_mm[2], f.box_mm[3]))


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float],
              pad: float = 3.0) -> bool:
    return (a[0] - pad < b[0] + b[2] and b[0] - pad < a[0] + a[2]
            and a[1] - pad < b[1] + b[3] and b[1] - pad < a[1] + a[3])


def geometry_reasons(m: Measurements, spec: MaskSpec) -> list[Reason]:
    """width, height, pleats, ear_loop."""
    out: list[Reason] = []
    whole = (0.0, 0.0, round(m.width_mm, 2), round(m.height_mm, 2))
    for r in (
        _tol_reason("width", "width", m.width_mm, spec.dimensions.width_mm, spec, box=whole),
        _tol_reason("height", "height", m.height_mm, spec.dimensions.height_mm, spec, box=whole),
    ):
        if r:
            out.append(r)
    want = spec.construction.pleats
    if m.pleats != want:
        out.append(Reason(code="pleats", message=f"{m.pleats} pleats, expected {want}",
                          severity=spec.severity_of("pleats"), value=m.pleats, lower=want, upper=want,
                          unit="pleats", box_mm=whole))
    per_side = 0 if spec.construction.ties else spec.construction.ear_loops_per_side
    for side, n, box in (
        ("left", m.ear_loops_left, (-LOOP_BAND_MM, 0.0, LOOP_BAND_MM, whole[3])),
        ("right", m.ear_loops_right, (whole[2], 0.0, LOOP_BAND_MM, whole[3])),
    ):
        if n != per_side:
            what = "missing or detached" if n < per_side else "extra"
            out.append(Reason(code="ear_loop", message=f"{side} side: {n} ear loop(s), expected "
                              f"{per_side} ({what})", severity=spec.severity_of("ear_loop"), value=n,
                              lower=per_side, upper=per_side, unit="loops", box_mm=box))
    return out


def seam_reasons(seam: SeamResult | None, spec: MaskSpec, width_mm: float, height_mm: float) -> list[Reason]:
    """stitch_length, seam_position, skipped_stitch, open_seam from the seam tracker."""
    if seam is None:
        return []
    out: list[Reason] = []
    if not seam.found:
        return [Reason(code="open_seam", message="no perimeter top-stitch found",
                       severity=spec.severity_of("open_seam"), value=0.0, lower=1.0, unit="coverage",
                       box_mm=(0.0, 0.0, round(width_mm, 2), round(height_mm, 2)))]
    sl = spec.seam.stitch_length_mm
    if seam.stitch_length_mm is None:
        # The tracker found the seam but no confident stitch pitch (e.g. dark thread, shadowed
        # needle holes): an unmeasured length must not pass unseen. Check the mask by hand.
        out.append(Reason(code="stitch_length", message="stitch length could not be measured "
                          "(needle holes unclear): check by hand", severity=spec.severity_of("stitch_length"),
                          lower=sl.lower, upper=sl.upper, unit="mm"))
    r = _tol_reason("stitch_length", "median stitch length", seam.stitch_length_mm, sl, spec, fmt=".2f")
    if r:
        out.append(r)
    r = _tol_reason("seam_position", "top-stitch to edge", seam.distance_mm, spec.seam.distance_mm, spec)
    if r:
        out.append(r)
    max_gap = spec.seam.max_gap_stitches * sl.nominal
    for f in seam.skipped:
        gap = _finding_size(f)
        out.append(Reason(code="skipped_stitch", message=f"gap of {gap:.1f} mm in the stitch line "
                          f"(> {max_gap:.1f} mm)", severity=spec.severity_of("skipped_stitch"),
                          value=round(gap, 2), upper=max_gap, unit="mm", box_mm=f.box_mm))
    for f in seam.open_seams:
        length = _finding_size(f)
        out.append(Reason(code="open_seam", message=f"open seam over {length:.1f} mm "
                          f"(>= {spec.seam.open_seam_min_mm:.1f} mm)", severity=spec.severity_of("open_seam"),
                          value=round(length, 2), upper=spec.seam.open_seam_min_mm, unit="mm",
                          box_mm=f.box_mm))
    return out


def classifier_reasons(pred: DefectPrediction | None, spec: MaskSpec,
                       already: Sequence[Reason] = (), extra: Sequence[Finding] = ()) -> list[Reason]:
    """stain, hole (and seam codes the seam tracker did not already report), anomaly.

    ``extra`` holds findings proven by geometry (the hole check); they follow the same rules.
    """
    app = spec.appearance
    out: list[Reason] = []
    for f in (*extra, *(pred.findings if pred is not None else ())):
        if f.probability < app.defect_probability:
            continue
        size = _finding_size(f)
        if f.code == "stain" and size < app.stain_min_mm:
            continue
        if f.code == "hole" and size <= app.hole_min_mm:
            continue
        if any(r.code == f.code and r.box_mm and _overlaps(r.box_mm, f.box_mm) for r in [*already, *out]):
            continue
        limit = app.stain_min_mm if f.code == "stain" else app.hole_min_mm if f.code == "hole" else None
        out.append(Reason(code=f.code, message=f"{f.code.replace('_', ' ')} about {size:.1f} mm "
                          f"(p={f.probability:.2f})", severity=spec.severity_of(f.code), value=round(size, 2),
                          upper=limit, unit="mm", box_mm=f.box_mm))
    if pred is None:
        return out
    threshold = app.anomaly_threshold if app.anomaly_threshold is not None else pred.anomaly_threshold
    if pred.anomaly_score > threshold:
        out.append(Reason(code="anomaly", message=f"anomaly score {pred.anomaly_score:.2f} > "
                          f"{threshold:.2f}", severity=spec.severity_of("anomaly"),
                          value=round(float(pred.anomaly_score), 3), upper=threshold, unit="score",
                          box_mm=pred.anomaly_box_mm))
    return out


def plugin_failure(name: str, checks: str, exc: BaseException, spec: MaskSpec) -> Reason:
    """The reason for a plug-in (seam tracker, classifier) that raised on this frame.

    Code ``anomaly`` ("check by hand"): the mask fails rather than passing unchecked, and it is
    not ``unusable`` (the same frame would fail the same way: a line would re-shoot it forever).
    """
    what = f"{type(exc).__name__}: {exc}"[:160]
    return Reason(code="anomaly", message=f"{name} failed ({what}); {checks} not checked: check by hand",
                  severity=spec.severity_of("anomaly"))


def decide(
    measurements: Measurements | None,
    seam: SeamResult | None,
    defects: DefectPrediction | None,
    quality: Sequence[Reason],
    spec: MaskSpec,
    *,
    failed: Sequence[Reason] = (),
    findings: Sequence[Finding] = (),
) -> tuple[Verdict, tuple[Reason, ...]]:
    """The verdict and its reasons.

    ``quality`` holds the frame gate's reasons (codes ``unreadable``, ``exposure``, ``no_mask``,
    ``blur``); any of them makes the frame ``unusable``. ``seam`` / ``defects`` may be None
    (tracker or classifier not run): their checks are then simply not made. ``failed`` holds
    :func:`plugin_failure` reasons of plug-ins that raised: they make a usable frame ``fail``.
    ``findings`` are defects proven by geometry (holes), judged like the classifier's.

    >>> decide(None, None, None, [], load_spec())[0]  # doctest: +SKIP
    'unusable'
    """
    if quality:
        return "unusable", tuple(quality)
    if measurements is None:
        return "unusable", (Reason(code="no_mask", message="no mask measured", severity="major"),)
    reasons = geometry_reasons(measurements, spec)
    reasons += seam_reasons(seam, spec, measurements.width_mm, measurements.height_mm)
    reasons += classifier_reasons(defects, spec, reasons, findings)
    reasons += list(failed)
    return ("fail" if reasons else "pass"), tuple(reasons)
