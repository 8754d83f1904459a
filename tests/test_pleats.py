"""Pleat count against truth: drawn crops (print lines of one hue, faint folds) and simulator frames."""

from __future__ import annotations

import numpy as np
import pytest

from qc_station import sim
from qc_station.calibration import bundled_sim_calibration
from qc_station.spec import load_spec
from qc_station.vision.pipeline import Inspector
from qc_station.vision.pleats import count_pleats, select_folds
from qc_station.vision.types import MaskCrop

S = 0.2  # mm per px
MARGIN = 10.0
W, H = 180.0, 95.0


def _crop(folds_mm, *, gingham_mm: float | None = None, dots_mm: float | None = None,
          fold_dim: float = 0.3, seed: int = 0) -> MaskCrop:
    """A teal mask crop: optional same-hue gingham (bands of gingham_mm) or rows of dots, and a
    thin crease shadow (``fold_dim`` darker, ~0.8 mm) with a faint crest above at each fold."""
    rng = np.random.default_rng(seed)
    h, w = round((H + 2 * MARGIN) / S), round((W + 2 * MARGIN) / S)
    y = -MARGIN + np.arange(h) * S
    x = -MARGIN + np.arange(w) * S
    lum = np.ones((h, w), np.float32)
    if gingham_mm:  # one hue, three shades: only brightness changes, like a fold's shadow
        band_y = (np.floor(y / gingham_mm) % 2 == 0)[:, None]
        band_x = (np.floor(x / gingham_mm) % 2 == 0)[None, :]
        lum *= np.where(band_y, 0.6, 1.0) * np.where(band_x, 0.6, 1.0)
    if dots_mm:  # rows of darker dots of the same hue, 2 * dots_mm apart
        yy, xx = np.meshgrid(y, x, indexing="ij")
        cy = (np.round(yy / (2 * dots_mm)) * 2 * dots_mm)
        cx = (np.round(xx / (2 * dots_mm)) * 2 * dots_mm)
        lum *= np.where((yy - cy) ** 2 + (xx - cx) ** 2 < (dots_mm / 2) ** 2, 0.65, 1.0)
    for f in folds_mm:  # shadow below the fold line, crest above
        d = y - f
        crest = 0.06 * np.exp(-np.clip(-d, 0, None) / 2) * (d < 0)
        shade = 1 - fold_dim * np.exp(-((d - 0.4) / 0.4) ** 2) + crest
        lum *= shade[:, None].astype(np.float32)
    base = np.array([150, 160, 95], np.float32)  # BGR teal
    img = lum[..., None] * base + rng.normal(0, 2.0, (h, w, 3))
    body = np.zeros((h, w), bool)
    body[round(MARGIN / S):round((MARGIN + H) / S), round(MARGIN / S):round((MARGIN + W) / S)] = True
    return MaskCrop(np.clip(img, 0, 255).astype(np.uint8), body, S, (-MARGIN, -MARGIN), W, H)


@pytest.mark.parametrize("folds", [(28.0, 47.5, 67.0), (33.0, 62.0), (24.0, 40.0, 56.0, 72.0)])
def test_folds_on_a_one_hue_gingham(folds):
    # gingham bands of one hue look like shading to the colour normalisation; they are wider than
    # a crease shadow, so only the folds are thin lines across the width
    r = count_pleats(_crop(folds, gingham_mm=5.0))
    assert r.count == len(folds), r
    assert np.allclose(r.lines_mm, folds, atol=1.5), r.lines_mm


def test_folds_among_rows_of_dots():
    folds = (28.0, 47.5, 67.0)
    r = count_pleats(_crop(folds, dots_mm=3.5, seed=2))
    assert r.count == 3, r
    assert np.allclose(r.lines_mm, folds, atol=1.5)


def test_faint_folds_on_a_plain_fabric_are_counted():
    folds = (28.0, 47.5, 67.0)
    assert count_pleats(_crop(folds, fold_dim=0.06, seed=3)).count == 3


def test_no_folds_no_pleats():
    assert count_pleats(_crop((), gingham_mm=5.0, seed=4)).count == 0


def test_selection_end_print_line_is_not_a_fold():
    # three folds (31, 50.8, 70.4) and the print's own faint lines; one of them falls one step
    # above the first fold (13.4): it is no deeper than the other print lines, so not a fold
    pos = np.array([13.4, 19.8, 31.0, 42.6, 50.8, 70.4, 77.4])
    depth = np.array([0.033, 0.032, 0.105, 0.042, 0.138, 0.135, 0.042])
    assert [pos[i] for i in select_folds(pos, depth)] == [31.0, 50.8, 70.4]


def test_selection_midpoint_print_line_is_not_a_fold():
    # two folds 30 mm apart (2 pleats); the valley half-way is fainter than the print's lines
    pos = np.array([21.0, 32.6, 41.4, 48.4, 56.4, 62.6, 70.6, 81.2])
    depth = np.array([0.048, 0.093, 0.024, 0.026, 0.041, 0.088, 0.026, 0.033])
    assert [pos[i] for i in select_folds(pos, depth)] == [32.6, 62.6]


def test_selection_clean_comb_and_single_partner():
    # only an evenly spaced comb: all folds, however faint the outer ones
    pos, depth = np.array([26.8, 49.8, 72.2]), np.array([0.038, 0.112, 0.052])
    assert len(select_folds(pos, depth)) == 3
    # one clear fold, one fainter valley well above everything else: two folds
    pos, depth = np.array([31.8, 39.0, 62.8]), np.array([0.153, 0.036, 0.064])
    assert [pos[i] for i in select_folds(pos, depth)] == [31.8, 62.8]


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    return Inspector(bundled_sim_calibration(), load_spec())


# simulator frames (default camera): a checked good mask that was counted 4, and pleat defects
# on checked / striped prints (seeds fixed, truth from the simulator)
@pytest.mark.parametrize("seed,defects", [(1304408428, ()), (11, ("pleats",)), (19, ("pleats",)),
                                          (22, ("pleats",))])
def test_pipeline_pleat_count_matches_simulator_truth(inspector, seed, defects):
    image, truth = sim.render_case(seed, defects=defects)
    r = inspector.inspect(image)
    assert r.measurements is not None, r.reasons
    assert r.measurements.pleats == truth.mask.pleats
    if defects:
        assert "pleats" in r.reason_codes


def test_four_folds_on_a_gingham_are_counted():
    """Fresh bench seed 9092, camera 1: a pink / black gingham with 4 folds. Its strong valleys at
    29, 44 and 74 mm are not evenly spaced, so one is dropped as a print line; once the spacing is
    refined (15 mm, with the fainter fold at 59 mm) the dropped one at 29 mm is where a fold
    belongs. Counted 3 before, and the pleats defect passed."""
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(9092, 1, 434385656, ("pleats",))
    assert truth.mask.pleats == 4
    assert result.measurements.pleats == 4 and result.verdict == "fail", result.measurements.pleats


def test_an_end_fold_exactly_one_step_beyond_its_neighbour_is_counted():
    """Fresh bench seed 9093, camera 0: a fine pink / black gingham with folds at 29, 49 and 69 mm.
    The fold at 29 mm (depth 0.098) is barely deeper than the print's deepest line (0.093 at
    81 mm), under the 1.1x an end fold needs; but it lies 0.2 mm from where the other two folds'
    spacing puts it. Counted 2 before, and the good mask failed."""
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(9093, 0, 1022302223, ())
    assert truth.mask.pleats == 3
    assert result.measurements.pleats == 3 and result.verdict == "pass", result.reason_codes


@pytest.mark.xfail(strict=True, reason="a printed line half-way between two folds is as deep as the print's "
                   "other lines (0.162 vs 0.139-0.169) but passes the inner-fold rule (0.6x): 2 folds "
                   "counted 3 and the pleats defect passes (defect sweep, seed 9112). A stricter inner "
                   "ratio (1.0) trades it for two good masks of 520 (see docs/validation.md)")
def test_a_print_line_between_two_folds_is_not_a_third_fold():
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(9112, 1, 281355669, ("pleats",))
    assert truth.mask.pleats == 2
    assert result.verdict == "fail" and "pleats" in result.reason_codes, result.measurements.pleats
