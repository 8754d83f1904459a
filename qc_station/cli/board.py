"""``qc-station board``: write the printable calibration board (PDF at true scale, or PNG)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write the calibration board to print: a vector PDF at true scale (squares exactly their size in
mm) with a 100 mm check ruler, the board's description and printing instructions, or a PNG at a
given dpi (for other tools or a screen). Print at 100 % / actual size, check the ruler measures
100 mm, glue the sheet to a flat rigid board.

Boards (--board):
  charuco                          default: ChArUco 8x6 squares of 25 mm, 18 mm markers, DICT_5X5_100
  charuco:COLSxROWS:SQ:MARK:DICT   e.g. charuco:10x7:20:15:DICT_5X5_100 (squares, mm)
  chessboard:COLSxROWS:SQ          e.g. chessboard:9x6:30 (inner corners, mm)
"""

EPILOG = """\
examples:
  qc-station board --out board.pdf
  qc-station board --out board.png --dpi 600
  qc-station board --board chessboard:9x6:30 --paper A3 --out chess.pdf
"""


def register(sub) -> None:
    p = sub.add_parser(
        "board", help="write the printable calibration board (PDF, true scale)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output file; .pdf (default kind) or .png")
    p.add_argument("--board", default="charuco", help="board spec (default: %(default)s)")
    p.add_argument("--paper", default="A4", choices=["A4", "A3", "letter"], help="PDF paper size")
    p.add_argument("--dpi", type=float, default=300.0, help="PNG resolution (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qc_station.calibration.boards import parse_board
    from qc_station.calibration.printable import write_board_pdf, write_board_png
    from qc_station.errors import CalibrationError

    spec = parse_board(args.board)
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        if args.dpi < 50:
            raise CalibrationError(f"--dpi {args.dpi:g} is too low to print a board (use 300 or more)")
        write_board_png(spec, out, args.dpi)
        print(f"wrote {out}: {spec.description}, {args.dpi:g} dpi")
    elif suffix == ".pdf":
        write_board_pdf(spec, out, args.paper)
        print(f"wrote {out}: {spec.description}, {args.paper}, true scale")
        print("print at 100 % (actual size) and check that the ruler measures 100 mm")
    else:
        raise CalibrationError(f"--out {out}: use a .pdf or .png file name")
    return 0
