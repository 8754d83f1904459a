"""Linear scene light (0..1) -> an 8-bit JPEG-decoded phone frame."""

from __future__ import annotations

import cv2
import numpy as np


def expose(lin: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Vignetting, uneven light, white balance, defocus, shot/read noise, gamma, JPEG.

    ``strength`` scales the nuisance terms (board photos are taken with more care).
    """
    h, w = lin.shape[:2]
    # light field (vignetting x gradient x gain x white balance) on a coarse grid, then resized
    gh, gw = h // 8, w // 8
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32) * 8
    cx, cy = w / 2 + rng.uniform(-80, 80), h / 2 + rng.uniform(-60, 60)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (w * w / 4 + h * h / 4)
    vig = 1.0 - strength * rng.uniform(0.10, 0.30) * r2
    a = rng.uniform(0, 2 * np.pi)
    g = strength * rng.uniform(0.0, 0.14)
    grad = 1.0 + g * (np.cos(a) * (xx / w - 0.5) + np.sin(a) * (yy / h - 0.5)) * 2
    wb = np.float32(rng.uniform(0.85, 1.15)) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    light = cv2.resize(((vig * grad)[..., None] * wb).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    img = cv2.multiply(lin.astype(np.float32), light, scale=255.0)
    sigma = rng.uniform(0.45, 1.05) if strength >= 1 else rng.uniform(0.3, 0.6)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    np.clip(img, 0, 255, out=img)
    # shot + read noise, a little chroma noise at 2 px
    shot = rng.uniform(0.15, 0.45)
    read = rng.uniform(0.8, 2.2)
    sd = cv2.sqrt(img * np.float32(shot) + np.float32(read**2))
    noise = np.empty_like(img)
    cv2.setRNGSeed(int(rng.integers(0, 2**31 - 1)))
    cv2.randn(noise, (0, 0, 0), (1, 1, 1))
    chroma = np.empty((h // 2, w // 2, 3), np.float32)
    cv2.randn(chroma, (0, 0, 0), (1, 1, 1))
    img += cv2.multiply(noise, sd)
    img += cv2.resize(chroma, (w, h)) * np.float32(rng.uniform(0.5, 2.0))
    # display gamma (scene values are linear-ish reflectances), through a 4096-entry table
    lut = np.clip(255.0 * (np.arange(4096) / 4095.0) ** (1 / 1.8) + 0.5, 0, 255).astype(np.uint8)
    out = lut[np.clip(img * np.float32(4095.0 / 255.0), 0, 4095).astype(np.uint16)]
    q = int(rng.integers(72, 93))
    _ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)
