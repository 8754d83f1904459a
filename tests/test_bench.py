"""``qc-station bench`` runs end to end and reports every figure the issue asks for."""

from __future__ import annotations

import re

import pytest

from qc_station.cli import main
from qc_station.cli.bench import PIPELINE_CODES, _cases


def test_case_mix_has_good_defects_and_unusable():
    plan = _cases(40)
    assert sum(1 for d, u in plan if not d and not u) >= 15
    assert {d[0] for d, _ in plan if d} >= {"width", "height", "pleats", "ear_loop", "stitch_length"}
    assert {u[0] for _, u in plan if u} == {"no_mask", "blur", "exposure"}


def test_defects_mix_is_one_pipeline_defect_per_frame():
    plan = _cases(14, "defects")
    assert all(len(d) == 1 and not u for d, u in plan)
    assert [d[0] for d, _ in plan[:7]] == list(PIPELINE_CODES) == [d[0] for d, _ in plan[7:]]


def test_defects_sweep_reports_every_frame_as_defective():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["bench", "--mix", "defects", "--n", "2", "--seed", "3", "--cameras", "1",
                     "--no-model"]) == 0
    out = buf.getvalue()
    assert re.search(r"\[1/2\] cam 0 seed \d+ width\s+ok\s+fail\s+->fail\s+width", out), out
    assert re.search(r"\[2/2\] cam 0 seed \d+ height\s+ok\s+fail\s+->fail\s+height", out), out
    assert "good masks" not in out  # no good mask in this mix
    assert "defective masks passed for a geometry or seam code: 0" in out


@pytest.fixture(scope="module")
def bench_seed5() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["bench", "--n", "3", "--seed", "5", "--cameras", "1", "--no-model"]) == 0
    return buf.getvalue()


def test_bench_prints_the_figures(bench_seed5):
    out = bench_seed5
    for label in ("width abs error", "height abs error", "stitch length error", "stitch length measured",
                  "pleat count right",
                  "ear loops right", "per-code recall", "false rejects", "verdict accuracy",
                  "defective masks passed for a geometry or seam code", "ms per image per stage"):
        assert label in out, label
    assert re.search(r"\[3/3\] cam 0", out)  # progress, one line per frame
    m = re.search(r"height abs error\s+mean ([0-9.]+) mm\s+P95 ([0-9.]+) mm", out)
    assert m and float(m.group(2)) < 0.5
    assert "->fail" in out.split("[2/3]")[1].split("\n")[0]  # the width defect is rejected
    measured = re.search(r"stitch length measured\s+[0-9.]+% \((\d+)/(\d+);", out)
    assert measured and int(measured.group(2)) == 3 and int(measured.group(1)) >= 2, out
    total = re.search(r"\n\s+total\s+([0-9.]+)", out)
    assert total and float(total.group(1)) > 0


def test_bench_width_accuracy_on_seed5(bench_seed5):
    # seed 5's width-defect mask: a dark stripe along its side on a black tray (was fitted on the
    # next stripe edge inside, width -3.34 mm; see outline._faint_outer_edge)
    m = re.search(r"width abs error\s+mean ([0-9.]+) mm\s+P95 ([0-9.]+) mm", bench_seed5)
    assert m and float(m.group(2)) < 0.5


def test_a_defective_mask_passed_is_named_by_its_frame():
    from types import SimpleNamespace as NS

    from qc_station.cli.bench import Tally, _score

    truth = NS(expected_verdict=lambda spec: "fail", expected_codes=lambda spec: ("pleats",), unusable=(),
               mask=None)
    passed = NS(reason_codes=[], verdict="pass", timing_ms={"total": 1.0}, measurements=None)
    t = Tally()
    line = _score(t, truth, passed, spec=None, with_model=False, label="cam 1 seed 281355669")
    assert line.startswith("BAD fail    ->pass")
    assert t.defects_passed == ["pleats: cam 1 seed 281355669"]
    _score(t, truth, NS(reason_codes=["pleats"], verdict="fail", timing_ms={}, measurements=None),
           spec=None, with_model=False, label="cam 0 seed 1")
    assert len(t.defects_passed) == 1  # a failed defective mask is not listed
