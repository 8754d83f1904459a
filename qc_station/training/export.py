"""ONNX export, torch-vs-ONNX Runtime parity, int8 static QDQ quantisation, anomaly head.

The shipped graph is built in three steps:
1. ``export_onnx``: the trained :class:`DefectNet` -> fp32 ONNX (opset 17, dynamic H x W),
   outputs ``logits`` and ``features``.
2. ``quantize_int8``: static QDQ quantisation (per-channel weights) calibrated on sim tiles.
3. ``add_anomaly_head``: Gaussians fitted on good masks' features *of that same graph* are
   appended as fp32 nodes (1x1 Conv = whitening, square, sum, sqrt): output ``anomaly``
   (N x 2 x h x w: interior and border Gaussians), plus the metadata the runtime reads.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from qc_station.training.net import CELL_PX, DefectNet

OPSET = 17


def export_onnx(net: DefectNet, path: Path, size_px: int = 256) -> Path:
    """Export the network (eval mode) to fp32 ONNX with dynamic batch, height and width."""
    net.eval()
    x = torch.rand(1, 3, size_px, size_px)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but simple and exact here
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(net, x, path)
    return path


def _export(net: DefectNet, x: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        net,
        (x,),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=["image"],
        output_names=["logits", "features"],
        dynamic_axes={
            "image": {0: "n", 2: "h", 3: "w"},
            "logits": {0: "n", 2: "hc", 3: "wc"},
            "features": {0: "n", 2: "hc", 3: "wc"},
        },
    )


def parity(net: DefectNet, onnx_path: Path, x: np.ndarray) -> float:
    """Max abs difference of logits and features between torch and ONNX Runtime on ``x``."""
    import onnxruntime as ort

    net.eval()
    with torch.no_grad():
        t_logits, t_feat = (t.numpy() for t in net(torch.from_numpy(x)))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    o_logits, o_feat = sess.run(["logits", "features"], {"image": x})
    return float(max(np.abs(t_logits - o_logits).max(), np.abs(t_feat - o_feat).max()))


class _TileReader:
    """Calibration data for onnxruntime.quantization: one tile batch at a time."""

    def __init__(self, tiles: np.ndarray, batch: int = 8):
        self._batches = [tiles[i : i + batch] for i in range(0, len(tiles), batch)]

    def get_next(self):
        return {"image": self._batches.pop(0)} if self._batches else None

    def rewind(self):  # pragma: no cover - some ORT versions call it
        pass


def quantize_int8(fp32_path: Path, out_path: Path, calib_tiles: np.ndarray) -> Path:
    """Static int8 QDQ quantisation (per-channel weights, uint8 activations, MinMax calibration).

    ``calib_tiles``: N x 3 x S x S float32 in [0, 1] rendered by the simulator.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out_path),
            _TileReader(calib_tiles.astype(np.float32)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return out_path


def fit_gaussian(feats: np.ndarray, shrink: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix W (so that ||W (f - mu)||^2 is the Mahalanobis distance^2).

    ``feats``: N x D. The covariance is shrunk towards its mean diagonal for stability.
    """
    f = feats.astype(np.float64)
    mu = f.mean(0)
    cov = np.cov(f, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / d * np.eye(d) + 1e-6 * np.eye(d)
    prec = np.linalg.inv(cov)
    chol = np.linalg.cholesky(prec)  # prec = L L^T -> distance^2 = ||L^T (f - mu)||^2
    return mu.astype(np.float32), chol.T.astype(np.float32)


def add_anomaly_head(
    in_path: Path,
    out_path: Path,
    gaussians: list[tuple[np.ndarray, np.ndarray]],
    metadata: dict[str, str],
) -> Path:
    """Append the anomaly head to a graph with a ``features`` output; write metadata.

    The ``features`` output is removed afterwards (the runtime needs only logits + anomaly).
    """
    model = onnx.load(str(in_path))
    g = model.graph
    dists = []
    for i, (mu, w) in enumerate(gaussians):
        d = w.shape[0]
        g.initializer.append(numpy_helper.from_array(w.reshape(d, d, 1, 1), f"anom_w{i}"))
        g.initializer.append(numpy_helper.from_array((-w @ mu).astype(np.float32), f"anom_b{i}"))
        g.node.extend(
            [
                helper.make_node("Conv", ["features", f"anom_w{i}", f"anom_b{i}"], [f"anom_z{i}"]),
                helper.make_node("Mul", [f"anom_z{i}", f"anom_z{i}"], [f"anom_z2_{i}"]),
                helper.make_node("ReduceSum", [f"anom_z2_{i}", "anom_axes"], [f"anom_d2_{i}"], keepdims=1),
            ]
        )
        dists.append(f"anom_d2_{i}")
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "anom_axes"))
    g.node.extend(
        [
            helper.make_node("Concat", dists, ["anom_d2"], axis=1),
            helper.make_node("Sqrt", ["anom_d2"], ["anomaly"]),
        ]
    )
    keep = [o for o in g.output if o.name != "features"]
    del g.output[:]
    g.output.extend(keep)
    shape = ["n", len(gaussians), "hc", "wc"]
    g.output.append(helper.make_tensor_value_info("anomaly", TensorProto.FLOAT, shape))
    del model.metadata_props[:]
    for k, v in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def base_metadata(classes: tuple[str, ...], version: str, anomaly_threshold: float, extra: dict) -> dict:
    """The metadata keys the runtime reads (plus free-form provenance in ``extra``)."""
    meta = {
        "version": version,
        "classes": json.dumps(list(classes)),
        "cell_px": str(CELL_PX),
        "anomaly_threshold": f"{anomaly_threshold:.4f}",
        "probability_threshold": "0.5",
        "input": "image: N x 3 x H x W BGR float32 in [0,1], H and W multiples of cell_px",
        "outputs": "logits: N x C x H/16 x W/16; anomaly: N x 2 (interior, border) x H/16 x W/16",
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta
