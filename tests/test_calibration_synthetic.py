"""Calibration maths against exact synthetic truth (cv2.projectPoints of board corners, and
homography-warped board images), independent of the simulator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_station.calibration.boards import BoardDetection, parse_board, render_board_image
from qc_station.calibration.geometry import mm_per_px_at, pixel_to_tray_mm, tray_mm_to_pixel
from qc_station.calibration.intrinsics import calibrate_intrinsics
from qc_station.calibration.plane import estimate_tray_pose, measure_board_squares
from qc_station.calibration.station import calibrate
from qc_station.errors import CalibrationError

BOARD = parse_board("charuco")
SIZE = (1280, 720)
K_TRUE = np.array([[1100.0, 0, 652.0], [0, 1104.0, 355.0], [0, 0, 1]])
DIST_TRUE = np.array([-0.12, 0.06, 0.0008, -0.0005, -0.01])


def random_pose(rng, distance_mm=450.0, max_tilt_deg=40.0):
    """Board pose (rvec, tvec): centre in front of the camera, tilted up to max_tilt_deg."""
    axis = rng.normal(size=2)
    tilt = np.radians(rng.uniform(10, max_tilt_deg)) * np.append(axis / np.linalg.norm(axis), 0)
    R = cv2.Rodrigues(tilt)[0] @ cv2.Rodrigues(np.array([0, 0, rng.uniform(-0.4, 0.4)]))[0]
    centre = np.array([BOARD.size_mm[0] / 2, BOARD.size_mm[1] / 2, 0])
    target = np.array([rng.uniform(-90, 90), rng.uniform(-40, 40), distance_mm + rng.uniform(-60, 60)])
    return cv2.Rodrigues(R)[0].ravel(), target - R @ centre


def synthetic_detection(rvec, tvec, rng, noise_px=0.1, K=K_TRUE, dist=DIST_TRUE):
    obj = BOARD.corner_points_mm()
    img, _ = cv2.projectPoints(obj.astype(np.float64), rvec, tvec, K, dist)
    img = img.reshape(-1, 2) + rng.normal(scale=noise_px, size=(len(obj), 2))
    inside = (img[:, 0] > 5) & (img[:, 0] < SIZE[0] - 5) & (img[:, 1] > 5) & (img[:, 1] < SIZE[1] - 5)
    ids = np.flatnonzero(inside).astype(np.int32)
    return BoardDetection(True, "", obj[inside], img[inside].astype(np.float32), ids, SIZE, 2.0)


def synthetic_views(n, seed, noise_px=0.1):
    rng = np.random.default_rng(seed)
    return [(f"v{k:02d}", synthetic_detection(*random_pose(rng), rng, noise_px)) for k in range(n)]


class Cal:
    """The minimum geometry needs (K, dist, rvec, tvec), from known truth."""

    def __init__(self, K, dist, rvec, tvec):
        self.K, self.dist = np.asarray(K, float), np.asarray(dist, float)
        self.rvec = np.asarray(rvec, float).reshape(3, 1)
        self.tvec = np.asarray(tvec, float).reshape(3, 1)


def test_intrinsics_recover_truth_from_projected_corners():
    intr = calibrate_intrinsics(synthetic_views(15, seed=1))
    assert intr.rms_px == pytest.approx(0.1 * np.sqrt(2), abs=0.02)  # 0.1 px per axis
    truth = (K_TRUE[0, 0], K_TRUE[1, 1], K_TRUE[0, 2], K_TRUE[1, 2])
    got = (intr.K[0, 0], intr.K[1, 1], intr.K[0, 2], intr.K[1, 2])
    for g, t in zip(got, truth, strict=True):
        assert g == pytest.approx(t, rel=0.005)
    assert intr.dist[0] == pytest.approx(DIST_TRUE[0], abs=0.01)


def test_outlier_view_is_dropped_and_refitted():
    views = synthetic_views(12, seed=2)
    name, det = views[5]
    shifted = det.image_points_px.copy()
    shifted[::2] += 4.0  # half the corners misread by 4 px
    views[5] = (name, BoardDetection(True, "", det.object_points_mm, shifted, det.ids, SIZE))
    intr = calibrate_intrinsics(views)
    assert [r.name for r in intr.rejected] == ["v05"]
    assert "outlier" in intr.rejected[0].reason
    assert "v05" not in intr.views_used and intr.rms_px < 0.15
    assert intr.K[0, 0] == pytest.approx(K_TRUE[0, 0], rel=0.005)


def test_too_few_views_is_refused_listing_the_rejected():
    views = synthetic_views(4, seed=3)
    bad = BoardDetection(False, "board not found (0 markers, no corners)", *[np.zeros((0, 3))] * 3, SIZE)
    with pytest.raises(CalibrationError) as err:
        calibrate_intrinsics([*views, ("blank.png", bad)], min_views=6)
    msg = str(err.value)
    assert "only 4 usable view(s) of 5" in msg and "need at least 6" in msg
    assert "blank.png: board not found" in msg


def test_high_rms_is_refused():
    with pytest.raises(CalibrationError) as err:
        calibrate_intrinsics(synthetic_views(10, seed=4, noise_px=2.5))
    assert "above the limit 1 px" in str(err.value) and "per-view RMS" in str(err.value)


def test_tray_pose_and_geometry_against_truth():
    rng = np.random.default_rng(5)
    # Camera 350 mm above the tray, tilted ~3 degrees, board lying on the tray.
    rvec = np.array([0.04, -0.03, 0.2])
    R = cv2.Rodrigues(rvec)[0]
    tvec = np.array([0.0, 0.0, 350.0]) - R @ np.array([100.0, 75.0, 0.0])
    det = synthetic_detection(rvec, tvec, rng, noise_px=0.05)
    pose = estimate_tray_pose(K_TRUE, DIST_TRUE, det)
    assert np.allclose(pose.rvec, rvec, atol=2e-3)
    assert np.allclose(pose.tvec_mm, tvec, atol=0.5)
    truth = Cal(K_TRUE, DIST_TRUE, rvec, tvec)
    centre = -R.T @ tvec
    assert pose.camera_height_mm == pytest.approx(-centre[2], abs=0.5)
    assert pose.tilt_deg == pytest.approx(np.degrees(np.hypot(0.04, 0.03)), abs=0.1)
    mx, my = mm_per_px_at(truth, ((SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2))
    assert pose.mm_per_px == pytest.approx(np.sqrt(mx * my), rel=1e-3)
    assert pose.mm_per_px == pytest.approx(350.0 / 1102.0, rel=0.01)  # about height / f
    assert pose.rms_px < 0.1


def test_pixel_tray_round_trip_with_distortion():
    rvec, tvec = np.array([0.05, -0.02, 0.1]), np.array([-80.0, -60.0, 350.0])
    cal = Cal(K_TRUE, DIST_TRUE, rvec, tvec)
    grid = np.stack(np.meshgrid(np.linspace(-150, 350, 11), np.linspace(-100, 250, 8)), -1).reshape(-1, 2)
    px = tray_mm_to_pixel(cal, grid)
    inside = (px[:, 0] >= 0) & (px[:, 0] < SIZE[0]) & (px[:, 1] >= 0) & (px[:, 1] < SIZE[1])
    back = pixel_to_tray_mm(cal, px[inside])
    assert np.abs(back - grid[inside]).max() < 1e-6
    assert pixel_to_tray_mm(cal, np.zeros((0, 2))).shape == (0, 2)


# -- images: the board warped into a pinhole camera (no distortion) by its exact homography ----
def warp_view(K, rvec, tvec, rng, size=SIZE, supersample=3, background=70, noise=2.0):
    """Render the board seen by camera K at pose (rvec, tvec): supersampled homography + area average."""
    s_tex = 8.0  # texture px per mm
    margin = BOARD.square_mm
    texture = render_board_image(BOARD, s_tex, margin)
    f = supersample
    Kf = K.copy()
    Kf[0, 0] *= f
    Kf[1, 1] *= f
    Kf[0, 2] = f * (K[0, 2] + 0.5) - 0.5
    Kf[1, 2] = f * (K[1, 2] + 0.5) - 0.5
    R = cv2.Rodrigues(np.asarray(rvec, float))[0]
    H_board = Kf @ np.column_stack([R[:, 0], R[:, 1], np.asarray(tvec, float)])
    tex_to_board = np.array([[1 / s_tex, 0, 0.5 / s_tex - margin], [0, 1 / s_tex, 0.5 / s_tex - margin],
                             [0, 0, 1]])
    big = cv2.warpPerspective(texture, H_board @ tex_to_board, (size[0] * f, size[1] * f),
                              flags=cv2.INTER_LINEAR, borderValue=background)
    img = cv2.resize(big, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    img = 0.15 * 255 + 0.7 * img + rng.normal(scale=noise, size=img.shape)  # contrast + sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def warped_set():
    rng = np.random.default_rng(7)
    K = np.array([[1150.0, 0, 641.0], [0, 1150.0, 362.0], [0, 0, 1]])
    views = [(f"w{k:02d}.png", warp_view(K, *random_pose(rng), rng)) for k in range(10)]
    rvec = np.array([0.03, -0.02, 0.15])
    tvec = np.array([0.0, 0.0, 380.0]) - cv2.Rodrigues(rvec)[0] @ np.array([100.0, 75.0, 0.0])
    plane = warp_view(K, rvec, tvec, rng)
    return K, views, plane, rvec, tvec


def test_full_calibration_on_rendered_views(warped_set):
    K, views, plane, rvec, tvec = warped_set
    cal = calibrate(views, ("plane.png", plane), BOARD)
    assert cal.rms_px < 0.3
    for got, truth in zip((cal.K[0, 0], cal.K[1, 1], cal.K[0, 2], cal.K[1, 2]),
                          (K[0, 0], K[1, 1], K[0, 2], K[1, 2]), strict=True):
        assert got == pytest.approx(truth, rel=0.005)
    assert np.abs(cal.dist[:2]).max() < 0.05  # no distortion rendered
    assert np.allclose(cal.tray_rvec, rvec, atol=5e-3)
    assert np.allclose(cal.tray_tvec_mm, tvec, atol=1.5)
    assert measure_board_squares(cal, plane) == pytest.approx(25.0, abs=0.05)
    assert cal.id.startswith("cal-") and cal.board == BOARD.name
