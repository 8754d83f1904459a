"""Calibration against the simulator's exact camera truth, and the bundled sim calibration.

The simulator draws the board through a known camera (intrinsics, distortion, pose); the
calibration never sees that truth, only the rendered images.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_station import sim
from qc_station.calibration import bundled_sim_calibration
from qc_station.calibration.boards import detect_board, parse_board
from qc_station.calibration.plane import measure_board_squares
from qc_station.calibration.station import calibrate
from qc_station.sim.geometry import mm_per_px_at_center

BOARD = parse_board("charuco")
REGENERATE = "python -m qc_station.calibration.make_sim_calibration"


def assert_intrinsics_match(cal, camera, rel=0.005):
    K = cal.K
    for name, got, truth in (("fx", K[0, 0], camera.fx), ("fy", K[1, 1], camera.fy),
                             ("cx", K[0, 2], camera.cx), ("cy", K[1, 2], camera.cy)):
        assert got == pytest.approx(truth, rel=rel), name


def assert_pose_matches(cal, camera):
    """The plane view's board frame is the tray frame, so the tray pose is the camera pose."""
    R_cal, R_true = cv2.Rodrigues(cal.rvec)[0], camera.R
    angle = np.degrees(np.arccos(np.clip((np.trace(R_cal.T @ R_true) - 1) / 2, -1, 1)))
    assert angle < 0.1
    assert np.linalg.norm(cal.tvec.ravel() - np.asarray(camera.tvec_mm)) < 1.0
    assert cal.camera_height_mm == pytest.approx(camera.height_mm, abs=1.0)
    assert cal.mm_per_px == pytest.approx(mm_per_px_at_center(camera), rel=0.005)


@pytest.fixture(scope="module")
def random_station():
    rng = np.random.default_rng(20261128)
    camera = sim.random_camera(rng)
    views = sim.render_board_views(camera, 8, rng)  # rendering dominates this file's time
    plane = sim.render_plane_view(camera, rng)
    return camera, views, plane


@pytest.fixture(scope="module")
def random_cal(random_station):
    _, views, plane = random_station
    return calibrate([(f"v{k}", image) for k, (image, _) in enumerate(views)], ("plane", plane), BOARD)


def test_random_camera_intrinsics_within_targets(random_station, random_cal):
    camera, _, _ = random_station
    assert random_cal.rms_px <= 0.3
    assert_intrinsics_match(random_cal, camera, rel=0.005)
    assert len(random_cal.views_used) >= 6


def test_random_camera_tray_pose_and_squares(random_station, random_cal):
    camera, _, plane = random_station
    assert_pose_matches(random_cal, camera)
    assert measure_board_squares(random_cal, plane) == pytest.approx(25.0, abs=0.05)
    assert random_cal.tray_rms_px < 0.3


def test_detected_corners_match_rendered_truth(random_station):
    """Sub-pixel detection on a rendered view vs the simulator's projected corners."""
    _, views, _ = random_station
    image, truth = max(views, key=lambda v: sum(v[1].in_view))
    det = detect_board(BOARD, image)
    assert det.ok
    true_px = np.asarray(truth.corners_px)[det.ids]
    err = np.linalg.norm(det.image_points_px - true_px, axis=1)
    assert np.sqrt(np.mean(err**2)) < 0.15 and err.max() < 0.5


def test_blurred_sim_view_is_rejected(random_station):
    _, views, _ = random_station
    image, _ = views[0]
    det = detect_board(BOARD, cv2.GaussianBlur(image, (0, 0), 4.0))
    assert not det.ok and "blurry" in det.reason


def test_bundled_sim_calibration_matches_the_default_camera():
    cal = bundled_sim_calibration()
    camera = sim.default_camera()
    msg = f"the simulator's default camera changed: regenerate with `{REGENERATE}`"
    assert tuple(cal.image_size) == tuple(camera.image_size), msg
    assert_intrinsics_match(cal, camera, rel=0.005)
    assert_pose_matches(cal, camera)
    assert cal.rms_px <= 0.3 and cal.board == BOARD.name
    assert cal.id == cal.content_hash()


def test_bundled_sim_calibration_measures_a_fresh_plane_view():
    cal = bundled_sim_calibration()
    plane = sim.render_plane_view(sim.default_camera(), np.random.default_rng(99))
    assert measure_board_squares(cal, plane) == pytest.approx(25.0, abs=0.05)
