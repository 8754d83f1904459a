"""decide(): verdicts and reasons from measurements, seam, classifier and the frame gate."""

from __future__ import annotations

import pytest

from qc_station.decide import decide
from qc_station.results import Finding, Measurements, Reason
from qc_station.spec import load_spec
from qc_station.vision.types import DefectPrediction, SeamResult

SPEC = load_spec()


def _m(**kw) -> Measurements:
    base = dict(width_mm=180.0, height_mm=95.0, angle_deg=0.0, center_tray_mm=(100.0, 80.0), pleats=3,
                ear_loops=2, ear_loops_left=1, ear_loops_right=1, stitch_length_mm=2.5)
    base.update(kw)
    return Measurements(**base)


def _seam(**kw) -> SeamResult:
    base = dict(found=True, distance_mm=5.0, stitch_length_mm=2.5, stitch_length_p90_mm=2.6, coverage=1.0)
    base.update(kw)
    return SeamResult(**base)


def test_good_mask_passes_without_reasons():
    assert decide(_m(), _seam(), None, [], SPEC) == ("pass", ())


@pytest.mark.parametrize(("field", "value", "code", "lower", "upper"), [
    ("width_mm", 172.4, "width", 175.0, 185.0),
    ("width_mm", 186.0, "width", 175.0, 185.0),
    ("height_mm", 89.0, "height", 90.0, 100.0),
    ("pleats", 2, "pleats", 3, 3),
])
def test_geometry_reasons_carry_value_limits_and_severity(field, value, code, lower, upper):
    verdict, reasons = decide(_m(**{field: value}), _seam(), None, [], SPEC)
    assert verdict == "fail"
    (r,) = reasons
    assert (r.code, r.value, r.lower, r.upper) == (code, value, lower, upper)
    assert r.severity == getattr(SPEC.severity, code)
    assert str(value) in r.message or f"{value:.1f}" in r.message


def test_limits_are_inclusive():
    assert decide(_m(width_mm=175.0, height_mm=100.0), _seam(), None, [], SPEC)[0] == "pass"


def test_ear_loops_one_reason_per_wrong_side_with_a_box_beside_it():
    verdict, reasons = decide(_m(ear_loops_left=0, ear_loops=1), _seam(), None, [], SPEC)
    assert verdict == "fail"
    (r,) = reasons
    assert r.code == "ear_loop" and r.value == 0 and r.lower == r.upper == 1
    assert r.severity == "critical"
    assert r.box_mm[0] < 0  # left of the mask
    _, both = decide(_m(ear_loops_left=0, ear_loops_right=2, ear_loops=2), _seam(), None, [], SPEC)
    assert [x.code for x in both] == ["ear_loop", "ear_loop"]
    assert both[1].box_mm[0] >= 180.0 and "extra" in both[1].message


def test_seam_reasons():
    gap = Finding(code="skipped_stitch", probability=1.0, box_mm=(40.0, 3.0, 9.0, 2.0), source="seam")
    opened = Finding(code="open_seam", probability=1.0, box_mm=(100.0, 0.0, 14.0, 4.0), source="seam")
    seam = _seam(stitch_length_mm=3.4, distance_mm=11.0, skipped=(gap,), open_seams=(opened,))
    verdict, reasons = decide(_m(), seam, None, [], SPEC)
    assert verdict == "fail"
    by = {r.code: r for r in reasons}
    assert set(by) == {"stitch_length", "seam_position", "skipped_stitch", "open_seam"}
    assert by["stitch_length"].value == 3.4 and by["stitch_length"].upper == 3.0
    assert by["skipped_stitch"].value == 9.0 and by["skipped_stitch"].upper == pytest.approx(5.0)
    assert by["skipped_stitch"].box_mm == gap.box_mm
    assert by["open_seam"].value == 14.0
    lost_seam = _seam(found=False, stitch_length_mm=None, distance_mm=None, coverage=0.0)
    lost = decide(_m(), lost_seam, None, [], SPEC)
    assert lost[0] == "fail" and lost[1][0].code == "open_seam"


def test_classifier_findings_thresholds_and_anomaly():
    stain = Finding(code="stain", probability=0.9, box_mm=(50.0, 40.0, 6.0, 5.0))
    tiny = Finding(code="stain", probability=0.9, box_mm=(80.0, 40.0, 2.0, 2.0))  # < 3 mm: not a defect
    unsure = Finding(code="hole", probability=0.3, box_mm=(20.0, 40.0, 3.0, 3.0))
    pred = DefectPrediction(findings=(stain, tiny, unsure), anomaly_score=0.2, anomaly_threshold=0.5)
    verdict, reasons = decide(_m(), _seam(), pred, [], SPEC)
    assert verdict == "fail" and [r.code for r in reasons] == ["stain"]
    assert reasons[0].value == 6.0 and reasons[0].upper == 3.0 and reasons[0].box_mm == stain.box_mm
    odd = DefectPrediction(findings=(), anomaly_score=0.8, anomaly_threshold=0.5)
    verdict, reasons = decide(_m(), _seam(), odd, [], SPEC)
    assert verdict == "fail" and reasons[0].code == "anomaly" and reasons[0].upper == 0.5


def test_unusable_takes_precedence_and_keeps_only_gate_reasons():
    gate = [Reason(code="blur", message="blurred", value=0.3, lower=0.55)]
    verdict, reasons = decide(_m(width_mm=150.0), _seam(), None, gate, SPEC)
    assert verdict == "unusable" and reasons == tuple(gate)
    assert decide(None, None, None, [], SPEC)[0] == "unusable"


def test_no_seam_tracker_or_model_means_those_checks_are_not_made():
    assert decide(_m(stitch_length_mm=None), None, None, [], SPEC) == ("pass", ())


def test_unmeasurable_stitch_length_fails_for_a_check_by_hand():
    spec = load_spec()
    verdict, reasons = decide(_m(), _seam(stitch_length_mm=None, stitch_length_p90_mm=None), None, [], spec)
    assert verdict == "fail" and [r.code for r in reasons] == ["stitch_length"]
    assert "could not be measured" in reasons[0].message and reasons[0].value is None
    assert (reasons[0].lower, reasons[0].upper) == (2.0, 3.0)


def test_geometry_findings_are_judged_without_a_model():
    spec = load_spec()
    hole = Finding(code="hole", probability=0.8, box_mm=(40.0, 30.0, 3.0, 3.0), source="geometry")
    verdict, reasons = decide(_m(), _seam(), None, [], spec, findings=[hole])
    assert verdict == "fail" and reasons[0].code == "hole" and reasons[0].box_mm == hole.box_mm
    assert reasons[0].severity == "critical"
    # the spec's minimum hole size applies to geometry findings as to the classifier's
    small = spec.model_copy(update={"appearance": spec.appearance.model_copy(update={"hole_min_mm": 5.0})})
    assert decide(_m(), _seam(), None, [], small, findings=[hole])[0] == "pass"
