"""``qc-station inspect``: photos -> verdicts with reasons (the contract other tools rely on)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Inspect photos of masks on the calibrated tray: measure them in mm (width, height, pleats, ear
loops, top-stitch), look for defects, and give each a verdict: pass, fail (with reasons) or
unusable (no mask, blur, exposure, unreadable file).

With --json: JSON Lines on stdout, one object per image, in input order:
  {"image": "<path as given>", "verdict": "pass"|"fail"|"unusable",
   "reasons": [{"code": "...", "message": "...", "severity": ..., "value": ..., "lower": ...,
                "upper": ..., "unit": ..., "box_mm": [x, y, w, h]}],
   "measurements": {"width_mm": ..., "height_mm": ..., "pleats": ..., "ear_loops": ...,
                    "stitch_length_mm": ..., ...} or null,
   "timing_ms": {...}, "quality": {...}, "provenance": {...}}
plus "defects" and "anomaly_score" when a defect model is used. Reason codes: docs/reasons.md.
Without --json: a table. An unreadable image gives an "unusable" line (reason "unreadable")
and the run goes on. Exit code 0 whatever the verdicts; 4 for a missing or invalid
calibration, 3 for a missing or invalid spec, 5 for a missing or corrupt model given by --model.
"""

EPILOG = """\
examples:
  qc-station inspect photo.jpg --calibration station.json
  qc-station inspect shots/*.jpg --calibration station.json --json > results.jsonl
  qc-station inspect a.png b.png --calibration station.json --spec afnor-pleated-2 --annotate out/
  qc-station inspect a.png --calibration station.json --no-model
"""


def register(sub) -> None:
    p = sub.add_parser(
        "inspect", help="inspect mask photos: pass / fail (with reasons) / unusable",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos of the tray (any OpenCV format)")
    p.add_argument("--calibration", required=True, metavar="JSON",
                   help="station.json from `qc-station calibrate`")
    p.add_argument("--spec", default=None, metavar="FILE",
                   help="spec TOML file or bundled name (default: resilience-pleated)")
    p.add_argument("--json", action="store_true", help="JSON Lines output (one object per image)")
    p.add_argument("--annotate", metavar="DIR", default=None,
                   help="write one annotated image per input into DIR")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", metavar="PATH", default=None,
                   help="defect model (ONNX); default: the bundled models/defects.onnx when present")
    g.add_argument("--no-model", action="store_true", help="no defect classifier (stain/hole not checked)")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenCV / ONNX Runtime threads (default: %(default)s)")
    p.set_defaults(func=run)


def load_model(path: str | None, no_model: bool, threads: int = 1):
    """The defect model to use: None with --no-model; the given file (errors are fatal); or the
    bundled one when it exists (a note on stderr otherwise)."""
    if no_model:
        return None
    try:
        from qc_station.vision.defects import DEFAULT_MODEL_PATH, DefectModel
    except ImportError:  # classifier not installed in this build
        if path is not None:
            from qc_station.errors import ModelError

            raise ModelError("this build has no defect classifier (qc_station.vision.defects)") from None
        return None
    if path is None:
        if not DEFAULT_MODEL_PATH.exists():
            print(f"note: no defect model at {DEFAULT_MODEL_PATH}; stain / hole checks are not run",
                  file=sys.stderr)
            return None
        path = DEFAULT_MODEL_PATH
    return DefectModel.load(path, threads=threads)


def result_json(result, *, with_model: bool) -> dict:
    """The contract's JSON object for one result."""
    d = result.model_dump(mode="json")
    d["reasons"] = [{k: v for k, v in r.items() if v is not None} for r in d["reasons"]]
    if not with_model:
        d.pop("defects", None)
        d.pop("anomaly_score", None)
    return d


def _row(r) -> str:
    from qc_station.results import PLAIN_WORDS

    m = r.measurements
    if m is None:
        dims = f"{'-':>7} {'-':>6} {'-':>3} {'-':>5} {'-':>6}"
    else:
        sl = f"{m.stitch_length_mm:.2f}" if m.stitch_length_mm is not None else "-"
        dims = (f"{m.width_mm:7.1f} {m.height_mm:6.1f} {m.pleats:3d} "
                f"{m.ear_loops_left}+{m.ear_loops_right:<3d} {sl:>6}")
    why = "; ".join(f"{PLAIN_WORDS.get(x.code, x.code)} ({x.message})" for x in r.reasons)
    return f"{r.verdict.upper():8s} {dims}  {why}"


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cv2

    from qc_station.calibration import load_calibration
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    cv2.setNumThreads(max(1, args.threads))
    calibration = load_calibration(args.calibration)
    spec = load_spec(args.spec)
    model = load_model(args.model, args.no_model, args.threads)
    inspector = Inspector(calibration, spec, model=model)
    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    if not args.json:
        print(f"spec {spec.name} v{spec.version}, calibration {calibration.id}, "
              f"model {model.sha256[:12] if model else 'none'}")
        width = max(len(p) for p in args.images)
        print(f"{'image':{width}s} {'verdict':8s} {'W mm':>7} {'H mm':>6} {'pl':>3} {'loops':5s} "
              f"{'stitch':>6}  reasons")
    for path in args.images:
        result, image = inspector.inspect_file(path)
        if args.json:
            print(json.dumps(result_json(result, with_model=model is not None)), flush=True)
        else:
            print(f"{path:{width}s} {_row(result)}", flush=True)
        if out_dir:
            if image is not None and (image.shape[1], image.shape[0]) != tuple(calibration.image_size):
                image = None
            name = Path(path).stem
            base, k = name, 1
            while name in used_names:
                k += 1
                name = f"{base}-{k}"
            used_names.add(name)
            cv2.imwrite(str(out_dir / f"{name}.annotated.jpg"), inspector.annotate(image, result),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
    return 0
