"""``qc-station calibrate``: board views + a tray-plane image -> station.json."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Calibrate the station camera in millimetres on the tray.

1. Intrinsics + lens distortion from many photos of the board (--images): each view is checked
   and either used (corners found) or rejected with a reason (board not found, too few corners,
   blurry, reprojection outlier). The fit is refused when fewer than --min-views views are
   usable or the RMS reprojection error is above --max-rms.
2. The tray plane from one photo of the board lying flat on the tray (--plane): its pose
   defines the tray frame (origin at the board origin, x right, y down, mm).

Prints the RMS and per-view errors, fx fy cx cy, the distortion, the mm per pixel at the image
centre on the tray, the camera height and tilt, and the board squares measured back on the tray
as a check; writes station.json (versioned, with a content-hash id that inspections record).
Exit code 4 when the calibration is refused, 6 when an image is missing or unreadable.
"""

EPILOG = """\
examples:
  qc-station calibrate --images 'calib/*.png' --plane plane.png --out station.json
  qc-station calibrate --images calib/a.jpg calib/b.jpg ... --plane tray.jpg --out station.json \\
      --board chessboard:9x6:30 --fix-k3

Take 15-25 sharp views with the board tilted up to ~40 degrees in different directions and
reaching the image corners; print the board with `qc-station board --out board.pdf`.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="calibrate the camera and the tray plane -> station.json",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--images", nargs="+", required=True, metavar="GLOB",
                   help="board views: files or quoted glob patterns, e.g. 'calib/*.png'")
    p.add_argument("--plane", required=True, metavar="IMAGE", help="the board lying flat on the tray")
    p.add_argument("--out", required=True, metavar="JSON", help="calibration file to write")
    p.add_argument("--board", default="charuco", help="board spec (default: %(default)s; see `board --help`)")
    p.add_argument("--min-views", type=int, default=6, help="usable views required (default: %(default)s)")
    p.add_argument("--max-rms", type=float, default=1.0, help="RMS limit in px (default: %(default)s)")
    p.add_argument("--fix-k3", action="store_true", help="keep k3 = 0 (few views, narrow lenses)")
    p.set_defaults(func=run)


def expand_images(patterns: list[str]) -> list[str]:
    """Expand glob patterns (sorted, de-duplicated); a pattern matching nothing is an error."""
    import glob

    from qc_station.errors import ImageError

    files: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ImageError(f"no images match {pattern!r}")
            files += matches
        else:
            files.append(pattern)  # a missing plain file is reported by name when it is read
    return list(dict.fromkeys(files))


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from qc_station.calibration.boards import parse_board
    from qc_station.calibration.plane import measure_board_squares
    from qc_station.calibration.station import ViewProgress, calibrate, read_image

    started = time.perf_counter()
    spec = parse_board(args.board)
    files = expand_images(args.images)
    print(f"board: {spec.description}")
    print(f"examining {len(files)} view(s)")

    def progress(p: ViewProgress) -> None:
        d = p.detection
        status = f"{d.n_corners} corners" if d.ok else f"rejected: {d.reason}"
        print(f"  [{p.index + 1:>{len(str(p.total))}}/{p.total}] {p.name}: {status}", flush=True)

    cal = calibrate(files, args.plane, spec, min_views=args.min_views, max_rms_px=args.max_rms,
                    fix_k3=args.fix_k3, progress=progress)
    for r in cal.views_rejected:
        if r.reason.startswith("reprojection error"):
            print(f"  dropped after the first fit: {r.image}: {r.reason}")

    K = np.asarray(cal.camera_matrix)
    w, h = cal.image_size
    print(f"\nintrinsics from {len(cal.views_used)} of {len(files)} views ({w}x{h}):")
    print(f"  RMS reprojection error {cal.rms_px:.3f} px (limit {args.max_rms:g})")
    print("  per-view RMS (px): " + ", ".join(
        f"{_short(n)} {e:.3f}" for n, e in zip(cal.views_used, cal.per_view_rms_px, strict=True)))
    print(f"  fx {K[0, 0]:.2f}  fy {K[1, 1]:.2f}  cx {K[0, 2]:.2f}  cy {K[1, 2]:.2f}  (px)")
    names = ("k1", "k2", "p1", "p2", "k3")
    print("  distortion " + "  ".join(f"{n} {v:+.5f}" for n, v in zip(names, cal.dist_coeffs, strict=False)))
    print(f"tray plane ({args.plane}): pose RMS {cal.tray_rms_px:.3f} px")
    print(f"  {cal.mm_per_px:.4f} mm per px at the image centre on the tray")
    print(f"  camera {cal.camera_height_mm:.1f} mm above the tray, tilted {cal.tilt_deg:.2f} deg")
    square = measure_board_squares(cal, read_image(args.plane), spec)
    print(f"  check: board squares measure {square:.3f} mm on the tray (nominal {spec.square_mm:g})")
    path = cal.save(args.out)
    print(f"wrote {path} (id {cal.id}) in {time.perf_counter() - started:.1f} s")
    return 0


def _short(name: str) -> str:
    from pathlib import Path

    return Path(name).name
