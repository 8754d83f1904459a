"""The geometric hole check on drawn crops (independent of the simulator) and on pipeline crops."""

import cv2
import numpy as np
import pytest

from qc_station.vision.holes import find_holes
from qc_station.vision.types import MaskCrop

MPP, MARGIN, W, H = 0.2, 10.0, 180.0, 95.0
TRAY, FABRIC = (60, 62, 64), (170, 120, 200)  # BGR: dark grey tray, pink fabric


def _crop(draw=None, fabric=FABRIC, noise=4.0, seed=0):
    rng = np.random.default_rng(seed)
    h, w = round((H + 2 * MARGIN) / MPP), round((W + 2 * MARGIN) / MPP)
    img = np.empty((h, w, 3), np.float32)
    img[:] = TRAY
    m = round(MARGIN / MPP)
    body = np.zeros((h, w), bool)
    body[m:m + round(H / MPP), m:m + round(W / MPP)] = True
    img[body] = fabric
    if draw:
        draw(img, m)
    img += rng.normal(0, noise, img.shape)
    img = cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), 0.6).astype(np.uint8)
    return MaskCrop(image=img, body=body, mm_per_px=MPP, origin_mm=(-MARGIN, -MARGIN),
                    width_mm=W, height_mm=H)


def _hole(x_mm, y_mm, d_mm, shade=0.8):
    def draw(img, m):
        c = (m + round(x_mm / MPP), m + round(y_mm / MPP))
        cv2.circle(img, c, round(d_mm / 2 / MPP), tuple(shade * v for v in TRAY), -1, cv2.LINE_AA)
    return draw


def test_clean_mask_has_no_hole():
    r = find_holes(_crop())
    assert r.findings == () and r.skipped is None


@pytest.mark.parametrize(("x", "y", "d"), [(40.0, 30.0, 4.0), (150.0, 70.0, 2.0), (90.0, 47.0, 6.0)])
def test_hole_found_where_it_is(x, y, d):
    r = find_holes(_crop(_hole(x, y, d)))
    assert len(r.findings) == 1
    bx, by, bw, bh = r.findings[0].box_mm
    assert abs(bx + bw / 2 - x) < 0.6 and abs(by + bh / 2 - y) < 0.6
    assert d - 1.2 <= bw <= d + 0.6 and r.findings[0].code == "hole" and r.findings[0].source == "geometry"


def test_tray_coloured_thread_is_not_a_hole():
    def seam(img, m):  # a tray-coloured dashed top-stitch 5 mm inside the edge
        for x in np.arange(10.0, 170.0, 2.5):
            p0 = (m + round(x / MPP), m + round(5.0 / MPP))
            cv2.line(img, p0, (p0[0] + round(2.0 / MPP), p0[1]), TRAY, 2)
    assert find_holes(_crop(seam)).findings == ()


@pytest.mark.parametrize(("thick_px", "arm_mm"), [(2, 2.4), (3, 2.4), (6, 3.2)])
def test_tray_coloured_seam_corner_is_not_a_hole(thick_px, arm_mm):
    """Where the top-stitch turns the corner its thread makes an L with a 2.4 mm box: wide both
    ways, but only a thread thick (independent seed 41, cases 56 and 63, failed for it). A 1.2 mm
    thread's L holds a 1 mm disc, but is not that disc (bench seed 9096 frame 688599646)."""
    def corner(img, m):
        x, y = m + round(5.0 / MPP), m + round(5.0 / MPP)
        arm = round(arm_mm / MPP)
        cv2.line(img, (x, y), (x + arm, y), TRAY, thick_px)
        cv2.line(img, (x, y), (x, y + arm), TRAY, thick_px)
    assert find_holes(_crop(corner)).findings == ()
    # a round 3 mm hole in the same place is a hole (in the seam band a patch must be 2 mm wide)
    assert len(find_holes(_crop(_hole(6.2, 6.2, 3.0))).findings) == 1


@pytest.mark.parametrize("length_mm", [3.0, 17.0, 60.0])
def test_fold_shadow_matching_the_tray_is_not_a_hole(length_mm):
    """A pleat's crease shadow on a pale print can match the shadowed tray: 1-1.5 mm high, long."""
    def fold(img, m):
        y = m + round(47.0 / MPP)
        x0 = m + round(60.0 / MPP)
        img[y : y + round(1.4 / MPP), x0 : x0 + round(length_mm / MPP)] = tuple(0.8 * v for v in TRAY)
    assert find_holes(_crop(fold)).findings == ()
    # the same patch made compact (as wide as it is long, up to the hole size limit) is a hole
    def patch(img, m):
        y, x0, side = m + round(47.0 / MPP), m + round(60.0 / MPP), round(min(length_mm, 6.0) / MPP)
        img[y : y + side, x0 : x0 + side] = tuple(0.8 * v for v in TRAY)
    assert len(find_holes(_crop(patch)).findings) == 1


@pytest.mark.parametrize("high_mm", [1.2, 1.6])
def test_speck_of_a_fold_shadow_is_not_a_hole(high_mm):
    """A fold's shadow nearly the tray's colour, reaching it over 1 mm only (bench seed 5252: a
    good mask failed for a 1.0 x 0.8 mm "hole" on a pale print). At a relaxed limit the speck
    grows into the shadow line; a hole of that size would stay compact."""
    def fold(img, m):
        y, x0 = m + round(47.0 / MPP), m + round(40.0 / MPP)
        shadow = tuple(0.85 * v + 0.15 * f for v, f in zip(TRAY, FABRIC, strict=True))
        img[y : y + round(high_mm / MPP), x0 : x0 + round(60.0 / MPP)] = shadow  # just unlike the tray...
        xs = x0 + round(30.0 / MPP)
        img[y : y + round(high_mm / MPP), xs : xs + round(1.2 / MPP)] = TRAY  # ...but here like it
    assert find_holes(_crop(fold)).findings == ()
    assert len(find_holes(_crop(_hole(70.0, 47.6, 1.6, 1.0))).findings) == 1


def test_print_matching_the_tray_is_skipped_not_guessed():
    def dots(img, m):  # a print of tray-coloured dots all over the fabric
        for x in np.arange(8.0, 175.0, 9.0):
            for y in np.arange(8.0, 90.0, 9.0):
                cv2.circle(img, (m + round(x / MPP), m + round(y / MPP)), round(1.8 / MPP), TRAY, -1)
    r = find_holes(_crop(dots))
    assert r.findings == () and "matches the tray colour" in r.skipped



def _dots(colour, pitch_mm=9.0, d_mm=1.8):
    def draw(img, m):  # a print of small round dots all over the body
        for y in np.arange(15.0, H - 10.0, pitch_mm):
            for x in np.arange(15.0, W - 10.0, pitch_mm):
                cv2.circle(img, (m + round(x / MPP), m + round(y / MPP)), round(d_mm / 2 / MPP), colour, -1,
                           cv2.LINE_AA)
    return draw


@pytest.mark.parametrize("shade", [1.0, 1.2])
def test_print_dots_matching_the_tray_are_not_holes(shade):
    # polka dots in the tray's colour (or nearly: a fifth lighter, one of them exactly) cover
    # under 3 % of the fabric and each is hole-like; their many twins say print
    def draw(img, m):
        _dots(tuple(min(255.0, shade * v) for v in TRAY))(img, m)
        _hole(15.0 + 9.0 * 3, 15.0 + 9.0 * 2, 1.8, 1.0)(img, m)  # one dot exactly the tray's colour
    r = find_holes(_crop(draw))
    assert r.findings == () and "hole-like dots" in (r.skipped or ""), r


def test_a_hole_among_dots_unlike_the_tray_is_found():
    def draw(img, m):
        _dots((90, 200, 230))(img, m)  # yellow dots: far from the grey tray
        _hole(62.0, 40.0, 3.0)(img, m)
    r = find_holes(_crop(draw))
    assert len(r.findings) == 1 and r.skipped is None, r



def test_rendered_prints_that_mimic_holes_are_not_holes():
    """Clean masks once failed for holes: polka dots and flower centres matching a dark tray, and
    pale dots on a pale tray (project simulator), and a fold's crest lit across a black check
    square, broken by noise into two compact specks (independent generator, seed 24 case 26)."""
    import sys
    from pathlib import Path

    from qc_station.training.data import pipeline_crop

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.independent.bench import case_kind, make_station
    from tests.independent.scene import render

    for seed in (6_200_030, 6_200_116):
        crop, truths = pipeline_crop(seed)
        assert truths == () and find_holes(crop).findings == (), seed
    # pale dots on a pale tray: 64 found at the limit, none at 1.5x it (they merge with the fabric
    # there), so the twins must be counted at the limit too (bench seed 5151, camera 0)
    # ...and the 15 crossings of pale diagonal lines with the thread or the edge (bench seed 9094):
    # each a twin, though all but one are also specks of a line
    for seed in (511_818_045, 1_356_063_202, 240_846_842):
        crop, truths = pipeline_crop(seed)
        r = find_holes(crop)
        assert truths == () and r.findings == () and "hole-like dots" in (r.skipped or ""), (seed, r)
    st = make_station(2400, views=10)
    case = render(st.camera, np.random.default_rng([24, 26, 9102]), case_kind(26))
    _res, crop = st.inspector.analyse(case.image)
    r = find_holes(crop)
    assert r.findings == () and r.skipped is None, r  # rejected as specks, not skipped as a print


def test_spec_minimum_size_is_honoured():
    assert find_holes(_crop(_hole(60.0, 40.0, 2.0)), min_diameter_mm=3.0).findings == ()


@pytest.mark.slow
def test_pipeline_fails_a_rendered_hole_and_passes_the_clean_mask():
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.sim import render_case
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    insp = Inspector(bundled_sim_calibration(), load_spec())
    img, truth = render_case(711, defects=("hole",))
    result = insp.inspect(img)
    assert result.verdict == "fail" and "hole" in result.reason_codes
    (tx, ty, tw, th), = [d.box_mm for d in truth.mask.defects if d.code == "hole"]
    (bx, by, bw, bh), = [f.box_mm for f in result.defects if f.code == "hole"]
    assert abs((bx + bw / 2) - (tx + tw / 2)) < 1.5 and abs((by + bh / 2) - (ty + th / 2)) < 1.5
    img, _ = render_case(800)
    assert not [f for f in insp.inspect(img).defects if f.code == "hole"]
