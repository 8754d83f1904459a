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
    for k in range(2):
        pred = model.predict(_render(TEST_SEED + k, ()).crop)
        assert pred.findings == (), pred.findings
        assert 0 <= pred.anomaly_score < model.anomaly_threshold


# The shipped model v0.2.0 misses most stains and holes (recall 3-20% on fresh simulator seeds,
# see models/MODEL_CARD.md): this is the target, kept visible until a better model ships.
@pytest.mark.xfail(reason="model v0.2.0-experimental: low recall, see models/MODEL_CARD.md", strict=False)
@pytest.mark.parametrize("code", ["stain", "hole"])
def test_defect_is_found_near_its_truth_box(model, code):
    r = _render(TEST_SEED + 10 + ["stain", "hole"].index(code), (code,))
    truths = [d.box_mm for d in r.truth.defects if d.code == code]
    assert truths
    pred = model.predict(r.crop)
    hits = [f for f in pred.findings if f.code == code and any(_near(f.box_mm, t) for t in truths)]
    assert hits, (pred.findings, truths)
    assert hits[0].probability >= model.probability_threshold
    # nothing of that code far away from the truth
    assert all(any(_near(f.box_mm, t) for t in truths) for f in pred.findings if f.code == code)


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
