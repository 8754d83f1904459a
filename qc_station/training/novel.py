"""Defect kinds the classifier never trains on, painted onto clean renders (anomaly benchmark).

The anomaly score must flag what no one rendered for training. These kinds are used only by the
benchmark and never by training: a loose thread lying on the mask, a burn mark, a tear (slit),
a pen stroke and a glued-on foreign patch (label / tape). Each returns the image and its box in
mask-frame mm.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc_station.vision.types import MaskCrop

NOVEL_KINDS = ("loose_thread", "burn", "tear", "pen_mark", "foreign_patch")


def _spot(crop: MaskCrop, rng: np.random.Generator, inset_mm: float = 12.0) -> tuple[float, float]:
    """A random point on the body at least ``inset_mm`` from the edge (crop px)."""
    x = rng.uniform(inset_mm, crop.width_mm - inset_mm)
    y = rng.uniform(inset_mm, crop.height_mm - inset_mm)
    return crop.to_px(x, y)


def paint_novel(crop: MaskCrop, kind: str, rng: np.random.Generator) -> tuple[MaskCrop, tuple]:
    """A copy of ``crop`` with one defect of ``kind`` painted on; (new crop, box_mm)."""
    img = crop.image.astype(np.float32)
    s = 1.0 / crop.mm_per_px
    cx, cy = _spot(crop, rng)
    if kind == "loose_thread":
        n = 12
        length = rng.uniform(10, 30) * s
        ang = rng.uniform(0, np.pi)
        t = np.linspace(-0.5, 0.5, n)
        wob = np.cumsum(rng.normal(0, 0.15, n))
        pts = np.stack([cx + length * t * np.cos(ang + wob), cy + length * t * np.sin(ang + wob)], 1)
        colour = rng.integers(0, 255, 3).tolist()
        cv2.polylines(img, [pts.astype(np.int32)], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    elif kind == "burn":
        r = rng.uniform(2, 5) * s
        cv2.circle(img, (int(cx), int(cy)), int(r), (20, 40, 70), int(max(2, r * 0.3)), cv2.LINE_AA)
        cv2.circle(img, (int(cx), int(cy)), int(r * 0.6), (40, 70, 110), -1, cv2.LINE_AA)
    elif kind == "tear":
        length = rng.uniform(5, 12) * s
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        a, b = (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1]))
        cv2.line(img, a, b, (15, 15, 15), int(rng.integers(3, 6)), cv2.LINE_AA)
        cv2.line(img, a, b, (50, 50, 50), 1, cv2.LINE_AA)
    elif kind == "pen_mark":
        length = rng.uniform(8, 20) * s
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * length / 2
        colour = [(160, 40, 20), (20, 20, 160), (30, 30, 30)][int(rng.integers(3))]
        a, b = (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1]))
        cv2.line(img, a, b, colour, 3, cv2.LINE_AA)
    elif kind == "foreign_patch":
        w, h = rng.uniform(5, 12) * s, rng.uniform(4, 9) * s
        box = cv2.boxPoints(((cx, cy), (w, h), rng.uniform(0, 180))).astype(np.int32)
        cv2.fillPoly(img, [box], rng.integers(150, 255, 3).tolist(), cv2.LINE_AA)
        cv2.polylines(img, [box], True, (90, 90, 90), 1, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown novel kind {kind!r}")
    r_mm = 16.0
    x_mm, y_mm = crop.to_mm(cx, cy)
    out = MaskCrop(
        np.clip(img, 0, 255).astype(np.uint8), crop.body, crop.mm_per_px, crop.origin_mm, crop.width_mm,
        crop.height_mm,
    )
    return out, (x_mm - r_mm / 2, y_mm - r_mm / 2, r_mm, r_mm)
