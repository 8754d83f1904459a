"""The pipeline on independent images (tests/independent: rational + thin-prism camera, mesh-rendered
masks, own prints and trays), calibrated by the project's own calibration from rendered ChArUco views.

Tolerances are the issue's: width/height within 0.5 mm, pleats and ear loops exact, verdict right.
Known weaknesses are strict xfails carrying the measured failure: they flip to failures once fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.independent.bench import make_station
from tests.independent.scene import render

STATION_SEED = 901

pytestmark = pytest.mark.slow  # ~30 s of CPU: 8 board photos, one calibration, 8 rendered masks


@pytest.fixture(scope="module")
def station():
    import cv2

    cv2.setNumThreads(1)
    st = make_station(STATION_SEED, views=8)
    cam, cal = st.camera, st.calibration
    K = np.asarray(cal.camera_matrix)
    # the calibration itself must hold on this foreign lens before anything else is judged
    assert cal.rms_px < 0.3
    assert abs(K[0, 0] / cam.K[0, 0] - 1) < 0.005 and abs(K[1, 1] / cam.K[1, 1] - 1) < 0.005
    return st


def _inspect(st, case_seed: int, kind: str | None):
    case = render(st.camera, np.random.default_rng([case_seed, 4711]), kind)
    return case.truth, st.inspector.inspect(case.image)


def _check_geometry(truth, res):
    m = res.measurements
    assert m is not None, f"not measured: {res.verdict} {res.reason_codes}"
    assert abs(m.width_mm - truth.width_mm) <= 0.5, (m.width_mm, truth.width_mm)
    assert abs(m.height_mm - truth.height_mm) <= 0.5, (m.height_mm, truth.height_mm)
    assert m.pleats == truth.pleats
    assert (m.ear_loops_left, m.ear_loops_right) == (truth.loops_left, truth.loops_right)


GOOD = [
    pytest.param(11, id="good-11", marks=pytest.mark.xfail(strict=True, reason=(
        "striped fabric (stripes 4-14 mm) on a green tray: 6 pleats counted for 3 (print lines taken for "
        "folds), two false open_seam findings, a false skipped stitch and no stitch length; width/height "
        "right"))),
    pytest.param(12, id="good-12"),
    pytest.param(13, id="good-13"),
]


@pytest.mark.parametrize("case_seed", GOOD)
def test_good_mask_measured_and_passed(station, case_seed):
    truth, res = _inspect(station, case_seed, None)
    _check_geometry(truth, res)
    assert abs(res.measurements.stitch_length_mm - truth.stitch_mm) <= 0.25
    assert res.verdict == "pass", res.reason_codes


DEFECTS = [
    pytest.param(21, "width", id="width"),
    # plain fabric, 4 folds, white cord loops on dark grey (was width 187.15 mm for 183.34: a tray
    # line on the tray along a side taken for its edge; fixed by outline._skip_thin_lines)
    pytest.param(22, "pleats", id="pleats"),
    pytest.param(23, "ear_loop", id="ear_loop", marks=pytest.mark.xfail(strict=True, reason=(
        "dotted fabric on green, one loop missing: loops right, but height 91.15 mm for 91.75 (-0.6 mm)"))),
    # plain mid-grey fabric on a light grey tray (was width -7.3 mm: the real edge taken for a shadow;
    # fixed by the outline's segmentation check on the shadow rule)
    pytest.param(24, "stitch_length", id="stitch_length"),
    pytest.param(25, "skipped_stitch", id="skipped_stitch"),
]


@pytest.mark.parametrize(("case_seed", "code"), DEFECTS)
def test_defective_mask_failed_for_its_reason(station, case_seed, code):
    truth, res = _inspect(station, case_seed, code)
    if code in ("width", "pleats", "ear_loop", "stitch_length"):
        _check_geometry(truth, res)
    assert res.verdict == "fail"
    assert code in res.reason_codes, res.reason_codes


@pytest.fixture(scope="module")
def station_26():
    import cv2

    cv2.setNumThreads(1)
    return make_station(2600, views=10)  # the independent bench's camera for --seed 26 --cameras 1


@pytest.mark.xfail(strict=True, reason=(
    "the top seam runs along the edge of a dark maroon stripe, where the dark thread does not show; the "
    "mean of the fabric above and below the track is unlike the thread, so 14 mm count as a visible gap: "
    "open_seam. Requiring both sides to differ fixes it but loses a drawn open seam across diagonal "
    "stripes (test_seam_drawn), and a run-length version (one side thread-coloured for 8 mm) does not "
    "fix it: not adopted"))
def test_a_dark_thread_along_a_dark_print_edge_is_no_gap(station_26):
    """Independent bench seed 26, case 24: a good mask, dark thread on stripes."""
    from tests.independent.bench import run_case

    o = run_case(station_26, 26, 24)
    assert o.kind is None
    assert not {"skipped_stitch", "open_seam"} & set(o.codes), o.result.reasons


@pytest.fixture(scope="module")
def station_51():
    import cv2

    cv2.setNumThreads(1)
    return make_station(5100, views=10)  # the independent bench's camera for --seed 51 --cameras 1


@pytest.mark.parametrize("k", [0, 28])
def test_a_scratch_beside_the_bottom_edge_does_not_move_it(station_51, k):
    """Independent bench seed 51, cases 0 and 28: good masks whose bottom edge has a tray scratch
    running along it 4-6 mm out (a white mask on dark grey, a dotted green one on black). The
    scratch was taken for the edge: height +6.0 mm (failed) and +4.5 mm (passed by luck)."""
    from tests.independent.bench import run_case

    o = run_case(station_51, 51, k)
    assert o.height_mm is not None and abs(o.height_mm - o.case.truth.height_mm) <= 0.5, (
        o.height_mm, o.case.truth.height_mm)
    assert abs(o.width_mm - o.case.truth.width_mm) <= 0.5


def test_scratches_beside_a_side_are_not_an_ear_loop():
    """Independent bench seed 52, case 35: the right ear loop is missing (a floral mask on a black
    tray), but two faint scratches run at a shallow angle beside the right side. Each crossed the
    loop-counting lines once, so the side counted one loop and the defective mask passed. A loop
    leg crosses the next line out at nearly the same place; a scratch millimetres away."""
    import cv2

    from tests.independent.bench import run_case

    cv2.setNumThreads(1)
    o = run_case(make_station(5200, views=10), 52, 35)
    assert o.kind == "ear_loop" and (o.case.truth.loops_left, o.case.truth.loops_right) == (1, 0)
    assert o.loops == (1, 0)
    assert o.verdict == "fail" and "ear_loop" in o.codes


@pytest.mark.parametrize(("seed", "k"), [(54, 16), (50, 20)])
def test_sides_that_each_vote_for_the_pitch_measure_the_stitch(seed, k):
    """Independent bench seeds 54 / 50, cases 16 / 20: good masks whose needle holes are faint
    under a print on parts of every side. The pooled ACF support of the pitch stayed under the
    bar, so the stitch length was not measured and the mask failed ("check by hand"), though
    three or four sides each voted for the right pitch on their own."""
    import cv2

    from tests.independent.bench import run_case

    cv2.setNumThreads(1)
    o = run_case(make_station(seed * 100, views=10), seed, k)
    assert o.kind is None
    m = o.result.measurements
    assert m is not None and m.stitch_length_mm is not None, o.result.reasons
    assert abs(m.stitch_length_mm - o.case.truth.stitch_mm) <= 0.25
    assert o.verdict == "pass", o.codes


def test_votes_for_half_a_long_stitch_are_not_its_length():
    """Independent seed 59, case 8 rendered as a stitch-length defect (3.87 mm stitches): the left,
    right and top sides' windows vote for 1.9 mm (a dip mid-stitch), while the top and bottom
    sides' own harmonic checks prefer twice that. Trusting the three votes read 1.86 mm; for a
    stitch a little longer that half would lie inside the 2-3 mm spec and pass."""
    import cv2

    from tests.independent.bench import case_rng

    cv2.setNumThreads(1)
    st = make_station(5900, views=10)
    case = render(st.camera, case_rng(59, 8), "stitch_length")
    res = st.inspector.inspect(case.image)
    sl = res.measurements.stitch_length_mm
    assert case.truth.stitch_mm > 3.5
    assert sl is None or abs(sl - case.truth.stitch_mm) <= 0.25, sl
    assert res.verdict == "fail" and "stitch_length" in res.reason_codes
