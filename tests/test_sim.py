"""Simulator truth: the drawn scene matches what the truth says (never checked against vision)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_station.sim import (
    SIM_DEFECTS,
    charuco_board,
    default_camera,
    mask_to_tray,
    parse_board,
    plane_view_truth,
    random_camera,
    random_mask_params,
    render_board_views,
    render_case,
    render_mask_plane,
    render_plane_view,
)
from qc_station.spec import load_spec


def _plain(params, base=(0.85, 0.85, 0.85)):
    """Same mask, plain light fabric and no loops (for a simple threshold)."""
    import dataclasses

    fabric = dataclasses.replace(params.fabric, pattern="plain", base=base, accent=base)
    return dataclasses.replace(params, fabric=fabric, loops=())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_plane_outline_matches_declared_size(seed):
    rng = np.random.default_rng(seed)
    params = _plain(random_mask_params(rng))
    mmpp, margin = 0.2, 10.0
    image, truth = render_mask_plane(params, mm_per_px=mmpp, margin_mm=margin, rng=rng, tray="black",
                                     sensor=False)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # sub-pixel edge positions along a row / column: linear interpolation at the level half-way
    # between the tray and the fabric next to each edge
    row = gray[round((margin + truth.height_mm / 2) / mmpp)]
    col = gray[:, round((margin + truth.width_mm * 0.27) / mmpp)]

    def edges(profile):
        bg = np.median(profile[:20])
        above = profile > bg + 40
        i0 = int(np.argmax(above))
        i1 = len(profile) - 1 - int(np.argmax(above[::-1]))
        lv = (bg + np.median(profile[i0 + 3:i0 + 10])) / 2
        i0 = i0 - 3 + int(np.argmax(profile[i0 - 3:] > lv))
        left = i0 - 1 + (lv - profile[i0 - 1]) / (profile[i0] - profile[i0 - 1])
        rv = (bg + np.median(profile[i1 - 9:i1 - 2])) / 2
        i1 = i1 + 3 - int(np.argmax(profile[:i1 + 4][::-1] > rv))
        right = i1 + (profile[i1] - rv) / (profile[i1] - profile[i1 + 1])
        return left, right

    left, right = edges(row)
    top, bottom = edges(col)
    assert abs(left * mmpp - margin) < 0.06
    assert abs((right - left) * mmpp - truth.width_mm) < 0.06
    assert abs((bottom - top) * mmpp - truth.height_mm) < 0.06


def test_scene_mask_pixels_inside_projected_outline():
    rng = np.random.default_rng(5)
    cam = default_camera()
    params = _plain(random_mask_params(rng, camera=cam), base=(0.9, 0.9, 0.9))
    from qc_station.sim import render_scene

    image, truth = render_scene(cam, params, rng, tray="black")
    w, h = truth.mask.width_mm, truth.mask.height_mm
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    for inset, expect_bright in ((3.0, True), (-3.0, False)):
        pts = np.array([[inset, h / 2], [w - inset, h / 2], [w / 2, inset], [w / 2, h - inset]])
        px = cam.project(mask_to_tray(params, pts))
        vals = [gray[round(v), round(u)] for u, v in px]
        assert all((v > 100) == expect_bright for v in vals), (inset, vals)


@pytest.mark.parametrize("code", SIM_DEFECTS)
def test_each_defect_is_in_truth(code):
    image, truth = render_case(100 + SIM_DEFECTS.index(code), defects=[code])
    assert image.shape == (1296, 2304, 3)
    assert code in truth.mask.defect_codes
    assert code in truth.expected_codes(load_spec())


def test_good_mask_passes_and_is_deterministic():
    a, ta = render_case(11)
    b, tb = render_case(11)
    assert np.array_equal(a, b) and ta == tb
    assert ta.expected_verdict(load_spec()) == "pass"


@pytest.mark.parametrize("case", ["blur", "exposure", "no_mask"])
def test_unusable_cases(case):
    image, truth = render_case(7, unusable=[case])
    assert image.shape == (1296, 2304, 3)
    assert case in truth.unusable
    assert truth.expected_verdict(load_spec()) == "unusable"


def test_board_views_detected_with_truth_ids():
    cam = random_camera(np.random.default_rng(3))
    detector = cv2.aruco.CharucoDetector(charuco_board(parse_board("charuco")))
    found = 0
    for image, truth in render_board_views(cam, 3, np.random.default_rng(4)):
        corners, ids, _, _ = detector.detectBoard(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        if ids is None or len(ids) < 6:
            continue
        found += 1
        err = corners.reshape(-1, 2) - np.asarray(truth.corners_px)[ids.ravel()]
        assert np.sqrt((err**2).sum(axis=1)).max() < 0.5
    assert found >= 2


def test_plane_view_board_origin_is_tray_origin():
    cam = default_camera()
    image = render_plane_view(cam, np.random.default_rng(9))
    board = charuco_board(parse_board("charuco"))
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert ids is not None and 0 in ids.ravel()
    first = corners.reshape(-1, 2)[list(ids.ravel()).index(0)]
    obj0 = board.getChessboardCorners()[0]
    expected = cam.project(np.array([[obj0[0], obj0[1]]]))[0]  # tray (25, 25) == board corner 0
    assert np.hypot(*(first - expected)) < 0.5
    truth = plane_view_truth(cam)
    assert np.allclose(truth.corners_px[0], expected)
