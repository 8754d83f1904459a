"""Vision stages on their own: rectification, blur score, pleat selection, loop crossings."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from qc_station.calibration import bundled_sim_calibration
from qc_station.vision import quality as q
from qc_station.vision.geometry import CropGrid, MaskPose
from qc_station.vision.loops import _crossings, _loop_pixels
from qc_station.vision.outline import EdgeProfiles, fit_outline
from qc_station.vision.pleats import select_folds
from qc_station.vision.rectify import build_tray_view, tray_view


@pytest.fixture(scope="module")
def cal():
    return bundled_sim_calibration()


def _project(cal, xy: np.ndarray) -> np.ndarray:
    obj = np.hstack([xy, np.zeros((len(xy), 1))])
    px, _ = cv2.projectPoints(obj, cal.rvec, cal.tvec, cal.K, cal.dist)
    return px.reshape(-1, 2)


def test_remap_tables_are_exact_projections_and_cover_the_view(cal):
    view = tray_view(cal, 1.0)
    assert tray_view(cal, 1.0) is view  # cached per (calibration id, scale)
    rows, cols = np.nonzero(view.valid)
    pick = np.random.default_rng(0).choice(len(rows), 500, replace=False)
    nodes = np.stack([cols[pick], rows[pick]], 1)
    expect = _project(cal, view.px_to_tray(nodes))
    assert np.abs(view.map_xy[rows[pick], cols[pick]] - expect).max() < 1e-3
    # the image corners are seen: their tray points lie inside the view
    w, h = cal.image_size
    px = np.array([[[2.0, 2.0]], [[w - 3.0, h - 3.0]]])
    corners = cv2.undistortPoints(px, cal.K, cal.dist).reshape(-1, 2)
    rot, _ = cv2.Rodrigues(cal.rvec)
    centre = (-rot.T @ cal.tvec).ravel()
    for n in corners:
        ray = rot.T @ np.array([n[0], n[1], 1.0])
        p = centre + ray * (-centre[2] / ray[2])
        c, r = view.tray_to_px(p[:2])
        assert 0 <= c < view.size_px[0] and 0 <= r < view.size_px[1]
    assert np.allclose(view.tray_to_px(view.px_to_tray(np.array([12.5, 40.25]))), [12.5, 40.25])


def test_interpolated_maps_agree_with_projectpoints(cal):
    view = tray_view(cal, 0.25)  # the pipeline's sampling tables
    rng = np.random.default_rng(1)
    lo = np.asarray(view.origin_mm) + 40
    hi = np.asarray(view.origin_mm) + np.asarray(view.size_px) * view.mm_per_px - 40
    pts = rng.uniform(lo, hi, (2000, 2)).astype(np.float32)
    maps = view.camera_maps(pts[None, :, 0], pts[None, :, 1])[0]
    err = np.linalg.norm(maps - _project(cal, pts.astype(np.float64)), axis=1)
    assert err.mean() < 0.025 and err.max() < 0.05  # px; cv2.remap's 1/32-node grid is the limit


def test_rectified_square_is_metric(cal):
    """A 40 mm square drawn on the tray comes out 40 mm wide in a rectified crop."""
    w, h = cal.image_size
    view = build_tray_view(cal, 0.25)
    pose = MaskPose((100.0, 75.0), 8.0, 40.0, 40.0)
    # paint the square into a camera image by inverse mapping: camera pixel -> tray -> inside?
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    sub = np.stack([gx[::4, ::4].ravel(), gy[::4, ::4].ravel()], 1)
    del gx, gy
    n = cv2.undistortPoints(sub.reshape(-1, 1, 2), cal.K, cal.dist).reshape(-1, 2)
    rot, _ = cv2.Rodrigues(cal.rvec)
    centre = (-rot.T @ cal.tvec).ravel()
    rays = (rot.T @ np.hstack([n, np.ones((len(n), 1))]).T).T
    tray = centre[None, :2] + rays[:, :2] * (-centre[2] / rays[:, 2])[:, None]
    uv = pose.tray_to_mask(tray)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] <= 40) & (uv[:, 1] >= 0) & (uv[:, 1] <= 40)
    small = np.where(inside.reshape(h // 4, w // 4), 220, 40).astype(np.uint8)
    image = cv2.resize(cv2.merge([small] * 3), (w, h), interpolation=cv2.INTER_LINEAR)
    grid = CropGrid.around(MaskPose((100.4, 74.7), 7.0, 41.0, 39.5), 12.0, 0.2)
    out = fit_outline(grid.sample(view, image), grid)
    assert out is not None
    assert out.pose.width_mm == pytest.approx(40.0, abs=0.5)  # 4-px painting: 0.8 mm steps
    assert out.pose.height_mm == pytest.approx(40.0, abs=0.5)
    assert out.pose.angle_deg == pytest.approx(8.0, abs=0.3)


def _edge_profiles(sigma_px: float) -> EdgeProfiles:
    x = np.arange(60, dtype=np.float32)
    step = np.where(x >= 30, 200.0, 40.0).astype(np.float32)
    rng = np.random.default_rng(0)
    rows = np.repeat(step[None, :], 40, axis=0) + rng.normal(0, 2, (40, 60)).astype(np.float32)
    if sigma_px:
        rows = cv2.GaussianBlur(rows, (0, 0), sigmaX=sigma_px, sigmaY=0.01)
    prof = np.repeat(rows[:, :, None], 3, axis=2)
    pos = np.arange(40)
    return EdgeProfiles({s: prof for s in ("top", "left")}, {s: pos for s in ("top", "left")},
                        {"top": 0.0, "left": 0.0}, {"top": 1, "left": 1})


def test_more_blur_never_improves_the_edge_sharpness():
    scores = [q.edge_sharpness(_edge_profiles(s), 0.2) for s in (0, 0.5, 1, 2, 3, 5, 8, 12)]
    assert all(b <= a for a, b in itertools.pairwise(scores)), scores
    assert scores[0] > 1.0 and scores[-1] < q.MIN_SHARPNESS_PER_MM
    assert q.blur_issue(scores[-1]).code == "blur" and q.blur_issue(scores[0]) is None


def test_one_soft_side_opposite_a_sharp_one_is_a_shadow_not_blur():
    """Motion and defocus soften both sides of an axis; a soft shadow merging into the fabric
    softens only the side away from the light (bench seed 9096 frame 349671333)."""
    def profiles(sigmas: dict[str, float]) -> EdgeProfiles:
        one = {side: _edge_profiles(s).profiles["top"] for side, s in sigmas.items()}
        pos = np.arange(40)
        return EdgeProfiles(one, {s: pos for s in one}, {s: 0.0 for s in one}, {s: 1 for s in one})

    shadow = q.edge_sharpness(profiles({"top": 0.5, "bottom": 5, "left": 0.5, "right": 0.5}), 0.2)
    moved = q.edge_sharpness(profiles({"top": 5, "bottom": 5, "left": 0.5, "right": 0.5}), 0.2)
    assert q.blur_issue(shadow) is None
    assert q.blur_issue(moved).code == "blur"
    # a side without a profile opposite it still counts
    assert q.blur_issue(q.edge_sharpness(profiles({"bottom": 5, "left": 0.5}), 0.2)).code == "blur"


def test_exposure_gate():
    dark = np.full((100, 100, 3), 12, np.uint8)
    assert q.exposure_issue(q.exposure_stats(dark)).code == "exposure"
    bright = np.full((100, 100, 3), 255, np.uint8)
    assert "too bright" in q.exposure_issue(q.exposure_stats(bright)).message
    normal = np.full((100, 100, 3), 60, np.uint8)
    normal[40:60, 20:80] = 200
    assert q.exposure_issue(q.exposure_stats(normal)) is None
    assert q.exposure_issue(q.exposure_stats(normal), clipped_on_mask=0.8).code == "exposure"


def test_fold_selection_keeps_the_even_comb():
    # three evenly spaced folds, a print line between two of them, a fainter fold on the comb
    pos = np.array([25.0, 31.0, 48.0, 70.5])
    depth = np.array([0.20, 0.12, 0.085, 0.19])
    assert [pos[i] for i in select_folds(pos, depth)] == [25.0, 48.0, 70.5]
    pos = np.array([24.4, 30.6, 39.6, 46.6, 54.6, 61.0, 69.8])
    depth = np.array([0.098, 0.076, 0.167, 0.078, 0.19, 0.086, 0.182])
    assert [pos[i] for i in select_folds(pos, depth)] == [24.4, 39.6, 54.6, 69.8]
    # one clear fold with fainter ones evenly either side
    pos = np.array([16.4, 23.6, 30.6, 47.8, 54.0, 64.2, 74.6])
    depth = np.array([0.036, 0.033, 0.051, 0.127, 0.033, 0.062, 0.034])
    assert [pos[i] for i in select_folds(pos, depth)] == [30.6, 47.8, 64.2]
    # one clear fold, two fainter ones evenly spaced on one side of it
    pos = np.array([29.8, 46.2, 63.4])  # (count_pleats passes only valleys above its floor)
    depth = np.array([0.143, 0.071, 0.061])
    assert [pos[i] for i in select_folds(pos, depth)] == [29.8, 46.2, 63.4]
    assert select_folds(np.array([]), np.array([])) == []


def test_loop_crossings_on_a_line():
    colours = np.full((400, 3), 90, np.uint8)  # a light grey tray ...
    colours[40:52] = 225  # ... crossed by a white elastic twice (one loop)
    colours[330:342] = 225
    colours[200] = 140  # a speck of lint: too short to count
    runs = _crossings(_loop_pixels(colours))
    assert len(runs) == 2
    colours[100:108] = 20  # a second, black loop leg
    assert len(_crossings(_loop_pixels(colours))) == 3


def test_dark_fabric_on_a_noisy_dark_tray_is_found_on_regions():
    """Per-pixel, the tray's chroma noise floor hides a dark fabric; decided on regions it is there,
    while an empty noisy tray stays empty."""
    from qc_station.vision.segment import foreground

    rng = np.random.default_rng(0)
    h, w = 200, 300
    img = np.full((h, w, 3), 22.0)
    img[40:130, 60:235] = (75, 45, 35)  # dark slate-blue fabric (BGR) on a black tray
    noisy = np.clip(img + rng.normal(0, 9, (h, w, 3)), 0, 255).astype(np.uint8)
    empty = np.clip(22.0 + rng.normal(0, 9, (h, w, 3)), 0, 255).astype(np.uint8)
    valid = np.ones((h, w), bool)
    assert foreground(noisy, valid, 1.0).fg.sum() < 1000  # the pixel-level pass misses it
    found = foreground(noisy, valid, 1.0, smooth_mm=2.0).fg
    assert found[40:130, 60:235].mean() > 0.97 and found.sum() < 1.05 * 90 * 175
    assert foreground(empty, valid, 1.0, smooth_mm=2.0).fg.sum() == 0
