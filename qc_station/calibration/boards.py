"""Calibration boards: their description, their printable drawing, and their detection in a photo.

Two kinds are supported, named by a short string (``--board``):

- ``charuco:8x6:25:18:DICT_5X5_100`` (the default, ``charuco`` alone): a ChArUco board of
  8 x 6 *squares* of 25 mm with 18 mm ArUco markers from ``DICT_5X5_100``; its corners are the
  7 x 5 inner chessboard corners, each identified by the markers, so a partly visible board
  still calibrates. Trailing fields may be left out (defaults 25, 18, DICT_5X5_100).
- ``chessboard:9x6:30``: a plain chessboard with 9 x 6 *inner corners* (OpenCV's convention,
  i.e. 10 x 7 squares) of 30 mm. It must be seen whole.

Board frame (= tray frame for the plane image): mm, origin at the board's top-left corner as
printed for ChArUco (top-left inner corner for a chessboard), x right, y down, z into the board.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from qc_station.errors import CalibrationError

DEFAULT_BOARD = "charuco:8x6:25:18:DICT_5X5_100"
MIN_CHARUCO_CORNERS = 12
#: A view whose board edges are wider than this (10-90 % rise, px) is too blurred to trust.
MAX_EDGE_WIDTH_PX = 5.0


@dataclass(frozen=True)
class BoardSpec:
    """A calibration board. For ChArUco ``cols x rows`` counts squares, for a chessboard inner corners."""

    kind: Literal["charuco", "chessboard"]
    cols: int
    rows: int
    square_mm: float
    marker_mm: float = 0.0
    dictionary: str = ""

    @property
    def name(self) -> str:
        """The canonical ``--board`` string (stored in station.json)."""
        if self.kind == "charuco":
            return (
                f"charuco:{self.cols}x{self.rows}:{_num(self.square_mm)}:{_num(self.marker_mm)}:"
                f"{self.dictionary}"
            )
        return f"chessboard:{self.cols}x{self.rows}:{_num(self.square_mm)}"

    @property
    def squares(self) -> tuple[int, int]:
        """Number of printed squares (across, down)."""
        return (self.cols, self.rows) if self.kind == "charuco" else (self.cols + 1, self.rows + 1)

    @property
    def inner_corners(self) -> tuple[int, int]:
        """Number of inner chessboard corners (across, down)."""
        return (self.cols - 1, self.rows - 1) if self.kind == "charuco" else (self.cols, self.rows)

    @property
    def n_corners(self) -> int:
        nx, ny = self.inner_corners
        return nx * ny

    @property
    def size_mm(self) -> tuple[float, float]:
        """Printed size of the checkered area (width, height) in mm."""
        sx, sy = self.squares
        return sx * self.square_mm, sy * self.square_mm

    @property
    def description(self) -> str:
        """One human line, e.g. for the printed sheet and the CLI."""
        sx, sy = self.squares
        if self.kind == "charuco":
            return (
                f"ChArUco board, {sx} x {sy} squares of {_num(self.square_mm)} mm, "
                f"{_num(self.marker_mm)} mm markers, {self.dictionary} ({self.n_corners} corners)"
            )
        return (
            f"Chessboard, {self.cols} x {self.rows} inner corners ({sx} x {sy} squares) "
            f"of {_num(self.square_mm)} mm"
        )

    def corner_points_mm(self) -> np.ndarray:
        """All inner corners in the board frame, (N, 3) float32, indexed by corner id (row-major)."""
        nx, ny = self.inner_corners
        off = self.square_mm if self.kind == "charuco" else 0.0
        xs, ys = np.meshgrid(np.arange(nx), np.arange(ny))
        pts = np.stack([xs.ravel() * self.square_mm + off, ys.ravel() * self.square_mm + off,
                        np.zeros(nx * ny)], axis=1)
        return pts.astype(np.float32)

    def black_rectangles_mm(self) -> list[tuple[float, float, float, float]]:
        """Every black area of the printed board as ``(x, y, w, h)`` mm rectangles (board frame).

        The same list draws the vector PDF and the raster PNG, so both are exactly the board
        OpenCV detects (the ChArUco markers come from OpenCV's own dictionary bits).
        """
        sq = self.square_mm
        sx, sy = self.squares
        rects: list[tuple[float, float, float, float]] = []
        if self.kind == "chessboard":
            # The top-left square is black, then alternate (OpenCV's classic pattern); the frame
            # origin is the first inner corner, one square in.
            for j in range(sy):
                for i in range(sx):
                    if (i + j) % 2 == 0:
                        rects.append(((i - 1) * sq, (j - 1) * sq, sq, sq))
            return rects
        board = cv_charuco_board(self)
        marker_origins = [np.asarray(c, dtype=np.float64)[0] for c in board.getObjPoints()]
        with_marker = {(int(x // sq), int(y // sq)) for x, y, _ in marker_origins}
        for j in range(sy):
            for i in range(sx):
                if (i, j) not in with_marker:  # ChArUco: markers sit in the white squares
                    rects.append((i * sq, j * sq, sq, sq))
        dictionary = board.getDictionary()
        bits = dictionary.markerSize + 2  # marker bits + one black border cell each side
        cell = self.marker_mm / bits
        for marker_id, origin in zip(board.getIds().ravel(), marker_origins, strict=True):
            cells = dictionary.generateImageMarker(int(marker_id), bits)
            for r in range(bits):
                for c in range(bits):
                    if cells[r, c] < 128:
                        rects.append((origin[0] + c * cell, origin[1] + r * cell, cell, cell))
        return rects


def _num(x: float) -> str:
    return f"{x:g}"


def parse_board(text: str | BoardSpec | None = None) -> BoardSpec:
    """Parse a ``--board`` string; a :class:`CalibrationError` explains a bad one.

    >>> parse_board("chessboard:9x6:30").square_mm
    30.0
    >>> parse_board("charuco").name
    'charuco:8x6:25:18:DICT_5X5_100'
    """
    if isinstance(text, BoardSpec):
        return text
    text = (text or DEFAULT_BOARD).strip()
    parts = text.split(":")
    kind = parts[0].lower()
    hint = "expected e.g. 'charuco:8x6:25:18:DICT_5X5_100' or 'chessboard:9x6:30'"
    try:
        if kind == "charuco":
            defaults = DEFAULT_BOARD.split(":")
            if len(parts) > len(defaults):
                raise ValueError("too many fields")
            parts = parts + defaults[len(parts):]
            cols, rows = _grid(parts[1])
            square, marker = float(parts[2]), float(parts[3])
            dictionary = parts[4].upper()
            if not hasattr(cv2.aruco, dictionary) or not dictionary.startswith("DICT_"):
                raise ValueError(f"unknown ArUco dictionary {parts[4]!r}")
            if not 0 < marker < square:
                raise ValueError(f"marker size {marker:g} mm must be smaller than the square {square:g} mm")
            if cols < 3 or rows < 3:
                raise ValueError("a ChArUco board needs at least 3 x 3 squares")
            spec = BoardSpec("charuco", cols, rows, square, marker, dictionary)
            n_markers = (cols * rows) // 2
            dict_size = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)).bytesList.shape[0]
            if n_markers > dict_size:
                raise ValueError(f"{n_markers} markers needed but {dictionary} has only {dict_size}")
            return spec
        if kind == "chessboard":
            if len(parts) == 1:
                parts = ["chessboard", "9x6", "30"]
            if len(parts) != 3:
                raise ValueError("a chessboard needs COLSxROWS (inner corners) and the square size in mm")
            cols, rows = _grid(parts[1])
            if cols < 3 or rows < 3 or cols == rows:
                raise ValueError("a chessboard needs at least 3 x 3 inner corners and cols != rows")
            square = float(parts[2])
            return BoardSpec("chessboard", cols, rows, square)
        raise ValueError(f"unknown board kind {parts[0]!r}")
    except ValueError as exc:
        raise CalibrationError(f"invalid board {text!r}: {exc}; {hint}") from None


def _grid(text: str) -> tuple[int, int]:
    a, _, b = text.lower().partition("x")
    cols, rows = int(a), int(b)
    return cols, rows


@functools.lru_cache(maxsize=8)
def cv_charuco_board(spec: BoardSpec) -> cv2.aruco.CharucoBoard:
    """The OpenCV board object (mm units) of a ChArUco spec."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.CharucoBoard((spec.cols, spec.rows), spec.square_mm, spec.marker_mm, dictionary)


@functools.lru_cache(maxsize=8)
def _charuco_detector(spec: BoardSpec) -> cv2.aruco.CharucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.CharucoDetector(cv_charuco_board(spec), cv2.aruco.CharucoParameters(), params)


# -- drawing ----------------------------------------------------------------------------------
def render_board_image(spec: BoardSpec, px_per_mm: float, margin_mm: float | None = None) -> np.ndarray:
    """The board as a white-background grayscale image at ``px_per_mm`` (anti-aliased edges).

    Pixel ``(u, v)`` (centre convention) is at board mm ``((u + 0.5) / s - m - o, ...)`` where
    ``s = px_per_mm``, ``m = margin_mm`` and ``o`` the frame offset (0 for ChArUco, one square for
    a chessboard). The default margin is one square (the white quiet zone detection needs).
    """
    margin = spec.square_mm if margin_mm is None else margin_mm
    off = 0.0 if spec.kind == "charuco" else spec.square_mm
    w_mm, h_mm = spec.size_mm
    w = round((w_mm + 2 * margin) * px_per_mm)
    h = round((h_mm + 2 * margin) * px_per_mm)
    cover = np.zeros((h, w), np.float32)
    # Axis-aligned, non-overlapping rectangles: each pixel's black fraction is the product of its
    # x and y overlaps (pixel u spans [u, u + 1)), so the anti-aliasing is exact, with no bias.
    for x, y, rw, rh in spec.black_rectangles_mm():
        x0, y0 = (x + off + margin) * px_per_mm, (y + off + margin) * px_per_mm
        x1, y1 = x0 + rw * px_per_mm, y0 + rh * px_per_mm
        u = np.arange(int(np.floor(x0)), int(np.ceil(x1)))
        v = np.arange(int(np.floor(y0)), int(np.ceil(y1)))
        cov_u = np.clip(np.minimum(u + 1, x1) - np.maximum(u, x0), 0, 1)
        cov_v = np.clip(np.minimum(v + 1, y1) - np.maximum(v, y0), 0, 1)
        cover[v[0]:v[-1] + 1, u[0]:u[-1] + 1] += np.outer(cov_v, cov_u).astype(np.float32)
    img = np.round(255.0 * (1.0 - np.clip(cover, 0.0, 1.0))).astype(np.uint8)
    return img


# -- detection ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoardDetection:
    """Corners found in one view, or the reason the view cannot be used.

    ``object_points_mm`` (N, 3) float32 in the board frame and ``image_points_px`` (N, 2) float32
    sub-pixel positions, paired row by row; ``ids`` are the corner ids (row-major over the inner
    corners). ``edge_width_px`` is the measured blur (10-90 % edge rise) where it was computed.
    """

    ok: bool
    reason: str
    object_points_mm: np.ndarray
    image_points_px: np.ndarray
    ids: np.ndarray
    image_size: tuple[int, int]
    edge_width_px: float = float("nan")

    @property
    def n_corners(self) -> int:
        return len(self.ids)


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got {image.dtype}")
    return image


def edge_width_px(gray: np.ndarray, region: np.ndarray | None = None) -> float:
    """Blur as the typical width (px) of the strongest edges: contrast / peak gradient.

    A sharp step edge is about 1-1.5 px wide; a Gaussian blur of sigma ``s`` widens it to about
    ``2.5 s``. Computed inside ``region`` (a uint8 mask) when given. Returns ``inf`` on a flat image.
    """
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    mag = cv2.magnitude(gx, gy)
    if region is not None:
        sel = region > 0
        values, grads = g[sel], mag[sel]
    else:
        values, grads = g.ravel(), mag.ravel()
    if values.size < 100:
        return float("inf")
    lo, hi = np.percentile(values, [5, 95])
    contrast = float(hi - lo)
    peak = float(np.percentile(grads, 99.5))
    if contrast < 10 or peak <= 0:
        return float("inf")
    # contrast / peak is sqrt(2 pi) sigma for a Gaussian edge; * 1.0 converts to a 10-90 % width
    # (2.56 sigma) closely enough for a threshold.
    return contrast / peak


def detect_board(spec: BoardSpec, image: np.ndarray, *, max_edge_width_px: float = MAX_EDGE_WIDTH_PX,
                 min_corners: int = MIN_CHARUCO_CORNERS) -> BoardDetection:
    """Find the board's corners in one image (BGR or grayscale), sub-pixel.

    Returns a :class:`BoardDetection`; when the view is unusable ``ok`` is False and ``reason``
    says why (board not found, too few corners, corners on one line, blurry).
    """
    gray = _to_gray(image)
    h, w = gray.shape[:2]
    empty = np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.int32)

    def fail(reason: str, width: float = float("nan")) -> BoardDetection:
        return BoardDetection(False, reason, *empty, (w, h), width)

    if spec.kind == "charuco":
        corners, ids, marker_corners, marker_ids = _charuco_detector(spec).detectBoard(gray)
        n_markers = 0 if marker_ids is None else len(marker_ids)
        seen = np.concatenate([np.asarray(c).reshape(-1, 2) for c in marker_corners]) if n_markers else None
        if ids is None or len(ids) == 0:
            return fail(_explain(gray, f"board not found ({n_markers} markers, no corners)", seen))
        ids = ids.ravel().astype(np.int32)
        if len(ids) < min_corners:
            few = f"too few corners: {len(ids)} of {spec.n_corners} (need {min_corners})"
            return fail(_explain(gray, few, seen, otherwise="board barely visible or partly hidden"))
        if cv_charuco_board(spec).checkCharucoCornersCollinear(ids):
            return fail(f"the {len(ids)} corners found lie on one line")
        obj, img = cv_charuco_board(spec).matchImagePoints(corners, ids)
        obj = obj.reshape(-1, 3).astype(np.float32)
        img = img.reshape(-1, 2).astype(np.float32)
    else:
        pattern = (spec.cols, spec.rows)
        found, corners = cv2.findChessboardCorners(
            gray, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found:
            return fail(_explain(gray, f"board not found (no complete {pattern[0]}x{pattern[1]} "
                                       "chessboard; it must be fully visible)"))
        # Refinement window: half the smallest corner spacing, at most 11x11 (Bouguet's size).
        spacing = np.min(np.linalg.norm(np.diff(corners.reshape(pattern[1], pattern[0], 2), axis=1), axis=2))
        win = int(max(2, min(11, spacing * 0.35)))
        corners = cv2.cornerSubPix(gray, corners, (win, win), (-1, -1),
                                   (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-3))
        img = corners.reshape(-1, 2).astype(np.float32)
        obj = spec.corner_points_mm()
        ids = np.arange(spec.n_corners, dtype=np.int32)
    width = edge_width_px(gray, _hull_mask(img, gray.shape))
    if width > max_edge_width_px:
        return fail(f"blurry: board edges {width:.1f} px wide (max {max_edge_width_px:g}); "
                    "hold still and focus", width)
    return BoardDetection(True, "", obj, img, ids, (w, h), width)


def _explain(gray: np.ndarray, reason: str, seen_px: np.ndarray | None = None, otherwise: str = "") -> str:
    """Say *why* the board was not (fully) found when the image itself explains it: blank or blurry.

    Blur is measured where board markers were seen (``seen_px``) when there are some, else over
    the whole image.
    """
    lo, hi = np.percentile(gray, [1, 99])
    if hi - lo < 20:
        return f"{reason}: the image is blank (no contrast)"
    region = None
    if seen_px is not None and len(seen_px) >= 4:
        region = _hull_mask(seen_px, gray.shape)
        if np.count_nonzero(region) < 400:
            region = None
    width = edge_width_px(gray, region)
    if width > MAX_EDGE_WIDTH_PX:
        return f"{reason}: the image is blurry (edges {width:.1f} px wide, max {MAX_EDGE_WIDTH_PX:g})"
    return f"{reason}; {otherwise}" if otherwise else reason


def _hull_mask(points_px: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(points_px.reshape(-1, 1, 2).astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 255)
    return mask
