"""Segmentation on drawn coarse views (1 mm/px): a low-contrast fabric on a mottled tray."""

import cv2
import numpy as np
import pytest

from qc_station.vision.segment import foreground, grow_foreground

H, W = 260, 400
BODY = (slice(83, 178), slice(112, 288))  # 95 x 176 mm


def _view(with_mask: bool, seed: int, mottle: float = 6.0) -> np.ndarray:
    """Light-grey tray with soft blotches (std ``mottle``), and a grey mask a little darker."""
    rng = np.random.default_rng(seed)
    blotches = cv2.GaussianBlur(rng.normal(size=(H, W)).astype(np.float32), (0, 0), 6)
    img = np.empty((H, W, 3), np.float32)
    img[:] = (172, 176, 178)
    img += (blotches * (mottle / blotches.std()))[..., None]
    if with_mask:
        cv2.ellipse(img, (110, 130), (40, 35), 0, 90, 270, (95, 100, 105), 3)  # loops
        cv2.ellipse(img, (290, 130), (40, 35), 0, -90, 90, (95, 100, 105), 3)
        img[BODY] = (128, 133, 138)
        cv2.rectangle(img, (112, 83), (287, 177), (110, 115, 120), 2)  # its shaded edge
    img += rng.normal(0, 1.5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_low_contrast_fabric_on_a_mottled_tray_is_grown_from_its_edge_and_loops():
    valid = np.ones((H, W), bool)
    view = _view(True, 1)
    truth = np.zeros((H, W), bool)
    truth[BODY] = True
    # per pixel the body sits below the floor the blotches set: only the edge and loops stand out
    plain = foreground(view, valid, 1.0)
    assert (plain.fg & truth).sum() < 0.1 * truth.sum()
    grown = grow_foreground(plain, valid, 1.0, 4.0)
    assert (grown.fg & truth).sum() > 0.98 * truth.sum()
    outside = grown.fg & ~truth
    assert outside.sum() < 0.12 * truth.sum()  # the loops (~1,500 px with the edge), no tray


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_growing_never_makes_a_mask_out_of_an_empty_mottled_tray(seed):
    valid = np.ones((H, W), bool)
    for mottle in (6.0, 12.0):
        plain = foreground(_view(False, seed, mottle), valid, 1.0)
        assert grow_foreground(plain, valid, 1.0, 4.0).fg.sum() < 200
