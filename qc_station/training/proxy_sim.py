"""A crude stand-in for ``qc_station.sim``'s mask-plane renderer (same call signature).

Used only when the real simulator is not installed yet (the training pipeline, its tests and
the export can then be built and exercised); the shipped model says in its metadata which
renderer trained it. Flat rectangle, fabric print, pleat shading, perimeter top-stitch, and the
four defect kinds with exact boxes in the mask frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.sim.truth import DefectTruth, MaskTruth

TRAYS = ((45, 45, 45), (20, 20, 20), (40, 90, 40), (170, 170, 170))


@dataclass(frozen=True)
class ProxyParams:
    width_mm: float
    height_mm: float
    defects: tuple[str, ...]
    seed: int


def random_mask_params(rng: np.random.Generator, defects: tuple[str, ...] = ()) -> ProxyParams:
    """Random mask size and the defects to draw."""
    return ProxyParams(rng.uniform(175, 185), rng.uniform(90, 100), tuple(defects), int(rng.integers(2**31)))


def _fabric(rng, h, w):
    base = rng.integers(30, 235, 3).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:h, 0:w]
    alt = rng.integers(0, 255, 3).astype(np.float32)
    if kind == 1:  # dots
        p = rng.uniform(15, 40)
        m = ((xx % p - p / 2) ** 2 + (yy % p - p / 2) ** 2) < (p * rng.uniform(0.1, 0.25)) ** 2
        img[m] = alt
    elif kind == 2:  # stripes
        p = rng.uniform(20, 60)
        img[(xx + yy * rng.uniform(-1, 1)) % p < p / 2] = alt
    elif kind == 3:  # checks
        p = rng.uniform(20, 60)
        m = ((xx // p + yy // p) % 2).astype(bool)
        img[m] = 0.6 * img[m] + 0.4 * alt
    elif kind == 4:  # blotchy floral stand-in
        for _ in range(int(h * w / 4000)):
            c = (int(rng.integers(w)), int(rng.integers(h)))
            cv2.circle(img, c, int(rng.integers(4, 14)), alt.tolist(), -1)
    weave = rng.normal(0, rng.uniform(3, 10), (h, w, 1)).astype(np.float32)
    return img + weave


def render_mask_plane(params: ProxyParams, mm_per_px: float = 0.2, margin_mm: float = 10.0, rng=None):
    """(BGR uint8 image in the mask frame with a margin, MaskTruth with defect boxes in mm)."""
    rng = np.random.default_rng(params.seed) if rng is None else rng
    s = 1.0 / mm_per_px
    W = round((params.width_mm + 2 * margin_mm) * s)
    H = round((params.height_mm + 2 * margin_mm) * s)
    tray = np.array(TRAYS[rng.integers(len(TRAYS))], np.float32)
    img = np.empty((H, W, 3), np.float32)
    img[:] = tray
    img += rng.normal(0, 4, (H, W, 1))
    x0, y0 = int(margin_mm * s), int(margin_mm * s)
    x1, y1 = int((margin_mm + params.width_mm) * s), int((margin_mm + params.height_mm) * s)
    fab = _fabric(rng, y1 - y0, x1 - x0)
    for k in range(1, 4):  # pleat shading bands
        yk = int((y1 - y0) * k / 4)
        fab[max(0, yk - 6) : yk + 2] *= 0.75
    img[y0:y1, x0:x1] = fab
    thread = rng.integers(0, 255, 3).tolist()
    d = rng.uniform(4, 6) * s
    stitch = rng.uniform(2.2, 2.8) * s
    truths: list[DefectTruth] = []

    def mm_box(px0, py0, px1, py1):
        return (px0 / s - margin_mm, py0 / s - margin_mm, (px1 - px0) / s, (py1 - py0) / s)

    # seam path along the top edge, as segments; defects cut gaps into it
    gaps = []
    for code in params.defects:
        if code in ("skipped_stitch", "open_seam"):
            length = stitch * (rng.uniform(3, 6) if code == "skipped_stitch" else rng.uniform(4, 10))
            gx = rng.uniform(x0 + 30 * s, x1 - 30 * s - length)
            gaps.append((gx, gx + length))
            by = y0 + d
            if code == "open_seam":
                slit = np.array([[gx, y0], [gx + length, y0], [gx + length, y0 + 3], [gx, y0 + 3]], np.int32)
                cv2.fillPoly(img, [slit], tray.tolist())
                truths.append(DefectTruth(code, mm_box(gx, y0 - 2, gx + length, by + 4), length / s))
            else:
                truths.append(DefectTruth(code, mm_box(gx, by - 4, gx + length, by + 4), length / s))
    for yl in (y0 + d, y1 - d):
        x = x0 + d
        while x + stitch * 0.8 < x1 - d:
            if not any(a <= x <= b or a <= x + stitch <= b for a, b in gaps if yl == y0 + d):
                cv2.line(img, (int(x), int(yl)), (int(x + stitch * 0.8), int(yl)), thread, 2)
            x += stitch
    for code in params.defects:
        cx, cy = rng.uniform(x0 + 15 * s, x1 - 15 * s), rng.uniform(y0 + 12 * s, y1 - 12 * s)
        if code == "stain":
            r = rng.uniform(1.5, 5) * s
            layer = img.copy()
            axes = (int(r), int(r * rng.uniform(0.6, 1)))
            cv2.ellipse(layer, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360,
                        rng.integers(0, 200, 3).tolist(), -1)
            a = rng.uniform(0.35, 0.8)
            img = (1 - a) * img + a * layer
            truths.append(DefectTruth(code, mm_box(cx - r, cy - r, cx + r, cy + r), 2 * r / s))
        elif code == "hole":
            r = rng.uniform(0.8, 2.5) * s
            cv2.circle(img, (int(cx), int(cy)), int(r + 1), (20, 20, 20), -1)
            cv2.circle(img, (int(cx), int(cy)), int(r), tray.tolist(), -1)
            truths.append(DefectTruth(code, mm_box(cx - r, cy - r, cx + r, cy + r), 2 * r / s))
    img = cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), rng.uniform(0.5, 1.0))
    truth = MaskTruth(params.width_mm, params.height_mm, (0.0, 0.0), 0.0, 3, 1, 1, stitch / s, d / s,
                      tuple(truths))
    return img.astype(np.uint8), truth
