"""The one drawing path: a mask painted in its own frame, at high resolution, with alpha.

:func:`draw_mask_layer` paints the mask (fabric print, weave, pleats, top-stitch, ear loops,
defects) on a canvas in mask-frame mm at half the requested pixel size, then halves it with a
Gaussian pyramid step (antialiasing). The result is premultiplied BGR + alpha, float32.
Pixel ``(col, row)`` of a layer is centred at mask-frame mm ``origin + (col, row) * mm_per_px``.
The outline's alpha comes from the exact signed distance to the rounded rectangle, so the
drawn size is the declared size to well under 0.01 mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.sim.params import DefectParams, FabricParams, LoopParams, MaskParams
from qc_station.sim.truth import DefectTruth

_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Layer:
    """A painted mask: premultiplied BGR + alpha (float32, H x W x 4) in the mask frame."""

    rgba: np.ndarray
    origin_mm: tuple[float, float]
    mm_per_px: float
    defects: tuple[DefectTruth, ...]


class _Canvas:
    """Mask-frame mm <-> canvas pixel conversions for cv2 drawing with sub-pixel shift."""

    def __init__(self, ox: float, oy: float, s: float, w: int, h: int):
        self.ox, self.oy, self.s, self.w, self.h = ox, oy, s, w, h
        self.xs = (ox + np.arange(w, dtype=np.float32) * s).astype(np.float32)
        self.ys = (oy + np.arange(h, dtype=np.float32) * s).astype(np.float32)

    def pts(self, xy_mm: np.ndarray) -> np.ndarray:
        p = (np.asarray(xy_mm, dtype=np.float64) - (self.ox, self.oy)) / self.s
        return np.round(p * _ONE).astype(np.int32).reshape(-1, 1, 2)

    def px(self, mm: float) -> int:
        return max(1, round(mm / self.s))

    def sub(self, rs: slice, cs: slice) -> _Canvas:
        """The canvas of a window of this one."""
        return _Canvas(self.ox + cs.start * self.s, self.oy + rs.start * self.s, self.s,
                       cs.stop - cs.start, rs.stop - rs.start)

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        c0 = int(np.clip(np.floor((x0 - self.ox) / self.s), 0, self.w))
        c1 = int(np.clip(np.ceil((x1 - self.ox) / self.s) + 1, 0, self.w))
        r0 = int(np.clip(np.floor((y0 - self.oy) / self.s), 0, self.h))
        r1 = int(np.clip(np.ceil((y1 - self.oy) / self.s) + 1, 0, self.h))
        return slice(r0, r1), slice(c0, c1)


def _blend_sparse(dst: np.ndarray, color, cov_u8: np.ndarray, strength: float = 1.0) -> None:
    """Like :func:`_blend` but only where the uint8 coverage is non-zero (thin strokes)."""
    r, c = np.nonzero(cov_u8)
    k = (cov_u8[r, c].astype(np.float32) * (strength / 255))[:, None]
    dst[r, c] = dst[r, c] * (1 - k) + np.asarray(color, np.float32) * k


def _blend(dst: np.ndarray, color, cov: np.ndarray) -> None:
    """dst = dst * (1 - cov) + color * cov, in place (cov H x W in 0..1)."""
    c = cov[..., None]
    dst *= 1 - c
    dst += np.asarray(color, dtype=np.float32) * c


# ---------------------------------------------------------------------------------------------
# geometry shared with the truth


def seam_path(p: MaskParams, step_mm: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The top-stitch line: points (N x 2 mm) and their arc length, clockwise from the top-left.

    A rounded rectangle inset by ``seam_distance_mm``; it starts at the left end of the top
    straight part, so arc length 0..(width - 2 d - 2 r) runs along the top edge.
    """
    d = p.seam_distance_mm
    rs = max(p.corner_radius_mm - d, 1.0)
    x0, x1, y0, y1 = d + rs, p.width_mm - d - rs, d + rs, p.height_mm - d - rs
    pieces = []

    def line(a, b):
        n = max(2, int(np.ceil(np.hypot(b[0] - a[0], b[1] - a[1]) / step_mm)) + 1)
        t = np.linspace(0, 1, n)[:-1, None]
        pieces.append(np.asarray(a) + t * (np.asarray(b) - np.asarray(a)))

    def arc(cx, cy, a0):
        n = max(4, int(np.ceil(np.pi / 2 * rs / step_mm)) + 1)
        a = np.deg2rad(a0) + np.linspace(0, np.pi / 2, n)[:-1]
        pieces.append(np.stack([cx + rs * np.cos(a), cy + rs * np.sin(a)], axis=1))

    line((x0, d), (x1, d))
    arc(x1, y0, -90)
    line((p.width_mm - d, y0), (p.width_mm - d, y1))
    arc(x1, y1, 0)
    line((x1, p.height_mm - d), (x0, p.height_mm - d))
    arc(x0, y1, 90)
    line((d, y1), (d, y0))
    arc(x0, y0, 180)
    pts = np.concatenate([*pieces, np.array([[x0, d]])], axis=0)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    return pts, np.concatenate([[0.0], np.cumsum(seg)])


def _edge_coords(edge: str, x: np.ndarray, y: np.ndarray, w: float, h: float):
    """(along, inward) coordinates relative to one edge of the outline."""
    if edge == "top":
        return x, y
    if edge == "bottom":
        return x, h - y
    if edge == "left":
        return y, x
    return y, w - x


def _edge_box(edge: str, t0: float, length: float, depth: float, w: float, h: float):
    if edge == "top":
        return (t0, 0.0, length, depth)
    if edge == "bottom":
        return (t0, h - depth, length, depth)
    if edge == "left":
        return (0.0, t0, depth, length)
    return (w - depth, t0, depth, length)


def _bezier(p0, p1, p2, p3, n: int = 200) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def loop_curve(p: MaskParams, lp: LoopParams) -> np.ndarray:
    """Centre line of one ear loop (N x 2 mm, mask frame), attached ends inside the body."""
    inset = 4.0
    sgn = -1.0 if lp.side == "left" else 1.0
    xa = inset if lp.side == "left" else p.width_mm - inset
    edge_x = 0.0 if lp.side == "left" else p.width_mm
    top = np.array([xa, lp.attach_top_mm])
    bot = np.array([xa, lp.attach_bottom_mm])
    k = (lp.reach_mm + inset / 4) / 0.75
    c1 = np.array([edge_x + sgn * k * (1 + 0.25 * lp.bulge_top), lp.attach_top_mm - 12 * lp.bulge_top])
    c2 = np.array([edge_x + sgn * k * (1 + 0.25 * lp.bulge_bottom),
                   lp.attach_bottom_mm + 12 * lp.bulge_bottom])
    if lp.attached:
        return _lie_loosely(_bezier(top, c1, c2, bot), p, lp)
    # detached at one end: the loop lies from its remaining attachment, its free end dangling
    if lp.state == "detached_bottom":
        start, ctl = top, c1
        end = np.array([edge_x + sgn * lp.dangle_dx_mm, lp.attach_top_mm + lp.dangle_dy_mm])
    else:
        start, ctl = bot, c2
        end = np.array([edge_x + sgn * lp.dangle_dx_mm, lp.attach_bottom_mm - lp.dangle_dy_mm])
    mid = (ctl + end) / 2 + np.array([sgn * 10.0, 0.0])
    return _lie_loosely(_bezier(start, ctl * 0.6 + start * 0.4, mid, end, n=160), p, lp)


def _lie_loosely(curve: np.ndarray, p: MaskParams, lp: LoopParams) -> np.ndarray:
    """An elastic dropped on the tray is not a perfect arc: bend it a little (ends stay put)."""
    rng = np.random.default_rng([p.seed, 10 if lp.side == "left" else 11])
    n = len(curve)
    t = np.linspace(0, 1, n)
    bend = np.zeros(n)
    for k in (1, 2, 3):
        bend += rng.normal(0, 1.6 / k) * np.sin(np.pi * k * t + rng.uniform(0, 0.3))
    bend *= np.sin(np.pi * t) ** 0.5  # fixed at the attachments
    return _offset_curve(curve, 0.0) + _normals(curve) * bend[:, None]


def layer_extent_mm(p: MaskParams, margin_mm: float = 8.0) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) mask-frame box holding the body, its loops and shadows."""
    x0, y0, x1, y1 = -margin_mm, -margin_mm, p.width_mm + margin_mm, p.height_mm + margin_mm
    for lp in p.loops:
        c = loop_curve(p, lp)
        half = lp.width_mm / 2 + margin_mm
        x0, x1 = min(x0, c[:, 0].min() - half), max(x1, c[:, 0].max() + half)
        y0, y1 = min(y0, c[:, 1].min() - half), max(y1, c[:, 1].max() + half)
    return (float(x0), float(y0), float(x1), float(y1))


# ---------------------------------------------------------------------------------------------
# fabric


def _periodic_cov(t: np.ndarray, period: float, duty: float, s: float, phase: float = 0.0) -> np.ndarray:
    """Antialiased coverage of bands of width duty*period repeating every period (t in mm)."""
    u = np.mod(t / period + phase, 1.0) - 0.5
    d = (duty * period / 2 - np.abs(u) * period) / s
    return np.clip(d + 0.5, 0.0, 1.0).astype(np.float32)


def _fabric_tile(f: FabricParams, s: float, rng: np.random.Generator) -> np.ndarray:
    """One repeat of a dotted or floral print (float32 BGR)."""
    n = max(8, round(f.scale_mm / s))
    if f.pattern == "dotted":
        tile = np.empty((2 * n, 2 * n, 3), np.float32)
        tile[:] = f.base
        cov = np.zeros((2 * n, 2 * n), np.uint8)
        r = f.scale_mm * rng.uniform(0.1, 0.22) / s
        for cx, cy in ((n / 2, n / 2), (1.5 * n, 1.5 * n)):
            cv2.circle(cov, (int(cx * _ONE), int(cy * _ONE)), int(r * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
        _blend(tile, f.accent, cov.astype(np.float32) / 255)
        return tile
    # floral: flowers with petals, centres and leaves, drawn with wrap-around so the tile repeats
    img = np.empty((n, n, 3), np.uint8)
    img[:] = np.clip(np.asarray(f.base) * 255, 0, 255).astype(np.uint8)
    leaf = tuple(int(v) for v in np.clip(np.array([0.25, 0.5, 0.3]) * 255 * rng.uniform(0.6, 1.2), 0, 255))
    accent = tuple(int(v * 255) for v in f.accent)
    centre = tuple(int(v * 255) for v in f.accent2)
    big = rng.uniform(0.06, 0.16)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0, n, 2)
        rad = rng.uniform(0.5, 1.0) * big * n
        petals = int(rng.integers(4, 7))
        rot = rng.uniform(0, 360)
        for ox in (-n, 0, n):
            for oy in (-n, 0, n):
                x, y = cx + ox, cy + oy
                if x < -2 * rad or x > n + 2 * rad or y < -2 * rad or y > n + 2 * rad:
                    continue
                for k in range(2):
                    a = np.deg2rad(rot + 140 + 60 * k)
                    lc = (x + 1.4 * rad * np.cos(a), y + 1.4 * rad * np.sin(a))
                    cv2.ellipse(img, (int(lc[0] * _ONE), int(lc[1] * _ONE)),
                                (int(0.8 * rad * _ONE), int(0.3 * rad * _ONE)),
                                np.rad2deg(a), 0, 360, leaf, -1, cv2.LINE_AA, _SHIFT)
                for k in range(petals):
                    a = np.deg2rad(rot + k * 360 / petals)
                    pc = (x + 0.55 * rad * np.cos(a), y + 0.55 * rad * np.sin(a))
                    cv2.ellipse(img, (int(pc[0] * _ONE), int(pc[1] * _ONE)),
                                (int(0.55 * rad * _ONE), int(0.3 * rad * _ONE)),
                                np.rad2deg(a), 0, 360, accent, -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(img, (int(x * _ONE), int(y * _ONE)), int(0.25 * rad * _ONE), centre, -1,
                           cv2.LINE_AA, _SHIFT)
    return img.astype(np.float32) / 255


def _fabric(f: FabricParams, cv: _Canvas, ypat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The print colour at every canvas pixel (H x W x 3), ``ypat`` = print row of each canvas row."""
    h, w, s = cv.h, cv.w, cv.s
    xs = cv.xs
    out = np.empty((h, w, 3), np.float32)
    if f.pattern == "plain":
        out[:] = f.base
    elif f.pattern in ("dotted", "floral"):
        tile = _fabric_tile(f, s, rng)
        th, tw = tile.shape[:2]
        off = rng.integers(0, 1 << 16, 2)
        rows = (np.round(ypat / s).astype(np.int64) + off[0]) % th
        c0 = (round(float(xs[0]) / s) + int(off[1])) % tw  # columns step by one tile pixel
        band = np.take(tile, rows, axis=0)  # (h, tw, 3)
        band = np.roll(band, -c0, axis=1)
        reps = -(-w // tw)
        out[:] = np.tile(band, (1, reps, 1))[:, :w]
    elif f.pattern == "checked":
        p = f.scale_mm
        phase = rng.uniform(0, 1, 2)
        vx = _periodic_cov(xs, p, 0.5, s, phase[0])
        hy = _periodic_cov(ypat, p, 0.5, s, phase[1])
        a = np.clip(0.5 * vx[None, :] + 0.5 * hy[:, None], 0, 1)
        out[:] = f.base
        _blend(out, f.accent, a)
    else:  # striped
        p = f.scale_mm
        duty = rng.uniform(0.3, 0.6)
        phase = rng.uniform()
        out[:] = f.base
        if f.stripe_angle_deg == 90.0:
            cov = np.broadcast_to(_periodic_cov(xs, p, duty, s, phase)[None, :], (h, w))
        elif f.stripe_angle_deg == 0.0:
            cov = np.broadcast_to(_periodic_cov(ypat, p, duty, s, phase)[:, None], (h, w))
        else:
            sg = 1.0 if f.stripe_angle_deg > 0 else -1.0
            t = (xs[None, :] + sg * ypat[:, None]) * np.float32(0.7071)
            cov = _periodic_cov(t, p, duty, s, phase)
        _blend(out, f.accent, cov)
        if rng.uniform() < 0.5:  # a thin second colour line in the middle of the gaps
            if f.stripe_angle_deg == 90.0:
                c2 = np.broadcast_to(_periodic_cov(xs, p, 0.08, s, phase + 0.5)[None, :], (h, w))
            elif f.stripe_angle_deg == 0.0:
                c2 = np.broadcast_to(_periodic_cov(ypat, p, 0.08, s, phase + 0.5)[:, None], (h, w))
            else:
                c2 = _periodic_cov(t, p, 0.08, s, phase + 0.5)
            _blend(out, f.accent2, c2)
    return out


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell_px: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with features about ``cell_px`` wide."""
    gh, gw = max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


# ---------------------------------------------------------------------------------------------
# the painter


def _creases(rng: np.random.Generator, cv: _Canvas, w: float, h: float) -> np.ndarray:
    """Soft creases from handling: a bright and a dark flank along a short line (0-2 of them)."""
    gh, gw = cv.h // 4 + 1, cv.w // 4 + 1
    out = np.ones((gh, gw), np.float32)
    xs = (cv.ox + np.arange(gw) * 4 * cv.s).astype(np.float32)[None, :]
    ys = (cv.oy + np.arange(gh) * 4 * cv.s).astype(np.float32)[:, None]
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        x0, y0 = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.2 * h, 0.8 * h)
        a = rng.uniform(0, np.pi)
        nx, ny = np.float32(-np.sin(a)), np.float32(np.cos(a))
        d = (xs - x0) * nx + (ys - y0) * ny
        t = (xs - x0) * ny - (ys - y0) * nx
        width, length = rng.uniform(1.5, 4.0), rng.uniform(15, 60)
        u = d / np.float32(width)
        out *= 1 + np.float32(rng.uniform(0.04, 0.09)) * u * np.exp(-u * u - (t / np.float32(length)) ** 2)
    return cv2.resize(out, (cv.w, cv.h), interpolation=cv2.INTER_LINEAR)


def _rounded_rect_sd(cv: _Canvas, w: float, h: float, r: float) -> np.ndarray:
    """Signed distance (mm, negative inside) to the rounded-rectangle outline."""
    qx = np.abs(cv.xs - w / 2) - (w / 2 - r)
    qy = np.abs(cv.ys - h / 2) - (h / 2 - r)
    ox = np.maximum(qx, 0)[None, :]
    oy = np.maximum(qy, 0)[:, None]
    outside = np.sqrt(ox * ox + oy * oy)
    inside = np.minimum(np.maximum(qx[None, :], qy[:, None]), 0)
    return (outside + inside - r).astype(np.float32)


#: How far (mm) the side edge steps in just below each fold, and over what length it recovers.
PLEAT_STEP_MM = (0.45, 1.4)


def _carve_pleat_steps(cv: _Canvas, sd: np.ndarray, p: MaskParams) -> None:
    """Small saw-tooth steps on both side edges where each fold meets them (in place)."""
    depth, length = PLEAT_STEP_MM
    for yk in p.pleat_lines_mm:
        for side in ("left", "right"):
            x0 = -0.5 if side == "left" else p.width_mm - depth - 0.5
            rs, cs = cv.window(x0, yk - 0.3, x0 + depth + 1.0, yk + length + 0.3)
            if rs.stop <= rs.start or cs.stop <= cs.start:
                continue
            ys = cv.ys[rs][:, None]
            xs = cv.xs[cs][None, :]
            prof = np.where((ys >= yk) & (ys <= yk + length), depth * (1 - (ys - yk) / length), -1.0)
            carve = prof - xs if side == "left" else xs - (p.width_mm - prof)
            sd[rs, cs] = np.maximum(sd[rs, cs], carve.astype(np.float32))


def draw_mask_layer(p: MaskParams, *, mm_per_px: float = 0.2,
                    extent_mm: tuple[float, float, float, float] | None = None,
                    supersample: bool = True) -> Layer:
    """Paint ``p`` in the mask frame; ``extent_mm`` = (x0, y0, x1, y1) box (default: all of it).

    ``supersample`` paints at twice the resolution and halves it (a Gaussian pyramid step);
    without it painting is ~3x faster and the outline stays exact (analytic antialiasing), but
    thin strokes (thread, fibres) alias a little.
    """
    # one stream per component, so removing a defect changes nothing else in the picture
    def rng_for(part: int) -> np.random.Generator:
        return np.random.default_rng([p.seed, part])

    ss = 2 if supersample else 1
    s = mm_per_px / ss
    x0, y0, x1, y1 = extent_mm or layer_extent_mm(p)
    wo = int(np.ceil((x1 - x0) / mm_per_px)) + 1
    ho = int(np.ceil((y1 - y0) / mm_per_px)) + 1
    full = _Canvas(x0, y0, s, ss * wo, ss * ho)
    rgba = np.zeros((full.h, full.w, 4), np.float32)  # premultiplied
    W, H = p.width_mm, p.height_mm
    truths: list[DefectTruth] = []

    # --- ear loops first (they go under the body)
    for lp in p.loops:
        _draw_loop(full, rgba, p, lp)
    truths.extend(_loop_truths(p))

    # --- the body is painted in its own window only
    rs, cs = full.window(-1.0, -1.0, W + 1.0, H + 1.0)
    if rs.stop <= rs.start or cs.stop <= cs.start:
        small = cv2.pyrDown(rgba)[:ho, :wo] if ss == 2 else rgba
        return Layer(rgba=small, origin_mm=(x0, y0), mm_per_px=mm_per_px, defects=tuple(truths))
    cv = full.sub(rs, cs)
    sd = _rounded_rect_sd(cv, W, H, p.corner_radius_mm)
    _carve_pleat_steps(cv, sd, p)
    alpha = np.clip(0.5 - sd / s, 0.0, 1.0)

    # print, shifted at each fold (the fold hides fabric), weave, wrinkles, pleat shading
    folds = np.asarray(p.pleat_lines_mm, dtype=np.float32)
    ys = cv.ys
    hidden = np.searchsorted(folds, ys).astype(np.float32) * np.float32(p.pleat_depth_mm)
    color = _fabric(p.fabric, cv, ys + hidden, rng_for(1))
    shade_y = np.ones(cv.h, np.float32)
    for yk in folds:
        above = np.clip((ys - (yk - 5.0)) / 5.0, 0, 1) * (ys < yk)
        shade_y += 0.09 * above**2  # the fold's rounded crest catches the light
        below = (ys >= yk) * np.exp(-np.maximum(ys - yk, 0) / 0.7)
        shade_y -= 0.32 * below  # the crest's shadow on the panel below
        shade_y -= 0.04 * np.clip((ys - yk) / 8.0, 0, 1) * (ys < yk + 8)  # panel slopes under it
    f = p.fabric
    kx = 2 * np.pi * cv.xs / f.weave_pitch_mm
    ky = 2 * np.pi * ys / f.weave_pitch_mm
    shade = _smooth_noise(rng_for(2), cv.h, cv.w, 25.0 / s)  # gentle wrinkles
    shade *= 0.035
    c = np.float32(f.weave_contrast)
    if f.weave == "twill":  # sin(kx + ky): diagonal ribs, as two separable products
        shade += (c * np.sin(ky)).astype(np.float32)[:, None] * np.cos(kx).astype(np.float32)[None, :]
        shade += (c * np.cos(ky)).astype(np.float32)[:, None] * np.sin(kx).astype(np.float32)[None, :]
    else:
        shade += (c * np.sin(ky)).astype(np.float32)[:, None] * np.sin(kx).astype(np.float32)[None, :]
    shade += 1.0
    shade *= shade_y[:, None]
    # a filled mask is a little domed: its middle catches more light than its rim
    px_ = np.clip(1 - (2 * cv.xs / W - 1) ** 2, 0, 1).astype(np.float32)
    py_ = np.clip(1 - (2 * ys / H - 1) ** 2, 0, 1).astype(np.float32)
    shade *= 0.97 + 0.06 * py_[:, None] * px_[None, :]
    shade *= _creases(rng_for(5), cv, W, H)
    edge = np.minimum(sd, 0)
    edge *= 1 / 0.25
    np.exp(edge, out=edge)
    edge *= -0.12
    edge += 1
    shade *= edge  # the folded edge rolls away from the light
    color *= shade[..., None]

    # defects that change the fabric before the seam goes on
    for d in p.defects:
        if d.code == "stain":
            truths.append(_draw_stain(cv, color, d))
    open_spans = []
    for d in p.defects:
        if d.code == "open_seam":
            truths.append(_draw_open_seam(cv, color, alpha, p, d))
            open_spans.append(d)

    truths.extend(_draw_stitches(cv, color, p, open_spans, rng_for(3)))

    _stray_fibres(cv, color, p, rng_for(6))
    for d in p.defects:
        if d.code == "hole":
            truths.append(_draw_hole(cv, color, alpha, p, d))
    for d in p.defects:
        if d.code in ("width", "height", "pleats", "stitch_length"):
            truths.append(DefectTruth(code=d.code, box_mm=(0.0, 0.0, float(W), float(H))))

    # body over loops
    under = rgba[rs, cs]
    a3 = alpha[..., None]
    under *= 1 - a3
    color *= a3
    under[..., :3] += color
    under[..., 3] += alpha
    small = cv2.pyrDown(rgba)[:ho, :wo] if ss == 2 else rgba
    _fibre_grain(small, rng_for(4))
    return Layer(rgba=small, origin_mm=(x0, y0), mm_per_px=mm_per_px, defects=tuple(truths))


def _fibre_grain(rgba: np.ndarray, rng: np.random.Generator) -> None:
    """Fine irregular texture of the fibres (multiplies the premultiplied colour, in place)."""
    h, w = rgba.shape[:2]
    g = np.empty((h, w), np.float32)
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))
    cv2.randn(g, 0.0, float(rng.uniform(0.03, 0.06)))
    g = cv2.GaussianBlur(g, (0, 0), 0.7)
    # slubs: thicker and thinner stretches of yarn, a few pixels long
    slub = np.empty((h // 3 + 2, w // 3 + 2), np.float32)
    cv2.randn(slub, 0.0, float(rng.uniform(0.01, 0.03)))
    g += cv2.resize(slub, (w, h), interpolation=cv2.INTER_CUBIC)
    g += 1
    rgba[..., :3] *= g[..., None]


def _draw_stitches(cv: _Canvas, color, p: MaskParams, open_spans, rng) -> list[DefectTruth]:
    pts, arc = seam_path(p, step_mm=min(0.1, cv.s))
    total = arc[-1]
    sl, gap = p.stitch_length_mm, p.needle_gap_mm
    # the machinist steers by hand: the line wanders slowly (+-0.15 mm) around seam_distance_mm
    phase = rng.uniform(0, 2 * np.pi, 2)
    wander = 0.1 * np.sin(2 * np.pi * arc / rng.uniform(60, 150) + phase[0]) + 0.05 * np.sin(
        2 * np.pi * arc / rng.uniform(15, 40) + phase[1])
    pts = _offset_curve(pts, 1.0) * wander[:, None] + pts * (1 - wander[:, None])
    # stitch pitch varies a few percent around its nominal (the median stays the nominal)
    pitch = sl * (1 + np.clip(rng.normal(0, 0.025, int(total / sl) + 3), -0.06, 0.06))
    starts = p.stitch_phase_mm - sl + np.concatenate([[0.0], np.cumsum(pitch)])
    starts = starts[starts < total]
    skip = [d for d in p.defects if d.code == "skipped_stitch"]
    removed = np.zeros(len(starts), bool)
    wobble = rng.normal(0, 0.04, (len(starts), 2))  # the thread wanders a little around the line
    truths = []
    for d in skip:
        first = int(np.searchsorted(starts, d.along_mm))
        k = max(3, round(d.size_mm / sl))
        removed[first:first + k] = True
        if first > 0 and first + k < len(starts):
            g0 = starts[first] - gap / 2  # end of the last stitch before
            g1 = starts[first + k] + gap / 2  # start of the first one after
            seg = pts[(arc >= g0) & (arc <= g1)]
            pad = p.thread_width_mm
            bx0, by0 = seg.min(axis=0) - pad
            bx1, by1 = seg.max(axis=0) + pad
            box = (float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0))
            truths.append(DefectTruth(code="skipped_stitch", box_mm=box, size_mm=float(g1 - g0)))
    dashes = []
    ends = np.append(starts[1:], starts[-1] + sl)
    for i, a0 in enumerate(starts):
        if removed[i]:
            continue
        cap = p.thread_width_mm / 2  # round line caps add this back at each end
        a_s, a_e = a0 + gap / 2 + cap, ends[i] - gap / 2 - cap
        a_s, a_e = max(a_s, 0.0), min(a_e, total)
        if a_e <= a_s:
            continue
        sel = (arc >= a_s) & (arc <= a_e)
        seg = pts[sel]
        if len(seg) < 2:
            continue
        mid = seg[len(seg) // 2]
        if any(_in_open_span(p, d, mid) for d in open_spans):
            continue
        dashes.append(seg + wobble[i])
    # paint only the band along the seam line (4 strips that do not overlap): the interior and
    # the rest of the canvas never see thread
    tw = p.thread_width_mm
    tc = np.asarray(p.thread, np.float32)
    shifted = [d + np.array([0.12, 0.15]) for d in dashes]
    cores = [d - np.array([0.04, 0.05]) for d in dashes]
    for rs, cs in _seam_strips(cv, p):
        if rs.stop <= rs.start or cs.stop <= cs.start:
            continue
        sub = cv.sub(rs, cs)
        dst = color[rs, cs]
        shadow = np.zeros((sub.h, sub.w), np.uint8)
        thread = np.zeros((sub.h, sub.w), np.uint8)
        core = np.zeros((sub.h, sub.w), np.uint8)
        cv2.polylines(shadow, [sub.pts(d) for d in shifted], False, 255, cv.px(tw * 1.6), cv2.LINE_AA, _SHIFT)
        cv2.polylines(thread, [sub.pts(d) for d in dashes], False, 255, cv.px(tw), cv2.LINE_AA, _SHIFT)
        cv2.polylines(core, [sub.pts(d) for d in cores], False, 255, cv.px(tw * 0.35), cv2.LINE_AA, _SHIFT)
        shadow = cv2.GaussianBlur(shadow, (0, 0), 0.15 / cv.s)
        r, c = np.nonzero(shadow)
        dst[r, c] *= (1 - 0.35 / 255 * shadow[r, c].astype(np.float32))[:, None]
        _blend_sparse(dst, tc * 0.85, thread)
        _blend_sparse(dst, np.clip(tc * 1.15 + 0.12, 0, 1), core, 0.6)
    return truths


def _stray_fibres(cv: _Canvas, color, p: MaskParams, rng: np.random.Generator) -> None:
    """A few loose fibres or lint lying on the fabric (not defects; faint, ~0.1 mm thin)."""
    n = int(rng.choice([0, 0, 1, 2, 3]))
    if not n:
        return
    cov = np.zeros((cv.h, cv.w), np.uint8)
    lines = []
    for _ in range(n):
        p0 = rng.uniform((10, 10), (p.width_mm - 10, p.height_mm - 10))
        steps = np.cumsum(rng.normal(0, 1, (10, 2)) * 0.25 + rng.normal(0, 1, 2), axis=0)
        steps *= rng.uniform(0.3, 0.8)
        lines.append(cv.pts(p0 + steps))
    cv2.polylines(cov, lines, False, 255, 1, cv2.LINE_AA, _SHIFT)
    tone = np.asarray(p.fabric.base, np.float32) * rng.uniform(0.5, 1.6) + rng.uniform(-0.1, 0.2)
    tone = np.clip(tone, 0, 1)
    _blend_sparse(color, tone, cov, 0.6)


def _seam_strips(cv: _Canvas, p: MaskParams, band_mm: float = 2.5) -> list[tuple[slice, slice]]:
    """Four non-overlapping windows covering everything within ``band_mm`` of the seam line."""
    d, W, H = p.seam_distance_mm, p.width_mm, p.height_mm
    top = cv.window(-1.0, d - band_mm, W + 1.0, d + band_mm)
    bottom = cv.window(-1.0, H - d - band_mm, W + 1.0, H - d + band_mm)
    rows = slice(top[0].stop, max(top[0].stop, bottom[0].start))
    left = cv.window(d - band_mm, 0.0, d + band_mm, 0.0)[1]
    right = cv.window(W - d - band_mm, 0.0, W - d + band_mm, 0.0)[1]
    return [top, bottom, (rows, left), (rows, right)]


def _in_open_span(p: MaskParams, d: DefectParams, xy) -> bool:
    t, n = _edge_coords(d.edge, np.asarray(xy[0]), np.asarray(xy[1]), p.width_mm, p.height_mm)
    return bool(d.along_mm - 1.0 <= t <= d.along_mm + d.size_mm + 1.0 and n < p.seam_distance_mm + 2.5)


def _draw_stain(cv: _Canvas, color, d: DefectParams) -> DefectTruth:
    rng = np.random.default_rng(d.seed)
    r0 = d.size_mm / 2
    th = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    rad = np.ones_like(th)
    for k in range(2, 7):
        rad += rng.uniform(0, 0.22 / k**0.7) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    poly = np.stack([np.cos(th) * rad, np.sin(th) * rad], axis=1)
    ext = poly.max(axis=0) - poly.min(axis=0)
    poly = poly * (d.size_mm / ext.max()) + (d.x_mm, d.y_mm) - (poly.max(axis=0) + poly.min(axis=0)) * (
        d.size_mm / ext.max()) / 2
    blur_mm = rng.uniform(0.2, 0.6)
    pad = r0 * 0.2 + 3 * blur_mm + 1
    bx0, by0 = poly.min(axis=0)
    bx1, by1 = poly.max(axis=0)
    rs, cs = cv.window(bx0 - pad, by0 - pad, bx1 + pad, by1 + pad)
    loc = cv.sub(rs, cs)
    cov = np.zeros((loc.h, loc.w), np.uint8)
    cv2.fillPoly(cov, [loc.pts(poly)], 255, cv2.LINE_AA, _SHIFT)
    m = cv2.GaussianBlur(cov.astype(np.float32) / 255, (0, 0), blur_mm / cv.s)
    inner = cv2.GaussianBlur(m, (0, 0), 0.8 / cv.s)
    ring = np.clip(m - inner, 0, 1) * 1.5  # dried edges are darker (coffee ring)
    mottle = 1 + 0.25 * _smooth_noise(rng, loc.h, loc.w, 1.2 / cv.s)
    strength = np.clip((m * 0.75 + ring) * mottle * d.opacity, 0, 1)
    patch = color[rs, cs]
    tint = np.asarray(d.color, np.float32)
    stained = patch * (0.35 + 0.65 * tint) * 0.5 + tint * 0.5 * patch.mean(axis=2, keepdims=True) ** 0.3
    patch += (stained - patch) * strength[..., None]
    return DefectTruth(code="stain", box_mm=(float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)),
                       size_mm=float(max(bx1 - bx0, by1 - by0)))


def _draw_hole(cv: _Canvas, color, alpha, p: MaskParams, d: DefectParams) -> DefectTruth:
    rng = np.random.default_rng(d.seed)
    th = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    rad = np.ones_like(th)
    for k in range(2, 6):
        rad += rng.uniform(0, 0.12 / k**0.5) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    unit = np.stack([np.cos(th) * rad, np.sin(th) * rad], axis=1)
    unit *= d.size_mm / (unit.max(axis=0) - unit.min(axis=0)).max()  # largest extent == size
    rad = np.hypot(unit[:, 0], unit[:, 1])
    poly = unit + np.array([d.x_mm, d.y_mm])
    bx0, by0 = poly.min(axis=0)
    bx1, by1 = poly.max(axis=0)
    pad = 3.0
    rs, cs = cv.window(bx0 - pad, by0 - pad, bx1 + pad, by1 + pad)
    loc = cv.sub(rs, cs)
    cov = np.zeros((loc.h, loc.w), np.uint8)
    cv2.fillPoly(cov, [loc.pts(poly)], 255, cv2.LINE_AA, _SHIFT)
    hc = cov.astype(np.float32) / 255
    ring = cv2.GaussianBlur(hc, (0, 0), 0.5 / cv.s) * (1 - hc)
    patch = color[rs, cs]
    patch *= (1 - 0.45 * np.clip(ring * 2, 0, 1))[..., None]  # worn, shadowed rim
    a = alpha[rs, cs]
    a *= 1 - hc
    # frayed fibres reaching into the hole
    fib = np.zeros((loc.h, loc.w), np.uint8)
    lines = []
    for _ in range(int(rng.integers(14, 30))):
        t = rng.uniform(0, 2 * np.pi)
        r = np.interp(t, th, rad, period=2 * np.pi)
        ln = rng.uniform(0.25, 1.0) * min(1.0, d.size_mm / 4)
        a0 = np.array([d.x_mm + np.cos(t) * (r + 0.2), d.y_mm + np.sin(t) * (r + 0.2)])
        bend = t + rng.normal(0, 0.5)
        a1 = a0 - ln * np.array([np.cos(bend), np.sin(bend)])
        lines.append(loc.pts(np.stack([a0, a1])))
    cv2.polylines(fib, lines, False, 255, 1, cv2.LINE_AA, _SHIFT)
    fc = fib.astype(np.float32) / 255 * 0.85
    base = np.asarray(p.fabric.base, np.float32)
    patch[:] = patch * (1 - fc[..., None]) * a[..., None] + np.clip(base * 1.1, 0, 1) * fc[..., None]
    newa = np.maximum(a, fc)
    patch /= np.maximum(newa, 1e-3)[..., None]
    a[:] = newa
    return DefectTruth(code="hole", box_mm=(float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)),
                       size_mm=float(max(bx1 - bx0, by1 - by0)))


def _draw_open_seam(cv: _Canvas, color, alpha, p: MaskParams, d: DefectParams) -> DefectTruth:
    W, H = p.width_mm, p.height_mm
    t0, L, depth = d.along_mm, d.size_mm, d.depth_mm
    # the box holds the gaping edge and the seam missing along it (whole stitches, see below)
    e = 1.0 + p.stitch_length_mm / 2 + p.thread_width_mm
    box = _edge_box(d.edge, t0 - e, L + 2 * e, p.seam_distance_mm + 1.0, W, H)
    bx, by, bw, bh = box
    rs, cs = cv.window(bx - 2, by - 2, bx + bw + 2, by + bh + 2)
    xs, ys = cv.xs[cs][None, :], cv.ys[rs][:, None]
    xs, ys = np.broadcast_arrays(xs, ys)
    t, n = _edge_coords(d.edge, xs, ys, W, H)
    u = np.clip((t - t0) / L, 0, 1)
    prof = np.clip(np.sin(np.pi * u), 0, 1) ** 0.6
    lrng = np.random.default_rng(d.seed)
    wob = 0.15 * _smooth_noise(lrng, *t.shape, 0.8 / cv.s)
    n_top = depth * prof + wob * prof
    n_in = 0.2 * depth * prof + 0.1 * np.abs(_smooth_noise(lrng, *t.shape, 0.25 / cv.s)) * prof
    patch = color[rs, cs]
    a = alpha[rs, cs]
    s = cv.s
    # the inner layer shows between its (frayed, slightly retracted) edge and the lifted top layer
    show_inner = np.clip((n_top - n) / s + 0.5, 0, 1) * (prof > 0.02)
    crevice = np.clip((n_top - n) / 0.9, 0, 1)
    inner = np.asarray(p.fabric.inner, np.float32)
    inner_col = inner[None, None, :] * (0.3 + 0.6 * crevice[..., None])
    patch[:] = patch * (1 - show_inner[..., None]) + inner_col * show_inner[..., None]
    # the lifted top-layer edge: a dark line, then a bright rolled lip
    lip = np.exp(-((n - n_top - 0.3) / 0.25) ** 2) * (prof > 0.02)
    edge_line = np.exp(-((n - n_top) / 0.12) ** 2) * (prof > 0.02)
    patch *= (1 + 0.15 * lip - 0.5 * edge_line)[..., None]
    a *= np.clip((n - n_in) / s + 0.5, 0, 1) * (prof > 0.02) + (prof <= 0.02)
    return DefectTruth(code="open_seam", box_mm=tuple(float(v) for v in box), size_mm=float(L))


def _normals(c: np.ndarray) -> np.ndarray:
    """Unit normals of a polyline (N x 2)."""
    tang = np.gradient(c, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-9)
    return np.stack([-tang[:, 1], tang[:, 0]], axis=1)


def _offset_curve(c: np.ndarray, off: float) -> np.ndarray:
    return c + _normals(c) * off


def _draw_loop(full: _Canvas, rgba: np.ndarray, p: MaskParams, lp: LoopParams) -> None:
    """Paint one loop (premultiplied, "over") into ``rgba``, only where its strokes land."""
    c = loop_curve(p, lp)
    col = np.asarray(lp.color, np.float32)
    half = lp.width_mm + 2
    rs, cs = full.window(c[:, 0].min() - half, c[:, 1].min() - half, c[:, 0].max() + half,
                         c[:, 1].max() + half)
    if rs.stop <= rs.start or cs.stop <= cs.start:
        return
    cv = full.sub(rs, cs)
    dst = rgba[rs, cs]
    cov = np.zeros((cv.h, cv.w), np.uint8)
    # every stroke lies inside the first (widest) one: find its pixels once
    cv2.polylines(cov, [cv.pts(c)], False, 255, cv.px(lp.width_mm) + 2, cv2.LINE_AA, _SHIFT)
    r, cc = np.nonzero(cov)
    px = dst[r, cc]

    def paint(curve, width_mm, colr, strength=1.0):
        cov[r, cc] = 0
        cv2.polylines(cov, [cv.pts(curve)], False, 255, cv.px(width_mm), cv2.LINE_AA, _SHIFT)
        k = (cov[r, cc].astype(np.float32) * (strength / 255))[:, None]
        new = np.concatenate([np.asarray(colr, np.float32), [1.0]]).astype(np.float32)
        px[:] = px * (1 - k) + new * k

    if lp.style == "flat":
        paint(c, lp.width_mm, col * 0.82)
        paint(c, lp.width_mm * 0.85, col)
        for off in np.linspace(-0.35, 0.35, 5) * lp.width_mm:  # knitted ribs along the elastic
            paint(_offset_curve(c, off), 0.25, col * 0.88, 0.6)
    else:
        paint(c, lp.width_mm, col * 0.6)
        paint(c, lp.width_mm * 0.7, col * 0.9)
        paint(_offset_curve(c, -lp.width_mm * 0.15), lp.width_mm * 0.3, np.clip(col * 1.2 + 0.12, 0, 1), 0.7)
    dst[r, cc] = px


def _loop_truths(p: MaskParams) -> list[DefectTruth]:
    """ear_loop boxes: where a loop is missing, or the whole dangling loop."""
    out = []
    for side in ("left", "right"):
        on_side = [lp for lp in p.loops if lp.side == side]
        x = -60.0 if side == "left" else p.width_mm
        if "ear_loop" not in p.requested:
            continue
        if len(on_side) < p.loops_per_side:
            out.append(DefectTruth(code="ear_loop", box_mm=(x, 0.0, 60.0, float(p.height_mm))))
        for lp in on_side:
            if not lp.attached:
                c = loop_curve(p, lp)
                h = lp.width_mm / 2
                x0, y0 = c.min(axis=0) - h
                x1, y1 = c.max(axis=0) + h
                out.append(DefectTruth(code="ear_loop", box_mm=(float(x0), float(y0), float(x1 - x0),
                                                                float(y1 - y0))))
    return out
