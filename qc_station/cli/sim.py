"""``qc-station sim render``: simulated station frames with their exact ground truth."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Render simulated photographs of masks on the tray, with exact ground truth.

Each frame is written as an image plus a JSON file with its truth: finished width and height,
pleats, ear loops per side, stitch length, seam distance, every defect with its box in mm in
the mask frame (origin top-left of the outline, x along the width), the unusable reasons, and
the camera (intrinsics, distortion, pose) that took it. With --boards the same camera also
takes calibration-board views (calib_*.png) and one view of the board lying flat on the tray
(plane.png), whose board frame is the tray frame.

Defect codes:   width height pleats ear_loop stitch_length skipped_stitch open_seam stain hole
Unusable cases: no_mask blur exposure
"""

EPILOG = """\
examples:
  qc-station sim render --seed 1 --out frames/
  qc-station sim render --seed 7 --defects stain,hole --count 5 --out frames/
  qc-station sim render --seed 3 --unusable blur --out frames/
  qc-station sim render --seed 2 --random-camera --boards 20 --out station_sim/
  qc-station sim render --seed 5 --plane --margin 10 --out crops/   (mask alone, its own frame)
"""


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip()) if text else ()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="simulated frames with ground truth (for tests, benchmarks, training, the demo)",
        description="Simulator: masks on a tray through a real camera model, with exact truth.",
    )
    sub = parser.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    render = sub.add_parser(
        "render", help="render frames + truth JSON", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("--seed", type=int, default=0, help="first seed (frame k uses seed + k)")
    render.add_argument("--count", type=int, default=1, help="number of frames (default 1)")
    render.add_argument("--defects", type=_codes, default=(), help="comma-separated defect codes")
    render.add_argument("--unusable", type=_codes, default=(), help="comma-separated unusable cases")
    render.add_argument("--out", required=True, help="output folder (created)")
    render.add_argument("--format", choices=["png", "jpg"], default="png", help="frame file type")
    render.add_argument("--spec", default=None, help="spec name or TOML file (default: the default spec)")
    render.add_argument("--random-camera", action="store_true",
                        help="draw the camera from the station envelope (seeded) instead of the default")
    render.add_argument("--boards", type=int, default=0, metavar="N",
                        help="also write N calibration-board views and a tray plane view")
    render.add_argument("--board", default="charuco", help="'charuco' (default) or 'chessboard:9x6:30'")
    render.add_argument("--plane", action="store_true",
                        help="render masks alone in the mask frame (render_mask_plane) instead of frames")
    render.add_argument("--mm-per-px", type=float, default=0.2, help="--plane: image scale (default 0.2)")
    render.add_argument("--margin", type=float, default=10.0, help="--plane: tray margin in mm")
    render.set_defaults(func=_run_checked)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _run_checked(args) -> int:
    import sys

    try:
        return run(args)
    except ValueError as exc:  # a bad board name, defect code, ... : one clear line, no traceback
        print(f"qc-station sim render: error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Render ``args.count`` frames (+ boards) into ``args.out``; see DESCRIPTION."""
    import json
    from pathlib import Path

    import cv2
    import numpy as np

    from qc_station.sim import (
        SIM_DEFECTS,
        SIM_UNUSABLE,
        SceneTruth,
        default_camera,
        parse_board,
        random_camera,
        random_mask_params,
        render_board_views,
        render_case,
        render_mask_plane,
        render_plane_view,
    )
    from qc_station.sim.export import camera_json, truth_json
    from qc_station.spec import load_spec

    bad = [c for c in args.defects if c not in SIM_DEFECTS]
    bad += [c for c in args.unusable if c not in SIM_UNUSABLE]
    if bad:
        raise ValueError(f"unknown code(s) {bad}; defects: {', '.join(SIM_DEFECTS)}; "
                         f"unusable: {', '.join(SIM_UNUSABLE)}")
    if args.count < 1 or args.boards < 0:
        raise ValueError("--count must be >= 1 and --boards >= 0")
    parse_board(args.board)
    spec = load_spec(args.spec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = random_camera(np.random.default_rng(args.seed)) if args.random_camera else default_camera()
    (out / "camera.json").write_text(json.dumps(camera_json(camera), indent=2))
    ext = "jpg" if args.format == "jpg" else "png"
    for k in range(args.count):
        seed = args.seed + k
        name = f"frame_{seed:06d}"
        if args.plane:
            rng = np.random.default_rng(seed)
            params = random_mask_params(rng, defects=args.defects, spec=spec, camera=camera)
            image, mask = render_mask_plane(params, mm_per_px=args.mm_per_px, margin_mm=args.margin, rng=rng)
            scene = SceneTruth(mask=mask)
            doc = {"seed": seed, "mm_per_px": args.mm_per_px, "origin_mm": [-args.margin, -args.margin],
                   "mask": truth_json(mask), "expected_verdict": scene.expected_verdict(spec),
                   "expected_codes": list(scene.expected_codes(spec))}
        else:
            image, truth = render_case(seed, defects=args.defects, unusable=args.unusable, camera=camera,
                                       spec=spec)
            doc = {"seed": seed, **truth_json(truth), "expected_verdict": truth.expected_verdict(spec),
                   "expected_codes": list(truth.expected_codes(spec))}
        cv2.imwrite(str(out / f"{name}.{ext}"), image)
        (out / f"{name}.json").write_text(json.dumps(doc, indent=2))
        print(f"{out / f'{name}.{ext}'}  {doc.get('expected_verdict', '')} {doc.get('expected_codes', '')}")
    if args.boards:
        rng = np.random.default_rng(args.seed + 1_000_000)
        for i, (image, bt) in enumerate(render_board_views(camera, args.boards, rng, board=args.board)):
            cv2.imwrite(str(out / f"calib_{i:02d}.png"), image)
            (out / f"calib_{i:02d}.json").write_text(json.dumps(truth_json(bt), indent=2))
        cv2.imwrite(str(out / "plane.png"), render_plane_view(camera, rng, board=args.board))
        print(f"{out}/calib_00..{args.boards - 1:02d}.png + plane.png (board {args.board})")
    return 0
