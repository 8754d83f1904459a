"""Seam analysis on mask crops drawn here, independently of the simulator.

The drawing (``draw_crop``) is deliberately a different generator from ``qc_station.sim``: plain,
dotted, striped, checked and floral fabrics, darker or lighter thread, pleat folds, ear-loop tabs,
blur, noise and JPEG, so the seam tracker is not tuned to one renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from qc_station.spec import load_spec
from qc_station.vision.seam import analyze_seam
from qc_station.vision.types import MaskCrop

SS = 1  # drawn at the crop scale; lines are anti-aliased with sub-pixel precision


@dataclass(frozen=True)
class DrawnTruth:
    stitch_length_mm: float
    distance_mm: float
    skipped_boxes: tuple[tuple[float, float, float, float], ...]
    open_boxes: tuple[tuple[float, float, float, float], ...]


def _fabric(rng, h, w, px_mm, kind, base, ink):
    """A fabric texture of ``kind`` at the supersampled resolution (h, w) px, px_mm px per mm."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if kind == "dots":
        step = rng.uniform(4, 9) * px_mm
        r = rng.uniform(0.6, 1.8) * px_mm
        for yy in np.arange(rng.uniform(0, step), h, step):
            off = step / 2 if int(yy / step) % 2 else 0
            for xx in np.arange(off, w, step):
                cv2.circle(img, (int(xx), int(yy)), int(r), ink, -1, cv2.LINE_AA)
    elif kind == "stripes":
        period = rng.uniform(3, 12) * px_mm
        width = rng.uniform(0.3, 0.5) * period
        ang = rng.choice([0.0, 90.0, 45.0, rng.uniform(0, 180)])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = np.cos(np.radians(ang)) * yy + np.sin(np.radians(ang)) * xx
        img[(t % period) < width] = ink
    elif kind == "checks":
        period = rng.uniform(4, 14) * px_mm
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = ((yy % period) < period / 2).astype(np.float32)
        b = ((xx % period) < period / 2).astype(np.float32)
        m = (0.5 * (a + b))[..., None]
        img = img * (1 - m) + np.asarray(ink, np.float32) * m
    elif kind == "floral":
        for _ in range(int(h * w / (px_mm * px_mm) / 120)):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            col = (np.asarray(ink) * rng.uniform(0.6, 1.1)).tolist()
            for k in range(5):
                a = k * 2 * np.pi / 5 + rng.uniform(0, 1)
                px = int(cx + np.cos(a) * 2.2 * px_mm)
                py = int(cy + np.sin(a) * 2.2 * px_mm)
                cv2.ellipse(img, (px, py), (int(1.8 * px_mm), int(1.0 * px_mm)), np.degrees(a), 0, 360,
                            col, -1, cv2.LINE_AA)
            cv2.circle(img, (int(cx), int(cy)), int(0.9 * px_mm), (30, 200, 230), -1, cv2.LINE_AA)
    # weave: fine noise that survives the downsampling a little
    img += rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    return img


def draw_crop(seed: int, *, fabric: str = "plain", thread: str = "dark", stitch_mm: float = 2.5,
              distance_mm: float = 5.0, skip_stitches: int = 0, open_mm: float = 0.0,
              residual_deg: float = 0.0, mm_per_px: float = 0.2, blur_px: float = 0.7,
              noise: float = 3.0, jpeg: int = 80, pleats: int = 3, loops: bool = True):
    """Draw a rectified mask crop with a dashed top-stitch; returns (MaskCrop, DrawnTruth)."""
    rng = np.random.default_rng(seed)
    W, H, margin = 180.0 + rng.uniform(-3, 3), 95.0 + rng.uniform(-3, 3), 10.0
    pm = SS / mm_per_px  # supersampled px per mm
    w_px, h_px = int((W + 2 * margin) / mm_per_px) * SS, int((H + 2 * margin) / mm_per_px) * SS

    def P(x, y):  # mask mm -> supersampled px (pixel centres as in MaskCrop)
        return (x + margin) * pm + (SS - 1) / 2, (y + margin) * pm + (SS - 1) / 2

    tray = np.asarray(rng.choice([(45, 45, 48), (25, 25, 25), (60, 110, 50), (170, 170, 165)]), np.float32)
    base = rng.uniform(60, 220, 3)
    ink = np.clip(base + rng.choice([-1, 1]) * rng.uniform(40, 90, 3), 0, 255)
    if abs(base.mean() - tray.mean()) < 40:
        tray = np.asarray((25, 25, 25) if base.mean() > 110 else (170, 170, 165), np.float32)
    img = np.empty((h_px, w_px, 3), np.float32)
    img[:] = tray
    fab = _fabric(rng, h_px, w_px, pm, fabric, base.tolist(), ink.tolist())
    body = np.zeros((h_px, w_px), np.uint8)
    c = np.array([P(0, 0), P(W, 0), P(W, H), P(0, H)], np.float64)
    ctr = c.mean(axis=0)
    rot = cv2.getRotationMatrix2D(tuple(ctr), residual_deg, 1.0)
    cr = (np.hstack([c, np.ones((4, 1))]) @ rot.T)
    cv2.fillPoly(body, [np.round(cr * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    # open seam: a slit where the two layers separate at the edge (tray shows through)
    sides = ["top", "bottom", "left", "right"]
    open_boxes, open_span = [], None
    if open_mm > 0:
        side = sides[rng.integers(0, 4)]
        length = W if side in ("top", "bottom") else H
        u0 = rng.uniform(20, length - 20 - open_mm)
        open_span = (side, u0, u0 + open_mm)
        slit_d = 1.2
        if side == "top":
            box = (u0, 0.0, open_mm, distance_mm + 1.0)
            poly = [(u0, 0), (u0 + open_mm, 0), (u0 + open_mm / 2, slit_d)]
        elif side == "bottom":
            box = (u0, H - distance_mm - 1.0, open_mm, distance_mm + 1.0)
            poly = [(u0, H), (u0 + open_mm, H), (u0 + open_mm / 2, H - slit_d)]
        elif side == "left":
            box = (0.0, u0, distance_mm + 1.0, open_mm)
            poly = [(0, u0), (0, u0 + open_mm), (slit_d, u0 + open_mm / 2)]
        else:
            box = (W - distance_mm - 1.0, u0, distance_mm + 1.0, open_mm)
            poly = [(W, u0), (W, u0 + open_mm), (W - slit_d, u0 + open_mm / 2)]
        open_boxes.append(box)
        pts = np.array([P(*p) for p in poly])
        pts = np.hstack([pts, np.ones((3, 1))]) @ rot.T
        cv2.fillPoly(body, [np.round(pts * 16).astype(np.int32)], 0, cv2.LINE_AA, shift=4)
    m = (body.astype(np.float32) / 255)[..., None]
    img = img * (1 - m) + fab * m
    # pleat folds: horizontal shading bands across the whole width
    for k in range(pleats):
        y = H * (k + 1) / (pleats + 1) + rng.uniform(-4, 4)
        _, py = P(0, y)
        yy = np.arange(h_px, dtype=np.float32)[:, None]
        shade = (1.0 - 0.25 * np.exp(-((yy - py) / (1.2 * pm)) ** 2)
                 + 0.12 * np.exp(-((yy - py + 2.5 * pm) / (1.5 * pm)) ** 2))
        img = img * (1 - m + m * shade[..., None])
    # the top-stitch: dashes along the rectangle at distance_mm
    d = distance_mm
    thread_col = np.clip(base + (-1 if thread == "dark" else 1) * rng.uniform(70, 110), 0, 255)
    thread_col = np.minimum(thread_col, base - 60) if thread == "dark" else np.maximum(thread_col, base + 60)
    thread_col = np.clip(thread_col, 0, 255).tolist()
    gap_mm = rng.uniform(0.2, 0.5)  # needle hole: the thread dives into the fabric
    tw = max(1, round(0.4 * pm))  # 0.4 mm thread
    path = [((d, d), (W - d, d), "top"), ((W - d, d), (W - d, H - d), "right"),
            ((W - d, H - d), (d, H - d), "bottom"), ((d, H - d), (d, d), "left")]
    skipped_boxes = []
    skip_side = sides[rng.integers(0, 4)] if skip_stitches else None
    for (a, b, side) in path:
        a, b = np.asarray(a), np.asarray(b)
        length = float(np.linalg.norm(b - a))
        t = (b - a) / length
        n = int(length / stitch_mm)
        i_skip = int(rng.integers(5, n - 5 - skip_stitches)) if side == skip_side else -1
        for i in range(n):
            if skip_side == side and i_skip <= i < i_skip + skip_stitches:
                continue
            # round caps of the drawn line reach tw/2 beyond its ends: shorten the dash by them
            s0 = i * stitch_mm + gap_mm / 2 + 0.5 * tw / pm
            s1 = (i + 1) * stitch_mm - gap_mm / 2 - 0.5 * tw / pm
            if open_span and open_span[0] == side:
                pos = a + t * (s0 + s1) / 2
                u = pos[0] if side in ("top", "bottom") else pos[1]
                if open_span[1] - 1 <= u <= open_span[2] + 1:
                    continue
            p0 = np.array([*P(*(a + t * s0)), 1.0]) @ rot.T
            p1 = np.array([*P(*(a + t * s1)), 1.0]) @ rot.T
            cv2.line(img, tuple(np.round(p0 * 16).astype(int)), tuple(np.round(p1 * 16).astype(int)),
                     thread_col, tw, cv2.LINE_AA, shift=4)
        if side == skip_side:
            g0 = a + t * (i_skip * stitch_mm)
            g1 = a + t * ((i_skip + skip_stitches) * stitch_mm)
            lo, hi = np.minimum(g0, g1), np.maximum(g0, g1)
            skipped_boxes.append((lo[0] - 1, lo[1] - 1, hi[0] - lo[0] + 2, hi[1] - lo[1] + 2))
    # ear-loop tabs at the four corners: a band of elastic sewn over the corner region
    if loops:
        loop_col = rng.choice([(240, 240, 240), (20, 20, 20), tuple(base.tolist())])
        for (x, y) in ((0, 6), (0, H - 10), (W - 4, 6), (W - 4, H - 10)):
            p0, p1 = P(x, y), P(x + 4, y + 4)
            cv2.rectangle(img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), loop_col, -1)
    body_small = body > 127
    if blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_px)
    img = img + rng.normal(0, noise, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if jpeg:
        _ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    crop = MaskCrop(image=img, body=body_small, mm_per_px=mm_per_px, origin_mm=(-margin, -margin),
                    width_mm=W, height_mm=H)
    return crop, DrawnTruth(stitch_mm, distance_mm, tuple(skipped_boxes), tuple(open_boxes))


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


SPEC = load_spec()

CASES = [
    (0, "plain", "dark", 2.5, 5.0),
    (1, "dots", "light", 2.2, 4.0),
    (2, "stripes", "dark", 2.8, 6.0),
    (3, "checks", "light", 2.0, 5.0),
    (4, "floral", "dark", 3.0, 8.0),
    (5, "plain", "light", 2.4, 3.5),
]


@pytest.mark.parametrize(("seed", "fabric", "thread", "stitch_mm", "distance_mm"), CASES)
def test_good_mask_measures_stitch_and_distance(seed, fabric, thread, stitch_mm, distance_mm):
    crop, _truth = draw_crop(seed, fabric=fabric, thread=thread, stitch_mm=stitch_mm, distance_mm=distance_mm)
    res = analyze_seam(crop, SPEC)
    assert res.found
    assert abs(res.stitch_length_mm - stitch_mm) <= 0.25, res
    assert abs(res.distance_mm - distance_mm) <= 0.4, res
    assert res.coverage >= 0.9, res
    assert res.skipped == () and res.open_seams == (), res


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_skipped_stitch_found_at_its_place(seed):
    fabric = ["plain", "dots", "checks"][seed % 3]
    crop, truth = draw_crop(seed, fabric=fabric, skip_stitches=3, thread=["dark", "light"][seed % 2])
    res = analyze_seam(crop, SPEC)
    assert len(res.skipped) >= 1, res
    assert res.open_seams == (), res
    assert any(_overlap(f.box_mm, truth.skipped_boxes[0]) for f in res.skipped), (res.skipped, truth)
    assert all(f.code == "skipped_stitch" and f.source == "seam" for f in res.skipped)


@pytest.mark.parametrize("seed", [20, 21])
def test_open_seam_found_at_its_place(seed):
    crop, truth = draw_crop(seed, fabric=["stripes", "plain"][seed % 2], open_mm=14.0)
    res = analyze_seam(crop, SPEC)
    assert len(res.open_seams) >= 1, res
    assert any(_overlap(f.box_mm, truth.open_boxes[0]) for f in res.open_seams), (res.open_seams, truth)


def test_residual_rotation_and_printed_fabric():
    crop, _truth = draw_crop(30, fabric="floral", residual_deg=0.6, stitch_mm=2.6)
    res = analyze_seam(crop, SPEC)
    assert abs(res.stitch_length_mm - 2.6) <= 0.25, res
    assert abs(res.distance_mm - 5.0) <= 0.5, res
    assert res.skipped == () and res.open_seams == ()
