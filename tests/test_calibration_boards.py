"""Board specs, the drawn board, and its detection (including why bad views are refused)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from qc_station.calibration.boards import (
    BoardSpec,
    detect_board,
    edge_width_px,
    parse_board,
    render_board_image,
)
from qc_station.errors import CalibrationError


def test_parse_board_default_and_named():
    default = parse_board(None)
    assert default == parse_board("charuco") == parse_board("charuco:8x6:25:18:DICT_5X5_100")
    assert (default.cols, default.rows, default.square_mm, default.marker_mm) == (8, 6, 25.0, 18.0)
    assert default.dictionary == "DICT_5X5_100"
    assert default.n_corners == 35 and default.size_mm == (200.0, 150.0)
    chess = parse_board("chessboard:9x6:30")
    assert chess == BoardSpec("chessboard", 9, 6, 30.0)
    assert chess.squares == (10, 7) and chess.n_corners == 54
    assert parse_board(chess.name) == chess and parse_board(default.name) == default
    assert parse_board("charuco:10x7:20").marker_mm == 18.0  # trailing fields default


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("charuco:8x6:25:30", "smaller than the square"),
        ("charuco:8x6:25:18:DICT_NOPE", "unknown ArUco dictionary"),
        ("charuco:20x20:25:18:DICT_4X4_50", "has only 50"),
        ("chessboard:9x6", "square size"),
        ("chessboard:7x7:30", "cols != rows"),
        ("hexboard:3x3:1", "unknown board kind"),
        ("charuco:eightxsix", "invalid board"),
    ],
)
def test_parse_board_errors_say_what_is_wrong(text, words):
    with pytest.raises(CalibrationError) as err:
        parse_board(text)
    assert words in str(err.value) and text in str(err.value)


@pytest.mark.parametrize("px_per_mm", [3.0, 3.37])
def test_drawn_charuco_is_detected_exactly(px_per_mm):
    spec = parse_board("charuco")
    img = render_board_image(spec, px_per_mm)
    det = detect_board(spec, img)
    assert det.ok and det.n_corners == 35
    # Pixel centre u is at board x = (u + 0.5) / s - margin (one square).
    board_xy = (det.image_points_px + 0.5) / px_per_mm - spec.square_mm
    err_px = np.abs(board_xy - det.object_points_mm[:, :2]) * px_per_mm
    assert err_px.max() < 0.15
    assert det.edge_width_px < 3.0


def test_drawn_chessboard_is_detected_in_order():
    spec = parse_board("chessboard:9x6:30")
    det = detect_board(spec, render_board_image(spec, 3.0))
    assert det.ok and det.n_corners == 54
    board_xy = (det.image_points_px + 0.5) / 3.0 - 2 * spec.square_mm
    assert np.abs(board_xy - det.object_points_mm[:, :2]).max() * 3.0 < 0.15


def test_blank_image_is_rejected_as_blank():
    det = detect_board(parse_board("charuco"), np.full((720, 1280), 128, np.uint8))
    assert not det.ok
    assert "board not found" in det.reason and "blank" in det.reason


def test_blurred_view_is_rejected_as_blurry():
    spec = parse_board("charuco")
    img = render_board_image(spec, 3.0)
    for sigma in (2.5, 6.0):  # still found but soft / not even found
        det = detect_board(spec, cv2.GaussianBlur(img, (0, 0), sigma))
        assert not det.ok and "blurry" in det.reason, (sigma, det.reason)


def test_barely_visible_board_is_rejected_with_too_few_corners():
    spec = parse_board("charuco")
    img = render_board_image(spec, 3.0)
    # Keep the top-left 3 x 2 squares (+ margin): 2 corners at most; the rest is blank.
    part = np.full_like(img, 255)
    part[: 3 * 75, : 4 * 75] = img[: 3 * 75, : 4 * 75]
    det = detect_board(spec, part)
    assert not det.ok
    assert "too few corners" in det.reason or "board not found" in det.reason
    part = np.full_like(img, 255)
    part[: 4 * 75, : 5 * 75] = img[: 4 * 75, : 5 * 75]  # 3 x 2 = 6 corners < 12
    det = detect_board(spec, part)
    assert not det.ok and "too few corners" in det.reason, det.reason


def test_partial_chessboard_is_not_found():
    spec = parse_board("chessboard:9x6:30")
    img = render_board_image(spec, 3.0)
    img[:, img.shape[1] // 2:] = 255
    det = detect_board(spec, img)
    assert not det.ok and "fully visible" in det.reason


def test_more_blur_never_sharpens():
    img = render_board_image(parse_board("charuco"), 3.0)
    widths = [edge_width_px(cv2.GaussianBlur(img, (0, 0), s)) for s in (0.5, 1.0, 2.0, 3.0, 4.0)]
    assert all(b > a for a, b in itertools.pairwise(widths)), widths
    assert 1.5 < widths[0] < 3.0 and widths[-1] > 8.0
