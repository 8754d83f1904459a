"""The printable board is at true scale: render the PDF with pdftoppm and measure it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from qc_station.calibration.boards import detect_board, parse_board
from qc_station.cli import main
from qc_station.errors import CalibrationError

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "calibration" / "board-charuco-8x6-25mm-A4.pdf"
DPI = 200
pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not installed")


def rasterize(pdf: Path, tmp_path: Path, dpi: int = DPI) -> np.ndarray:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)
    return cv2.imread(str(tmp_path / "page.png"), cv2.IMREAD_GRAYSCALE)


def square_pitch_mm(det, px_per_mm: float) -> float:
    """Similarity fit board mm -> page px: its scale gives the printed square size."""
    A, _ = cv2.estimateAffinePartial2D(np.ascontiguousarray(det.object_points_mm[:, :2]),
                                       det.image_points_px)
    assert np.linalg.det(A[:, :2]) > 0  # not mirrored: the printed board is the detectable one
    return float(np.sqrt(np.linalg.det(A[:, :2]))) / px_per_mm * 25.0


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pdf")
    assert main(["board", "--out", str(tmp / "board.pdf")]) == 0
    return tmp / "board.pdf", rasterize(tmp / "board.pdf", tmp)


def test_pdf_is_a4_with_the_board_at_true_scale(page):
    _, img = page
    h, w = img.shape
    assert (w, h) == (round(210 / 25.4 * DPI), round(297 / 25.4 * DPI))  # A4 portrait
    spec = parse_board("charuco")
    det = detect_board(spec, img)
    assert det.ok and det.n_corners == 35
    assert square_pitch_mm(det, DPI / 25.4) == pytest.approx(25.0, abs=0.2)
    assert square_pitch_mm(det, DPI / 25.4) == pytest.approx(25.0, abs=0.02)  # in fact much better


def test_pdf_ruler_is_100mm(page):
    _, img = page
    det = detect_board(parse_board("charuco"), img)
    below = img[int(det.image_points_px[:, 1].max() + 0.15 * DPI):] < 128  # under the board
    # The ruler's base line is the longest dark horizontal run there.
    best = 0
    for row in below:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        if len(edges):
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    assert best / (DPI / 25.4) == pytest.approx(100.0, abs=0.4)


def test_pdf_text_has_the_instructions(page):
    pdf, _ = page
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for words in ("100 %", "Actual size", "100 mm", "rigid board", "charuco:8x6:25:18:DICT_5X5_100",
                  "ChArUco board, 8 x 6 squares of 25 mm"):
        assert words in text, words


def test_committed_board_pdf_is_current(page):
    pdf, _ = page
    assert COMMITTED.is_file(), "run: qc-station board --out calibration/board-charuco-8x6-25mm-A4.pdf"
    assert COMMITTED.read_bytes() == pdf.read_bytes(), "regenerate calibration/board-charuco-8x6-25mm-A4.pdf"


def test_chessboard_needs_a3_and_is_true_scale(tmp_path, capsys):
    assert main(["board", "--board", "chessboard:9x6:30", "--out", str(tmp_path / "c.pdf")]) == 4
    err = capsys.readouterr().err
    assert "does not fit on A4" in err and "--paper A3" in err
    args = ["board", "--board", "chessboard:9x6:30", "--paper", "A3", "--out", str(tmp_path / "c.pdf")]
    assert main(args) == 0
    img = rasterize(tmp_path / "c.pdf", tmp_path, dpi=100)
    det = detect_board(parse_board("chessboard:9x6:30"), img)
    assert det.ok
    assert square_pitch_mm(det, 100 / 25.4) * 30 / 25 == pytest.approx(30.0, abs=0.2)


def test_png_at_dpi(tmp_path):
    assert main(["board", "--out", str(tmp_path / "b.png"), "--dpi", "150"]) == 0
    with Image.open(tmp_path / "b.png") as im:
        assert round(im.info["dpi"][0]) == 150
        img = np.asarray(im.convert("L"))
    det = detect_board(parse_board("charuco"), img)
    assert det.ok and det.n_corners == 35
    assert square_pitch_mm(det, 150 / 25.4) == pytest.approx(25.0, abs=0.05)


def test_bad_output_name_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match=r"use a \.pdf or \.png"):
        from qc_station.cli.board import run

        run(type("A", (), {"board": "charuco", "out": str(tmp_path / "b.svg"), "paper": "A4", "dpi": 300})())
