"""A phone-class camera with OpenCV's rational + thin-prism distortion (12 coefficients).

Pose: yaw/pitch/roll about the optical centre placed above a tray point (not the sim's
look-at parametrisation). Image -> plane inversion by Newton iteration of the forward
projection on a coarse grid (not ``cv2.undistortPoints``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SIZE = (2304, 1296)


@dataclass(frozen=True)
class RationalCamera:
    K: np.ndarray  # 3x3
    dist: np.ndarray  # k1 k2 p1 p2 k3 k4 k5 k6 s1 s2 s3 s4
    R: np.ndarray  # tray -> camera
    t: np.ndarray  # mm
    size: tuple[int, int] = SIZE

    @property
    def rvec(self) -> np.ndarray:
        return cv2.Rodrigues(self.R)[0].ravel()

    def project(self, pts: np.ndarray, R: np.ndarray | None = None,
                t: np.ndarray | None = None) -> np.ndarray:
        """Nx3 points (of the tray, or of a plane with pose R, t) -> Nx2 distorted pixels."""
        R = self.R if R is None else R
        t = self.t if t is None else t
        pts = np.asarray(pts, np.float64).reshape(-1, 3)
        px, _ = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], np.asarray(t, np.float64), self.K, self.dist)
        return px.reshape(-1, 2)

    def height_mm(self) -> float:
        return float(-(-self.R.T @ self.t)[2])


def random_camera(rng: np.random.Generator, target=(100.0, 75.0)) -> RationalCamera:
    """A camera in the issue's envelope: 340-360 mm up, tilt <= 5 deg, 0.19-0.22 mm/px."""
    w, h = SIZE
    height = rng.uniform(340, 360)
    mmpp = rng.uniform(0.192, 0.218)
    f = height / mmpp
    fy = f * rng.uniform(0.998, 1.002)
    cx = w / 2 + rng.uniform(-35, 35)
    cy = h / 2 + rng.uniform(-25, 25)
    K = np.array([[f, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    # Phone lens: barrel or mustache through the rational terms, small decentring and prism.
    k1, k2, k3 = rng.uniform(-0.09, 0.06), rng.uniform(-0.05, 0.08), rng.uniform(-0.03, 0.03)
    k4, k5, k6 = rng.uniform(-0.08, 0.08), rng.uniform(-0.03, 0.03), rng.uniform(-0.02, 0.02)
    p1, p2 = rng.uniform(-8e-4, 8e-4, 2)
    s = rng.uniform(-1.2e-3, 1.2e-3, 4)
    dist = np.array([k1, k2, p1, p2, k3, k4, k5, k6, *s])
    # Orientation: camera looking down (+z into the tray), then tilted by yaw/pitch/roll.
    tilt = rng.uniform(0.0, 5.0)
    tdir = rng.uniform(0, 2 * np.pi)
    roll = rng.uniform(-2.5, 2.5)
    rx, ry = np.radians(tilt) * np.cos(tdir), np.radians(tilt) * np.sin(tdir)
    Rtilt = cv2.Rodrigues(np.array([rx, ry, 0.0]))[0]
    Rroll = cv2.Rodrigues(np.array([0, 0, np.radians(roll)]))[0]
    R = Rtilt @ Rroll
    # optical centre: above a point near the target, shifted so the axis hits the target roughly
    C = np.array([target[0], target[1], -height])
    axis_hit = C + R.T @ np.array([0, 0, 1.0]) * height / (R.T @ np.array([0, 0, 1.0]))[2]
    C[:2] += np.array(target) - axis_hit[:2]
    t = -R @ C
    return RationalCamera(K, dist, R, t)


def invert_on_grid(cam: RationalCamera, fwd: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                   y0: np.ndarray, step_px: int, w: int, h: int, guess_uv: np.ndarray,
                   iters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """For image pixels (x0 + i, y0 + j) (i < w, j < h), find plane coords uv with fwd(uv) = pixel.

    ``fwd`` maps Nx2 plane coords -> Nx2 pixels. Solved by Newton on a ``step_px`` grid, then
    bilinearly resized to every pixel (the map is smooth). Returns (u, v) float32 arrays h x w.
    """
    gx = np.arange(0, w + step_px, step_px, dtype=np.float64)
    gy = np.arange(0, h + step_px, step_px, dtype=np.float64)
    X, Y = np.meshgrid(gx + x0, gy + y0)
    target = np.stack([X.ravel(), Y.ravel()], 1)
    uv = guess_uv(target)
    eps = 1e-3
    for _ in range(iters):
        p = fwd(uv)
        pu = fwd(uv + np.array([eps, 0.0]))
        pv = fwd(uv + np.array([0.0, eps]))
        J = np.stack([(pu - p) / eps, (pv - p) / eps], 2)  # N x 2(px) x 2(uv)
        r = target - p
        det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
        du = (J[:, 1, 1] * r[:, 0] - J[:, 0, 1] * r[:, 1]) / det
        dv = (-J[:, 1, 0] * r[:, 0] + J[:, 0, 0] * r[:, 1]) / det
        uv = uv + np.stack([du, dv], 1)
        if np.abs(r).max() < 1e-4:
            break
    U = uv[:, 0].reshape(X.shape).astype(np.float32)
    V = uv[:, 1].reshape(X.shape).astype(np.float32)
    # resize grid so that grid node k lands exactly on pixel k*step (align corners)
    gw, gh = X.shape[1], X.shape[0]
    mx = np.arange(w, dtype=np.float32) / step_px
    my = np.arange(h, dtype=np.float32) / step_px
    MX, MY = np.meshgrid(mx, my)
    U = cv2.remap(U, MX, MY, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    V = cv2.remap(V, MX, MY, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    del gw, gh
    return U, V


def homography_guess(src_uv: np.ndarray, dst_px: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A px -> uv guess from a homography fitted to forward-projected samples."""
    H, _ = cv2.findHomography(dst_px.astype(np.float64), src_uv.astype(np.float64), 0)

    def guess(px: np.ndarray) -> np.ndarray:
        return cv2.perspectiveTransform(px.reshape(-1, 1, 2), H).reshape(-1, 2)

    return guess
