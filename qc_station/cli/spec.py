"""``qc-station spec``: show, check and list product specs (``teach`` lives here too)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spec",
        help="show, check or teach a product spec",
        description="Product specs are versioned TOML files. Bundled: resilience-pleated "
        "(default), afnor-pleated-2, afnor-child.",
    )
    ssub = p.add_subparsers(dest="spec_command", metavar="ACTION")
    show = ssub.add_parser("show", help="print a spec (bundled name or TOML file) as TOML")
    show.add_argument("spec", nargs="?", default=None, help="name or file (default: the default)")
    show.set_defaults(func=_show)
    check = ssub.add_parser("check", help="validate a spec file; exit 0 if valid")
    check.add_argument("spec")
    check.set_defaults(func=_check)
    lst = ssub.add_parser("list", help="list the bundled specs")
    lst.set_defaults(func=_list)
    _register_teach(ssub)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _show(args) -> int:
    from qc_station.spec import dump_spec_toml, load_spec

    spec = load_spec(args.spec)
    print(f"# {spec.spec_id}")
    print(dump_spec_toml(spec), end="")
    return 0


def _check(args) -> int:
    from qc_station.spec import load_spec

    spec = load_spec(args.spec)
    print(f"ok: {spec.name} v{spec.version} ({spec.spec_id})")
    return 0


def _list(args) -> int:
    from qc_station.spec import bundled_specs, load_spec

    for name in bundled_specs():
        spec = load_spec(name)
        print(f"{name:22s} v{spec.version}  {spec.description}")
    return 0


TEACH_DESCRIPTION = """\
Teach a spec from reference masks (the physical prototype or golden samples): each photo is
measured with the inspection pipeline; the new spec's nominal values are the measured means
(width, height, stitch length, seam distance) and the most frequent counts (pleats, ear loops
per side). Tolerance bands keep their width from the base spec unless --width-tol /
--height-tol give a new half-width. Prints every measurement and the spread (std, min-max) so
an unsteady reference set shows; unusable photos are listed and left out.
"""

TEACH_EPILOG = """\
examples:
  qc-station spec teach ref/*.jpg --calibration station.json --out prototype.toml
  qc-station spec teach a.png b.png c.png --calibration station.json --out child.toml \\
      --base afnor-child --name workshop-child --version 1 --width-tol 4 --height-tol 4
"""


def _register_teach(ssub) -> None:
    t = ssub.add_parser("teach", help="measure reference masks and write a spec from them",
                        description=TEACH_DESCRIPTION, epilog=TEACH_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("images", nargs="+", metavar="IMAGE", help="photos of the reference masks")
    t.add_argument("--calibration", required=True, metavar="JSON", help="station.json")
    t.add_argument("--out", required=True, metavar="SPEC", help="spec TOML file to write")
    t.add_argument("--base", default=None, metavar="SPEC",
                   help="spec whose tolerances and other settings are kept (default: the default spec)")
    t.add_argument("--name", default=None, help="name of the new spec (default: the base's name)")
    t.add_argument("--version", type=int, default=None, help="version (default: the base's + 1)")
    t.add_argument("--width-tol", type=float, default=None, metavar="MM",
                   help="width tolerance, +- MM around the taught nominal")
    t.add_argument("--height-tol", type=float, default=None, metavar="MM",
                   help="height tolerance, +- MM around the taught nominal")
    t.set_defaults(func=_teach)


def _taught(tol, mean: float, half: float | None) -> dict:
    """A tolerance centred on ``mean``: +- ``half``, or the base band's offsets."""
    lo, hi = (half, half) if half is not None else (tol.nominal - tol.lower, tol.upper - tol.nominal)
    return {"nominal": round(mean, 2), "lower": round(mean - lo, 2), "upper": round(mean + hi, 2)}


def _teach(args) -> int:
    from collections import Counter
    from pathlib import Path

    import cv2
    import numpy as np

    from qc_station.calibration import load_calibration
    from qc_station.errors import SpecError
    from qc_station.spec import dump_spec_toml, load_spec, parse_spec
    from qc_station.vision.pipeline import Inspector

    cv2.setNumThreads(1)
    calibration = load_calibration(args.calibration)
    base = load_spec(args.base)
    for flag, v in (("--width-tol", args.width_tol), ("--height-tol", args.height_tol)):
        if v is not None and v <= 0:
            raise SpecError(f"{flag} must be a positive number of mm, got {v}")
    inspector = Inspector(calibration, base)
    rows = []
    print(f"{'image':40s} {'W mm':>7} {'H mm':>6} {'pleats':>6} {'loops':>5} {'stitch':>6} {'seam':>5}")
    for path in args.images:
        r = inspector.inspect_path(path)
        m = r.measurements
        if m is None:
            print(f"{path:40s} unusable: {'; '.join(x.message for x in r.reasons)} (left out)")
            continue
        rows.append(m)
        sl = f"{m.stitch_length_mm:.2f}" if m.stitch_length_mm is not None else "-"
        sd = f"{m.seam_distance_mm:.1f}" if m.seam_distance_mm is not None else "-"
        print(f"{path:40s} {m.width_mm:7.2f} {m.height_mm:6.2f} {m.pleats:6d} "
              f"{m.ear_loops_left}+{m.ear_loops_right:<3d} {sl:>6} {sd:>5}")
    if not rows:
        raise SpecError("no usable reference image: nothing to teach from (see the reasons above)")

    def spread(name: str, values: list[float], unit: str = "mm") -> float:
        v = np.asarray(values, float)
        print(f"  {name:15s} mean {v.mean():8.2f} {unit}  std {v.std(ddof=1) if len(v) > 1 else 0.0:5.2f}  "
              f"min {v.min():7.2f}  max {v.max():7.2f}  (n={len(v)})")
        return float(v.mean())

    print(f"\ntaught from {len(rows)} of {len(args.images)} image(s):")
    width = spread("width", [m.width_mm for m in rows])
    height = spread("height", [m.height_mm for m in rows])
    stitches = [m.stitch_length_mm for m in rows if m.stitch_length_mm is not None]
    seams = [m.seam_distance_mm for m in rows if m.seam_distance_mm is not None]
    data = base.model_dump(mode="json", exclude_none=True)
    data["name"] = args.name or base.name
    data["version"] = args.version if args.version is not None else base.version + 1
    data["description"] = (f"Taught from {len(rows)} reference mask(s) on {calibration.id}; "
                           f"base {base.name} v{base.version}")
    data["dimensions"]["width_mm"] = _taught(base.dimensions.width_mm, width, args.width_tol)
    data["dimensions"]["height_mm"] = _taught(base.dimensions.height_mm, height, args.height_tol)
    if stitches:
        data["seam"]["stitch_length_mm"] = _taught(base.seam.stitch_length_mm,
                                                   spread("stitch length", stitches), None)
    if seams:
        data["seam"]["distance_mm"] = _taught(base.seam.distance_mm, spread("seam distance", seams), None)
    pleats = Counter(m.pleats for m in rows)
    per_side = Counter(v for m in rows for v in (m.ear_loops_left, m.ear_loops_right))
    print(f"  pleats          {dict(pleats)} -> {pleats.most_common(1)[0][0]}")
    print(f"  loops per side  {dict(per_side)} -> {per_side.most_common(1)[0][0]}")
    data["construction"]["pleats"] = pleats.most_common(1)[0][0]
    if not base.construction.ties:
        data["construction"]["ear_loops_per_side"] = per_side.most_common(1)[0][0]
    spec = parse_spec(data, source="taught spec")
    out = Path(args.out)
    out.write_text(f"# taught by `qc-station spec teach` from {len(rows)} image(s)\n" + dump_spec_toml(spec),
                   encoding="utf-8")
    d = spec.dimensions
    print(f"wrote {out}: {spec.name} v{spec.version} ({spec.spec_id}); width {d.width_mm.lower:.1f}-"
          f"{d.width_mm.upper:.1f} mm, height {d.height_mm.lower:.1f}-{d.height_mm.upper:.1f} mm")
    return 0
