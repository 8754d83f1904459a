"""Training-side checks: export parity, int8 quantisation, the anomaly head, labels (no training)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")

from qc_station.training import export as ex  # noqa: E402
from qc_station.training.bench_defects import auroc  # noqa: E402
from qc_station.training.data import cell_targets  # noqa: E402
from qc_station.training.net import CELL_PX, CLASSES, build_net  # noqa: E402


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    net = build_net(seed=123)
    # Non-trivial BatchNorm statistics, so the export has to carry them.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 64, 64))
    net.eval()
    path = ex.export_onnx(net, tmp_path_factory.mktemp("m") / "fp32.onnx")
    return net, path


def test_export_parity_torch_vs_onnxruntime(fp32_model):
    net, path = fp32_model
    x = np.random.default_rng(0).random((2, 3, 160, 224), np.float32)
    diff = ex.parity(net, path, x)
    print(f"parity torch vs ONNX Runtime: max abs diff {diff:.3e}")
    assert diff < 1e-4
    import onnx

    assert onnx.load(str(path)).opset_import[0].version >= 17


def test_int8_quantisation_is_smaller_and_close(fp32_model, tmp_path):
    _, path = fp32_model
    tiles = np.random.default_rng(1).random((16, 3, 64, 64), np.float32)
    q = ex.quantize_int8(path, tmp_path / "int8.onnx", tiles)
    assert q.stat().st_size < 0.6 * path.stat().st_size
    x = np.random.default_rng(2).random((1, 3, 128, 128), np.float32)
    a = onnxruntime.InferenceSession(str(path)).run(["logits"], {"image": x})[0]
    b = onnxruntime.InferenceSession(str(q)).run(["logits"], {"image": x})[0]
    assert a.shape == b.shape == (1, len(CLASSES), 128 // CELL_PX, 128 // CELL_PX)
    # int8 keeps the fp32 logits up to quantisation noise
    assert np.abs(a - b).max() < 0.25 * (np.abs(a).max() + 1e-3) + 0.05
    ops = {n.op_type for n in __import__("onnx").load(str(q)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_anomaly_head_gives_the_whitened_cell_statistics(fp32_model, tmp_path):
    _, path = fp32_model
    rng = np.random.default_rng(3)
    # good masks: per-mask colour offsets (removed by the fit) + within-mask correlated spread
    mix = rng.normal(size=(ex.CELL_STATS, ex.CELL_STATS))
    stats = [rng.normal(size=(500, ex.CELL_STATS)) @ mix * 0.05 + rng.random(ex.CELL_STATS) for _ in range(8)]
    w = ex.fit_whitening(stats, shrink=0.0)
    resid = np.concatenate([s - np.median(s, 0) for s in stats])
    prec = np.linalg.inv(np.cov(resid, rowvar=False))
    a, b = stats[0][0], stats[1][5]
    # ||W (a - b)|| is the Mahalanobis distance under the within-mask covariance
    assert np.linalg.norm(w @ (a - b)) == pytest.approx(np.sqrt((a - b) @ prec @ (a - b)), rel=1e-3)
    out = ex.add_anomaly_head(path, tmp_path / "full.onnx", w, ex.base_metadata(CLASSES, "t", 3.0, {}))
    sess = onnxruntime.InferenceSession(str(out))
    assert [o.name for o in sess.get_outputs()] == ["logits", "anomaly_features"]
    x = rng.random((1, 3, 64, 96), np.float32)
    (z,) = sess.run(["anomaly_features"], {"image": x})
    expect = np.einsum("ij,hwj->ihw", w, ex.cell_stats(x[0].transpose(1, 2, 0)))
    assert z.shape == (1, ex.CELL_STATS, 64 // CELL_PX, 96 // CELL_PX)
    np.testing.assert_allclose(z[0], expect, rtol=1e-3, atol=1e-4)
    assert float(sess.get_modelmeta().custom_metadata_map["anomaly_threshold"]) == 3.0


def test_cell_targets_from_pixel_boxes():
    lab = np.zeros((len(CLASSES), 64, 64), np.uint8)
    lab[1, 20:28, 20:28] = 1  # a 8 px "hole" straddling cells (1,1),(1,1)
    t, w = cell_targets(lab)
    assert t.shape == (len(CLASSES), 4, 4)
    assert t[1, 1, 1] == 1 and t[1].sum() == 1
    assert t[0].sum() == 0
    assert w[1, 0, 0] == 0 and w[1, 1, 1] == 1 and w[1, 3, 3] == 1  # neighbours of a positive ignored


def test_auroc():
    assert auroc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5


def test_training_bank_takes_pipeline_crops_with_aligned_labels():
    """Masks seen through the pipeline (camera frame -> rectified crop) join the bank, and their
    labels sit on the defect: a hole's labelled centre shows the tray, unlike the fabric."""
    from qc_station.training.config import TrainConfig
    from qc_station.training.data import cut_patches, pipeline_rendered
    from qc_station.training.train import build_bank

    seed = 7_000_123
    r = pipeline_rendered(seed, ("hole",))
    assert r is not None and [d.code for d in r.truth.defects] == ["hole"]
    ims, labs = cut_patches(r, np.random.default_rng(0), 128, 0, 3)
    hole = CLASSES.index("hole")
    assert len(ims) == 3 and all(lab[hole].any() for lab in labs)
    x, y, w, h = r.truth.defects[0].box_mm
    col, row = (int(v) for v in r.crop.to_px(x + w / 2, y + h / 2))
    centre = r.crop.image[row - 2 : row + 3, col - 2 : col + 3].reshape(-1, 3).mean(0)
    fabric = np.median(r.crop.image[r.crop.body], axis=0)
    assert np.abs(centre - fabric).max() > 25

    planes = build_bank(TrainConfig(n_masks=2, render_procs=1))[0]
    both = build_bank(TrainConfig(n_masks=2, pipeline_masks=2, render_procs=1))[0]
    assert len(both) > len(planes)
    np.testing.assert_array_equal(both[: len(planes)], planes)  # the plane masks are unchanged
