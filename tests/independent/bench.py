"""Independent benchmark of the inspection pipeline: ``python -m tests.independent.bench --n 100 --seed 1``.

Renders cameras with :mod:`tests.independent.camera`, calibrates each with the project's own
calibration from rendered ChArUco views + a plane view (as a station would), then inspects fresh
masks of :mod:`tests.independent.scene` and compares with the drawn truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .boards import board_views, plane_view
from .camera import RationalCamera, random_camera
from .scene import GEOMETRY_CODES, Case, render, tray_linear

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "independent"


@dataclass
class Station:
    camera: RationalCamera
    calibration: object  # StationCalibration
    inspector: object  # Inspector
    calib_s: float


def make_station(seed: int, views: int = 12, spec=None) -> Station:
    """A random independent camera, calibrated by ``qc_station.calibration.station.calibrate``."""
    from qc_station.calibration.station import calibrate
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    rng = np.random.default_rng([seed, 7001])
    cam = random_camera(rng)
    imgs = board_views(cam, views, rng)
    plane = plane_view(cam, tray_linear(cam, str(rng.choice(["dark_grey", "green", "black"])), rng), rng)
    t = time.perf_counter()
    cal = calibrate(imgs, ("ind_plane", plane))
    return Station(cam, cal, Inspector(cal, spec or load_spec()), time.perf_counter() - t)


def case_kind(k: int) -> str | None:
    """Half good masks, half one geometry defect each (round robin)."""
    if k % 2 == 0:
        return None
    return GEOMETRY_CODES[(k // 2) % len(GEOMETRY_CODES)]


@dataclass
class Outcome:
    k: int
    kind: str | None
    case: Case
    verdict: str
    codes: list[str]
    width_mm: float | None
    height_mm: float | None
    stitch_mm: float | None
    pleats: int | None
    loops: tuple[int, int] | None
    ms: float
    result: object = None  # InspectionResult

    @property
    def expected(self) -> str:
        return "fail" if self.kind else "pass"

    def row(self) -> dict:
        t = self.case.truth
        return {"k": self.k, "kind": self.kind or "good", "verdict": self.verdict, "codes": self.codes,
                "width": [round(t.width_mm, 3), self.width_mm],
                "height": [round(t.height_mm, 3), self.height_mm],
                "stitch": [round(t.stitch_mm, 3), self.stitch_mm], "pleats": [t.pleats, self.pleats],
                "loops": [[t.loops_left, t.loops_right], self.loops], "fabric": t.fabric, "tray": t.tray,
                "loop": f"{t.loop_kind}/{t.loop_colour}", "thread": t.thread, "angle": round(t.angle_deg, 1)}


def case_rng(seed: int, k: int) -> np.random.Generator:
    """The random stream that draws case ``k`` of bench seed ``seed``."""
    return np.random.default_rng([seed, k, 9102])


def run_case(st: Station, seed: int, k: int, edge_lift_mm: float = 0.0, flat: bool = False) -> Outcome:
    rng = case_rng(seed, k)
    kind = case_kind(k)
    case = render(st.camera, rng, kind, edge_lift_mm=edge_lift_mm, flat=flat)
    t = time.perf_counter()
    res = st.inspector.inspect(case.image)
    ms = (time.perf_counter() - t) * 1000
    m = res.measurements
    return Outcome(k, kind, case, res.verdict, res.reason_codes,
                   None if m is None else m.width_mm, None if m is None else m.height_mm,
                   None if m is None else m.stitch_length_mm, None if m is None else m.pleats,
                   None if m is None else (m.ear_loops_left, m.ear_loops_right), ms, res)


def _stats(errors: list[float]) -> str:
    if not errors:
        return "n/a"
    e = np.abs(np.asarray(errors))
    return f"mean {e.mean():.3f}  P95 {np.percentile(e, 95):.3f}  max {e.max():.3f}  (n={len(e)})"


def summarize(outs: list[Outcome]) -> list[str]:
    lines = []
    good = [o for o in outs if o.kind is None]
    bad = [o for o in outs if o.kind]
    measured = [o for o in outs if o.width_mm is not None]
    lines.append(f"cases: {len(outs)} ({len(good)} good, {len(bad)} defective)")
    lines.append("width  abs error mm:  " + _stats([o.width_mm - o.case.truth.width_mm for o in measured]))
    lines.append("height abs error mm:  " + _stats([o.height_mm - o.case.truth.height_mm for o in measured]))
    st = [o.stitch_mm - o.case.truth.stitch_mm for o in measured if o.stitch_mm is not None]
    lines.append("stitch abs error mm:  " + _stats(st) + f"  (no stitch length on "
                 f"{sum(o.stitch_mm is None for o in measured)} measured masks)")
    pl = [o.pleats == o.case.truth.pleats for o in measured]
    lp = [o.loops == (o.case.truth.loops_left, o.case.truth.loops_right) for o in measured]
    lines.append(f"pleat count right:    {np.mean(pl) * 100:.1f}% of {len(pl)} measured masks")
    lines.append(f"ear-loop count right: {np.mean(lp) * 100:.1f}% (per side) of {len(lp)}")
    acc = np.mean([o.verdict == o.expected for o in outs]) * 100
    lines.append(f"verdict accuracy:     {acc:.1f}% of {len(outs)}")
    fr = [o for o in good if o.verdict == "fail"]
    un = [o for o in good if o.verdict == "unusable"]
    passed_bad = [o for o in bad if o.verdict == "pass"]
    ng = max(1, len(good))
    lines.append(f"good masks: false rejects {len(fr)}/{len(good)} ({len(fr) / ng * 100:.1f}%), "
                 f"unusable {len(un)}/{len(good)} ({len(un) / ng * 100:.1f}%)")
    lines.append(f"defective masks passed: {len(passed_bad)}/{len(bad)}  "
                 + " ".join(f"{o.kind}#{o.k}" for o in passed_bad))
    for code in GEOMETRY_CODES:
        cs = [o for o in bad if o.kind == code]
        if cs:
            hit = sum(code in o.codes for o in cs)
            failed = sum(o.verdict == "fail" for o in cs)
            lines.append(f"  {code:15s} recall (own code) {hit}/{len(cs)}, failed at all {failed}/{len(cs)}")
    counts: dict[str, int] = {}
    for o in fr:
        for c in o.codes:
            counts[c] = counts.get(c, 0) + 1
    ranked = sorted(counts.items(), key=lambda x: -x[1])
    lines.append("false-reject reasons on good masks: "
                 + (", ".join(f"{c} {n}" for c, n in ranked) or "none"))
    ms = np.array([o.ms for o in outs])
    lines.append(f"pipeline wall ms/frame (loaded shared machine): median {np.median(ms):.0f}, "
                 f"max {ms.max():.0f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.independent.bench", description=__doc__)
    ap.add_argument("--n", type=int, default=100, help="number of mask frames (default 100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cameras", type=int, default=2, help="independent cameras, each calibrated (default 2)")
    ap.add_argument("--views", type=int, default=12, help="ChArUco views per calibration (default 12)")
    ap.add_argument("--save-failures", type=int, default=6, help="save up to this many failure PNGs")
    ap.add_argument("--jsonl", type=Path, help="write one line per case here")
    ap.add_argument("--edge-lift", type=float, default=0.0,
                    help="mask outline this many mm above the tray (cloth thickness; default 0)")
    ap.add_argument("--flat-cloth", action="store_true",
                    help="ablation: no cloth dome / waviness (same cases otherwise)")
    ap.add_argument("--only", help="comma-separated case indices to run (re-check misses)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    stations = []
    for c in range(args.cameras):
        st = make_station(args.seed * 100 + c, args.views)
        cal = st.calibration
        fx_true = st.camera.K[0, 0]
        K = np.asarray(cal.camera_matrix)
        print(f"camera {c}: {st.camera.height_mm():.1f} mm up, fx {fx_true:.1f} (calibrated {K[0, 0]:.1f}), "
              f"cx {st.camera.K[0, 2]:.1f} ({K[0, 2]:.1f}), cy {st.camera.K[1, 2]:.1f} ({K[1, 2]:.1f}), "
              f"RMS {cal.rms_px:.3f} px, {cal.mm_per_px:.4f} mm/px, calibrated in {st.calib_s:.1f} s",
              flush=True)
        stations.append(st)
    outs: list[Outcome] = []
    saved = 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    jl = args.jsonl.open("w") if args.jsonl else None
    indices = [int(x) for x in args.only.split(",")] if args.only else range(args.n)
    for k in indices:
        o = run_case(stations[k % len(stations)], args.seed, k, args.edge_lift, args.flat_cloth)
        outs.append(o)
        wrong = (o.verdict != o.expected or o.pleats not in (None, o.case.truth.pleats)
                 or (o.width_mm is not None and abs(o.width_mm - o.case.truth.width_mm) > 0.5)
                 or (o.height_mm is not None and abs(o.height_mm - o.case.truth.height_mm) > 0.5)
                 or (o.loops is not None and o.loops != (o.case.truth.loops_left, o.case.truth.loops_right)))
        row = o.row()
        if jl:
            jl.write(json.dumps(row) + "\n")
        if wrong:
            print("  MISS", json.dumps(row), flush=True)
            if saved < args.save_failures:
                name = f"seed{args.seed}_case{k:03d}_{o.kind or 'good'}.png"
                cv2.imwrite(str(ARTIFACTS / name), o.case.image)
                st = stations[k % len(stations)]
                cv2.imwrite(str(ARTIFACTS / name.replace(".png", "_annotated.png")),
                            st.inspector.annotate(o.case.image, o.result))
                saved += 1
    print(f"independent bench: n={args.n} seed={args.seed} cameras={args.cameras} views={args.views} "
          f"edge-lift={args.edge_lift} mm" + (" FLAT CLOTH (ablation)" if args.flat_cloth else ""))
    for line in summarize(outs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
