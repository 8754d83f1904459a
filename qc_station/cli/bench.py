"""``qc-station bench``: the inspection pipeline against simulator truth, on fresh seeds."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

DESCRIPTION = """\
Benchmark the inspection pipeline on freshly rendered masks with exact ground truth.

Cameras: the simulator's default camera with its bundled calibration, plus --cameras - 1
random cameras across the station envelope (340-360 mm up, tilt <= 5 deg, 0.19-0.22 mm/px,
phone-class distortion), each CALIBRATED by this package's own calibration from --views
rendered board views and one plane view, as a real station is (--truth-calibration skips that
step and builds the calibrations from the simulator's camera truth; the run then says so).

Cases (--mix all): good masks (~45%), every defect code alone (~45%, round robin) and unusable
frames (~10%: empty tray, motion blur, bad exposure). --mix defects: every frame has one defect
of a code the pipeline checks itself (width, height, pleats, ear_loop, stitch_length,
skipped_stitch, open_seam; round robin), a sweep for defective masks that pass. Each case: a
random mask, tray, fabric, pose, lighting and camera (case k uses camera k mod --cameras).

Prints: width / height absolute error (mean, P95, max) in mm, stitch length error, pleat and
ear-loop count accuracy, per-code recall, false rejects on good masks, verdict accuracy (and
defective masks passed for a code the pipeline itself checks), and ms per image per stage on
--threads core(s).
Without a defect model stains and holes cannot be seen: their cases are reported apart.
"""

EPILOG = """\
examples:
  qc-station bench                         # 200 masks, seed 1, 3 cameras, one core
  qc-station bench --n 50 --seed 7         # a quick run on other seeds
  qc-station bench --n 200 --cameras 1     # the default camera only
  qc-station bench --mix defects --n 210 --seed 9111 --cameras 2 --no-model
                                           # 30 defective masks per geometry / seam code
"""

#: The codes the pipeline checks itself (geometry and the seam tracker); a defective mask passed
#: for one of them is the worst error the bench can find.
PIPELINE_CODES = ("width", "height", "pleats", "ear_loop", "stitch_length", "skipped_stitch", "open_seam")


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline on fresh simulated masks",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="number of frames (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the whole run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV / ONNX threads (default: %(default)s)")
    p.add_argument("--cameras", type=int, default=3,
                   help="default camera + this many minus one random cameras (default: %(default)s)")
    p.add_argument("--views", type=int, default=14, help="board views per calibration (default: %(default)s)")
    p.add_argument("--truth-calibration", action="store_true",
                   help="bypass calibration: build calibrations from the simulator's camera truth")
    p.add_argument("--spec", default=None, help="spec file or bundled name (default: the default spec)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", metavar="PATH", default=None, help="defect model (default: bundled, if any)")
    g.add_argument("--no-model", action="store_true", help="run without the defect classifier")
    p.add_argument("--wall-clock", action="store_true",
                   help="time stages by wall clock (default: CPU time of the one thread, which other "
                        "load on a shared machine does not inflate)")
    p.add_argument("--mix", choices=("all", "defects"), default="all",
                   help="all: good, defective and unusable frames; defects: one geometry or seam "
                        "defect per frame (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    p.add_argument("--defects", action="store_true",
                   help="benchmark the defect model instead (same as `qc-station model bench`)")
    p.set_defaults(func=run)


@dataclass
class Tally:
    """Everything the report needs, accumulated case by case."""

    width_err: list[float] = field(default_factory=list)
    height_err: list[float] = field(default_factory=list)
    stitch_err: list[float] = field(default_factory=list)
    pleats_ok: list[bool] = field(default_factory=list)
    loops_ok: list[bool] = field(default_factory=list)
    recall: dict[str, list[bool]] = field(default_factory=dict)
    good_verdicts: list[str] = field(default_factory=list)
    verdict_ok: list[bool] = field(default_factory=list)
    verdict_ok_checked: list[bool] = field(default_factory=list)
    defects_passed: list[str] = field(default_factory=list)
    missed_measure: int = 0
    timing: dict[str, list[float]] = field(default_factory=dict)


def truth_calibration(camera):
    """A StationCalibration straight from the simulator's camera truth (no calibration step)."""
    from qc_station.calibration import StationCalibration

    return StationCalibration(
        board="sim-truth (calibration bypassed)", image_size=camera.image_size,
        camera_matrix=tuple(tuple(r) for r in camera.K.tolist()), dist_coeffs=tuple(camera.dist),
        rms_px=0.0, tray_rvec=camera.rvec, tray_tvec_mm=camera.tvec_mm, mm_per_px=0.2,
    ).with_id()


def calibrate_camera(camera, views: int, seed: int):
    """Calibrate ``camera`` with this package's calibration from rendered board views."""
    import numpy as np

    from qc_station import sim
    from qc_station.calibration.station import calibrate

    rng = np.random.default_rng(seed)
    board = sim.render_board_views(camera, views, rng)
    plane = sim.render_plane_view(camera, rng)
    return calibrate([(f"view-{k:02d}", im) for k, (im, _t) in enumerate(board)], ("plane", plane), "charuco")


def bench_cameras(seed: int, n: int):
    """The cameras of ``qc-station bench --seed SEED --cameras N`` and the random generator after
    them (which then draws the frame seeds): to re-inspect one frame of a bench run."""
    import numpy as np

    from qc_station import sim

    rng = np.random.default_rng(seed)
    return [sim.default_camera()] + [sim.random_camera(rng) for _ in range(max(0, n - 1))], rng


def bench_calibration(camera, k: int, seed: int, views: int = 14):
    """Camera ``k``'s calibration in a bench run of ``seed`` (camera 0: the bundled one)."""
    from qc_station.calibration import bundled_sim_calibration

    return bundled_sim_calibration() if k == 0 else calibrate_camera(camera, views, seed * 1000 + k)


def _pct(values, q) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def _cases(n: int, mix: str = "all"):
    """(defects, unusable) per case: good / each defect code / unusable, interleaved; with
    ``mix="defects"`` one :data:`PIPELINE_CODES` defect per case, round robin."""
    from qc_station.sim import SIM_DEFECTS, SIM_UNUSABLE

    if mix == "defects":
        return [((PIPELINE_CODES[k % len(PIPELINE_CODES)],), ()) for k in range(n)]
    out, d, u = [], 0, 0
    for k in range(n):
        r = k % 20
        if r in (9, 19):
            out.append(((), (SIM_UNUSABLE[u % len(SIM_UNUSABLE)],)))
            u += 1
        elif r % 2 == 1:
            out.append(((SIM_DEFECTS[d % len(SIM_DEFECTS)],), ()))
            d += 1
        else:
            out.append(((), ()))
    return out


def run(args: argparse.Namespace) -> int:
    import os

    if args.defects:  # the defect model's own benchmark (qc_station/training/bench_defects.py)
        from qc_station.cli.model import bench_defaults

        return bench_defaults(args.model)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import cv2

    from qc_station import sim
    from qc_station.cli.inspect import load_model
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    cv2.setNumThreads(max(1, args.threads))
    spec = load_spec(args.spec)
    model = load_model(args.model, args.no_model, args.threads)
    cameras, rng = bench_cameras(args.seed, args.cameras)
    inspectors = []
    print(f"bench: {args.n} frames, seed {args.seed}, {len(cameras)} camera(s), spec {spec.name} "
          f"v{spec.version}, model {model.sha256[:12] if model else 'none'}, {args.threads} thread(s)")
    if args.truth_calibration:
        print("WARNING: calibration step BYPASSED (--truth-calibration): calibrations are built from "
              "the simulator's camera truth, so calibration error is not part of these figures")
    for k, cam in enumerate(cameras):
        t0 = time.perf_counter()
        if args.truth_calibration:
            cal = truth_calibration(cam)
        else:  # camera 0: the bundled calibration (make_sim_calibration, from board views)
            cal = bench_calibration(cam, k, args.seed, args.views)
        inspector = Inspector(cal, spec, model=model)
        if not args.wall_clock:
            inspector.timer = time.thread_time  # CPU time of this thread: one core, whatever the load
        inspectors.append(inspector)
        src = "truth" if args.truth_calibration else ("bundled" if k == 0 else f"{args.views} views")
        print(f"  camera {k} ({cam.name}): {cam.height_mm:.0f} mm up, {cal.mm_per_px:.3f} mm/px, "
              f"k1 {cam.dist[0]:+.3f}; calibration {cal.id} ({src}, RMS {cal.rms_px:.2f} px) "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)

    tally = Tally()
    plan = _cases(args.n, args.mix)
    seeds = rng.integers(0, 2**31 - 1, size=args.n)
    started = time.perf_counter()
    for k, ((defects, unusable), seed) in enumerate(zip(plan, seeds, strict=True)):
        cam_i = k % len(cameras)
        image, truth = sim.render_case(int(seed), defects=defects, unusable=unusable,
                                       camera=cameras[cam_i], spec=spec)
        result = inspectors[cam_i].inspect(image, image_name=f"case-{k}")
        line = _score(tally, truth, result, spec, with_model=model is not None,
                      label=f"cam {cam_i} seed {seed}")
        if not args.quiet:
            elapsed = time.perf_counter() - started
            print(f"[{k + 1:>{len(str(args.n))}}/{args.n}] cam {cam_i} seed {seed} "
                  f"{'+'.join(defects + unusable) or 'good':14s} {line}  "
                  f"({result.timing_ms.get('total', 0):.0f} ms; {elapsed:.0f} s)", flush=True)
    _report(tally, args.n, with_model=model is not None, wall=args.wall_clock)
    return 0


def _score(t: Tally, truth, r, spec, *, with_model: bool, label: str = "") -> str:
    expected = truth.expected_verdict(spec)
    codes = set(truth.expected_codes(spec)) if expected == "fail" else set(truth.unusable)
    got = set(r.reason_codes)
    for stage, ms in r.timing_ms.items():
        t.timing.setdefault(stage, []).append(ms)
    unseen = set() if with_model else {"stain", "hole"}
    for c in codes:
        t.recall.setdefault(c, []).append(c in got)
    ok = r.verdict == expected
    t.verdict_ok.append(ok)
    if not (codes & unseen):
        t.verdict_ok_checked.append(ok)
    if expected == "pass":
        t.good_verdicts.append(r.verdict)
    if expected == "fail" and r.verdict == "pass" and codes & set(PIPELINE_CODES):
        # which frame: `tests/bench_frames.inspect_bench_frame` re-inspects it on its own
        t.defects_passed.append(",".join(sorted(codes)) + (f": {label}" if label else ""))
    m, tm = r.measurements, truth.mask
    detail = ""
    if tm is not None and not truth.unusable:
        if m is None:
            t.missed_measure += 1
            detail = "NOT MEASURED"
        else:
            t.width_err.append(abs(m.width_mm - tm.width_mm))
            t.height_err.append(abs(m.height_mm - tm.height_mm))
            if m.stitch_length_mm is not None:
                t.stitch_err.append(abs(m.stitch_length_mm - tm.stitch_length_mm))
            t.pleats_ok.append(m.pleats == tm.pleats)
            loops, loops_true = (m.ear_loops_left, m.ear_loops_right), (tm.ear_loops_left, tm.ear_loops_right)
            t.loops_ok.append(loops == loops_true)
            detail = (f"dW {m.width_mm - tm.width_mm:+.2f} dH {m.height_mm - tm.height_mm:+.2f} "
                      f"pleats {m.pleats}/{tm.pleats} loops {m.ear_loops_left}{m.ear_loops_right}/"
                      f"{tm.ear_loops_left}{tm.ear_loops_right}")
    mark = "ok " if ok else "BAD"
    return f"{mark} {expected:8s}->{r.verdict:8s} {','.join(sorted(got)) or '-':24s} {detail}"


def _report(t: Tally, n: int, *, with_model: bool, wall: bool) -> None:
    import numpy as np

    def stats(name, v, unit="mm"):
        if not v:
            return f"  {name:22s} (none measured)"
        return (f"  {name:22s} mean {np.mean(v):.3f} {unit}  P95 {_pct(v, 95):.3f} {unit}  "
                f"max {np.max(v):.3f} {unit}  (n={len(v)})")

    print("\n== measurements (usable frames with a mask) ==")
    print(stats("width abs error", t.width_err))
    print(stats("height abs error", t.height_err))
    print(stats("stitch length error", t.stitch_err))
    if t.width_err:  # every measured mask has a width; those with a stitch length, a stitch error
        n_masks, n_stitch = len(t.width_err), len(t.stitch_err)
        print(f"  stitch length measured {n_stitch / n_masks:.1%} "
              f"({n_stitch}/{n_masks}; the rest: 'check by hand')")
    if t.pleats_ok:
        print(f"  pleat count right      {np.mean(t.pleats_ok):.1%} ({sum(t.pleats_ok)}/{len(t.pleats_ok)})")
        print(f"  ear loops right        {np.mean(t.loops_ok):.1%} ({sum(t.loops_ok)}/{len(t.loops_ok)})")
    if t.missed_measure:
        print(f"  masks not measured (judged unusable): {t.missed_measure}")
    print("\n== per-code recall ==")
    for code in sorted(t.recall):
        v = t.recall[code]
        note = "" if with_model or code not in ("stain", "hole") else "  (no model: not checked)"
        print(f"  {code:15s} {np.mean(v):6.1%} ({sum(v)}/{len(v)}){note}")
    good = t.good_verdicts
    if good:
        fr = sum(v == "fail" for v in good) / len(good)
        un = sum(v == "unusable" for v in good) / len(good)
        print(f"\n== good masks: false rejects {fr:.1%}, judged unusable {un:.1%} (n={len(good)}) ==")
    print(f"verdict accuracy {np.mean(t.verdict_ok):.1%} over all {len(t.verdict_ok)} frames")
    if not with_model:
        print(f"verdict accuracy {np.mean(t.verdict_ok_checked):.1%} over the {len(t.verdict_ok_checked)} "
              "frames whose defects this run can see (stain/hole need the model)")
    print(f"defective masks passed for a geometry or seam code: {len(t.defects_passed)}"
          + (f" ({'; '.join(t.defects_passed)})" if t.defects_passed else ""))
    clock = "wall clock" if wall else "CPU time of the one inspecting thread"
    print(f"\n== ms per image per stage, {clock} (median / P95) ==")
    for stage, v in t.timing.items():
        print(f"  {stage:10s} {np.median(v):8.1f} {_pct(v, 95):8.1f}")
    print(f"({n} frames)")
