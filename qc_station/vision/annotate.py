"""Draw an inspection on the camera frame, for the operator.

Everything is drawn where it is on the original photo (the operator recognises the mask
as it lies on the tray): mask-frame mm -> tray mm (the measured pose) -> camera pixels
(``cv2.projectPoints`` with the calibrated distortion, so lines follow the lens). On top, a
banner with a big PASS / FAIL / UNUSABLE and the reasons in plain words.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc_station.calibration.model import StationCalibration
from qc_station.results import PLAIN_WORDS, InspectionResult
from qc_station.vision.geometry import MaskPose

GREEN = (60, 180, 60)
RED = (40, 40, 220)
AMBER = (0, 170, 255)
CYAN = (220, 200, 0)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
VERDICT_COLOUR = {"pass": GREEN, "fail": RED, "unusable": AMBER}


def _project(cal: StationCalibration, pose: MaskPose, uv_mm: np.ndarray) -> np.ndarray:
    tray = pose.mask_to_tray(np.asarray(uv_mm, np.float64))
    obj = np.hstack([tray.reshape(-1, 2), np.zeros((tray.reshape(-1, 2).shape[0], 1))])
    px, _ = cv2.projectPoints(obj, cal.rvec, cal.tvec, cal.K, cal.dist)
    return px.reshape(-1, 2)


def _box_path(x: float, y: float, w: float, h: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.concatenate([
        np.stack([x + t * w, np.full(n, y)], 1), np.stack([np.full(n, x + w), y + t * h], 1),
        np.stack([x + (1 - t) * w, np.full(n, y + h)], 1), np.stack([np.full(n, x), y + (1 - t) * h], 1),
    ])


def _poly(img, pts, colour, thick, closed=True) -> None:
    cv2.polylines(img, [np.round(pts * 4).astype(np.int32)], closed, colour, thick, cv2.LINE_AA, shift=2)


def _label(img, text: str, org, colour, scale: float = 0.9, thick: int = 2) -> None:
    x, y = int(org[0]), int(org[1])
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    h, w = img.shape[:2]
    x = min(max(x, 2), max(w - tw - 2, 2))
    y = min(max(y, th + 4), h - base - 2)
    cv2.rectangle(img, (x - 3, y - th - 4), (x + tw + 3, y + base + 2), BLACK, cv2.FILLED)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)


def annotate(image_bgr: np.ndarray | None, result: InspectionResult, cal: StationCalibration,
             *, blank_size: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of the frame with the outline, dimensions, seam, every reason and the verdict.

    ``image_bgr`` may be None (an unreadable file): a grey canvas of ``blank_size`` (default
    the calibration's image size) carries the banner instead.
    """
    if image_bgr is None:
        w, h = blank_size or cal.image_size
        img = np.full((h, w, 3), 90, np.uint8)
    else:
        img = image_bgr.copy() if image_bgr.ndim == 3 else cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    scale = max(img.shape[1] / 2304.0, 0.4)
    colour = VERDICT_COLOUR[result.verdict]
    m = result.measurements
    if m is not None:
        pose = MaskPose(m.center_tray_mm, m.angle_deg, m.width_mm, m.height_mm)
        W, H = m.width_mm, m.height_mm
        _poly(img, _project(cal, pose, _box_path(0, 0, W, H, 60)), colour, max(2, round(3 * scale)))
        if m.seam_distance_mm:
            d = m.seam_distance_mm
            path = _project(cal, pose, _box_path(d, d, W - 2 * d, H - 2 * d, 80))
            for i in range(0, len(path) - 1, 2):  # dashed, like a stitch line
                _poly(img, path[i:i + 2], CYAN, max(1, round(2 * scale)), closed=False)
        top_mid = _project(cal, pose, [[W / 2, -6.0]])[0]
        left_mid = _project(cal, pose, [[-4.0, H / 2]])[0]
        _label(img, f"W {W:.1f} mm", top_mid - [80 * scale, 0], WHITE, 0.9 * scale * 1.2)
        _label(img, f"H {H:.1f} mm", left_mid - [190 * scale, 0], WHITE, 0.9 * scale * 1.2)
        info = f"pleats {m.pleats}  loops {m.ear_loops_left}+{m.ear_loops_right}"
        if m.stitch_length_mm:
            info += f"  stitch {m.stitch_length_mm:.2f} mm"
        _label(img, info, _project(cal, pose, [[0.0, H + 8.0]])[0], WHITE, 0.8 * scale * 1.2)
        for f in result.defects:
            pts = _project(cal, pose, _box_path(*f.box_mm))
            _poly(img, pts, AMBER, max(1, round(2 * scale)))
        for r in result.reasons:
            if r.box_mm is None:
                continue
            x, y, w, h = r.box_mm
            pad = 1.5 if r.code in ("width", "height", "pleats") else 0.0
            pts = _project(cal, pose, _box_path(x - pad, y - pad, w + 2 * pad, h + 2 * pad))
            _poly(img, pts, RED, max(2, round(3 * scale)))
            _label(img, r.code, pts.min(axis=0) - np.array([0.0, 6.0]), RED, 0.8 * scale * 1.2)
    # banner
    bh = round(110 * scale)
    cv2.rectangle(img, (0, 0), (img.shape[1], bh), colour, cv2.FILLED)
    cv2.putText(img, result.verdict.upper(), (round(20 * scale), round(85 * scale)),
                cv2.FONT_HERSHEY_DUPLEX, 3.0 * scale, WHITE, max(2, round(6 * scale)), cv2.LINE_AA)
    words = "; ".join(dict.fromkeys(PLAIN_WORDS.get(r.code, r.code) for r in result.reasons))
    detail = "; ".join(r.message for r in result.reasons)[:140]
    x_text = round(480 * scale)
    cv2.putText(img, words[:70], (x_text, round(48 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 1.3 * scale, WHITE,
                max(1, round(3 * scale)), cv2.LINE_AA)
    cv2.putText(img, detail, (x_text, round(92 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, WHITE,
                max(1, round(2 * scale)), cv2.LINE_AA)
    return img
