"""Reproduce J.-Y. Bouguet's published calibration of OpenCV's classic chessboard images.

Data: ../shared/realdata/calib_opencv_bouguet_stereo/ (left images, 9x6 inner corners, 30 mm);
the reference values are parsed from its reference_results/ and SOURCE.txt, not typed in here.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_station.calibration.boards import detect_board, parse_board
from qc_station.calibration.intrinsics import calibrate_intrinsics
from qc_station.calibration.plane import measure_board_squares, measured_square_sizes_mm
from qc_station.calibration.station import calibrate

BOARD = parse_board("chessboard:9x6:30")


@pytest.fixture(scope="module")
def bouguet(shared_dir) -> Path:
    folder = shared_dir / "realdata" / "calib_opencv_bouguet_stereo"
    if not (folder / "reference_results" / "nking_left_summary.txt").is_file():
        pytest.skip(f"Bouguet data not found in {folder}")
    return folder


@pytest.fixture(scope="module")
def left_images(bouguet) -> list[Path]:
    files = sorted((bouguet / "images").glob("left*.jpg"))
    assert len(files) == 13
    return files


@pytest.fixture(scope="module")
def reference(bouguet) -> dict:
    """fx, fy, cx, cy from Bouguet's intrinsics matrix; k1 from SOURCE.txt; per-view [R|t]."""
    text = (bouguet / "reference_results" / "nking_left_summary.txt").read_text()
    k_block = text.split("intrinsics:")[1].split("extrinsics:")[0]
    k = np.array([float(x) for x in re.findall(r"[-+]?\d+\.?\d*(?:e[-+]?\d+)?", k_block)]).reshape(3, 3)
    extrinsics = {}
    for index, body in re.findall(r"i=\s*(\d+)\s+\[(.*?)\]\]", text.split("extrinsics:")[1], re.S):
        numbers = [float(x) for x in re.findall(r"[-+]?\d+\.\d+e[-+]\d+", body)]
        extrinsics[int(index)] = np.array(numbers).reshape(4, 4)
    source = (bouguet / "SOURCE.txt").read_text()
    kc = re.search(r"left\s*:.*?kc ~ \[([^\]]+)\]", source).group(1)
    return {
        "fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
        "k1": float(kc.split(",")[0]), "extrinsics": extrinsics,
    }


@pytest.fixture(scope="module")
def fitted(left_images):
    views = [(f.name, detect_board(BOARD, cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))) for f in left_images]
    return views, calibrate_intrinsics(views)


def test_reference_parsed(reference):
    assert 500 < reference["fx"] < 560 and -0.35 < reference["k1"] < -0.2
    assert len(reference["extrinsics"]) == 14


def test_every_view_is_used(fitted):
    views, intr = fitted
    assert all(det.ok and det.n_corners == 54 for _, det in views)
    assert len(intr.views_used) == 13 and intr.rejected == ()
    assert intr.rms_px < 0.3


def test_reproduces_bouguets_intrinsics(fitted, reference):
    _, intr = fitted
    K = intr.K
    for name, value in (("fx", K[0, 0]), ("fy", K[1, 1]), ("cx", K[0, 2]), ("cy", K[1, 2])):
        assert value == pytest.approx(reference[name], rel=0.01), name
    assert intr.dist[0] == pytest.approx(reference["k1"], abs=0.02)


def test_reproduces_bouguets_board_positions(fitted, reference, left_images):
    """Each view's board centre in camera mm matches Bouguet's extrinsics (his grid axes may be
    swapped from view to view, so both readings of his [R|t] are tried)."""
    _, intr = fitted
    centre = np.array([4 * 30.0, 2.5 * 30.0, 0.0])  # middle of the 9 x 6 corner grid
    for f, rvec, tvec in zip(left_images, intr.rvecs, intr.tvecs, strict=True):
        ours = cv2.Rodrigues(rvec)[0] @ centre + tvec.ravel()
        m = reference["extrinsics"][int(f.stem[-2:]) - 1]
        theirs = [m[:3, :3] @ c + m[:3, 3] for c in (centre, centre[[1, 0, 2]])]
        gap = min(np.linalg.norm(ours - t) for t in theirs)
        assert gap < 0.01 * np.linalg.norm(ours), (f.name, ours, theirs)


def test_30mm_squares_measure_30mm(left_images):
    """Calibrate with one view as the 'tray' (its own pose) and measure its squares back."""
    for plane in (left_images[0], left_images[3]):
        cal = calibrate(left_images, plane, BOARD)
        image = cv2.imread(str(plane), cv2.IMREAD_GRAYSCALE)
        assert measure_board_squares(cal, image) == pytest.approx(30.0, abs=0.05)
        sides = measured_square_sizes_mm(cal, detect_board(BOARD, image), BOARD)
        assert len(sides) == 8 * 6 + 9 * 5
        assert np.abs(sides - 30.0).max() < 0.8  # single sides: ~1 mm per px, 0.2 px corner noise
        assert cal.tray_rms_px < 0.3
