"""Calibration-board views through a simulated camera (held at varied poses, or flat on the tray).

Boards are named like the calibration code expects: ``"charuco"`` (default:
``cv2.aruco.CharucoBoard((8, 6), 25.0, 18.0, DICT_5X5_100)``, mm) or
``"chessboard:COLSxROWS:SQUARE_MM"`` (inner corners, e.g. ``chessboard:9x6:30``).

Board object frame (mm, z = 0 on the paper, z into the board):
- ChArUco: OpenCV's own: origin at the outer top-left corner of the board (the corner of the
  first square), x along the 8 squares, y along the 6 (down in the printed image);
  ``getChessboardCorners()[0] == (25, 25, 0)``.
- Chessboard: origin at the first inner corner (what ``findChessboardCorners`` returns first for
  an upright board), x along COLS, y along ROWS; the square at (-s..0, -s..0) is black.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from qc_station.sim.camera import CameraModel
from qc_station.sim.geometry import plane_points, tray_points
from qc_station.sim.sensor import expose
from qc_station.sim.tray import TRAYS, tray_texture
from qc_station.sim.truth import BoardViewTruth

_PX_PER_MM = 10.0
_PAPER_MARGIN_MM = 12.0


@dataclass(frozen=True)
class BoardSpec:
    """A parsed board name."""

    kind: str  # "charuco" | "chessboard"
    cols: int  # squares (charuco) or inner corners (chessboard) along x
    rows: int
    square_mm: float
    marker_mm: float = 0.0

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the printed pattern in the board frame."""
        if self.kind == "charuco":
            return (0.0, 0.0, self.cols * self.square_mm, self.rows * self.square_mm)
        s = self.square_mm
        return (-s, -s, self.cols * s, self.rows * s)

    def object_corners(self) -> np.ndarray:
        """Inner corners (N x 3 mm) in the board frame, in the board's corner order."""
        if self.kind == "charuco":
            return np.asarray(charuco_board(self).getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
        g = np.mgrid[0:self.cols, 0:self.rows].T.reshape(-1, 2) * self.square_mm
        return np.hstack([g, np.zeros((len(g), 1))])


def parse_board(name: str) -> BoardSpec:
    """``"charuco"`` or ``"chessboard:9x6:30"`` -> :class:`BoardSpec`."""
    if name == "charuco":
        return BoardSpec("charuco", 8, 6, 25.0, 18.0)
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "chessboard":
        try:
            c, r = (int(v) for v in parts[1].lower().split("x"))
            s = float(parts[2])
        except ValueError:
            pass
        else:
            if c >= 2 and r >= 2 and s > 0:
                return BoardSpec("chessboard", c, r, s)
    raise ValueError(f"unknown board {name!r}: use 'charuco' or 'chessboard:COLSxROWS:SQUARE_MM'")


def charuco_board(spec: BoardSpec):
    """The OpenCV ChArUco board object for ``spec`` (mm units)."""
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    return cv2.aruco.CharucoBoard((spec.cols, spec.rows), spec.square_mm, spec.marker_mm, dictionary)


@lru_cache(maxsize=4)
def _paper(spec: BoardSpec) -> tuple[np.ndarray, tuple[float, float]]:
    """The printed sheet: ink coverage 0..1 (float32) at 10 px/mm, and board mm of pixel (0, 0)."""
    x0, y0, x1, y1 = spec.extent_mm
    m = _PAPER_MARGIN_MM
    w = round((x1 - x0 + 2 * m) * _PX_PER_MM)
    h = round((y1 - y0 + 2 * m) * _PX_PER_MM)
    ink = np.zeros((h, w), np.float32)
    pw, ph = round((x1 - x0) * _PX_PER_MM), round((y1 - y0) * _PX_PER_MM)
    if spec.kind == "charuco":
        img = charuco_board(spec).generateImage((pw, ph), marginSize=0, borderBits=1)
        pattern = 1 - img.astype(np.float32) / 255
    else:
        n = round(spec.square_mm * _PX_PER_MM)
        yy, xx = np.mgrid[0:ph, 0:pw]
        pattern = (((xx // n) + (yy // n)) % 2 == 0).astype(np.float32)
    o = round(m * _PX_PER_MM)
    ink[o:o + ph, o:o + pw] = pattern
    ink = cv2.GaussianBlur(ink, (0, 0), 0.6)  # toner spread + antialiasing for the resampling
    # pixel (col, row) covers [col, col + 1) / 10 mm: its centre is at +0.05 mm
    origin = (x0 - m + 0.5 / _PX_PER_MM, y0 - m + 0.5 / _PX_PER_MM)
    ink.setflags(write=False)
    return ink, origin


def _project_truth(camera: CameraModel, spec: BoardSpec, name: str, R: np.ndarray,
                   t: np.ndarray) -> BoardViewTruth:
    obj = spec.object_corners()
    rvec = cv2.Rodrigues(R)[0].ravel()
    px, _ = cv2.projectPoints(obj, rvec, t, camera.K, camera.dist_array)
    px = px.reshape(-1, 2)
    w, h = camera.image_size
    cam_z = (obj @ R.T + t)[:, 2]
    inside = (px[:, 0] >= 0) & (px[:, 0] <= w - 1) & (px[:, 1] >= 0) & (px[:, 1] <= h - 1) & (cam_z > 0)
    return BoardViewTruth(
        board=name,
        rvec=tuple(float(v) for v in rvec),
        tvec_mm=tuple(float(v) for v in t),
        corners_px=tuple((float(a), float(b)) for a, b in px),
        in_view=tuple(bool(v) for v in inside),
    )


def _paint_board(camera: CameraModel, spec: BoardSpec, X: np.ndarray, Y: np.ndarray, hit: np.ndarray,
                 frame: np.ndarray, rng: np.random.Generator, shade: float = 1.0) -> None:
    """Lay the paper sheet seen at board coordinates (X, Y) over ``frame`` (float32 BGR)."""
    ink, (ox, oy) = _paper(spec)
    mapx = (X - np.float32(ox)) * np.float32(_PX_PER_MM)
    mapy = (Y - np.float32(oy)) * np.float32(_PX_PER_MM)
    mapx[~hit] = -10
    ones = np.ones_like(ink)
    two = cv2.merge([ink, ones])
    s = cv2.remap(two, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    cov, paper = s[..., 0], s[..., 1]
    white = np.float32(rng.uniform(0.86, 0.96) * shade)
    black = np.float32(rng.uniform(0.05, 0.1) * shade)
    h, w = paper.shape
    texture = 1 + 0.02 * cv2.resize(rng.standard_normal((h // 6 + 1, w // 6 + 1)).astype(np.float32), (w, h))
    tone = (white + (black - white) * cov) * texture
    tint = np.asarray([1.0, 0.995, 0.985], np.float32) * rng.uniform(0.98, 1.02, 3).astype(np.float32)
    p3 = paper[..., None]
    frame *= 1 - p3
    frame += (tone[..., None] * tint) * p3


def _random_board_pose(camera: CameraModel, spec: BoardSpec, rng: np.random.Generator):
    w, h = camera.image_size
    x0, y0, x1, y1 = spec.extent_mm
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, 0.0])
    tilt = np.deg2rad(rng.uniform(10, 40))
    axis_ang = rng.uniform(0, 2 * np.pi)
    r_tilt = cv2.Rodrigues(np.array([np.cos(axis_ang), np.sin(axis_ang), 0.0]) * tilt)[0]
    r_in = cv2.Rodrigues(np.array([0.0, 0.0, np.deg2rad(rng.uniform(-25, 25))]))[0]
    R = r_tilt @ r_in
    dist = rng.uniform(230, 420)
    # where the board centre appears: mostly inside, sometimes near/over an edge
    spread = 0.48 if rng.uniform() < 0.25 else 0.3
    u = (w - 1) / 2 + rng.uniform(-spread, spread) * w
    v = (h - 1) / 2 + rng.uniform(-spread, spread) * h
    ray = cv2.undistortPoints(np.array([[[u, v]]], np.float64), camera.K, camera.dist_array).reshape(2)
    p_cam = np.array([ray[0], ray[1], 1.0]) * dist
    t = p_cam - R @ centre
    return R, t


def render_board_views(
    camera: CameraModel, n: int, rng: np.random.Generator, *, board: str = "charuco",
    unusable: Iterable[str] = (),
) -> list[tuple[np.ndarray, BoardViewTruth]]:
    """``n`` photos of the calibration board held at varied poses (tilt 10-40 deg, 230-420 mm
    away, sometimes partly out of view), printed on paper, through ``camera``'s lighting/noise.
    ``unusable`` ("blur", "exposure") spoils every view the same way (to test view rejection).
    """
    unusable = tuple(unusable)
    bad = [u for u in unusable if u not in ("blur", "exposure")]
    if bad:
        raise ValueError(f"board views can be spoilt by 'blur' or 'exposure', not {bad}")
    spec = parse_board(board)
    w, h = camera.image_size
    out = []
    for _ in range(n):
        R, t = _random_board_pose(camera, spec, rng)
        # the tray behind is out of the board's plane (and focus): paint it small, blow it up
        small = tray_texture(rng, h // 4, w // 4, str(rng.choice(list(TRAYS))), px_per_mm=0.5)
        frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        X, Y, hit = plane_points(camera, R, t)
        _paint_board(camera, spec, X, Y, hit, frame, rng, shade=float(rng.uniform(0.8, 1.05)))
        image = expose(frame, rng, unusable=unusable)
        out.append((image, _project_truth(camera, spec, board, R, t)))
    return out


def plane_view_truth(camera: CameraModel, board: str = "charuco") -> BoardViewTruth:
    """The truth of :func:`render_plane_view`: the board pose is the camera's tray pose."""
    spec = parse_board(board)
    return _project_truth(camera, spec, board, camera.R, np.asarray(camera.tvec_mm, np.float64))


def render_plane_view(camera: CameraModel, rng: np.random.Generator, *, board: str = "charuco") -> np.ndarray:
    """The board lying flat on the tray, its object frame == the tray frame (origin, x, y)."""
    spec = parse_board(board)
    w, h = camera.image_size
    kind = str(rng.choice(list(TRAYS)))
    frame = tray_texture(rng, h, w, kind, px_per_mm=1 / 0.2, shadows=False)
    X, Y = tray_points(camera)
    _paint_board(camera, spec, X.copy(), Y.copy(), np.ones(X.shape, bool), frame, rng)
    return expose(frame, rng)
