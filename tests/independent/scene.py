"""Masks on a tray through a :class:`RationalCamera`, with truth from how they are drawn.

The mask is a mesh in its own frame (mm, origin top-left of the outline, x along the width)
lifted off the tray by a cloth dome and waviness that vanish at the outline (so the outline lies
on the tray and its truth is exact). The outline and the ear loops are forward-projected and filled
at 4x / 2x; the fabric texture (0.1 mm/px) is mapped through the Newton-inverted projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera import RationalCamera, homography_guess, invert_on_grid
from .sensor import expose

TEX_MM = 0.1  # texture resolution, mm per texel
SS = 2  # supersampling of the mask layer

GEOMETRY_CODES = ("width", "height", "pleats", "ear_loop", "stitch_length", "skipped_stitch", "open_seam")


@dataclass
class MaskDesign:
    width_mm: float
    height_mm: float
    pleats: int
    loops_left: int
    loops_right: int
    stitch_mm: float
    seam_mm: float
    center: tuple[float, float]
    angle_deg: float
    defects: list[str] = field(default_factory=list)
    defect_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    # appearance
    fabric: str = "plain"
    tray: str = "dark_grey"
    loop_kind: str = "flat"
    loop_colour: str = "white"
    thread: str = "dark"

    @property
    def ear_loops(self) -> int:
        return self.loops_left + self.loops_right


# ----------------------------------------------------------------------------------------- design
def design_mask(rng: np.random.Generator, defect: str | None) -> MaskDesign:
    """A mask good per the default spec (180+-5 x 95+-5, 3 pleats, 1 loop per side, 2-3 mm stitches,
    seam 3-10 mm) unless ``defect`` names one geometry code. Good values keep >= 1 mm from limits."""
    W = rng.uniform(176.5, 183.5)
    H = rng.uniform(91.5, 98.5)
    pleats, ll, lr = 3, 1, 1
    L = rng.uniform(2.15, 2.85)
    d = rng.uniform(3.5, 8.5)
    if defect == "width":
        W = rng.uniform(168, 174) if rng.random() < 0.5 else rng.uniform(186, 191)
    elif defect == "height":
        H = rng.uniform(84, 89) if rng.random() < 0.5 else rng.uniform(101, 105)
    elif defect == "pleats":
        pleats = int(rng.choice([2, 4]))
    elif defect == "ear_loop":
        if rng.random() < 0.8:
            ll, lr = (0, 1) if rng.random() < 0.5 else (1, 0)
        else:
            ll = lr = 0
    elif defect == "stitch_length":
        L = rng.uniform(1.4, 1.75) if rng.random() < 0.5 else rng.uniform(3.3, 4.0)
    m = MaskDesign(W, H, pleats, ll, lr, L, d, center=(0, 0), angle_deg=rng.uniform(-15, 15),
                   defects=[defect] if defect else [])
    m.fabric = str(rng.choice(["plain", "stripes", "checks", "dots", "floral"]))
    m.tray = str(rng.choice(["dark_grey", "black", "green", "light_grey"]))
    m.loop_kind = str(rng.choice(["flat", "cord"]))
    m.loop_colour = str(rng.choice(["white", "black", "fabric"]))
    m.thread = str(rng.choice(["dark", "light"]))
    # fair to the station: loops are visible against the tray (no black cord on a black tray)
    if m.loop_colour == "black" and m.tray in ("black", "dark_grey"):
        m.loop_colour = str(rng.choice(["white", "fabric"]))
    if m.loop_colour == "white" and m.tray == "light_grey":
        m.loop_colour = str(rng.choice(["black", "fabric"]))
    return m


def mask_to_tray(m: MaskDesign, uv: np.ndarray) -> np.ndarray:
    a = np.radians(m.angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (uv - [m.width_mm / 2, m.height_mm / 2]) @ R.T + m.center


# ----------------------------------------------------------------------------------------- colours
TRAYS = {
    "dark_grey": (0.075, 0.075, 0.08), "black": (0.022, 0.022, 0.025),
    "green": (0.06, 0.16, 0.05), "light_grey": (0.55, 0.56, 0.55),
}


def luminance(bgr) -> float:
    b, g, r = bgr
    return 0.114 * b + 0.587 * g + 0.299 * r


def pick_colour(rng, avoid_lum: float, min_diff: float = 0.12, tray_lum: float | None = None) -> np.ndarray:
    """A linear BGR reflectance whose (gamma-ish) lightness differs from ``avoid_lum``'s (and, for
    print colours, at least 0.15 from the tray's: every colour of the fabric contrasts with it)."""
    for _ in range(400):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 230), rng.integers(40, 250)]]])
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32) / 255.0
        lin = bgr**2.0
        ok_tray = tray_lum is None or abs(luminance(lin) ** 0.5 - tray_lum**0.5) >= 0.15
        if abs(luminance(lin) ** 0.5 - avoid_lum**0.5) >= min_diff + 0.1 and ok_tray:
            return lin
    return np.float32([0.8, 0.8, 0.8]) if avoid_lum < 0.2 else np.float32([0.02, 0.02, 0.03])


# ----------------------------------------------------------------------------------------- texture
def _print_layer(rng, kind: str, shape, base, second, third) -> np.ndarray:
    """The fabric print on the flat (unfolded) cloth, texel grid ``shape`` (h, w)."""
    h, w = shape
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) * TEX_MM
    ang = np.radians(rng.uniform(-3, 3))
    xr = np.cos(ang) * xx + np.sin(ang) * yy + rng.uniform(0, 50)
    yr = -np.sin(ang) * xx + np.cos(ang) * yy + rng.uniform(0, 50)
    if kind == "stripes":
        p = rng.uniform(4, 14)
        duty = rng.uniform(0.3, 0.6)
        coord = [xr, yr, (xr + yr) / np.sqrt(2)][int(rng.integers(0, 3))]
        s = np.clip(((coord / p) % 1.0 < duty).astype(np.float32), 0, 1)
        s = cv2.GaussianBlur(s, (0, 0), 1.0)
        img = img * (1 - s[..., None]) + second * s[..., None]
    elif kind == "checks":
        p = rng.uniform(5, 12)
        a = ((xr / p) % 1.0 < 0.5).astype(np.float32)
        b = ((yr / p) % 1.0 < 0.5).astype(np.float32)
        s = cv2.GaussianBlur(0.5 * (a + b), (0, 0), 1.0)
        img = img * (1 - s[..., None]) + second * s[..., None]
    elif kind == "dots":
        p = rng.uniform(6, 12)
        rad = rng.uniform(0.8, 2.4)
        cov = np.zeros((h, w), np.uint8)
        for j, y in enumerate(np.arange(-p, h * TEX_MM + p, p)):
            off = (p / 2) * (j % 2)
            for x in np.arange(-p + off, w * TEX_MM + p, p):
                cv2.circle(cov, (int(x / TEX_MM * 8), int(y / TEX_MM * 8)), int(rad / TEX_MM * 8), 255, -1,
                           cv2.LINE_AA, 3)
        s = cov.astype(np.float32)[..., None] / 255.0
        img = img * (1 - s) + second * s
    elif kind == "floral":
        cov2 = np.zeros((h, w), np.uint8)
        cov3 = np.zeros((h, w), np.uint8)
        n = int(w * h * TEX_MM**2 / rng.uniform(250, 500))
        for _ in range(n):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(1.5, 4.0) / TEX_MM
            for k in range(5):
                a = 2 * np.pi * k / 5 + rng.uniform(0, 1)
                c = (int((cx + np.cos(a) * r) * 8), int((cy + np.sin(a) * r) * 8))
                cv2.ellipse(cov2, c, (int(r * 8 * 0.8), int(r * 8 * 0.5)), np.degrees(a), 0, 360, 255, -1,
                            cv2.LINE_AA, 3)
            cv2.circle(cov3, (int(cx * 8), int(cy * 8)), int(r * 0.45 * 8), 255, -1, cv2.LINE_AA, 3)
        s2 = cov2.astype(np.float32)[..., None] / 255.0
        s3 = cov3.astype(np.float32)[..., None] / 255.0
        img = img * (1 - s2) + second * s2
        img = img * (1 - s3) + third * s3
    # weave: fine threads + fibre noise
    pw = rng.uniform(0.35, 0.6)
    weave = 0.025 * (np.sin(2 * np.pi * xr / pw) + np.sin(2 * np.pi * yr / pw))
    fib = cv2.GaussianBlur(rng.normal(0, 0.05, (h, w)).astype(np.float32), (0, 0), 1.2)
    return img * (1 + weave + fib)[..., None]


def fabric_texture(m: MaskDesign, rng: np.random.Generator, tray_lum: float):
    """Texture (h, w, 3) over the mask frame [-1, W+1] x [-1, H+1] mm, plus pleat y positions and
    the z (lift) function parameters."""
    W, H = m.width_mm, m.height_mm
    pad = 1.0
    tw, th = int(np.ceil((W + 2 * pad) / TEX_MM)), int(np.ceil((H + 2 * pad) / TEX_MM))
    base = pick_colour(rng, tray_lum)
    second = pick_colour(rng, luminance(base), 0.05, tray_lum)
    third = pick_colour(rng, luminance(base), 0.0, tray_lum)
    # folds: evenly spaced with jitter, each hides 'depth' mm of fabric
    span = H * rng.uniform(0.55, 0.7)
    top = (H - span) / 2
    ys = top + span * (np.arange(m.pleats) + 0.5) / m.pleats + rng.uniform(-1.0, 1.0, m.pleats)
    depth = rng.uniform(6, 12, m.pleats)
    extra = int(np.ceil(depth.sum() / TEX_MM)) + 4
    flat = _print_layer(rng, m.fabric, (th + extra, tw), base, second, third)
    # texel rows of the folded mask -> rows of the flat cloth (print jumps at each fold)
    v = (np.arange(th) + 0.5) * TEX_MM - pad
    vflat = v.copy()
    for y, dd in zip(ys, depth, strict=True):
        vflat = vflat + dd * (v > y)
    rows = ((vflat + pad) / TEX_MM - 0.5).astype(np.float32)
    mapy = np.repeat(rows[:, None], tw, 1)
    mapx = np.repeat(np.arange(tw, dtype=np.float32)[None, :], th, 0)
    tex = cv2.remap(flat, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    yy = (np.arange(th, dtype=np.float32) + 0.5) * TEX_MM - pad
    xx = (np.arange(tw, dtype=np.float32) + 0.5) * TEX_MM - pad
    # pleat shading: bright crest above, dark crease shadow just below each fold
    shade = np.ones(th, np.float32)
    for y in ys:
        dy = yy - y
        crest = rng.uniform(0.08, 0.18) * np.exp(-np.clip(-dy, 0, None) / rng.uniform(1.5, 3.5)) * (dy <= 0)
        sw = rng.uniform(0.5, 1.1)
        shadow = rng.uniform(0.25, 0.45) * np.exp(-((dy - sw / 2) / (sw / 2)) ** 2 * 2) * (dy > -0.1)
        shade *= (1 + crest) * (1 - shadow)
    # dome shading and rolled edge
    ex = np.minimum(xx, W - xx)
    ey = np.minimum(yy, H - yy)
    dome = np.sin(np.pi * np.clip(xx / W, 0, 1))[None, :] * np.sin(np.pi * np.clip(yy / H, 0, 1))[:, None]
    edge = 1 - 0.18 * np.exp(-np.minimum(ex[None, :], ey[:, None]).clip(0) / 0.6)
    tex = tex * (shade[:, None] * (1 + 0.07 * dome) * edge)[..., None]
    return tex, ys, base, pad


def _stitch_path(m: MaskDesign):
    """The seam rectangle inset by seam_mm: (point at arc length s, perimeter), clockwise from top-left."""
    d, W, H = m.seam_mm, m.width_mm, m.height_mm
    corners = np.array([[d, d], [W - d, d], [W - d, H - d], [d, H - d], [d, d]], float)
    seg = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])

    def at(s):
        s = np.mod(s, cum[-1])
        i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, 3)
        f = (s - cum[i]) / seg[i]
        return corners[i] + (corners[i + 1] - corners[i]) * f[:, None]

    return at, float(cum[-1]), cum


def draw_seam_and_defects(m: MaskDesign, tex: np.ndarray, base, pad: float, rng: np.random.Generator):
    """Top-stitch dashes on the texture; skipped-stitch gap and open seam when asked. Sets truth boxes."""
    at, P, cum = _stitch_path(m)
    n = max(4, int(round(P / m.stitch_mm)))  # noqa: RUF046
    L = P / n
    m.stitch_mm = L  # the drawn pitch is the truth
    s0 = rng.uniform(0, L)
    starts = s0 + L * np.arange(n)
    keep = np.ones(n, bool)
    W, H = m.width_mm, m.height_mm
    open_span = None
    if "skipped_stitch" in m.defects:
        k = int(rng.integers(3, 7))
        side = int(rng.integers(0, 4)) if rng.random() < 0.3 else int(rng.choice([0, 2]))
        lo, hi = cum[side] + 15, cum[side + 1] - 15 - k * L
        i0 = int(np.searchsorted(starts % P, rng.uniform(lo, hi)))
        idx = (np.arange(k) + i0) % n
        keep[idx] = False
        pts = at(np.concatenate([starts[idx], starts[idx] + L]))
        x0, y0 = pts.min(0) - 0.5
        x1, y1 = pts.max(0) + 0.5
        m.defect_boxes.append((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
    if "open_seam" in m.defects:
        span = rng.uniform(12, 30)
        side = int(rng.choice([0, 2])) if rng.random() < 0.7 else int(rng.choice([1, 3]))
        a = rng.uniform(cum[side] + 12, cum[side + 1] - 12 - span)
        open_span = (side, a, a + span)
        ss = starts % P
        keep &= ~((ss + L > a) & (ss < a + span))
    ppm = 1.0 / TEX_MM
    thread_w = rng.uniform(0.35, 0.55)
    gap = rng.uniform(0.35, 0.75)
    cov = np.zeros(tex.shape[:2], np.uint8)
    hi_cov = np.zeros(tex.shape[:2], np.uint8)
    wob = rng.uniform(-0.12, 0.12, n)
    normal = {0: (0, 1), 1: (-1, 0), 2: (0, -1), 3: (1, 0)}
    for i in np.nonzero(keep)[0]:
        ss = np.linspace(starts[i] + gap / 2, starts[i] + L - gap / 2, 4)
        pts = at(ss)
        side = np.clip(np.searchsorted(cum, np.mod(ss[1], P), side="right") - 1, 0, 3)
        pts = pts + np.array(normal[int(side)]) * wob[i]
        q = np.round((pts + pad) * ppm * 8 - 4).astype(np.int32)  # texel centres, shift 3
        cv2.polylines(cov, [q], False, 255, max(1, round(float(thread_w * ppm))), cv2.LINE_AA, 3)
        cv2.polylines(hi_cov, [q], False, 255, max(1, round(float(thread_w * ppm * 0.35))), cv2.LINE_AA, 3)
    lum = luminance(base)
    if m.thread == "dark":
        col = base * rng.uniform(0.12, 0.35)
    else:
        col = np.clip(base * 0.3 + rng.uniform(0.55, 0.85), 0, 1) if lum < 0.45 else base * 0.2 + 0.75
    c = cov.astype(np.float32)[..., None] / 255.0
    hc = hi_cov.astype(np.float32)[..., None] / 255.0
    # thread shadow (offset a little down-right) then the thread with a twist highlight
    shadow = np.roll(np.roll(c, 2, 0), 2, 1)
    tex *= 1 - 0.35 * shadow
    tex[:] = tex * (1 - c) + (col * (1 + 0.25 * hc)) * c
    if open_span is not None:
        side, a, b = open_span
        pa, pb = at(np.array([a]))[0], at(np.array([b]))[0]
        # the outward normal direction points to the edge; crevice at 0.6-1.5 mm from the edge
        inward = np.array(normal[side], float)
        edge_a = pa - inward * m.seam_mm
        edge_b = pb - inward * m.seam_mm
        cdist = rng.uniform(0.8, 1.8)
        ca, cb = edge_a + inward * cdist, edge_b + inward * cdist
        crev = np.zeros(tex.shape[:2], np.uint8)
        q = np.round((np.array([ca, cb]) + pad) * ppm * 8 - 4).astype(np.int32)
        cv2.polylines(crev, [q], False, 255, int(rng.uniform(0.5, 1.0) * ppm), cv2.LINE_AA, 3)
        # inner layer showing between edge and crevice: lighter, frayed fibres
        band = np.zeros(tex.shape[:2], np.uint8)
        quad = np.array([edge_a + inward * 0.2, edge_b + inward * 0.2, cb, ca])
        cv2.fillPoly(band, [np.round((quad + pad) * ppm * 8 - 4).astype(np.int32)], 255, cv2.LINE_AA, 3)
        for _ in range(int(np.linalg.norm(pb - pa) * 1.5)):
            f = rng.uniform(0, 1)
            p0 = ca + (cb - ca) * f
            p1 = p0 - inward * rng.uniform(0.5, 2.0) + rng.normal(0, 0.4, 2)
            qq = np.round((np.array([p0, p1]) + pad) * ppm * 8 - 4).astype(np.int32)
            cv2.polylines(band, [qq], False, 200, 1, cv2.LINE_AA, 3)
        bnd = band.astype(np.float32)[..., None] / 255.0
        inner = np.float32([0.75, 0.77, 0.78]) if lum < 0.4 else base * 0.6
        tex[:] = tex * (1 - bnd) + inner * bnd
        cr = crev.astype(np.float32)[..., None] / 255.0
        tex *= 1 - 0.7 * cr
        lo = np.minimum(edge_a, edge_b)
        hi = np.maximum(pa, pb) if side in (0, 3) else np.maximum(edge_a, edge_b)
        x0, y0 = np.minimum(lo, np.minimum(pa, pb)) - 0.5
        x1, y1 = np.maximum(hi, np.maximum(pa, pb)) + 0.5
        m.defect_boxes.append((float(max(x0, 0)), float(max(y0, 0)), float(x1 - x0), float(y1 - y0)))
    del W, H


# ----------------------------------------------------------------------------------------- loops
def loop_paths(m: MaskDesign, rng: np.random.Generator) -> list[np.ndarray]:
    """Ear-loop centre lines (mask frame, mm): from the top to the bottom corner of a side, arcing out."""
    W, H = m.width_mm, m.height_mm
    paths = []
    for side, n in ((-1, m.loops_left), (1, m.loops_right)):
        if n == 0:
            continue
        xa = 2.5 if side < 0 else W - 2.5
        y1, y2 = rng.uniform(3, 7), H - rng.uniform(3, 7)
        reach = rng.uniform(50, 80)
        out = xa + side * reach * 1.33
        p0, p3 = np.array([xa, y1]), np.array([xa, y2])
        p1 = np.array([out, y1 - rng.uniform(-5, 20)])
        p2 = np.array([out + side * rng.uniform(-10, 10), y2 + rng.uniform(-5, 20)])
        tt = np.linspace(0, 1, 160)[:, None]
        pts = (1 - tt) ** 3 * p0 + 3 * (1 - tt) ** 2 * tt * p1 + 3 * (1 - tt) * tt**2 * p2 + tt**3 * p3
        # loose lying: a smooth random bend
        amp = rng.uniform(-6, 6)
        bend = np.sin(np.pi * tt[:, 0]) * amp * np.sin(2 * np.pi * tt[:, 0] * rng.uniform(1, 2))
        pts[:, 1] += bend
        paths.append(pts)
    return paths


# ----------------------------------------------------------------------------------------- tray
def tray_linear(cam: RationalCamera, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The bare tray in linear light at 1x: mottling, dust, lint, scratches (forward-projected)."""
    w, h = cam.size
    base = np.float32(TRAYS[kind]) * rng.uniform(0.85, 1.15)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    mott = cv2.resize(rng.normal(0, 1, (h // 40, w // 40)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    img *= (1 + 0.06 * mott + 0.04 * grain)[..., None]
    light = kind != "light_grey"
    marks = np.zeros((h, w), np.uint8)
    s = 8.0

    def proj(pts):
        return np.round(cam.project(np.column_stack([pts, np.zeros(len(pts))])) * s).astype(np.int32)

    for _ in range(int(rng.integers(8, 30))):  # scratches: long faint lines
        p0 = rng.uniform([-50, -50], [450, 250])
        a = rng.uniform(0, np.pi)
        ln = rng.uniform(20, 150)
        pts = p0 + np.outer(np.linspace(0, 1, 8), [np.cos(a) * ln, np.sin(a) * ln])
        pts += np.outer(np.sin(np.linspace(0, np.pi, 8)), rng.normal(0, 1.5, 2))
        cv2.polylines(marks, [proj(pts)], False, int(rng.integers(40, 110)), 1, cv2.LINE_AA, 3)
    for _ in range(int(rng.integers(40, 200))):  # dust
        p = proj(rng.uniform([-60, -60], [460, 260], (1, 2)))[0]
        rad = int(rng.uniform(0.5, 2.5) * s)
        cv2.circle(marks, tuple(int(v) for v in p), rad, int(rng.integers(90, 255)), -1, cv2.LINE_AA, 3)
    for _ in range(int(rng.integers(3, 15))):  # lint: short curly fibres
        p0 = rng.uniform([-40, -40], [440, 240])
        ang = np.cumsum(rng.normal(0, 0.5, 10)) + rng.uniform(0, 2 * np.pi)
        seg = rng.uniform(0.4, 1.2)
        pts = p0 + np.cumsum(np.column_stack([np.cos(ang), np.sin(ang)]) * seg, 0)
        cv2.polylines(marks, [proj(pts)], False, int(rng.integers(120, 255)), 1, cv2.LINE_AA, 3)
    mk = marks.astype(np.float32)[..., None] / 255.0
    tone = np.float32([0.35, 0.35, 0.36]) if light else np.float32([0.15, 0.15, 0.16])
    img = img * (1 - mk) + tone * mk if light else img * (1 - 0.6 * mk)
    return img


# ----------------------------------------------------------------------------------------- scene
@dataclass
class Case:
    image: np.ndarray  # BGR uint8
    truth: MaskDesign


def place(m: MaskDesign, cam: RationalCamera, rng: np.random.Generator, paths) -> None:
    """Put the mask (with its loops) anywhere fully in view, >= 15 px from the border."""
    w, h = cam.size
    pts_mask = np.vstack([np.array([[0, 0], [m.width_mm, 0], [m.width_mm, m.height_mm], [0, m.height_mm]])]
                         + [p for p in paths])
    for _ in range(200):
        m.center = (rng.uniform(-30, 230), rng.uniform(-20, 170))
        px = cam.project(np.column_stack([mask_to_tray(m, pts_mask), np.zeros(len(pts_mask))]))
        if px.min(0).min() > 15 and px[:, 0].max() < w - 15 and px[:, 1].max() < h - 15:
            return
    m.center = (100.0, 75.0)


def render(cam: RationalCamera, rng: np.random.Generator, defect: str | None = None, *,
           edge_lift_mm: float = 0.0, flat: bool = False) -> Case:
    """One mask frame. ``edge_lift_mm`` > 0 lifts the whole cloth that far off the tray (the
    thickness of a real mask's hemmed outline); the truth stays the physical size."""
    m = design_mask(rng, defect)
    if defect in ("skipped_stitch", "open_seam"):
        m.defects = [defect]
    paths = loop_paths(m, rng)
    place(m, cam, rng, paths)
    w, h = cam.size
    tray = tray_linear(cam, m.tray, rng)
    tray_lum = luminance(np.float32(TRAYS[m.tray]))
    tex, _ys, base, pad = fabric_texture(m, rng, tray_lum)
    draw_seam_and_defects(m, tex, base, pad, rng)
    W, H = m.width_mm, m.height_mm

    # cloth lift (mm above the tray, vanishing at the outline): a dome + waviness
    dome = rng.uniform(1.0, 4.0)
    waves = [(rng.uniform(0.1, 0.4), rng.uniform(10, 40), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi))
             for _ in range(3)]
    if flat:  # same random draws, no lift
        dome, waves = 0.0, []

    def lift(uv):
        u, v = uv[:, 0], uv[:, 1]
        env = np.sin(np.pi * np.clip(u / W, 0, 1)) * np.sin(np.pi * np.clip(v / H, 0, 1))
        z = dome * env ** 0.6
        for amp, lam, ph, ang in waves:
            z = z + amp * env * np.sin(2 * np.pi * (np.cos(ang) * u + np.sin(ang) * v) / lam + ph)
        return -(z + edge_lift_mm)  # z into the tray: lifted = negative

    def fwd(uv):
        return cam.project(np.column_stack([mask_to_tray(m, uv), lift(uv)]))

    # ROI in image px covering mask + loops
    allp = np.vstack([np.array([[0, 0], [W, 0], [W, H], [0, H]], float), *paths])
    ppx = cam.project(np.column_stack([mask_to_tray(m, allp), np.zeros(len(allp))]))
    x0 = int(max(0, np.floor(ppx[:, 0].min()) - 24))
    y0 = int(max(0, np.floor(ppx[:, 1].min()) - 24))
    x1 = int(min(w, np.ceil(ppx[:, 0].max()) + 24))
    y1 = int(min(h, np.ceil(ppx[:, 1].max()) + 24))
    rw, rh = x1 - x0, y1 - y0

    def to_ss(px):  # native px -> supersampled ROI px (pixel centres)
        return (px - [x0, y0] + 0.5) * SS - 0.5

    # --- mask body: texture through the inverted projection (sub-pixel grid at SS)
    grid = np.array([[u, v] for u in np.linspace(0, W, 9) for v in np.linspace(0, H, 5)])
    gpx = to_ss(fwd(grid))
    guess = homography_guess(grid, gpx)

    def fwd_ss(uv):
        return to_ss(fwd(uv))

    U, V = invert_on_grid(cam, fwd_ss, 0.0, 0.0, 12, rw * SS, rh * SS, guess)
    body = cv2.remap(tex, (U + pad) / TEX_MM - 0.5, (V + pad) / TEX_MM - 0.5, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    # coverage: outline (rounded corners r) forward-projected, filled at 4x then area-averaged
    r = rng.uniform(1.0, 3.0)
    outline = _rounded_rect(W, H, r)
    q = 4
    opx = (fwd(outline) - [x0, y0] + 0.5) * q - 0.5
    cov4 = np.zeros((rh * q, rw * q), np.uint8)
    cv2.fillPoly(cov4, [np.round(opx * 8).astype(np.int32)], 255, cv2.LINE_AA, 3)
    A_body = cv2.resize(cov4, (rw * SS, rh * SS), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    # --- ear loops at SS
    A_loop = np.zeros((rh * SS, rw * SS), np.float32)
    C_loop = np.zeros((rh * SS, rw * SS, 3), np.float32)
    if m.loop_colour == "white":
        lcol = np.float32([0.78, 0.8, 0.8])
    elif m.loop_colour == "black":
        lcol = np.float32([0.025, 0.025, 0.03])
    else:
        lcol = base * rng.uniform(0.85, 1.1)
    mmpp = W / np.linalg.norm(fwd(np.array([[0, H / 2]])) - fwd(np.array([[W, H / 2]])))
    for pts in paths:
        ppts = np.round(to_ss(cam.project(np.column_stack([mask_to_tray(m, pts), np.zeros(len(pts))]))) * 8)
        ppts = ppts.astype(np.int32)
        wmm = rng.uniform(5, 7) if m.loop_kind == "flat" else rng.uniform(2, 3)
        thick = max(2, round(float(wmm / mmpp * SS)))
        cv = np.zeros_like(A_loop, np.uint8)
        cv2.polylines(cv, [ppts], False, 255, thick, cv2.LINE_AA, 3)
        core = np.zeros_like(cv)
        cv2.polylines(core, [ppts], False, 255, max(1, int(thick * (0.6 if m.loop_kind == "flat" else 0.35))),
                      cv2.LINE_AA, 3)
        a = cv.astype(np.float32) / 255.0
        cshade = 0.72 + 0.28 * cv2.GaussianBlur(core.astype(np.float32) / 255.0, (0, 0), 1.5)
        if m.loop_kind == "cord":
            cshade = 0.55 + 0.6 * cv2.GaussianBlur(core.astype(np.float32) / 255.0, (0, 0), 1.0)
        col = lcol[None, None, :] * cshade[..., None]
        C_loop = C_loop * (1 - a[..., None]) + col * a[..., None]
        A_loop = A_loop + a * (1 - A_loop)

    # --- composite at SS (loops under the body), then down to 1x
    Ab = A_body[..., None]
    P = body * Ab + C_loop * A_loop[..., None] * (1 - Ab)
    A = Ab[..., 0] + A_loop * (1 - Ab[..., 0])
    P1 = cv2.resize(P, (rw, rh), interpolation=cv2.INTER_AREA)
    A1 = cv2.resize(A, (rw, rh), interpolation=cv2.INTER_AREA)
    # contact shadow of the mask and loops on the tray
    sh = cv2.GaussianBlur(A1, (0, 0), rng.uniform(3, 8))
    sh = np.roll(np.roll(sh, int(rng.integers(-3, 4)), 0), int(rng.integers(-3, 4)), 1)
    roi = tray[y0:y1, x0:x1]
    roi *= (1 - rng.uniform(0.15, 0.35) * sh)[..., None]
    tray[y0:y1, x0:x1] = roi * (1 - A1[..., None]) + P1
    # occasional soft cast shadow (the operator's arm, the camera post) across the scene
    if rng.random() < 0.3:
        cs = np.zeros((h // 4, w // 4), np.float32)
        cpts = rng.uniform([0, 0], [w // 4, h // 4], (4, 2)).astype(np.int32)
        cv2.fillConvexPoly(cs, cv2.convexHull(cpts), 1.0)
        cs = cv2.resize(cv2.GaussianBlur(cs, (0, 0), rng.uniform(10, 25)), (w, h))
        tray *= (1 - rng.uniform(0.15, 0.3) * cs)[..., None]
    img = expose(tray, rng)
    return Case(img, m)


def _rounded_rect(W: float, H: float, r: float) -> np.ndarray:
    """Outline polygon (mask frame), edges densely sampled so distortion bends them."""
    pts = []
    for (cx, cy, a0) in ((W - r, r, -90), (W - r, H - r, 0), (r, H - r, 90), (r, r, 180)):
        a = np.radians(np.linspace(a0, a0 + 90, 8))
        pts.append(np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)]))
    out = []
    for k in range(4):
        p, nxt = pts[k], pts[(k + 1) % 4]
        out.append(p)
        seg = np.linspace(p[-1], nxt[0], 40)[1:-1]
        out.append(seg)
    return np.vstack(out)
