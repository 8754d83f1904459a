"""Defect classifier + anomaly score at run time: one ONNX Runtime session, reused per mask.

The shipped model (``models/defects.onnx``) is a small fully convolutional CNN run on the whole
rectified mask crop at full resolution (~0.2 mm/px). Each output cell covers 16 x 16 px and
sees a ~110 px window, i.e. overlapping tiles with a 16 px stride computed in one pass. Per
cell it gives a probability per defect code, and the same graph gives each cell's colour
statistics (mean and spread of B, G, R) whitened by how much cells of good masks vary.

The anomaly score is self-similarity: each interior cell's distance to its most similar cell
elsewhere on the same mask; the mask's score is the largest. The same distance over the whole
body also sharpens the codes the build gives a fusion weight (stains, holes): where the network
ranks such a code first, a cell's evidence is its logit plus weight x distance, since a stain
is stain-like *and* unlike the rest of the fabric, where a printed dot of that colour has twins.
Seam codes count only within :data:`SEAM_BAND_MM` of the outline, where the top-stitch runs.
Findings are connected groups of cells above the code's threshold, boxed in the mask frame
(mm). The anomaly threshold comes from the model's metadata (picked on good masks) unless the
spec / station config overrides it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc_station.errors import ModelError
from qc_station.results import DEFECT_CODES, Finding
from qc_station.vision.types import DefectPrediction, MaskCrop


def _shipped_model() -> Path:
    """``models/defects.onnx`` of a source checkout, else the copy a wheel installs as data."""
    checkout = Path(__file__).resolve().parents[2] / "models" / "defects.onnx"
    installed = Path(sys.prefix) / "share" / "qc-station" / "models" / "defects.onnx"
    return checkout if checkout.exists() or not installed.exists() else installed


#: The shipped model (checkout: ``models/``; installed: ``<prefix>/share/qc-station/models``).
DEFAULT_MODEL_PATH = _shipped_model()
#: Cells whose centre lies this far inside the body are the ones the anomaly score covers.
INTERIOR_MIN_MM = 12.0
#: Cells this far outside the body still count (an open seam sits on the edge).
BODY_DILATE_MM = 2.0
REQUIRED_OUTPUTS = ("logits", "anomaly_features")
#: Self-similarity: cells within this many cells (Chebyshev) of each other are not compared
#: (a defect must not be "explained" by its own other half).
ANOMALY_EXCLUDE_CELLS = 3
#: Codes of the perimeter top-stitch, and how far inside the outline a cell may lie to hold it
#: (the seam runs 3-10 mm from the edge). Deeper in, a dashed line is a print or a garment seam.
SEAM_CODES = ("open_seam", "skipped_stitch")
SEAM_BAND_MM = 15.0
OFF_SEAM_LOGIT = -30.0
#: Fusion: the similarity map behind a code's evidence covers cells this far inside the body.
FUSION_INSET_MM = 3.0
#: Findings are boxed on the probability map interpolated to 1/UPSAMPLE of a cell.
UPSAMPLE = 4
#: A ``hole`` finding whose cells all have a near twin elsewhere on the mask (self-similarity
#: distance under this) is a print's dot in the tray's colour: a hole is an accident. Two good
#: masks of bench seed 9097 failed for polka dots at 0.09 and 0.21; the 64 hole findings on 80
#: pipeline frames with a hole (seeds 7,100,000+) had 0.34 and more (median 3.2).
HOLE_TWIN_SIMILARITY = 0.25


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file (what inspection results record as the model's id)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CellMaps:
    """Raw per-cell outputs on one crop (for the benchmark and the training code)."""

    probs: np.ndarray  # C x h x w, sigmoid of the fused evidence, 0 off the body
    anomaly: np.ndarray  # h x w, self-similarity distance of interior cells, 0 elsewhere
    valid: np.ndarray  # h x w bool, cells judged (on or near the body)
    interior: np.ndarray  # h x w bool, cells the anomaly score covers
    cell_px: int
    logits: np.ndarray | None = None  # C x h x w, the network's own logits (before fusion)
    similarity: np.ndarray | None = None  # h x w, self-similarity of cells >= fusion inset inside
    similar_cells: np.ndarray | None = None  # h x w bool, the cells ``similarity`` covers


def _has_twins(maps: CellMaps, region_up: np.ndarray) -> bool:
    """Every cell of a finding (a region of the UPSAMPLE-d grid) that the self-similarity map
    covers has a near twin elsewhere (:data:`HOLE_TWIN_SIMILARITY`); False if none is covered."""
    if maps.similarity is None or maps.similar_cells is None:
        return False
    h, w = maps.similarity.shape
    rows, cols = np.nonzero(region_up)
    cells = np.zeros((h, w), bool)
    cells[np.minimum(rows // UPSAMPLE, h - 1), np.minimum(cols // UPSAMPLE, w - 1)] = True
    covered = cells & maps.similar_cells
    return bool(covered.any()) and float(maps.similarity[covered].max()) < HOLE_TWIN_SIMILARITY


def prepare_input(image: np.ndarray, cell_px: int) -> np.ndarray:
    """BGR uint8 H x W x 3 -> float32 1 x 3 x H' x W' in [0, 1], padded to a multiple of a cell."""
    h, w = image.shape[:2]
    ph, pw = (-h) % cell_px, (-w) % cell_px
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def cell_depth(body: np.ndarray, mm_per_px: float, cell_px: int,
               shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per cell centre: how far inside the body it lies and how far outside it (mm, 0 otherwise)."""
    h, w = shape
    hp, wp = h * cell_px, w * cell_px
    b = np.zeros((hp, wp), np.uint8)
    bh, bw = min(body.shape[0], hp), min(body.shape[1], wp)
    b[:bh, :bw] = body[:bh, :bw]
    # Distance (px) from each pixel inside the body to the outside, and outside to the body.
    inside = cv2.distanceTransform(b, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - b, cv2.DIST_L2, 3)
    c = cell_px // 2
    return (inside[c::cell_px, c::cell_px][:h, :w] * mm_per_px,
            outside[c::cell_px, c::cell_px][:h, :w] * mm_per_px)


def judged_cells(depth_out: np.ndarray, mm_per_px: float, cell_px: int) -> np.ndarray:
    """Cells any part of which is near the body: half a cell diagonal + the dilation."""
    return depth_out <= BODY_DILATE_MM + 0.71 * cell_px * mm_per_px


def cell_geometry(body: np.ndarray, mm_per_px: float, cell_px: int, shape: tuple[int, int],
                  interior_min_mm: float = INTERIOR_MIN_MM):
    """Which cells are judged (``valid``) and which of them are interior, from the body mask."""
    depth_in, depth_out = cell_depth(body, mm_per_px, cell_px, shape)
    return judged_cells(depth_out, mm_per_px, cell_px), depth_in >= interior_min_mm


def self_similarity(z: np.ndarray, cells: np.ndarray, exclude: int = ANOMALY_EXCLUDE_CELLS) -> np.ndarray:
    """Each selected cell's distance to the most similar selected cell outside its neighbourhood.

    ``z``: D x h x w whitened cell features; ``cells``: h x w bool. Returns h x w (0 elsewhere).
    Fabric repeats itself (plain weave, dots, flowers, stripes), so every normal cell has a close
    twin somewhere on the same mask; a burn, a pen stroke or a glued-on label has none. This is
    PatchCore's nearest-neighbour distance with the mask itself as the memory bank.
    """
    out = np.zeros(cells.shape, np.float32)
    idx = np.flatnonzero(cells)
    n = len(idx)
    if n < 2:
        return out
    h, w = cells.shape
    rows, cols = np.divmod(idx, w)
    f = z.reshape(z.shape[0], -1)[:, idx].T.astype(np.float32)
    n2 = (f * f).sum(1)
    d2 = f @ f.T  # in place from here on: ~1500 x 1500 cells on a border-inclusive map
    d2 *= -2.0
    d2 += n2[:, None]
    d2 += n2[None, :]
    # Blank each cell's own neighbourhood: grid offsets -> compact indices (-1: not selected).
    pos = np.full(h * w, -1, np.int64)
    pos[idx] = np.arange(n)
    off = np.arange(-exclude, exclude + 1)
    rr = rows[:, None, None] + off[None, :, None]
    cc = cols[:, None, None] + off[None, None, :]
    inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    j = np.where(inside, pos[np.clip(rr, 0, h - 1) * w + np.clip(cc, 0, w - 1)], -1)
    i = np.broadcast_to(np.arange(n)[:, None, None], j.shape)
    near = j >= 0
    d2[i[near], j[near]] = np.inf
    best = d2.min(axis=1)
    out.ravel()[idx] = np.sqrt(np.clip(np.where(np.isfinite(best), best, 0.0), 0.0, None))
    return out


def fuse_evidence(logits: np.ndarray, similarity: np.ndarray, weights) -> np.ndarray:
    """C x h x w logits -> fused evidence: ``logit + weight * similarity`` for each cell's top code.

    Self-similarity says *that* a cell is unlike the rest of the fabric, the network says *what*
    it is: only the code the network ranks first at a cell gets the boost, so a hole (unusual, and
    a bit stain-like) does not turn into a stain finding as well.
    """
    fused = logits.copy()
    top = logits.argmax(axis=0)
    for ci, wgt in enumerate(weights):
        if wgt:
            fused[ci] += np.where(top == ci, wgt * similarity, 0.0).astype(fused.dtype)
    return fused


class DefectModel:
    """The loaded defect model: ``DefectModel.load()`` once, then ``predict(crop)`` per mask."""

    def __init__(self, session, path: Path, sha256: str, meta: dict[str, str], threads: int):
        self._session = session
        self.path = path
        self.sha256 = sha256
        self.threads = threads
        try:
            self.version: str = meta["version"]
            self.classes: tuple[str, ...] = tuple(json.loads(meta["classes"]))
            self.cell_px: int = int(meta["cell_px"])
            self.anomaly_threshold: float = float(meta["anomaly_threshold"])
            self.model_anomaly_threshold: float = self.anomaly_threshold
            self.probability_threshold: float = float(meta.get("probability_threshold", 0.5))
            self.anomaly_inset_mm: float = float(meta.get("anomaly_inset_mm", INTERIOR_MIN_MM))
            self.anomaly_exclude_cells: int = int(meta.get("anomaly_exclude_cells", ANOMALY_EXCLUDE_CELLS))
            # evidence = logit + weight x self-similarity distance (codes absent: the logit alone)
            self.fusion_weights: dict[str, float] = {
                c: float(v) for c, v in json.loads(meta.get("fusion_weights", "{}")).items()
            }
            self.fusion_inset_mm: float = float(meta.get("fusion_inset_mm", FUSION_INSET_MM))
            self.seam_band_mm: float = float(meta.get("seam_band_mm", SEAM_BAND_MM))
            # per-code thresholds (picked on held-out good masks); the default for any code missing
            per_code = json.loads(meta.get("probability_thresholds", "{}"))
            self.probability_thresholds: dict[str, float] = {
                c: float(per_code.get(c, self.probability_threshold)) for c in self.classes
            }
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"defect model {path}: metadata incomplete or invalid ({exc!r})") from exc
        unknown = [c for c in (*self.classes, *self.fusion_weights) if c not in DEFECT_CODES]
        if unknown:
            raise ModelError(f"defect model {path}: classes {unknown} are not station defect codes")
        self.metadata = dict(meta)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        threads: int = 1,
        anomaly_threshold: float | None = None,
    ) -> DefectModel:
        """Open the model once (default: the shipped file), check it and warm it up.

        ``anomaly_threshold`` overrides the model's default (the spec's
        ``appearance.anomaly_threshold`` or the station config), no retraining needed.
        Raises :class:`ModelError` with a clear message for a missing or corrupt file.
        """
        import onnxruntime as ort

        p = Path(path) if path is not None else DEFAULT_MODEL_PATH
        if not p.is_file():
            raise ModelError(
                f"defect model not found: {p}. Reinstall the package or point the station's "
                "model setting at a valid .onnx file (qc-station model info FILE checks one)."
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"defect model {p} is corrupt or not an ONNX model: {exc}") from exc
        outputs = [o.name for o in session.get_outputs()]
        missing = [o for o in REQUIRED_OUTPUTS if o not in outputs]
        if missing:
            raise ModelError(f"defect model {p} lacks outputs {missing} (has {outputs}): wrong model file")
        meta = session.get_modelmeta().custom_metadata_map
        model = cls(session, p, sha256_of(p), meta, threads)
        if anomaly_threshold is not None:
            model.anomaly_threshold = float(anomaly_threshold)
        try:  # warm-up: first run allocates; a broken graph fails here, not on the first mask
            model._run(np.zeros((1, 3, 8 * model.cell_px, 8 * model.cell_px), np.float32))
        except Exception as exc:
            raise ModelError(f"defect model {p} failed its warm-up inference: {exc}") from exc
        return model

    def with_anomaly_threshold(self, threshold: float | None) -> DefectModel:
        """Set the anomaly threshold (None restores the model's own); returns self."""
        self.anomaly_threshold = self.model_anomaly_threshold if threshold is None else float(threshold)
        return self

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = self._session.run(list(REQUIRED_OUTPUTS), {"image": x})
        return logits, feats

    def cell_maps(self, crop: MaskCrop) -> CellMaps:
        """Per-cell probabilities and anomaly distances on one crop.

        A code with a fusion weight gets ``sigmoid(logit + weight * similarity)``: a stain or a
        hole is something the network finds stain- or hole-like *and* the fabric does not repeat
        elsewhere on the mask, which tells a stain from a printed dot of the same colour.
        """
        logits, feats = self._run(prepare_input(crop.image, self.cell_px))
        h, w = logits.shape[2:]
        depth_in, depth_out = cell_depth(crop.body, crop.mm_per_px, self.cell_px, (h, w))
        valid = judged_cells(depth_out, crop.mm_per_px, self.cell_px)
        interior = valid & (depth_in >= self.anomaly_inset_mm)
        amap = self_similarity(feats[0], interior, self.anomaly_exclude_cells)
        similar_cells = valid & (depth_in >= self.fusion_inset_mm)
        similarity = self_similarity(feats[0], similar_cells, self.anomaly_exclude_cells)
        # Seam codes only where the perimeter seam can be: garment seams and printed dashed lines
        # deep inside are not open seams (on the real garment photos they were 161 of 185 findings).
        seam = np.array([c in SEAM_CODES for c in self.classes])[:, None, None]
        logits = np.where(seam & (depth_in > self.seam_band_mm)[None], np.float32(OFF_SEAM_LOGIT), logits[0])
        fused = fuse_evidence(logits, similarity, [self.fusion_weights.get(c, 0.0) for c in self.classes])
        probs = (1.0 / (1.0 + np.exp(-fused))) * valid[None]
        return CellMaps(probs, amap, valid, interior, self.cell_px, logits * valid[None], similarity,
                        similar_cells)

    def predict(self, crop: MaskCrop) -> DefectPrediction:
        """Findings (code, probability, box in mask-frame mm) and the mask's anomaly score."""
        return self.predict_from_maps(crop, self.cell_maps(crop))

    def predict_from_maps(self, crop: MaskCrop, maps: CellMaps) -> DefectPrediction:
        """:meth:`predict` on cell maps already computed for ``crop`` (no second inference)."""
        findings: list[Finding] = []
        sub_px = self.cell_px / UPSAMPLE  # box resolution: a quarter cell (0.8 mm at 0.2 mm/px)
        for ci, code in enumerate(self.classes):
            thr = self.probability_thresholds[code]
            if maps.probs[ci].max() < thr:
                continue
            h, w = maps.probs[ci].shape
            # Cell centres interpolated to quarter cells: boxes follow the defect, not the grid.
            up = cv2.resize(maps.probs[ci], (w * UPSAMPLE, h * UPSAMPLE), interpolation=cv2.INTER_LINEAR)
            # Interpolation never reaches a lone cell's own value (its neighbours pull it down), so
            # a cell above the threshold is hot as a whole as well (v0.3.0 lost most findings of
            # one or two cells to this before it was fixed).
            cell = cv2.resize(maps.probs[ci], (w * UPSAMPLE, h * UPSAMPLE), interpolation=cv2.INTER_NEAREST)
            hot = ((up >= thr) | (cell >= thr)).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
            for k in range(1, n):
                x, y, bw, bh = (int(v) for v in stats[k, :4])
                region = labels == k
                if code == "hole" and _has_twins(maps, region):
                    continue
                p = float(cell[region].max())
                x0, y0 = crop.to_mm(x * sub_px, y * sub_px)
                findings.append(
                    Finding(
                        code=code,
                        probability=round(min(max(p, 0.0), 1.0), 4),
                        box_mm=(round(x0, 2), round(y0, 2), round(bw * sub_px * crop.mm_per_px, 2),
                                round(bh * sub_px * crop.mm_per_px, 2)),
                    )
                )
        findings.sort(key=lambda f: -f.probability)
        score = float(maps.anomaly.max()) if maps.interior.any() else 0.0
        box = None
        if score > 0:  # where: the most unusual cell
            r, c = np.unravel_index(int(maps.anomaly.argmax()), maps.anomaly.shape)
            x0, y0 = crop.to_mm(c * self.cell_px, r * self.cell_px)
            side = round(self.cell_px * crop.mm_per_px, 2)
            box = (round(x0, 2), round(y0, 2), side, side)
        return DefectPrediction(tuple(findings), round(score, 4), self.anomaly_threshold, box)
