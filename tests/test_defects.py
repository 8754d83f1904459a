"""The defect model at run time: load errors, predictions on simulator crops, sha256, thresholds.

Uses the committed model in models/ (no training here) and simulator renders with fixed seeds
from a range that neither training (1e6...) nor the benchmark (9e6...) uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from qc_station.errors import ModelError
from qc_station.vision.defects import DEFAULT_MODEL_PATH, DefectModel, sha256_of

CARD = DEFAULT_MODEL_PATH.parent / "MODEL_CARD.md"
TEST_SEED = 7_000_000
TOL_MM = 3.2  # one output cell


@pytest.fixture(scope="module")
def model() -> DefectModel:
    return DefectModel.load()


def _render(seed, codes):
    from qc_station.training.data import render

    return render(seed, codes)


def _near(box, truth, tol=TOL_MM):
    x, y, w, h = box
    tx, ty, tw, th = truth
    return x < tx + tw + tol and tx - tol < x + w and y < ty + th + tol and ty - tol < y + h


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        DefectModel.load(tmp_path / "nope.onnx")


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(DEFAULT_MODEL_PATH.read_bytes()[:5000])  # truncated download / disk error
    with pytest.raises(ModelError, match="corrupt"):
        DefectModel.load(bad)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelError):
        DefectModel.load(junk)


def test_wrong_onnx_model_is_rejected(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match="lacks outputs"):
        DefectModel.load(path)


def test_model_card_names_the_shipped_file_sha256(model):
    text = CARD.read_text()
    found = re.findall(r"^sha256:\s*([0-9a-f]{64})\s*$", text, re.M)
    assert found, "MODEL_CARD.md must state the model's sha256 on a line 'sha256: <hex>'"
    assert found[0] == sha256_of(DEFAULT_MODEL_PATH) == model.sha256
    assert DEFAULT_MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    assert model.version in text


def test_metadata_and_threshold_override(model):
    assert set(model.classes) >= {"stain", "hole", "open_seam", "skipped_stitch"}
    assert model.anomaly_threshold > 0
    default = model.anomaly_threshold
    other = DefectModel.load(anomaly_threshold=default * 3)
    assert other.anomaly_threshold == pytest.approx(default * 3)
    assert other.model_anomaly_threshold == pytest.approx(default)
    crop = _render(TEST_SEED + 50, ()).crop
    pred = other.predict(crop)
    assert pred.anomaly_threshold == pytest.approx(default * 3)
    # a threshold below the mask's own score flags it; the model's default does not move
    low = DefectModel.load(anomaly_threshold=pred.anomaly_score * 0.5)
    assert low.predict(crop).anomaly_score > low.anomaly_threshold
    assert other.with_anomaly_threshold(None).anomaly_threshold == pytest.approx(default)


def test_clean_masks_have_no_findings(model):
    # Thresholds sit above every peak on 300 good masks (2/200 clean bench masks get a finding);
    # one false finding in six masks is tolerated, two are not.
    preds = [model.predict(_render(TEST_SEED + k, ()).crop) for k in range(6)]
    assert sum(bool(p.findings) for p in preds) <= 1, [p.findings for p in preds]
    assert all(0 <= p.anomaly_score < model.anomaly_threshold for p in preds)


def _hits(model, code, n=8):
    """How many of ``n`` fresh single-defect masks get a finding of ``code`` at the right place."""
    found = 0
    for k in range(n):
        r = _render(TEST_SEED + 100 + 100 * ["stain", "hole", "open_seam", "skipped_stitch"].index(code) + k,
                    (code,))
        truths = [d.box_mm for d in r.truth.defects if d.code == code]
        pred = model.predict(r.crop)
        found += any(f.code == code and any(_near(f.box_mm, t) for t in truths) for f in pred.findings)
    return found


# Regression floors for the shipped model v0.4.0 (about 2 below what it gets on these seeds:
# 4, 8, 8, 6 of 8).
# The target is >= 98% recall per code; see models/MODEL_CARD.md for the bench figures.
@pytest.mark.parametrize(("code", "floor"),
                         [("stain", 2), ("hole", 6), ("open_seam", 6), ("skipped_stitch", 4)])
def test_defects_are_found_near_their_truth_box(model, code, floor):
    assert _hits(model, code) >= floor


@pytest.mark.xfail(reason="model v0.4.0: recall below the 98% target (stain 0.77, skipped_stitch 0.72 "
                   "on the bench), see models/MODEL_CARD.md", strict=True)
def test_every_defect_is_found():
    model = DefectModel.load()
    assert all(_hits(model, code) == 8 for code in ("stain", "skipped_stitch"))


@pytest.mark.parametrize("kind", ["burn", "pen_mark", "foreign_patch"])
def test_anomaly_flags_defects_never_trained_on(model, kind):
    from qc_station.training.novel import paint_novel

    rng = np.random.default_rng(1)
    flagged = 0
    for k in range(3):
        crop, box = paint_novel(_render(TEST_SEED + 600 + k, ()).crop, kind, rng)
        pred = model.predict(crop)
        if pred.anomaly_score > pred.anomaly_threshold:
            flagged += 1  # and the reason points at it
            assert pred.anomaly_box_mm is not None
            assert _near(pred.anomaly_box_mm, box), (pred.anomaly_box_mm, box)
    assert flagged >= 2, kind


def test_one_session_reused_and_outputs_deterministic(model):
    crop = _render(TEST_SEED + 20, ("hole",)).crop
    a, b = model.predict(crop), model.predict(crop)
    assert a == b
    assert np.isfinite(a.anomaly_score)


def test_model_cli_info(capsys):
    from qc_station.cli import main

    assert main(["model", "info"]) == 0
    out = capsys.readouterr().out
    assert sha256_of(DEFAULT_MODEL_PATH) in out
    assert main(["model", "info", str(Path("/nonexistent/model.onnx"))]) == 5


def test_self_similarity_flags_the_one_cell_without_a_twin():
    from qc_station.vision.defects import self_similarity

    rng = np.random.default_rng(5)
    # a "print": a tile of 4 x 4 cells repeated over the mask, plus small noise
    tile = rng.normal(size=(6, 4, 4))
    z = np.tile(tile, (1, 5, 8)) + rng.normal(scale=0.01, size=(6, 20, 32))
    cells = np.ones((20, 32), bool)
    cells[:2] = False  # a border band the score does not cover
    base = self_similarity(z, cells, exclude=3)
    assert base[~cells].max() == 0
    assert base[cells].max() < 0.2  # every cell has a twin >= 4 cells away
    z[:, 10, 13] += 3.0  # a burn: one cell unlike anything else on the mask
    d = self_similarity(z, cells, exclude=3)
    assert np.unravel_index(d.argmax(), d.shape) == (10, 13)
    assert d[10, 13] > 2.5 and np.delete(d.ravel(), 10 * 32 + 13).max() < 0.2
    # a twin inside the excluded neighbourhood does not explain it away ...
    z[:, 10, 15] = z[:, 10, 13]
    assert self_similarity(z, cells, exclude=3)[10, 13] > 2.5
    # ... a twin far away does
    z[:, 18, 29] = z[:, 10, 13]
    assert self_similarity(z, cells, exclude=3)[10, 13] < 0.2


def test_a_lone_cell_above_its_threshold_is_a_finding(model, monkeypatch):
    """Interpolating the cell grid never reaches a lone cell's value; the cell must still count."""
    from qc_station.vision.defects import CellMaps

    crop = _render(TEST_SEED + 30, ()).crop
    real = model.cell_maps(crop)
    probs = np.zeros_like(real.probs)
    ci = model.classes.index("skipped_stitch")
    probs[ci, 5, 20] = 0.5 * (1.0 + model.probability_thresholds["skipped_stitch"])  # just above
    monkeypatch.setattr(model, "cell_maps", lambda c: CellMaps(probs, real.anomaly, real.valid,
                                                                real.interior, real.cell_px))
    (f,) = model.predict(crop).findings
    assert f.code == "skipped_stitch" and f.probability == pytest.approx(probs[ci, 5, 20], abs=1e-4)
    cell_mm = model.cell_px * crop.mm_per_px
    x0, y0 = crop.to_mm(20 * model.cell_px, 5 * model.cell_px)
    assert f.box_mm[0] == pytest.approx(x0, abs=0.01) and f.box_mm[1] == pytest.approx(y0, abs=0.01)
    assert f.box_mm[2] == pytest.approx(cell_mm, abs=0.01) and f.box_mm[3] == pytest.approx(cell_mm, abs=0.01)


@pytest.mark.parametrize(("twin_distance", "found"), [(0.1, False), (2.0, True)])
def test_a_hole_finding_with_twins_all_over_the_mask_is_a_print(model, monkeypatch, twin_distance, found):
    """A hole is an accident: a hole-like cell with a near twin elsewhere is a printed dot."""
    from qc_station.vision.defects import CellMaps

    crop = _render(TEST_SEED + 30, ()).crop
    real = model.cell_maps(crop)
    probs = np.zeros_like(real.probs)
    ci = model.classes.index("hole")
    probs[ci, 12, 20] = 0.5 * (1.0 + model.probability_thresholds["hole"])
    similarity = np.full(real.valid.shape, 3.0, np.float32)
    similarity[12, 20] = twin_distance
    covered = np.ones_like(real.valid)
    monkeypatch.setattr(model, "cell_maps", lambda c: CellMaps(probs, real.anomaly, real.valid, real.interior,
                                                                real.cell_px, None, similarity, covered))
    assert [f.code for f in model.predict(crop).findings] == (["hole"] if found else [])


def test_polka_dots_in_the_trays_colour_are_not_holes(model):
    """Bench seed 9097 (camera 0), frame 1842144620: a good dotted mask failed for a classifier
    hole (p 0.997) whose cell has a twin at self-similarity 0.21."""
    from qc_station import sim
    from qc_station.cli.bench import bench_calibration, bench_cameras
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    spec = load_spec()
    cameras, _ = bench_cameras(9097, 1)
    image, _ = sim.render_case(1842144620, camera=cameras[0], spec=spec)
    result = Inspector(bench_calibration(cameras[0], 0, 9097), spec, model=model).inspect(image)
    assert result.verdict == "pass", [r.message for r in result.reasons]


def test_fusion_boosts_only_the_code_the_network_ranks_first():
    from qc_station.vision.defects import fuse_evidence

    logits = np.full((4, 3, 3), -5.0, np.float32)
    logits[0, 1, 1] = 2.0  # stain ranked first at (1, 1) ...
    logits[1, 1, 1] = 1.0  # ... hole second
    logits[1, 0, 0] = 0.5  # hole first at (0, 0)
    sim = np.zeros((3, 3), np.float32)
    sim[1, 1] = sim[0, 0] = 1.5
    fused = fuse_evidence(logits, sim, [4.0, 2.0, 0.0, 0.0])
    assert fused[0, 1, 1] == pytest.approx(2.0 + 4.0 * 1.5)
    assert fused[1, 1, 1] == pytest.approx(1.0)  # not its top code: no boost, no second finding
    assert fused[1, 0, 0] == pytest.approx(0.5 + 2.0 * 1.5)
    assert fused[0, 0, 0] == pytest.approx(-5.0)
    # unusual but no weight (codes 2, 3), or weight but a cell like the rest (sim 0): unchanged
    np.testing.assert_array_equal(fused[2:], logits[2:])
    assert fused[0, 2, 2] == logits[0, 2, 2]
    np.testing.assert_array_equal(logits[0, 1, 1], 2.0)  # the input is not modified


def test_fusion_weights_come_from_the_metadata_and_are_checked(model):
    import json

    assert model.fusion_weights, "the shipped model fuses at least one code"
    assert set(model.fusion_weights) <= set(model.classes)
    meta = dict(model.metadata, fusion_weights=json.dumps({"smudge": 2.0}))
    with pytest.raises(ModelError, match="smudge"):
        DefectModel(None, model.path, model.sha256, meta, 1)
    meta = {k: v for k, v in model.metadata.items() if k != "fusion_weights"}
    assert DefectModel(None, model.path, model.sha256, meta, 1).fusion_weights == {}  # older models


def test_picked_thresholds_leave_every_picking_good_mask_without_findings(model, monkeypatch):
    """The build's threshold pick: whatever fusion weight it chooses, none of the good masks it
    looked at gets a finding from the model set up with its choice."""
    from qc_station.training import build

    monkeypatch.setattr(build, "MIN_FUSION_GAIN", 1)  # four picking masks: let one count
    good = [_render(TEST_SEED + 700 + k, ()).crop for k in range(4)]
    cases = []
    for k, code in enumerate(("stain", "stain", "hole", "hole")):
        r = _render(TEST_SEED + 800 + k, (code,))
        cases.append((r.crop, [(d.code, d.box_mm) for d in r.truth.defects]))
    t = build.pick_thresholds(model.path, good, cases)
    assert set(t.probability) == set(model.classes) and set(t.fusion) <= {"stain", "hole"}
    assert t.anomaly == pytest.approx(max(t.good_scores) * 1.05)
    picked = DefectModel.load(model.path)
    picked.probability_thresholds, picked.fusion_weights = t.probability, t.fusion
    assert all(not picked.predict(c).findings for c in good)
    for code in ("stain", "hole"):
        assert t.recall[code] == t.found_by_weight[code][str(t.fusion.get(code, 0.0))] / 2
        assert t.recall[code] == max(t.found_by_weight[code].values()) / 2 or code not in t.fusion
    assert np.isnan(t.recall["open_seam"]) and "open_seam" not in t.fusion  # no picking cases
    for code, w in t.fusion.items():  # a weight is used only for a gain over none
        assert t.found_by_weight[code][str(w)] >= t.found_by_weight[code]["0.0"] + 1


def test_pipeline_crop_is_the_pipelines_own_mask_frame():
    """The benchmark's end-to-end cases: the pipeline's crop of a camera frame must be the
    measured mask frame (not the simulator's plane) and carry the frame's truth boxes."""
    from qc_station.sim import render_case
    from qc_station.training.data import pipeline_crop

    seed = TEST_SEED + 900
    crop, truths = pipeline_crop(seed, ("stain",))
    truth = render_case(seed, defects=("stain",))[1].mask
    assert crop.mm_per_px == pytest.approx(0.2)
    assert crop.width_mm == pytest.approx(truth.width_mm, abs=0.5)
    assert crop.height_mm == pytest.approx(truth.height_mm, abs=0.5)
    assert [c for c, _ in truths] == ["stain"]
    # the truth box lies on the mask body of the crop
    x, y, w, h = truths[0][1]
    col, row = (int(v) for v in crop.to_px(x + w / 2, y + h / 2))
    assert crop.body[row, col]
    clean, none = pipeline_crop(seed + 1)
    assert none == () and clean.body.mean() > 0.5


def test_seam_codes_only_near_the_outline(model, monkeypatch):
    """A seam finding deep inside the mask is a print or a garment seam, not the top-stitch."""
    from qc_station.vision.defects import SEAM_BAND_MM, cell_depth

    crop = _render(TEST_SEED + 40, ()).crop
    c = model.cell_px
    h, w = -(-crop.image.shape[0] // c), -(-crop.image.shape[1] // c)
    depth, _ = cell_depth(crop.body, crop.mm_per_px, c, (h, w))
    deep = np.unravel_index(int(depth.argmax()), depth.shape)  # the mask's middle
    edge = tuple(int(v[0]) for v in np.nonzero((depth > 2.0) & (depth < 6.0)))  # on the seam line
    assert depth[deep] > SEAM_BAND_MM
    logits = np.full((1, len(model.classes), h, w), -10.0, np.float32)
    for code in ("open_seam", "skipped_stitch", "stain"):
        for r, col in (deep, edge):
            logits[0, model.classes.index(code), r, col] = 12.0  # the network is sure, both places
    feats = np.zeros((1, 6, h, w), np.float32)
    monkeypatch.setattr(model, "_run", lambda x: (logits, feats))

    def codes_at(findings):
        at: dict[tuple[int, int], set[str]] = {}
        for f in findings:
            col, row = crop.to_px(f.box_mm[0] + f.box_mm[2] / 2, f.box_mm[1] + f.box_mm[3] / 2)
            at.setdefault((int(row // c), int(col // c)), set()).add(f.code)
        return at

    at = codes_at(model.predict(crop).findings)
    assert at[edge] == {"open_seam", "skipped_stitch", "stain"}
    assert at[deep] == {"stain"}  # a stain can be anywhere
    monkeypatch.setattr(model, "seam_band_mm", float("inf"))  # the eval of seam close-ups does this
    assert codes_at(model.predict(crop).findings)[deep] == {"open_seam", "skipped_stitch", "stain"}


def test_bench_render_cache_is_keyed_by_the_renderer_source(tmp_path):
    """The same seeds render other masks once the simulator changes; a cache keyed by name alone
    once fed stale masks to the benchmark."""
    from qc_station.training.bench_defects import make_cases
    from qc_station.training.data import renderer_fingerprint

    fp = renderer_fingerprint()
    assert len(fp) == 12 and fp == renderer_fingerprint()  # stable within one source tree
    cases = make_cases(0, 1, 0, seed=TEST_SEED + 900, cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    assert fp in cached.name and len(cases) == 1 and cases[0].kind == "clean"
    again = make_cases(0, 1, 0, seed=TEST_SEED + 900, cache_dir=tmp_path)  # served from the cache
    assert np.array_equal(again[0].crop.image, cases[0].crop.image)
