"""``qc-station``: the command line. A thin layer over library calls.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Heavy imports (OpenCV, ONNX Runtime,
uvicorn) happen inside ``func`` so ``--help`` stays instant. Domain errors
(:class:`qc_station.errors.QCError`) become one clean message and an exit code, here only.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from qc_station import __version__
from qc_station.errors import QCError

#: Sub-command modules, in the order ``--help`` lists them (the data's path).
COMMANDS = [
    "demo",
    "serve",
    "board",
    "calibrate",
    "inspect",
    "spec",
    "bench",
    "model",
    "user",
    "certificate",
    "sim",
    "conveyor",
    "bench_store",
]

DESCRIPTION = """\
Mask QC station: photographs finished fabric masks on a calibrated tray, measures them in
millimetres, looks for defects, and gives pass / fail (with reasons) / unusable.

Start here:
  qc-station demo                      simulated camera + dashboard on http://127.0.0.1:8000
  qc-station board --out board.pdf     print the calibration board
  qc-station calibrate --images 'calib/*.png' --plane plane.png --out station.json
  qc-station inspect photo.jpg --calibration station.json --annotate out/
"""


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command that is installed."""
    parser = argparse.ArgumentParser(
        prog="qc-station",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qc-station {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"qc_station.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"qc_station.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qc-station`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except QCError as exc:
        print(f"qc-station {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
