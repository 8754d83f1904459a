"""Evaluation on the real image sets in ``../shared/realdata`` (never used for training).

None of the sets shows a whole flat mask, so each image is treated as a crop that is all mask
body, at its native resolution (their scale is unknown; the stitch close-ups are roughly at
the station's 0.2 mm/px). What is reported:

- hsst_fabric_stain (26 crops, stain masks, all with a stain) and garment_dirtymarks_yolo
  (71 photos, dirt boxes): per labelled region, found or not (a ``stain`` finding or any
  finding overlapping it), precision of the findings (share that overlap a labelled region),
  images with anything flagged.
Images are reflect-padded so their border cells see fabric rather than padding.

- stitchingnet_samples (114 seam close-ups, normal + 10 defect types): per type, the share
  flagged by a finding (and which codes) or by the anomaly threshold; the false-flag share on
  normal seams; anomaly AUROC normal vs defective. The seam crosses the middle of a close-up, so
  the seam band (seam codes only near the outline) is switched off for this set.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc_station.training.bench_defects import auroc
from qc_station.vision.defects import DefectModel
from qc_station.vision.types import MaskCrop

MM_PER_PX = 0.2


PAD_PX = 64  # reflected fabric around a real image, so its border cells see fabric, not padding


@dataclass(frozen=True)
class RealPrediction:
    findings: tuple
    anomaly_score: float


def crop_of(image: np.ndarray) -> MaskCrop:
    """A real image, reflect-padded, as an all-body crop; mm origin at the image's top-left."""
    padded = cv2.copyMakeBorder(image, PAD_PX, PAD_PX, PAD_PX, PAD_PX, cv2.BORDER_REFLECT_101)
    h, w = padded.shape[:2]
    o = -PAD_PX * MM_PER_PX
    return MaskCrop(padded, np.ones((h, w), bool), MM_PER_PX, (o, o), w * MM_PER_PX, h * MM_PER_PX)


def predict_real(model: DefectModel, image: np.ndarray) -> RealPrediction:
    """Findings touching the image itself, and the largest anomaly distance inside it."""
    crop = crop_of(image)
    maps = model.cell_maps(crop)
    pred = model.predict_from_maps(crop, maps)
    h_mm, w_mm = image.shape[0] * MM_PER_PX, image.shape[1] * MM_PER_PX
    inside = tuple(f for f in pred.findings
                   if f.box_mm[0] < w_mm and f.box_mm[1] < h_mm and f.box_mm[0] + f.box_mm[2] > 0
                   and f.box_mm[1] + f.box_mm[3] > 0)
    c = model.cell_px
    r0, r1 = PAD_PX // c, (PAD_PX + image.shape[0]) // c
    c0, c1 = PAD_PX // c, (PAD_PX + image.shape[1]) // c
    return RealPrediction(inside, float(maps.anomaly[r0:r1, c0:c1].max()))


def _hits(box, regions, tol):
    x, y, w, h = box
    return [i for i, (rx, ry, rw, rh) in enumerate(regions)
            if x < rx + rw + tol and rx - tol < x + w and y < ry + rh + tol and ry - tol < y + h]


def _score_regions(model, items, name, echo):
    """items: (image, regions_mm). Region recall (stain / any code), finding precision."""
    n_reg = found_stain = found_any = 0
    n_find = n_find_ok = 0
    flagged = 0
    codes = Counter()
    tol = model.cell_px * MM_PER_PX
    scores = []
    for image, regions in items:
        pred = predict_real(model, image)
        scores.append(pred.anomaly_score)
        flagged += bool(pred.findings) or pred.anomaly_score > model.anomaly_threshold
        n_reg += len(regions)
        for i in range(len(regions)):
            hit = [f for f in pred.findings if i in _hits(f.box_mm, regions, tol)]
            found_any += bool(hit)
            found_stain += any(f.code == "stain" for f in hit)
        for f in pred.findings:
            codes[f.code] += 1
            n_find += 1
            n_find_ok += bool(_hits(f.box_mm, regions, tol))
    echo(f"{name}: {len(items)} images, {n_reg} labelled regions")
    echo(f"  region recall: as stain {found_stain}/{n_reg} = {found_stain / max(1, n_reg):.2f}; "
         f"any code {found_any}/{n_reg} = {found_any / max(1, n_reg):.2f}")
    echo(f"  finding precision: {n_find_ok}/{n_find} = {n_find_ok / max(1, n_find):.2f}; codes {dict(codes)}")
    echo(f"  images flagged (finding or anomaly > {model.anomaly_threshold:.2f}): {flagged}/{len(items)}; "
         f"anomaly score median {np.median(scores):.2f}")
    return {"regions": n_reg, "recall_stain": found_stain / max(1, n_reg),
            "recall_any": found_any / max(1, n_reg), "precision": n_find_ok / max(1, n_find),
            "flagged": flagged / max(1, len(items))}


def hsst_items(root: Path):
    for img_path in sorted((root / "images").glob("*.jpg")):
        image = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        ann = cv2.imread(str(root / "annotations" / (img_path.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        n, _, stats, _ = cv2.connectedComponentsWithStats((ann > 127).astype(np.uint8))
        regions = [tuple(float(v) * MM_PER_PX for v in stats[k, :4])
                   for k in range(1, n) if stats[k, 4] >= 20]
        yield image, regions


def garment_items(root: Path):
    for img_path in sorted((root / "train" / "images").glob("*.jpg")):
        image = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        h, w = image.shape[:2]
        regions = []
        lab = root / "train" / "labels" / (img_path.stem + ".txt")
        if lab.exists():
            for line in lab.read_text().split("\n"):
                parts = line.split()
                if len(parts) == 5:
                    cx, cy, bw, bh = (float(v) for v in parts[1:])
                    regions.append(((cx - bw / 2) * w * MM_PER_PX, (cy - bh / 2) * h * MM_PER_PX,
                                    bw * w * MM_PER_PX, bh * h * MM_PER_PX))
        yield image, regions


def stitching(model, root: Path, echo):
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    per = defaultdict(lambda: [0, 0, 0, Counter()])  # n, by finding, by anomaly, codes
    normal_scores, defect_scores = [], []
    # The seam runs through the middle of a close-up and there is no outline to measure the seam
    # band from: seam codes are judged everywhere here (at the station only near the outline).
    band, model.seam_band_mm = model.seam_band_mm, float("inf")
    try:
        preds = [predict_real(model, cv2.imread(str(root / row["image"]), cv2.IMREAD_COLOR)) for row in rows]
    finally:
        model.seam_band_mm = band
    for row, pred in zip(rows, preds, strict=True):
        s = per[row["class_name"]]
        s[0] += 1
        s[1] += bool(pred.findings)
        s[2] += pred.anomaly_score > model.anomaly_threshold
        s[3].update(f.code for f in pred.findings)
        (normal_scores if row["class_name"] == "Normal" else defect_scores).append(pred.anomaly_score)
    echo(f"stitchingnet_samples: {len(rows)} seam close-ups (224 px)")
    echo(f"  {'class':<26}{'n':>4}{'finding':>9}{'anomaly':>9}  codes")
    for name, (n, f, a, codes) in sorted(per.items()):
        echo(f"  {name:<26}{n:>4}{f / n:>9.2f}{a / n:>9.2f}  {dict(codes)}")
    au = auroc(normal_scores, defect_scores)
    echo(f"  anomaly AUROC normal vs defective: {au:.3f}")
    return {"auroc": au}


def evaluate_all(realdata: Path, model_path: Path | None = None, echo=print) -> dict:
    """Run every real set that is present; print and return the figures."""
    model = DefectModel.load(model_path)
    echo(f"model {model.path.name} sha256 {model.sha256[:16]}... threshold {model.anomaly_threshold:.2f}")
    out = {}
    if (realdata / "hsst_fabric_stain").is_dir():
        items = list(hsst_items(realdata / "hsst_fabric_stain"))
        out["hsst"] = _score_regions(model, items, "hsst_fabric_stain", echo)
    if (realdata / "garment_dirtymarks_yolo").is_dir():
        out["garment"] = _score_regions(
            model, list(garment_items(realdata / "garment_dirtymarks_yolo")), "garment_dirtymarks_yolo", echo
        )
    if (realdata / "stitchingnet_samples").is_dir():
        out["stitching"] = stitching(model, realdata / "stitchingnet_samples", echo)
    return out
