"""The printable board: a vector PDF at true scale with a 100 mm check ruler, or a PNG at a given dpi."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qc_station.calibration.boards import BoardSpec, render_board_image
from qc_station.errors import CalibrationError

#: Paper sizes (width, height) in mm, portrait.
PAPERS = {"A4": (210.0, 297.0), "A3": (297.0, 420.0), "letter": (215.9, 279.4)}
MARGIN_MM = 10.0
HEADER_MM = 16.0  # title + board line above the board
FOOTER_MM = 58.0  # origin note, ruler and instructions below the board
RULER_MM = 100.0

INSTRUCTIONS = (
    "1. Print at 100 % / 'Actual size' (never 'Fit to page'), on a laser printer if you can.",
    "2. Check with a good steel rule that the ruler above measures exactly 100 mm and a square "
    "{square} mm; if not, fix the printer setting and print again (a 1 % error here is a 1 % "
    "error on every mask).",
    "3. Glue the sheet flat on a rigid board (foam board, aluminium, glass) without bubbles or "
    "waves; keep it clean and matte.",
    "4. Take 15-25 sharp views, tilted up to ~40 degrees in different directions and covering the "
    "image corners, plus one view of the board lying flat on the tray (it defines the tray frame):",
    "   qc-station calibrate --images 'calib/*.png' --plane plane.png --out station.json --board {name}",
)


@dataclass(frozen=True)
class PageLayout:
    """Where the board goes on the page (mm from the top-left corner, y down)."""

    paper: str
    page_mm: tuple[float, float]
    origin_mm: tuple[float, float]  # the board's top-left printed corner on the page
    rotated: bool  # board x axis runs down the page
    extent_mm: tuple[float, float]  # the board's printed footprint on the page (w, h)


def layout_board(spec: BoardSpec, paper: str = "A4") -> PageLayout:
    """Fit the board (turned a quarter if that is what fits) with the ruler and text on one page."""
    if paper not in PAPERS:
        raise CalibrationError(f"unknown paper {paper!r}; choose one of {', '.join(PAPERS)}")
    pw, ph = PAPERS[paper]
    bw, bh = _printed_size(spec)
    avail_w, avail_h = pw - 2 * MARGIN_MM, ph - 2 * MARGIN_MM - HEADER_MM - FOOTER_MM
    for rotated, (w, h) in ((False, (bw, bh)), (True, (bh, bw))):
        if w <= avail_w and h <= avail_h:
            return PageLayout(paper, (pw, ph), ((pw - w) / 2, MARGIN_MM + HEADER_MM), rotated, (w, h))
    bigger = [p for p, (w, h) in PAPERS.items() if w * h > pw * ph]
    raise CalibrationError(
        f"the board ({bw:g} x {bh:g} mm) does not fit on {paper} with its ruler and margins"
        + (f"; try --paper {bigger[0]}" if bigger else "; choose a smaller board"))


def _printed_size(spec: BoardSpec) -> tuple[float, float]:
    return spec.size_mm


def write_board_pdf(spec: BoardSpec, path: str | Path, paper: str = "A4") -> Path:
    """Write the board at true scale (vector) with a 100 mm check ruler and instructions."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas as pdfcanvas

    lay = layout_board(spec, paper)
    pw, ph = lay.page_mm
    path = Path(path)
    c = pdfcanvas.Canvas(str(path), pagesize=(pw * mm, ph * mm), invariant=1)
    c.setTitle(f"Calibration board {spec.name}")
    c.setAuthor("qc-station")
    c.setSubject(spec.description)

    # Board: y-down page frame in mm, then the board frame (one path: no seams between cells).
    c.saveState()
    c.translate(0, ph * mm)
    c.scale(mm, -mm)
    ox, oy = lay.origin_mm
    if lay.rotated:
        c.translate(ox + lay.extent_mm[0], oy)
        c.rotate(90)  # in the y-down frame: board x runs down the page, y to the left
    else:
        c.translate(ox, oy)
    off = 0.0 if spec.kind == "charuco" else spec.square_mm  # chessboard frame is one square in
    path_obj = c.beginPath()
    for x, y, w, h in spec.black_rectangles_mm():
        path_obj.rect(x + off, y + off, w, h)
    c.setFillGray(0)
    c.drawPath(path_obj, stroke=0, fill=1, fillMode=1)  # 1 = non-zero winding: the union
    c.restoreState()

    def top(y_mm: float) -> float:  # y measured from the top of the page, in points
        return (ph - y_mm) * mm

    left = MARGIN_MM * mm
    c.setFont("Helvetica-Bold", 13)
    c.drawString(left, top(MARGIN_MM + 6), "qc-station calibration board — print at 100 % (actual size)")
    c.setFont("Helvetica", 9)
    c.drawString(left, top(MARGIN_MM + 12), f"{spec.description}.  --board {spec.name}")

    board_bottom = lay.origin_mm[1] + lay.extent_mm[1]
    c.setFont("Helvetica", 7.5)
    origin_note = ("Board origin (0, 0) = its " + ("top-right" if lay.rotated else "top-left")
                   + " corner as printed here; board x runs " + ("down" if lay.rotated else "right")
                   + ", y " + ("left" if lay.rotated else "down")
                   + ". Placed flat on the tray for the plane image, it defines the tray frame.")
    c.drawString(left, top(board_bottom + 6), origin_note)

    _draw_ruler(c, mm, x0_mm=(pw - RULER_MM) / 2, y_mm=board_bottom + 17, top=top)

    c.setFont("Helvetica", 8)
    y = board_bottom + 26
    for line in INSTRUCTIONS:
        for chunk in _wrap(line.format(square=f"{spec.square_mm:g}", name=spec.name), 120):
            c.drawString(left, top(y), chunk)
            y += 4.2
    c.showPage()
    c.save()
    return path


def _draw_ruler(c, mm: float, *, x0_mm: float, y_mm: float, top) -> None:
    """100 mm with a tick per mm (longer each 5 and 10 mm), numbered each 10 mm."""
    c.setLineWidth(0.15 * mm)
    base = top(y_mm)
    c.line(x0_mm * mm, base, (x0_mm + RULER_MM) * mm, base)
    c.setFont("Helvetica", 6)
    for k in range(int(RULER_MM) + 1):
        length = 4.0 if k % 10 == 0 else 2.8 if k % 5 == 0 else 1.6
        x = (x0_mm + k) * mm
        c.line(x, base, x, base + length * mm)
        if k % 10 == 0:
            c.drawCentredString(x, base + 5.0 * mm, str(k))
    c.setFont("Helvetica", 7)
    c.drawString((x0_mm + RULER_MM + 3) * mm, base, "mm: must measure 100 mm")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "      " + word if text.startswith(("1", "2", "3", "4")) else word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


def write_board_png(spec: BoardSpec, path: str | Path, dpi: float = 300.0) -> Path:
    """Write the board alone (one square of white margin) as a PNG at ``dpi``, dpi stored in the file."""
    from PIL import Image

    img: np.ndarray = render_board_image(spec, dpi / 25.4)
    path = Path(path)
    Image.fromarray(img).save(path, dpi=(dpi, dpi))
    return path
