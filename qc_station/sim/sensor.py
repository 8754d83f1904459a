"""Light and sensor: vignetting, uneven light, defocus, motion blur, exposure, noise, JPEG."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def illumination(rng: np.random.Generator, height: int, width: int, *, vignetting: bool = True) -> np.ndarray:
    """Relative light falling on each pixel (float32 H x W): vignetting x a linear gradient."""
    gh, gw = height // 8 + 2, width // 8 + 2  # smooth: compute coarse, then interpolate
    xn = np.linspace(-1, 1, gw, dtype=np.float32)
    yn = np.linspace(-1, 1, gh, dtype=np.float32) * np.float32(height / width)
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    light = 1 + gx * xn[None, :] + gy * yn[:, None]
    if vignetting:
        a = rng.uniform(0.12, 0.3)
        r2 = (xn**2)[None, :] + (yn**2)[:, None]
        r2 /= r2.max()
        light = light * (1 - a * r2)
    if rng.uniform() < 0.3:  # a lamp's soft hot spot
        cx, cy = rng.uniform(-0.7, 0.7, 2)
        rad = rng.uniform(0.3, 0.8)
        spot = np.exp(-((xn[None, :] - cx) ** 2 + (yn[:, None] - cy * height / width) ** 2) / (2 * rad**2))
        light = light * (1 + rng.uniform(0.05, 0.15) * spot)
    return cv2.resize(light.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def _seed_cv(rng: np.random.Generator) -> None:
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))


def add_sensor_noise(img_u8: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Shot (signal-dependent) + read noise on an 8-bit frame, deterministic from ``rng``.

    Like a phone's processed output: fine luminance grain per pixel plus blotchier colour
    noise (demosaicing and chroma denoising spread it over ~2 px).
    """
    h, w = img_u8.shape[:2]
    levels = np.arange(256, dtype=np.float32) / 255
    sigma_lut = (np.sqrt(levels * shot + read) * 255).astype(np.float32)
    luma = cv2.cvtColor(img_u8, cv2.COLOR_BGR2GRAY)
    sigma = cv2.LUT(luma, sigma_lut)
    _seed_cv(rng)
    grain = np.empty((h, w), np.float32)
    cv2.randn(grain, 0.0, 0.8)
    chroma = np.empty((h // 2 + 1, w // 2 + 1, 3), np.float32)
    cv2.randn(chroma, (0.0, 0.0, 0.0), (0.75, 0.75, 0.75))
    noise = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
    noise += grain[..., None]
    noise *= sigma[..., None]
    noise += img_u8
    return cv2.convertScaleAbs(noise)  # rounds and saturates to 0..255


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
    img *= wb  # white balance
    sigma = float(rng.uniform(0.5, 1.2))
    cv2.GaussianBlur(img, (0, 0), sigma, dst=img)
    knobs = {"defocus_px": sigma}
    if "blur" in unusable:
        length = float(rng.uniform(15, 40))
        img = cv2.filter2D(img, -1, motion_kernel(rng, length), borderType=cv2.BORDER_REFLECT)
        knobs["motion_blur_px"] = length
    if "exposure" in unusable:
        # relative to the scene, so any tray/fabric ends up clipped: over-exposed puts the
        # darkest third above white, under-exposed puts the brightest tenth near black
        sample = img[::8, ::8]
        if rng.uniform() < 0.5:  # every channel of 70 % of the pixels clips at white
            gain = float(rng.uniform(1.15, 1.8) / max(np.percentile(sample.min(axis=2), 30), 1e-3))
        else:
            gain = float(rng.uniform(0.025, 0.06) / max(np.percentile(sample.max(axis=2), 90), 1e-3))
        img *= gain
        knobs["exposure_gain"] = gain
    np.clip(img, 0, None, out=img)
    out = cv2.convertScaleAbs(img, alpha=255.0)
    out = add_sensor_noise(out, rng, float(rng.uniform(1.5e-4, 4e-4)), float(rng.uniform(1e-5, 4e-5)))
    if jpeg:
        q = int(rng.integers(75, 96))
        _ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        knobs["jpeg_quality"] = q
    if info is not None:
        info.update(knobs)
    return out
