"""Seam analysis against simulator truth: mask-plane renders, and full frames through the pipeline.

Seeds here are fixed for the tests; the figures in docs/seam.md come from fresh seeds
(``python tests/test_seam_sim.py --bench``).
"""

from __future__ import annotations

import numpy as np
import pytest

from qc_station import sim
from qc_station.spec import load_spec
from qc_station.vision.seam import analyze_seam
from qc_station.vision.types import MaskCrop

SPEC = load_spec()
MARGIN_MM = 10.0


def plane_crop(seed: int, defects=(), *, mm_per_px: float = 0.2):
    """A MaskCrop from :func:`sim.render_mask_plane`; the body is the true rounded outline."""
    rng = np.random.default_rng(seed)
    params = sim.random_mask_params(rng, defects=defects)
    image, truth = sim.render_mask_plane(params, mm_per_px=mm_per_px, margin_mm=MARGIN_MM, rng=rng)
    h, w = image.shape[:2]
    xs = -MARGIN_MM + np.arange(w) * mm_per_px
    ys = -MARGIN_MM + np.arange(h) * mm_per_px
    r, W, H = params.corner_radius_mm, truth.width_mm, truth.height_mm
    dx = np.maximum(np.maximum(r - xs, xs - (W - r)), 0)[None, :]
    dy = np.maximum(np.maximum(r - ys, ys - (H - r)), 0)[:, None]
    inside = ((xs >= 0) & (xs <= W))[None, :] & ((ys >= 0) & (ys <= H))[:, None]
    body = inside & (dx * dx + dy * dy <= r * r)
    crop = MaskCrop(image=image, body=body, mm_per_px=mm_per_px, origin_mm=(-MARGIN_MM, -MARGIN_MM),
                    width_mm=W, height_mm=H)
    return crop, truth


def overlaps(a, b, pad_mm: float = 1.0) -> bool:
    return (a[0] - pad_mm < b[0] + b[2] and b[0] - pad_mm < a[0] + a[2]
            and a[1] - pad_mm < b[1] + b[3] and b[1] - pad_mm < a[1] + a[3])


def test_good_masks_stitch_length_distance_and_no_findings():
    errors = []
    for seed in range(7000, 7006):
        crop, truth = plane_crop(seed)
        res = analyze_seam(crop, SPEC)
        assert res.found, seed
        errors.append(abs(res.stitch_length_mm - truth.stitch_length_mm))
        assert abs(res.distance_mm - truth.seam_distance_mm) <= 0.3, (seed, res.distance_mm, truth)
        assert res.stitch_length_p90_mm >= res.stitch_length_mm
        assert res.coverage >= 0.9, (seed, res.coverage)
        assert res.skipped == () and res.open_seams == (), (seed, res)
    assert max(errors) <= 0.25, errors
    assert float(np.median(errors)) <= 0.05, errors


def test_stitch_length_defect_is_measured():
    crop, truth = plane_crop(7100, defects=("stitch_length",))
    res = analyze_seam(crop, SPEC)
    assert not SPEC.seam.stitch_length_mm.contains(truth.stitch_length_mm)
    assert abs(res.stitch_length_mm - truth.stitch_length_mm) <= 0.25, (res, truth.stitch_length_mm)


def test_finer_crop_scale_measures_the_same():
    crop, truth = plane_crop(7200, mm_per_px=0.15)
    res = analyze_seam(crop, SPEC)
    assert abs(res.stitch_length_mm - truth.stitch_length_mm) <= 0.25
    assert abs(res.distance_mm - truth.seam_distance_mm) <= 0.3


@pytest.mark.parametrize("seed", [7300, 7301, 7302, 7303])
def test_skipped_stitch_found_where_it_is(seed):
    crop, truth = plane_crop(seed, defects=("skipped_stitch",))
    res = analyze_seam(crop, SPEC)
    want = [d for d in truth.defects if d.code == "skipped_stitch"]
    found = [*res.skipped, *res.open_seams]
    assert want and found, res
    assert any(overlaps(f.box_mm, want[0].box_mm) for f in res.skipped), (res.skipped, want)
    assert all(f.source == "seam" and 0.5 <= f.probability <= 1.0 for f in found)


def test_mask_without_seam_is_open_on_every_side():
    crop, _truth = plane_crop(7500)
    blank = np.full_like(crop.image, 128)
    blank[~crop.body] = 30
    res = analyze_seam(MaskCrop(blank, crop.body, crop.mm_per_px, crop.origin_mm, crop.width_mm,
                                crop.height_mm), SPEC)
    assert not res.found and res.stitch_length_mm is None and res.coverage == 0.0
    assert len(res.open_seams) == 4 and res.skipped == ()


def test_coarser_crop_scale_measures_the_same():
    crop, truth = plane_crop(7201, mm_per_px=0.22)
    res = analyze_seam(crop, SPEC)
    assert abs(res.stitch_length_mm - truth.stitch_length_mm) <= 0.25
    assert abs(res.distance_mm - truth.seam_distance_mm) <= 0.3


# ----- full frames through the pipeline (camera, rectification, segmentation) ---------------

@pytest.fixture(scope="module")
def inspector():
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.vision.pipeline import Inspector

    return Inspector(bundled_sim_calibration(), SPEC)


# 1132435564: light green thread on lavender / navy stripes (bench seed 31337 case 7): the thread
# over the light stripes is faint; it was rejected for a whole open side, a skipped stitch and an
# unmeasurable stitch length. 1285457632, 1772108105: stripes crossing the top and bottom seams blur
# their needle holes (pooled support 0.08 / 0.30) while both side seams show a clear train: the
# stitch length was None (check by hand)
@pytest.mark.parametrize(("seed", "code"), [(7400, "open_seam"), (7401, "skipped_stitch"), (7402, None),
                                            (1132435564, None), (1285457632, None), (1772108105, None)])
def test_end_to_end_through_the_pipeline(inspector, seed, code):
    image, truth = sim.render_case(seed, defects=(code,) if code else ())
    result, crop = inspector.analyse(image)
    assert crop is not None, result.reasons
    res = analyze_seam(crop, SPEC)
    m = truth.mask
    assert abs(res.stitch_length_mm - m.stitch_length_mm) <= 0.25
    assert abs(res.distance_mm - m.seam_distance_mm) <= 0.4
    findings = [*res.skipped, *res.open_seams]
    if code is None:
        assert findings == [], findings
        return
    want = next(d for d in m.defects if d.code == code)
    # the defect is found where it is (as a skipped stitch or an open seam: both fail the mask)
    assert any(overlaps(f.box_mm, want.box_mm) for f in findings), (findings, want)
    assert result.verdict == "fail"


if __name__ == "__main__":
    import sys
    import time

    if "--bench" not in sys.argv:
        sys.exit("usage: python tests/test_seam_sim.py --bench [FIRST_SEED] [N]")
    args = [a for a in sys.argv[1:] if a != "--bench"]
    first, n = (int(args[0]), int(args[1])) if len(args) == 2 else (50_000, 100)
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.vision.pipeline import Inspector

    ins = Inspector(bundled_sim_calibration(), SPEC)
    for defects in ((), ("skipped_stitch",), ("open_seam",)):
        errs, derrs, cpu, false_f, hit, code_ok, total = [], [], [], 0, 0, 0, 0
        for seed in range(first, first + n):
            image, truth = sim.render_case(seed, defects=defects)
            _, crop = ins.analyse(image)
            if crop is None:
                continue
            total += 1
            t = time.process_time()
            res = analyze_seam(crop, SPEC)
            cpu.append((time.process_time() - t) * 1000)
            m = truth.mask
            if res.stitch_length_mm is not None:
                errs.append(abs(res.stitch_length_mm - m.stitch_length_mm))
            if res.distance_mm is not None:
                derrs.append(abs(res.distance_mm - m.seam_distance_mm))
            found = [*res.skipped, *res.open_seams]
            if not defects:
                false_f += bool(found)
                if found:
                    print(f"  false finding seed {seed}: {[(f.code, f.box_mm) for f in found]}", flush=True)
                continue
            want = next(d for d in m.defects if d.code == defects[0])
            near = [f for f in found if overlaps(f.box_mm, want.box_mm)]
            hit += bool(near)
            code_ok += any(f.code == defects[0] for f in near)
            if not near:
                print(f"  missed seed {seed}: {want.code} at {want.box_mm}", flush=True)
        name = defects[0] if defects else "good"
        line = (f"{name:15s} n={total} stitch err P95={np.percentile(errs, 95):.3f} max={max(errs):.3f} mm "
                f"distance err P95={np.percentile(derrs, 95):.3f} mm cpu median={np.median(cpu):.0f} "
                f"P95={np.percentile(cpu, 95):.0f} ms stitch length None on {total - len(errs)}/{total}")
        if defects:
            line += f" found+located={hit}/{total} right code={code_ok}/{total}"
        else:
            line += f" masks with a false finding={false_f}/{total}"
        print(line, flush=True)


def test_long_stitch_with_weak_combs_on_every_side_is_not_passed():
    """Project bench seed 9092, frame 1289901868 on the bench's camera 1: a 3.95 mm stitch defect
    whose four sides each show only a weak comb at 2.48 mm. A relaxed pitch rule (three weak
    sides agreeing) passed it; it must fail (stitch_length measured or not)."""
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(9092, 1, 1289901868, ("stitch_length",))
    assert not SPEC.seam.stitch_length_mm.contains(truth.mask.stitch_length_mm)
    assert result.verdict == "fail" and "stitch_length" in result.reason_codes, result.reason_codes


@pytest.mark.xfail(strict=True, reason="a printed flower sits on the stitch line over the 16 mm gap "
                   "(fresh bench seed 9091); since gaps are no longer cut by thread specks the mask "
                   "fails, but as an open seam (a 14 mm gap with edge cues), not a skipped stitch")
def test_skipped_stitch_under_a_printed_flower_is_found():
    from bench_frames import inspect_bench_frame

    _truth, result = inspect_bench_frame(9091, 1, 1112405941, ("skipped_stitch",))
    assert result.verdict == "fail" and "skipped_stitch" in result.reason_codes, result.reason_codes


def test_a_speck_of_thread_colour_in_a_gap_does_not_split_it():
    """Defect sweep seed 9115 (camera 1), frame 541013367: an 11 mm skipped stitch on a light green
    floral. At one column in the gap the line filter answered (a print speck's edge), which cut
    the gap into 5.2 mm (of which only 3.0 mm could be seen empty) and a shorter piece, both under
    the two-stitch limit: the mask passed. A thread response shorter than any stitch's dash does
    not end a gap."""
    from bench_frames import inspect_bench_frame

    _truth, result = inspect_bench_frame(9115, 1, 541013367, ("skipped_stitch",))
    assert result.verdict == "fail" and "skipped_stitch" in result.reason_codes, result.reason_codes


def test_a_print_colour_that_hides_the_thread_leaves_no_gap():
    """Project bench seed 5252 (camera 0), frame 427066131: a grey thread on diagonal yellow / slate
    stripes. Over the slate stripes the thread does not show, anywhere along the side; three 12 mm
    "gaps" (one per stripe) failed the good mask for skipped stitches and an open seam."""
    from bench_frames import inspect_bench_frame

    _truth, result = inspect_bench_frame(5252, 0, 427066131, ())
    assert not {"skipped_stitch", "open_seam"} & set(result.reason_codes), result.reasons
    assert result.measurements.stitch_length_mm is not None


def test_a_track_on_a_neighbouring_flank_moves_onto_the_line():
    """Project bench seed 5151 (camera 1), frame 969907330: the best track started from a line
    candidate 1.2 mm beside the thread and followed only the thread's flank, at its search
    window's edge; where something else in the window was stronger it left the thread and a
    9 mm "skipped stitch" failed the good mask."""
    from bench_frames import inspect_bench_frame

    _truth, result = inspect_bench_frame(5151, 1, 969907330, ())
    assert result.verdict == "pass", result.reasons


def test_print_edges_across_the_seam_do_not_set_the_stitch_length():
    """Fresh bench seed 9102 (camera 1), frame 1244547210: 1.36 mm stitches (a defect) in a light
    thread on diagonal brown / green stripes. At each stripe edge the fabric above and below the
    track differ, the thread share swung to -2 and 7, and those edges, not the needle holes, gave a
    confident 2.11 mm pitch: the defective mask passed. The pitch now bridges those columns."""
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(9102, 1, 1244547210, ("stitch_length",))
    assert truth.mask.stitch_length_mm < 1.5
    assert result.verdict == "fail" and "stitch_length" in result.reason_codes, result.reasons


@pytest.mark.xfail(strict=True, reason="thin horizontal orange / green / blue stripes along the top seam: "
                   "the stripe edges out-score the thread as line candidates and the top side is "
                   "tracked on a blue stripe 3 mm inside the seam, which runs through the 25 mm open "
                   "seam; without the defect model the mask passes (defect sweep, seed 9111; with the "
                   "model, its open_seam finding fails the mask)")
def test_open_seam_beside_printed_stripes_along_the_seam_is_found():
    from bench_frames import inspect_bench_frame

    _truth, result = inspect_bench_frame(9111, 0, 1433634971, ("open_seam",))
    assert result.verdict == "fail" and "open_seam" in result.reason_codes, result.reason_codes


@pytest.mark.parametrize(("bench_seed", "frame_seed"), [(9097, 473456625), (9093, 1494886999)])
def test_a_print_line_that_outscores_the_stitches_does_not_take_the_track(bench_seed, frame_seed):
    """Bench frames (camera 0, good masks) where a print line out-scored the stitches on some
    sides: on 473456625 (green / purple stripes with thin dark lines) the top and bottom tracks
    lay 10.8 and 9.0 mm from the edge, the sides' at 4.8 and 5.2; on 1494886999 the right one
    3.2 mm off the others. Their needle holes then voted for a print's period: no stitch length,
    the mask failed ("check by hand")."""
    from bench_frames import inspect_bench_frame

    truth, result = inspect_bench_frame(bench_seed, 0, frame_seed, ())
    m = result.measurements
    assert m.stitch_length_mm is not None and abs(m.stitch_length_mm - truth.mask.stitch_length_mm) <= 0.25
    assert abs(m.seam_distance_mm - truth.mask.seam_distance_mm) <= 1.0
    assert result.verdict == "pass", result.reason_codes


def test_a_plaid_line_beside_a_side_is_not_taken_for_its_seam():
    """Bench 9097, camera 0, frame 1312024855: a plaid's purple line runs along the right side,
    6.7 mm further in than the stitches. The right side's track took the line (continuous, so
    no gap would ever show there: a skipped stitch on that side would pass). It is tracked again
    near the distance the other sides agree on, and finds the stitches (their pitch)."""
    from bench_frames import analyse_bench_frame

    from qc_station.vision import seam

    truth, _result, crop = analyse_bench_frame(9097, 0, 1312024855, ())
    step = seam.STEP_MM
    first = {n: seam._analyse_side(crop, load_spec(), n, step) for n in seam.SIDES}
    after = seam._consistent_tracks(first, step)
    moved = seam._track_distance_mm(first["right"]) - seam._track_distance_mm(after["right"])
    assert moved > 5.0  # the premise: the line won the first search
    right = after["right"].track
    assert right.periodicity >= 0.6 and abs(right.lag_px * step - truth.mask.stitch_length_mm) <= 0.25
    others = [seam._track_distance_mm(after[n]) for n in ("top", "bottom", "left")]
    assert all(abs(seam._track_distance_mm(after["right"]) - d) <= 1.5 for d in others)


def test_a_clearly_dashed_track_off_the_others_distance_is_kept():
    """Bench 9097, camera 0, frame 698005606: black fabric with magenta stripes on a black tray.
    The right edge lies in a black stripe and was found 3.5 mm inside, so the right side's
    stitches (periodic at the stitch pitch) lie 1.55 mm from it while the others' lie ~4.7 mm
    from theirs. That track is the seam: re-tracking near the others' distance took a print
    line (periodicity 0.2). (The pipeline then moves that edge out on the seam's hint and crops
    again; this is the first crop, the one the tracker saw the stripe's edge on.)"""
    from bench_frames import seam_passes

    from qc_station.vision import seam

    truth, _result, calls = seam_passes(9097, 0, 698005606, ())
    crop = calls[0][0]
    step = seam.STEP_MM
    first = {n: seam._analyse_side(crop, load_spec(), n, step) for n in seam.SIDES}
    right = first["right"]
    assert seam._track_distance_mm(right) < 2.5 and right.track.periodicity >= 0.9  # the premise
    kept = seam._consistent_tracks(first, step)["right"].track
    assert kept is right.track and abs(kept.lag_px * step - truth.mask.stitch_length_mm) <= 0.25


def test_seams_say_where_black_stripes_hide_both_edges():
    """Bench seed 9123 (camera 0), frame 956535605: green and black stripes on a black tray, the
    top and bottom stripes black, so both edges were fitted at the first green stripe (height
    -6.87 mm). The top seam is clearly dashed 2.8 mm closer to the fitted edge than the side seams
    are; the bottom seam lies right at the fitted edge, out of the search band, and the bottom
    track went to a print line. Both sides hint how far their edge lies out, the bottom one
    found by looking again between the fitted edge and the band; the pipeline fits the outline
    again and tracks the seam on the new crop."""
    from bench_frames import seam_passes

    truth, result, seen = seam_passes(9123, 0, 956535605, ())
    first_crop, first = seen[0]
    assert set(first.edge_hints_mm) == {"top", "bottom"}, first.edge_hints_mm
    short = truth.mask.height_mm - first_crop.height_mm  # 6.87 mm
    assert sum(first.edge_hints_mm.values()) == pytest.approx(short, abs=0.5), (first.edge_hints_mm, short)
    assert len(seen) == 2 and not seen[1][1].edge_hints_mm
    # 0.65 mm: the outline puts the top edge on the ramp of the mask's shadow, 0.5 mm out
    assert abs(result.measurements.height_mm - truth.mask.height_mm) < 1.0
