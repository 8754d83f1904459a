"""Light and sensor: vignetting, uneven light, defocus, motion blur, exposure, noise, JPEG."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def illumination(rng: np.random.Generator, height: int, width: int, *, vignetting: bool = True) -> np.ndarray:
    """Relative light falling on each pixel (float32 H x W): vignetting x a linear gradient."""
    xn = np.linspace(-1, 1, width, dtype=np.float32)
    yn = np.linspace(-1, 1, height, dtype=np.float32) * (height / width)
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    light = 1 + gx * xn[None, :] + gy * yn[:, None]
    if vignetting:
        a = rng.uniform(0.12, 0.3)
        r2 = (xn**2)[None, :] + (yn**2)[:, None]
        r2 /= r2.max()
        light = light * (1 - a * r2)
    return light.astype(np.float32)


def motion_kernel(rng: np.random.Generator, length_px: float) -> np.ndarray:
    """A straight motion-blur kernel of ``length_px`` at a random angle (sums to 1)."""
    n = int(np.ceil(length_px)) | 1
    k = np.zeros((n, n), np.float32)
    ang = rng.uniform(0, np.pi)
    c = (n - 1) / 2
    d = np.array([np.cos(ang), np.sin(ang)]) * (length_px - 1) / 2
    cv2.line(k, (int((c - d[0]) * 16), int((c - d[1]) * 16)), (int((c + d[0]) * 16), int((c + d[1]) * 16)),
             1.0, 1, cv2.LINE_AA, 4)
    return k / k.sum()


def expose(
    radiance: np.ndarray,
    rng: np.random.Generator,
    *,
    unusable: Iterable[str] = (),
    vignetting: bool = True,
    jpeg: bool = True,
    info: dict | None = None,
) -> np.ndarray:
    """Turn a scene (float32 BGR, 0..1 nominal) into a camera frame (uint8 BGR), in place-ish."""
    unusable = set(unusable)
    h, w = radiance.shape[:2]
    img = radiance
    light = illumination(rng, h, w, vignetting=vignetting) * np.float32(rng.uniform(0.92, 1.08))
    wb = rng.uniform(0.96, 1.04, 3).astype(np.float32)
    img *= light[..., None]
    img *= wb
    sigma = float(rng.uniform(0.5, 1.2))
    cv2.GaussianBlur(img, (0, 0), sigma, dst=img)
    knobs = {"defocus_px": sigma}
    if "blur" in unusable:
        length = float(rng.uniform(15, 40))
        img = cv2.filter2D(img, -1, motion_kernel(rng, length), borderType=cv2.BORDER_REFLECT)
        knobs["motion_blur_px"] = length
    if "exposure" in unusable:
        gain = float(rng.uniform(2.8, 4.5) if rng.uniform() < 0.5 else rng.uniform(0.04, 0.1))
        img *= gain
        knobs["exposure_gain"] = gain
    # shot + read noise
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0, 1, out=img)
    noise *= np.sqrt(img * np.float32(rng.uniform(1.5e-4, 4e-4)) + np.float32(rng.uniform(1e-5, 4e-5)))
    img += noise
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    if jpeg:
        q = int(rng.integers(75, 96))
        _ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        knobs["jpeg_quality"] = q
    if info is not None:
        info.update(knobs)
    return out
