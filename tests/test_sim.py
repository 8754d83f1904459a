"""Simulator truth: the drawn scene matches what the truth says (never checked against vision)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from qc_station.sim import (
    SIM_DEFECTS,
    camera_looking_at,
    charuco_board,
    default_camera,
    mask_to_tray,
    parse_board,
    plane_view_truth,
    random_camera,
    random_mask_params,
    render_board_views,
    render_case,
    render_mask_plane,
    render_plane_view,
    render_scene,
)
from qc_station.spec import load_spec

SPEC = load_spec()


def _plain(params, base=(0.85, 0.85, 0.85)):
    """Same mask, plain light fabric and no loops (for a simple threshold)."""
    fabric = dataclasses.replace(params.fabric, pattern="plain", base=base, accent=base)
    return dataclasses.replace(params, fabric=fabric, loops=())


def _small_camera():
    """A quarter-size camera: same geometry and pipeline, 4x fewer pixels (fast tests)."""
    return camera_looking_at((100.0, 75.0), height_mm=350, mm_per_px=0.4, tilt_deg=2, tilt_dir_deg=10,
                             image_size=(1152, 648), dist=(0.04, -0.02, 0, 0, 0), name="small")


def _edges(profile):
    """Sub-pixel (left, right) crossings of a bright plateau on a dark profile, at the level
    half-way between the tray and the fabric next to each edge."""
    bg = np.median(profile[:20])
    above = profile > bg + 40
    # the first / last run of 15 bright samples (not a speck of lint on the tray)
    runs = np.nonzero(np.convolve(above, np.ones(15), mode="valid") == 15)[0]
    i0, i1 = runs[0], runs[-1] + 14
    lv = (bg + np.median(profile[i0 + 3:i0 + 10])) / 2
    rv = (bg + np.median(profile[i1 - 9:i1 - 2])) / 2
    return _crossing(profile, lv, i0 - 4, i0 + 4), _crossing(profile, rv, i1 - 4, i1 + 4)


def _crossing(profile, level, lo, hi):
    """Sub-pixel position where ``profile`` crosses ``level`` between indices lo and hi."""
    p = profile[lo:hi + 1].astype(np.float64)
    k = np.nonzero((p[:-1] - level) * (p[1:] - level) <= 0)[0]
    k = k[np.argmin(np.abs(k - (hi - lo) / 2))]
    if p[k + 1] == p[k]:
        return lo + k + 0.5
    return lo + k + (level - p[k]) / (p[k + 1] - p[k])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_plane_outline_matches_declared_size(seed):
    rng = np.random.default_rng(seed)
    params = _plain(random_mask_params(rng, defects=["width"] if seed == 2 else ()))
    mmpp, margin = 0.2, 10.0
    image, truth = render_mask_plane(params, mm_per_px=mmpp, margin_mm=margin, rng=rng, tray="black",
                                     sensor=False)
    assert image.shape[:2] == (int(np.ceil((truth.height_mm + 2 * margin) / mmpp)) + 1,
                               int(np.ceil((truth.width_mm + 2 * margin) / mmpp)) + 1)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # a row above the first fold (folds step the side edges), a column away from the print
    left, right = _edges(gray[round((margin + truth.height_mm * 0.18) / mmpp)])
    top, bottom = _edges(gray[:, round((margin + truth.width_mm * 0.27) / mmpp)])
    # the rolled edge shades the fabric next to it, so a half-level threshold is off by < 0.08 mm
    assert abs(left * mmpp - margin) < 0.08
    assert abs(top * mmpp - margin) < 0.08
    assert abs((right - left) * mmpp - truth.width_mm) < 0.08
    assert abs((bottom - top) * mmpp - truth.height_mm) < 0.08


@pytest.mark.parametrize("seed", [3, 4])
def test_painted_alpha_outline_is_exact(seed):
    from qc_station.sim.draw import draw_mask_layer

    params = random_mask_params(np.random.default_rng(seed))
    for supersample in (True, False):
        layer = draw_mask_layer(params, mm_per_px=0.2, supersample=supersample)
        alpha = layer.rgba[..., 3]
        ox, oy = layer.origin_mm
        # between the loops' ends and the first fold; a column away from the loops
        row = alpha[round((params.height_mm * 0.18 - oy) / 0.2)]
        col = alpha[:, round((params.width_mm * 0.4 - ox) / 0.2)]
        for prof, origin, size in ((row, ox, params.width_mm), (col, oy, params.height_mm)):
            lo, hi = round(-origin / 0.2), round((size - origin) / 0.2)
            a = _crossing(prof, 0.5, lo - 4, lo + 4)
            b = _crossing(prof, 0.5, hi - 4, hi + 4)
            assert abs(origin + a * 0.2) < 0.02
            assert abs(origin + b * 0.2 - size) < 0.02


@pytest.mark.parametrize("which", ["default", "random", "thick"])
def test_scene_mask_pixels_inside_projected_outline(which):
    rng = np.random.default_rng(5)
    cam = random_camera(rng) if which == "random" else default_camera()
    params = _plain(random_mask_params(rng, camera=cam), base=(0.9, 0.9, 0.9))
    z = 0.0
    if which == "thick":  # its top surface 3 mm above the tray: seen where (x, y, -3) projects
        params = dataclasses.replace(params, thickness_mm=3.0, center_tray_mm=(20.0, 20.0))
        z = -3.0
    image, truth = render_scene(cam, params, rng, tray="black")
    assert image.shape == (cam.image_size[1], cam.image_size[0], 3)
    w, h = truth.mask.width_mm, truth.mask.height_mm
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    # 1 mm inside the outline is fabric, 1 mm outside is tray, all around (x: 8 points a side)
    t = np.linspace(0.1, 0.9, 8)
    off = 0.6 if which == "thick" else 1.0  # the parallax of 3 mm here is ~0.8 mm
    for inset, bright in ((off, True), (-off, False)):
        pts = np.concatenate([
            np.stack([t * w, np.full_like(t, inset)], 1), np.stack([t * w, np.full_like(t, h - inset)], 1),
            np.stack([np.full_like(t, inset), t * h], 1), np.stack([np.full_like(t, w - inset), t * h], 1),
        ])
        tray = mask_to_tray(params, pts)
        px = cam.project(np.hstack([tray, np.full((len(tray), 1), z)]))
        vals = np.array([gray[round(v), round(u)] for u, v in px])
        assert np.all((vals > 100) == bright), (inset, vals)
    # and the whole mask lies in view with margin
    corners = cam.project(mask_to_tray(params, np.array([[0, 0], [w, 0], [w, h], [0, h]])))
    assert corners.min() > 20 and np.all(corners.max(axis=0) < np.array(cam.image_size) - 20)


@pytest.mark.parametrize("code", ["stain", "hole", "open_seam", "skipped_stitch"])
def test_appearance_defect_changes_image_inside_its_box(code):
    rng = np.random.default_rng(40 + SIM_DEFECTS.index(code))
    params = random_mask_params(rng, defects=[code])
    clean = dataclasses.replace(params, defects=())
    mmpp, margin = 0.2, 10.0
    a, truth = render_mask_plane(params, mm_per_px=mmpp, margin_mm=margin, sensor=False)
    b, _ = render_mask_plane(clean, mm_per_px=mmpp, margin_mm=margin, sensor=False)
    (d,) = [d for d in truth.defects if d.code == code]
    x, y, w, h = d.box_mm
    if code == "stain":
        assert 4.0 <= d.size_mm <= 15.0
    if code == "hole":
        assert 2.0 <= d.size_mm <= 6.0
    if code == "open_seam":
        assert 10.0 <= d.size_mm <= 30.0
    if code == "skipped_stitch":
        assert 3 * truth.stitch_length_mm * 0.9 <= d.size_mm <= 6.5 * truth.stitch_length_mm
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 12
    rows, cols = np.nonzero(diff)
    xs, ys = cols * mmpp - margin, rows * mmpp - margin
    pad = 1.2
    inside = (xs >= x - pad) & (xs <= x + w + pad) & (ys >= y - pad) & (ys <= y + h + pad)
    assert diff.sum() > 20  # it shows
    assert inside.mean() > 0.99, f"{code}: {(~inside).sum()} changed px outside its box"
    assert truth.defect_codes == (code,)


def test_geometric_defects_are_out_of_spec_and_good_masks_in_spec():
    rng = np.random.default_rng(3)
    for _ in range(20):
        good = random_mask_params(rng)
        assert SPEC.dimensions.width_mm.contains(good.width_mm)
        assert SPEC.dimensions.height_mm.contains(good.height_mm)
        assert 2.2 <= good.stitch_length_mm <= 2.8 and 4.0 <= good.seam_distance_mm <= 6.0
        assert good.pleats == 3 and good.loops_on("left") == good.loops_on("right") == 1
        assert -15 <= good.angle_deg <= 15
        w = random_mask_params(rng, defects=["width"])
        assert 6 <= abs(w.width_mm - 180) <= 12
        h = random_mask_params(rng, defects=["height"])
        assert 6 <= abs(h.height_mm - 95) <= 12
        p = random_mask_params(rng, defects=["pleats"])
        assert abs(p.pleats - 3) == 1
        s = random_mask_params(rng, defects=["stitch_length"])
        assert 1.3 <= s.stitch_length_mm <= 1.7 or 3.4 <= s.stitch_length_mm <= 4.2
        e = random_mask_params(rng, defects=["ear_loop"])
        assert (e.loops_on("left"), e.loops_on("right")) != (1, 1)


def test_ear_loop_defect_changes_only_outside_the_body():
    rng = np.random.default_rng(8)
    params = random_mask_params(rng, defects=["ear_loop"])
    fixed = tuple(dataclasses.replace(lp, state="ok") for lp in params.loops)
    full = dataclasses.replace(params, loops=fixed)
    a, truth = render_mask_plane(params, margin_mm=90, mm_per_px=0.4, sensor=False)
    b, _ = render_mask_plane(full, margin_mm=90, mm_per_px=0.4, sensor=False)
    assert "ear_loop" in truth.defect_codes
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 12
    rows, cols = np.nonzero(diff)
    xs, ys = cols * 0.4 - 90, rows * 0.4 - 90
    on_body = (xs > 6) & (xs < truth.width_mm - 6) & (ys > 3) & (ys < truth.height_mm - 3)
    if (truth.ear_loops_left, truth.ear_loops_right) != (1, 1) and diff.any():
        assert not on_body.any()


def test_all_defects_combined_in_one_frame():
    image, truth = render_case(17, defects=SIM_DEFECTS)
    assert image.shape == (1296, 2304, 3)
    assert set(truth.mask.defect_codes) == set(SIM_DEFECTS)
    assert set(truth.expected_codes(SPEC)) == set(SIM_DEFECTS)
    assert truth.expected_verdict(SPEC) == "fail"
    json.dumps(dataclasses.asdict(truth))  # the truth serialises


def test_good_mask_passes_and_render_is_deterministic():
    cam = _small_camera()
    a, ta = render_case(11, camera=cam)
    b, tb = render_case(11, camera=cam)
    c, _ = render_case(12, camera=cam)
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, c)
    assert ta.expected_verdict(SPEC) == "pass" and ta.mask.defects == ()
    assert 0.395 < ta.mm_per_px_center < 0.405


def test_cameras_are_in_the_envelope():
    d = default_camera()
    assert d.image_size == (2304, 1296) and abs(d.height_mm - 350) < 1e-6
    assert d == default_camera()
    rng = np.random.default_rng(0)
    for _ in range(30):
        cam = random_camera(rng)
        assert cam.image_size == (2304, 1296)
        assert 340 <= cam.height_mm <= 360
        tilt = np.degrees(np.arccos(cam.R[2, 2]))
        assert tilt <= 5.0 + 1e-6
        assert 0.19 * 0.999 <= cam.height_mm / cam.fx <= 0.22 * 1.001
        assert abs(cam.cx - 1151.5) <= 0.02 * 2304 + 1e-6 and abs(cam.cy - 647.5) <= 0.02 * 1296 + 1e-6
        assert -0.05 <= cam.dist[0] <= 0.08


def test_unusable_cases_look_unusable():
    cam = _small_camera()

    def frame(unusable):
        return render_case(7, unusable=unusable, camera=cam)

    ok, t_ok = frame(())
    blur, t_blur = frame(["blur"])
    expo, t_expo = frame(["exposure"])
    empty, t_empty = frame(["no_mask"])
    assert t_ok.unusable == () and t_ok.mask is not None
    assert t_blur.unusable == ("blur",) and t_expo.unusable == ("exposure",)
    assert t_empty.mask is None and t_empty.unusable == ("no_mask",)
    for t in (t_blur, t_expo, t_empty):
        assert t.expected_verdict(SPEC) == "unusable"

    def sharpness(img):  # edge energy above the sensor noise: measured at half resolution
        small = cv2.pyrDown(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        return cv2.Laplacian(small, cv2.CV_64F).var()

    assert sharpness(blur) < 0.35 * sharpness(ok)
    gray = cv2.cvtColor(expo, cv2.COLOR_BGR2GRAY)
    assert (gray >= 245).mean() > 0.5 or (gray <= 25).mean() > 0.9
    for seed in range(4):  # both directions happen and both clip
        g = cv2.cvtColor(render_case(seed, unusable=["exposure"], camera=cam)[0], cv2.COLOR_BGR2GRAY)
        assert (g >= 245).mean() > 0.5 or (g <= 25).mean() > 0.9
    # an empty tray has no large bright/dark object: its spread is the tray's own
    assert cv2.cvtColor(empty, cv2.COLOR_BGR2GRAY).std() < cv2.cvtColor(ok, cv2.COLOR_BGR2GRAY).std()
    _, t_none = render_scene(cam, None, np.random.default_rng(1))
    assert t_none.unusable == ("no_mask",) and t_none.mask is None
    with pytest.raises(ValueError):
        render_case(1, unusable=["fog"], camera=cam)
    with pytest.raises(ValueError):
        render_case(1, defects=["dirt"], camera=cam)


def test_board_views_are_detected_where_truth_says():
    cam = random_camera(np.random.default_rng(3))
    detector = cv2.aruco.CharucoDetector(charuco_board(parse_board("charuco")))
    found = 0
    views = render_board_views(cam, 3, np.random.default_rng(4))
    for image, truth in views:
        assert image.shape == (cam.image_size[1], cam.image_size[0], 3)
        corners, ids, _, _ = detector.detectBoard(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        if ids is None or len(ids) < 6:
            continue
        found += 1
        err = corners.reshape(-1, 2) - np.asarray(truth.corners_px)[ids.ravel()]
        assert np.hypot(err[:, 0], err[:, 1]).max() < 0.5
        assert all(truth.in_view[i] for i in ids.ravel())
    assert found >= 2
    tilts = [np.degrees(np.arccos(cv2.Rodrigues(np.array(t.rvec))[0][2, 2])) for _, t in views]
    assert all(5 <= a <= 45 for a in tilts)
    # a motion-blurred view: the same truth, but the detector finds (almost) nothing
    (blurred, _), = render_board_views(cam, 1, np.random.default_rng(4), unusable=["blur"])
    _, ids, _, _ = detector.detectBoard(cv2.cvtColor(blurred, cv2.COLOR_BGR2GRAY))
    assert ids is None or len(ids) < len(views[0][1].corners_px) // 2


def test_plane_view_board_origin_is_tray_origin():
    cam = default_camera()
    image = render_plane_view(cam, np.random.default_rng(9))
    board = charuco_board(parse_board("charuco"))
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert ids is not None and len(ids) == 35
    corners = corners.reshape(-1, 2)[np.argsort(ids.ravel())]
    obj = board.getChessboardCorners()
    assert tuple(obj[0][:2]) == (25.0, 25.0)  # OpenCV: origin = outer corner of the first square
    expected = cam.project(np.asarray(obj[:, :2], np.float64))  # board mm == tray mm
    assert np.hypot(*(corners - expected).T).max() < 0.3
    truth = plane_view_truth(cam)
    assert np.allclose(truth.corners_px, expected)


def test_chessboard_plane_view():
    cam = default_camera()
    truth = plane_view_truth(cam, "chessboard:9x6:30")
    plane = render_plane_view(cam, np.random.default_rng(2), board="chessboard:9x6:30")
    ok, corners = cv2.findChessboardCorners(cv2.cvtColor(plane, cv2.COLOR_BGR2GRAY), (9, 6))
    assert ok
    corners = corners.reshape(-1, 2)
    origin = cam.project(np.array([[0.0, 0.0]]))[0]  # the first inner corner is the tray origin
    ends = [corners[0], corners[-1]]
    assert min(np.hypot(*(e - origin)) for e in ends) < 0.5
    assert len(truth.corners_px) == 54
    with pytest.raises(ValueError):
        parse_board("chessboard:9by6")


def test_cli_sim_render_writes_frames_and_truth(tmp_path):
    from qc_station.cli import main

    assert main(["sim", "render", "--seed", "3", "--defects", "hole", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "frame_000003.json").read_text())
    assert doc["expected_verdict"] == "fail" and doc["expected_codes"] == ["hole"]
    assert doc["mask"]["defects"][0]["code"] == "hole"
    assert cv2.imread(str(tmp_path / "frame_000003.png")).shape == (1296, 2304, 3)
    cam = json.loads((tmp_path / "camera.json").read_text())
    assert cam["image_size"] == [2304, 1296]


def test_defect_boxes_are_where_they_belong_over_many_seeds():
    from qc_station.sim.draw import draw_mask_layer

    rng = np.random.default_rng(77)
    for _ in range(25):
        params = random_mask_params(rng, defects=SIM_DEFECTS)
        layer = draw_mask_layer(params, mm_per_px=0.5, supersample=False)  # coarse: truth only
        w, h, d = params.width_mm, params.height_mm, params.seam_distance_mm
        codes = [t.code for t in layer.defects]
        assert set(codes) == set(SIM_DEFECTS)
        for t in layer.defects:
            x, y, bw, bh = t.box_mm
            if t.code in ("stain", "hole"):  # inside the seam line, clear of it
                assert d < x and x + bw < w - d and d < y and y + bh < h - d
            elif t.code == "skipped_stitch":  # on the top or bottom seam line
                assert min(abs(y + bh / 2 - d), abs(y + bh / 2 - (h - d))) < 0.5 and bh < 2.0
            elif t.code == "open_seam":  # along an edge, reaching the seam line
                on_edge = min(x, y) <= 1e-9 or abs(x + bw - w) < 1e-6 or abs(y + bh - h) < 1e-6
                assert on_edge and min(bw, bh) >= d


def test_specs_with_other_loop_counts():
    from qc_station.spec import parse_spec

    data = SPEC.model_dump()
    data["construction"]["ear_loops_per_side"] = 2
    two = parse_spec(data)
    rng = np.random.default_rng(12)
    good = random_mask_params(rng, spec=two)
    assert good.loops_on("left") == good.loops_on("right") == 2
    bad = random_mask_params(rng, spec=two, defects=["ear_loop"])
    assert (bad.loops_on("left"), bad.loops_on("right")) != (2, 2)
    data["construction"]["ear_loops_per_side"] = 0
    ties = parse_spec(data)
    assert random_mask_params(rng, spec=ties).loops == ()
    with pytest.raises(ValueError):
        random_mask_params(rng, spec=ties, defects=["ear_loop"])
