"""Tray backgrounds: matte surfaces with grain, dust, lint, scratches and soft shadows."""

from __future__ import annotations

import cv2
import numpy as np

#: Tray kinds and their base colour (BGR 0..1).
TRAYS: dict[str, tuple[float, float, float]] = {
    "dark_grey": (0.25, 0.25, 0.24),
    "black": (0.075, 0.075, 0.08),
    "green": (0.30, 0.42, 0.16),
    "light_grey": (0.66, 0.67, 0.66),
}


def _lum(c) -> float:
    b, g, r = c
    return 0.114 * b + 0.587 * g + 0.299 * r


def pick_tray(rng: np.random.Generator, fabric_mean_bgr, min_contrast: float = 0.18, loops=()) -> str:
    """A tray kind whose brightness contrasts with the fabric (and, if possible, the loops'
    colours by 0.1), as a station operator would choose it; fallback: the most contrasting."""
    lf = _lum(fabric_mean_bgr)
    names = list(TRAYS)
    ok = [n for n in names if abs(_lum(TRAYS[n]) - lf) >= min_contrast]
    better = [n for n in ok if all(abs(_lum(TRAYS[n]) - _lum(c)) >= 0.1 for c in loops)]
    if better:
        return str(rng.choice(better))
    if not ok:
        return max(names, key=lambda n: abs(_lum(TRAYS[n]) - lf))
    return str(rng.choice(ok))


def _smooth(rng, h, w, cell):
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    return cv2.resize(rng.standard_normal((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def tray_texture(rng: np.random.Generator, height: int, width: int, kind: str, px_per_mm: float = 5.0,
                 shadows: bool | None = None) -> np.ndarray:
    """A tray surface image (float32 BGR, 0..1) of ``height`` x ``width`` px at ``px_per_mm``."""
    base = np.asarray(TRAYS[kind], np.float32) * np.float32(rng.uniform(0.9, 1.1))
    light = _lum(base) > 0.4
    # matte mottling + fine grain (one brightness factor for all channels)
    fac = _smooth(rng, height, width, 60 * px_per_mm) * 0.018
    fac += _smooth(rng, height, width, 3 * px_per_mm) * 0.015
    grain = np.empty((height, width), np.float32)
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))
    cv2.randn(grain, 0.0, 0.035)
    fac += cv2.GaussianBlur(grain, (0, 0), 0.8)
    fac += 1
    # dust, lint and scratches: lighter on dark trays, darker on light ones
    marks = np.zeros((height, width), np.uint8)
    n_dust = int(rng.integers(60, 400))
    xs = rng.uniform(0, width, n_dust)
    ys = rng.uniform(0, height, n_dust)
    for x, y in zip(xs, ys, strict=True):
        r = rng.uniform(0.3, 1.6) * px_per_mm / 5
        cv2.circle(marks, (int(x * 16), int(y * 16)), max(1, int(r * 16)), int(rng.integers(60, 200)), -1,
                   cv2.LINE_AA, 4)
    for _ in range(int(rng.integers(3, 15))):  # lint: short curly fibres
        n = 12
        p0 = rng.uniform((0, 0), (width, height))
        steps = np.cumsum(rng.normal(0, 1, (n, 2)) * 0.3 + rng.normal(0, 1, 2), axis=0)
        pts = p0 + steps * rng.uniform(0.4, 1.2) * px_per_mm
        cv2.polylines(marks, [np.round(pts * 16).astype(np.int32)], False, int(rng.integers(90, 220)), 1,
                      cv2.LINE_AA, 4)
    for _ in range(int(rng.integers(2, 10))):  # scratches: long, thin, faint
        p0 = rng.uniform((0, 0), (width, height))
        ang = rng.uniform(0, np.pi)
        ln = rng.uniform(10, 80) * px_per_mm
        p1 = p0 + ln * np.array([np.cos(ang), np.sin(ang)])
        cv2.line(marks, (int(p0[0] * 16), int(p0[1] * 16)), (int(p1[0] * 16), int(p1[1] * 16)),
                 int(rng.integers(25, 70)), 1, cv2.LINE_AA, 4)
    m = marks.astype(np.float32) * np.float32(1 / 255)
    add = None
    if light:
        fac *= 1 - 0.45 * m
    else:
        add = 0.35 * m
    if shadows if shadows is not None else rng.uniform() < 0.3:
        # a soft shadow cast from outside the view (a hand, the camera arm)
        yy, xx = np.mgrid[0:height:8, 0:width:8].astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        d = (xx - width / 2) * np.cos(ang) + (yy - height / 2) * np.sin(ang)
        edge = rng.uniform(0.2, 0.45) * max(width, height)
        sh = 1 / (1 + np.exp(-(d - edge) / (0.06 * max(width, height))))
        sh = cv2.resize(sh, (width, height), interpolation=cv2.INTER_LINEAR)
        fac *= 1 - np.float32(rng.uniform(0.15, 0.35)) * sh
    chans = []
    for c in range(3):
        ch = fac * base[c]
        if add is not None:
            ch += add * (1 - base[c])
        chans.append(ch)
    return cv2.merge(chans)
