"""ONNX export, torch-vs-ONNX Runtime parity, int8 static QDQ quantisation, anomaly head.

The shipped graph is built in three steps:
1. ``export_onnx``: the trained :class:`DefectNet` -> fp32 ONNX (opset 17, dynamic H x W),
   outputs ``logits`` and ``features``.
2. ``quantize_int8``: static QDQ quantisation (per-channel weights) calibrated on sim tiles.
3. ``add_anomaly_head``: per-cell colour statistics (mean and spread of B, G, R), whitened by the
   within-mask covariance of good masks (a 1x1 Conv), as output ``anomaly_features``, plus the
   metadata the runtime reads. The runtime turns them into a self-similarity score.
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


#: Per-cell colour statistics the anomaly score compares: mean and spread of B, G, R.
CELL_STATS = 6


def cell_stats(image: np.ndarray, cell_px: int = CELL_PX) -> np.ndarray:
    """numpy twin of the graph's statistics: H x W x 3 float in [0, 1] -> h x w x 6 (mean, sd)."""
    x = image.astype(np.float32)
    h, w = x.shape[0] // cell_px, x.shape[1] // cell_px
    x = x[: h * cell_px, : w * cell_px].reshape(h, cell_px, w, cell_px, 3)
    m = x.mean(axis=(1, 3))
    sd = np.sqrt(np.clip((x * x).mean(axis=(1, 3)) - m * m, 0.0, None) + 1e-6)
    return np.concatenate([m, sd], axis=2)


def fit_whitening(stats: list[np.ndarray], shrink: float = 0.01) -> np.ndarray:
    """Whitening W (6 x 6) of the *within-mask* spread of cell statistics on good masks.

    ``stats``: one N_i x 6 array per good mask (its interior cells). Each mask's median is taken
    off first, so the distance measures how unusual a cell is next to the rest of its own mask,
    in units of how much cells of a good mask normally differ: ``||W (a - b)||``.
    """
    r = np.concatenate([s - np.median(s, axis=0) for s in stats]).astype(np.float64)
    cov = np.cov(r, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / d * np.eye(d) + 1e-9 * np.eye(d)
    chol = np.linalg.cholesky(np.linalg.inv(cov))  # prec = L L^T -> d^2 = ||L^T (a - b)||^2
    return chol.T.astype(np.float32)


def add_anomaly_head(in_path: Path, out_path: Path, whitening: np.ndarray, metadata: dict[str, str]) -> Path:
    """Append the anomaly features to a graph with ``logits``; drop ``features``; write metadata.

    New output ``anomaly_features`` (N x 6 x H/16 x W/16): each cell's mean and spread of B, G,
    R (16 x 16 average pools of the input), whitened by ``whitening`` (fitted on good masks).
    The runtime scores each interior cell by its distance to the most similar cell elsewhere on
    the same mask (self-similarity: a print repeats, a burn or a pen stroke does not).
    """
    model = onnx.load(str(in_path))
    g = model.graph
    k = [CELL_PX, CELL_PX]
    g.initializer.extend([
        numpy_helper.from_array(whitening.reshape(CELL_STATS, CELL_STATS, 1, 1).astype(np.float32), "anom_w"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "anom_eps"),
    ])
    g.node.extend([
        helper.make_node("AveragePool", ["image"], ["anom_mean"], kernel_shape=k, strides=k),
        helper.make_node("Mul", ["image", "image"], ["anom_sq"]),
        helper.make_node("AveragePool", ["anom_sq"], ["anom_msq"], kernel_shape=k, strides=k),
        helper.make_node("Mul", ["anom_mean", "anom_mean"], ["anom_m2"]),
        helper.make_node("Sub", ["anom_msq", "anom_m2"], ["anom_var0"]),
        helper.make_node("Relu", ["anom_var0"], ["anom_var"]),
        helper.make_node("Add", ["anom_var", "anom_eps"], ["anom_var_eps"]),
        helper.make_node("Sqrt", ["anom_var_eps"], ["anom_sd"]),
        helper.make_node("Concat", ["anom_mean", "anom_sd"], ["anom_stats"], axis=1),
        helper.make_node("Conv", ["anom_stats", "anom_w"], ["anomaly_features"]),
    ])
    keep = [o for o in g.output if o.name != "features"]
    del g.output[:]
    g.output.extend(keep)
    g.output.append(helper.make_tensor_value_info("anomaly_features", TensorProto.FLOAT,
                                                  ["n", CELL_STATS, "hc", "wc"]))
    del model.metadata_props[:]
    for key, v in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(v)))
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
        "outputs": "logits: N x C x H/16 x W/16; anomaly_features: N x 6 x H/16 x W/16",
        "anomaly": "self-similarity of whitened cell colour statistics (interior cells)",
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta
