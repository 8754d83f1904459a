"""ChArUco board photos through a :class:`RationalCamera` (board printed on A4 paper)."""

from __future__ import annotations

import cv2
import numpy as np

from .camera import RationalCamera, homography_guess, invert_on_grid
from .sensor import expose

SQUARES, SQUARE_MM, MARKER_MM = (8, 6), 25.0, 18.0
PX_PER_MM = 8.0
PAPER = (-48.5, -30.0, 297.0, 210.0)  # x0, y0, w, h in board mm (A4 landscape around the board)


def charuco_board():
    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    return cv2.aruco.CharucoBoard(SQUARES, SQUARE_MM, MARKER_MM, d)


_PAPER_TEX: np.ndarray | None = None


def paper_texture() -> np.ndarray:
    global _PAPER_TEX
    if _PAPER_TEX is None:
        bw, bh = SQUARES[0] * SQUARE_MM, SQUARES[1] * SQUARE_MM
        img = charuco_board().generateImage((int(bw * PX_PER_MM), int(bh * PX_PER_MM)), marginSize=0)
        x0, y0, w, h = PAPER
        tex = np.full((int(h * PX_PER_MM), int(w * PX_PER_MM)), 255, np.uint8)
        ox, oy = int(-x0 * PX_PER_MM), int(-y0 * PX_PER_MM)
        tex[oy:oy + img.shape[0], ox:ox + img.shape[1]] = img
        # toner is not pure black, paper not pure white
        _PAPER_TEX = (tex.astype(np.float32) / 255.0) * 0.82 + 0.08
    return _PAPER_TEX


def render_plane(cam: RationalCamera, R: np.ndarray, t: np.ndarray, background: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """The paper board with pose (R, t) (board -> camera) over a linear-light background (h, w, 3)."""
    w, h = cam.size
    x0, y0, pw, ph = PAPER
    grid = np.array([[x, y, 0.0] for x in np.linspace(x0, x0 + pw, 7) for y in np.linspace(y0, y0 + ph, 5)])
    gpx = cam.project(grid, R, t)
    guess = homography_guess(grid[:, :2], gpx)

    def fwd(uv):
        return cam.project(np.column_stack([uv, np.zeros(len(uv))]), R, t)

    U, V = invert_on_grid(cam, fwd, 0.0, 0.0, 16, w, h, guess)
    tex = paper_texture()
    mx = (U - x0) * PX_PER_MM - 0.5  # texel i is centred at x0 + (i + 0.5) / PX_PER_MM
    my = (V - y0) * PX_PER_MM - 0.5
    val = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    inside = val >= 0
    # paper anti-aliased border: coverage from the inverse map distance to the paper edge
    img = background.copy()
    paper = np.clip(val, 0, 1)[..., None] * np.array([0.93, 0.95, 0.97], np.float32)
    img[inside] = paper[inside]
    return img


def random_board_pose(cam: RationalCamera, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    w, h = cam.size
    for _ in range(100):
        px = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.22, 0.78) * h])
        z = rng.uniform(300, 430)
        ray = np.linalg.inv(cam.K) @ np.array([px[0], px[1], 1.0])
        centre_cam = ray * z
        tilt = np.radians(rng.uniform(8, 38))
        a = rng.uniform(0, 2 * np.pi)
        Rt = cv2.Rodrigues(np.array([np.cos(a), np.sin(a), 0]) * tilt)[0]
        Rz = cv2.Rodrigues(np.array([0, 0, np.radians(rng.uniform(-25, 25))]))[0]
        R = Rt @ Rz
        t = centre_cam - R @ np.array([100.0, 75.0, 0.0])
        corners = np.array([[x, y, 0] for x in (0, 200) for y in (0, 150)], float)
        cp = cam.project(corners, R, t)
        if (cp[:, 0].min() > 5 and cp[:, 1].min() > 5 and cp[:, 0].max() < w - 5 and cp[:, 1].max() < h - 5):
            return R, t
    return R, t


def background(cam: RationalCamera, rng: np.random.Generator) -> np.ndarray:
    w, h = cam.size
    base = rng.uniform(0.08, 0.45) * np.array(rng.uniform(0.8, 1.2, 3), np.float32)
    low = cv2.resize(rng.normal(0, 0.04, (9, 16)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base[None, None, :] + low[..., None], 0, 1).astype(np.float32)


def board_views(cam: RationalCamera, n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    out = []
    for k in range(n):
        R, t = random_board_pose(cam, rng)
        lin = render_plane(cam, R, t, background(cam, rng), rng)
        out.append((f"ind_calib_{k:02d}", expose(lin, rng, strength=0.6)))
    return out


def plane_view(cam: RationalCamera, tray_linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The board lying on the tray: board frame == tray frame."""
    lin = render_plane(cam, cam.R, cam.t, tray_linear, rng)
    return expose(lin, rng, strength=0.6)
