"""Everything needed to draw one mask (:class:`MaskParams`) and how to draw it at random.

Mask frame: mm, origin at the top-left corner of the finished outline, x along the width,
y along the height. Tray placement: the outline centre sits at ``center_tray_mm`` and the
mask's x axis is the tray's x axis rotated by ``angle_deg`` (positive turns x towards +y,
i.e. clockwise on screen since y points down).
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from qc_station.sim.camera import CameraModel
from qc_station.sim.truth import SIM_DEFECTS

Color = tuple[float, float, float]  # BGR, 0..1

PATTERNS = ("plain", "dotted", "floral", "striped", "checked")
LOOP_STYLES = ("flat", "cord")


@dataclass(frozen=True)
class FabricParams:
    """The outer fabric: a print pattern in up to three colours, plus the weave."""

    pattern: str  # one of PATTERNS
    base: Color
    accent: Color
    accent2: Color
    scale_mm: float  # repeat of the print (dot pitch, stripe period, check size, flower tile)
    stripe_angle_deg: float = 90.0  # stripes: 90 = vertical lines (across the width)
    inner: Color = (0.92, 0.92, 0.92)  # inner layer (seen in an open seam)
    weave_pitch_mm: float = 0.6
    weave_contrast: float = 0.04
    weave: str = "plain"  # "plain" (checker of crossings) or "twill" (diagonal ribs, denim-like)

    @property
    def mean_color(self) -> np.ndarray:
        share = {"plain": 0.0, "dotted": 0.2, "floral": 0.35, "striped": 0.45, "checked": 0.4}
        a = share.get(self.pattern, 0.3)
        return (1 - a) * np.asarray(self.base) + a * np.asarray(self.accent)


@dataclass(frozen=True)
class LoopParams:
    """One ear loop on a side edge. ``state``: ok, detached_top or detached_bottom (dangling)."""

    side: str  # "left" | "right"
    style: str  # "flat" elastic | "cord"
    width_mm: float
    color: Color
    reach_mm: float  # how far the arc goes beyond the side edge
    attach_top_mm: float  # y of the upper attachment
    attach_bottom_mm: float  # y of the lower attachment
    bulge_top: float = 0.0  # shape asymmetry in [-1, 1]
    bulge_bottom: float = 0.0
    state: str = "ok"
    dangle_dx_mm: float = 30.0  # where a detached end lies, relative to its attachment
    dangle_dy_mm: float = 25.0

    @property
    def attached(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class DefectParams:
    """A drawn defect. Meaning of the fields per code:

    - stain / hole: centre (x_mm, y_mm), size_mm diameter, color / opacity (stain).
    - skipped_stitch: along_mm = arc-length position of the gap start on the seam path,
      size_mm = gap length.
    - open_seam: edge (top/bottom/left/right), along_mm = start along that edge (from its
      left/top end), size_mm = length, depth_mm = how far the outer layer gapes back.
    - width / height / pleats / stitch_length / ear_loop: expressed by the mask's own fields.
    """

    code: str
    x_mm: float = 0.0
    y_mm: float = 0.0
    size_mm: float = 0.0
    along_mm: float = 0.0
    edge: str = ""
    depth_mm: float = 0.0
    color: Color = (0.2, 0.3, 0.45)
    opacity: float = 0.6
    seed: int = 0


@dataclass(frozen=True)
class MaskParams:
    """Everything needed to draw one mask (geometry, materials, seam, defects)."""

    width_mm: float
    height_mm: float
    center_tray_mm: tuple[float, float]
    angle_deg: float
    pleats: int
    fabric: FabricParams
    loops: tuple[LoopParams, ...]
    thread: Color
    thread_width_mm: float
    stitch_length_mm: float
    seam_distance_mm: float
    needle_gap_mm: float = 0.4
    corner_radius_mm: float = 4.0
    pleat_margin_top_mm: float = 18.0
    pleat_margin_bottom_mm: float = 18.0
    pleat_depth_mm: float = 9.0  # fabric hidden in each fold (shifts the print)
    stitch_phase_mm: float = 0.0
    defects: tuple[DefectParams, ...] = ()
    loops_per_side: int = 1  # how many loops the design has on each side (the spec's)
    thickness_mm: float = 0.0  # height of the visible top surface above the tray (0: flat)
    seed: int = 0  # texture noise, fray, loop ribbing
    requested: tuple[str, ...] = field(default=(), compare=False)  # defect codes asked for

    @property
    def pleat_lines_mm(self) -> tuple[float, ...]:
        """y of each fold line in the mask frame (the edge where the upper fabric folds over)."""
        if self.pleats <= 0:
            return ()
        top, bottom = self.pleat_margin_top_mm, self.height_mm - self.pleat_margin_bottom_mm
        step = (bottom - top) / self.pleats
        return tuple(top + (k + 0.5) * step for k in range(self.pleats))

    def loops_on(self, side: str) -> int:
        """Number of functional (attached at both ends) loops on ``side``."""
        return sum(1 for lp in self.loops if lp.side == side and lp.attached)


# ---------------------------------------------------------------------------------------------
# random drawing


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(float(h) % 1.0, float(s), float(v))
    return (float(b), float(g), float(r))


def luminance(c) -> float:
    b, g, r = c
    return 0.114 * b + 0.587 * g + 0.299 * r


def _random_fabric(rng: np.random.Generator) -> FabricParams:
    pattern = str(rng.choice(PATTERNS, p=[0.32, 0.17, 0.17, 0.17, 0.17]))
    h = rng.uniform()
    kind = rng.uniform()
    if kind < 0.2:  # white / pale (surgical-like)
        base = _hsv(h, rng.uniform(0.0, 0.12), rng.uniform(0.82, 0.96))
    elif kind < 0.35:  # black / navy / very dark
        base = _hsv(h, rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.25))
    else:
        base = _hsv(h, rng.uniform(0.2, 0.85), rng.uniform(0.3, 0.92))
    lb = luminance(base)
    h2 = h + rng.choice([0.0, 0.5, 0.33, -0.33]) + rng.uniform(-0.05, 0.05)
    v2 = float(np.clip(lb + rng.choice([-1, 1]) * rng.uniform(0.25, 0.5), 0.08, 0.97))
    accent = _hsv(h2, rng.uniform(0.1, 0.9), v2)
    accent2 = _hsv(h + rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95))
    scale = {"plain": 10.0, "dotted": rng.uniform(5, 14), "floral": rng.uniform(25, 45),
             "striped": rng.uniform(4, 16), "checked": rng.uniform(5, 16)}[pattern]
    stripe_angle = float(rng.choice([90.0, 0.0, 45.0, -45.0], p=[0.4, 0.3, 0.15, 0.15]))
    inner = _hsv(rng.uniform(), rng.uniform(0, 0.15), rng.uniform(0.75, 0.95)) if rng.uniform() < 0.7 \
        else base
    return FabricParams(
        pattern=pattern, base=base, accent=accent, accent2=accent2, scale_mm=float(scale),
        stripe_angle_deg=stripe_angle, inner=inner,
        weave_pitch_mm=float(rng.uniform(0.45, 0.9)), weave_contrast=float(rng.uniform(0.03, 0.1)),
        weave=str(rng.choice(["plain", "twill"], p=[0.75, 0.25])),
    )


def _random_thread(rng: np.random.Generator, fabric: FabricParams) -> Color:
    lf = luminance(fabric.mean_color)
    darker = lf > 0.45 if rng.uniform() < 0.85 else lf > 0.7
    for _ in range(20):
        if darker:
            c = _hsv(rng.uniform(), rng.uniform(0, 0.6), rng.uniform(0.05, max(0.08, lf - 0.2)))
        else:
            c = _hsv(rng.uniform(), rng.uniform(0, 0.4), rng.uniform(min(0.95, lf + 0.25), 0.98))
        if abs(luminance(c) - lf) >= 0.2:
            return c
    return (0.05, 0.05, 0.05) if darker else (0.95, 0.95, 0.95)


def _random_loop_color(rng: np.random.Generator, fabric: FabricParams) -> Color:
    k = rng.uniform()
    if k < 0.4:
        return _hsv(0, 0, rng.uniform(0.88, 0.97))  # white
    if k < 0.7:
        return _hsv(0, 0, rng.uniform(0.06, 0.14))  # black
    return tuple(float(v) for v in np.clip(np.asarray(fabric.base) * rng.uniform(0.9, 1.1), 0, 1))


def _random_loops(rng, width, height, *, per_side: int, missing: tuple[str, ...], dangling: str | None,
                  fabric: FabricParams) -> tuple[LoopParams, ...]:
    """``per_side`` loops on each side (two loops split the side's height); ``missing`` sides
    lose one loop, the ``dangling`` side's (first) loop is detached at one end."""
    style = str(rng.choice(LOOP_STYLES))
    lw = float(rng.uniform(5.0, 7.0) if style == "flat" else rng.uniform(2.0, 3.0))
    color = _random_loop_color(rng, fabric)
    loops = []
    for side in ("left", "right"):
        spans = [(0.0, height)] if per_side == 1 else [(0.0, height * 0.45), (height * 0.55, height)]
        n = per_side - (1 if side in missing else 0)
        for k, (lo, hi) in enumerate(spans[:n]):
            state = "ok"
            if dangling == side and k == 0:
                state = str(rng.choice(["detached_top", "detached_bottom"]))
            loops.append(LoopParams(
                side=side, style=style, width_mm=lw, color=color,
                reach_mm=float(rng.uniform(50, 80) if per_side == 1 else rng.uniform(35, 55)),
                attach_top_mm=float(lo + rng.uniform(5.0, 10.0)),
                attach_bottom_mm=float(hi - rng.uniform(5.0, 10.0)),
                bulge_top=float(rng.uniform(-0.6, 0.6)), bulge_bottom=float(rng.uniform(-0.6, 0.6)),
                state=state, dangle_dx_mm=float(rng.uniform(15, 45)),
                dangle_dy_mm=float(rng.uniform(15, 45)),
            ))
    return tuple(loops)


def _out_of(tol, rng) -> float:
    """A value clearly outside a tolerance: 1-7 mm beyond one of its limits."""
    if rng.uniform() < 0.5:
        return float(tol.upper + rng.uniform(1.0, 7.0))
    return float(tol.lower - rng.uniform(1.0, 7.0))


def _inside(tol, rng, margin: float = 3.0) -> float:
    lo = max(tol.lower + 0.4, tol.nominal - margin)
    hi = min(tol.upper - 0.4, tol.nominal + margin)
    return float(rng.uniform(lo, hi))


def _place(rng, camera: CameraModel, w, h, loops, angle_deg) -> tuple[float, float]:
    """A centre on the tray where the whole mask, loops included, is in view with margin."""
    from qc_station.sim.geometry import tray_points

    X, Y = tray_points(camera)
    wi, hi = camera.image_size
    # extent in the mask frame (loops included)
    left = max([lp.reach_mm + lp.width_mm for lp in loops if lp.side == "left"] + [0]) + 8
    right = max([lp.reach_mm + lp.width_mm for lp in loops if lp.side == "right"] + [0]) + 8
    dangle = max([lp.dangle_dy_mm for lp in loops if not lp.attached] + [0])
    xs = np.array([-left, w + right, w + right, -left]) - w / 2
    ys = np.array([-8 - dangle, -8 - dangle, h + 8 + dangle, h + 8 + dangle]) - h / 2
    a = np.deg2rad(angle_deg)
    cx_off = xs * np.cos(a) - ys * np.sin(a)
    cy_off = xs * np.sin(a) + ys * np.cos(a)
    margin_px = 40
    x_lo, x_hi = X[hi // 2, margin_px], X[hi // 2, wi - 1 - margin_px]
    y_lo, y_hi = Y[margin_px, wi // 2], Y[hi - 1 - margin_px, wi // 2]
    inset = 6.0  # mm, covers tilt/distortion of the borders
    lo_x, hi_x = x_lo + inset - cx_off.min(), x_hi - inset - cx_off.max()
    lo_y, hi_y = y_lo + inset - cy_off.min(), y_hi - inset - cy_off.max()
    if lo_x > hi_x or lo_y > hi_y:
        return (float((x_lo + x_hi) / 2), float((y_lo + y_hi) / 2))
    return (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))


def random_mask_params(
    rng: np.random.Generator,
    *,
    defects: Iterable[str] = (),
    spec=None,
    camera: CameraModel | None = None,
) -> MaskParams:
    """A random mask: good per ``spec`` (default spec) unless ``defects`` codes are requested.

    Every code of ``SIM_DEFECTS`` can be requested, alone or combined. The mask (loops
    included) is placed anywhere in ``camera``'s view (default camera), rotated up to +-15 deg.
    """
    from qc_station.sim.camera import default_camera
    from qc_station.spec import load_spec

    spec = spec or load_spec()
    camera = camera or default_camera()
    wanted = tuple(dict.fromkeys(defects))
    unknown = [c for c in wanted if c not in SIM_DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect code(s) {unknown}; the simulator renders {list(SIM_DEFECTS)}")
    dims, cons, seam = spec.dimensions, spec.construction, spec.seam

    width = _out_of(dims.width_mm, rng) if "width" in wanted else _inside(dims.width_mm, rng)
    height = _out_of(dims.height_mm, rng) if "height" in wanted else _inside(dims.height_mm, rng)
    pleats = cons.pleats
    if "pleats" in wanted:
        pleats = cons.pleats + (1 if cons.pleats == 0 or rng.uniform() < 0.5 else -1)
    if "stitch_length" in wanted:
        lo, hi = seam.stitch_length_mm.lower, seam.stitch_length_mm.upper
        short = rng.uniform() < 0.5
        sl = float(rng.uniform(lo - 0.7, lo - 0.3) if short else rng.uniform(hi + 0.4, hi + 1.2))
    else:
        sl = _inside(seam.stitch_length_mm, rng, margin=0.3)
    seam_d = float(rng.uniform(4.0, 6.0))
    seam_d = float(np.clip(seam_d, seam.distance_mm.lower + 0.5, seam.distance_mm.upper - 0.5))

    fabric = _random_fabric(rng)
    missing: tuple[str, ...] = ()
    dangling = None
    if "ear_loop" in wanted and cons.ear_loops_per_side == 0:
        raise ValueError("this spec has no ear loops (ties): an ear_loop defect cannot be drawn")
    if "ear_loop" in wanted:
        k = rng.uniform()
        side = str(rng.choice(["left", "right"]))
        if k < 0.45:
            missing = (side,)
        elif k < 0.6:
            missing = ("left", "right")
        else:
            dangling = side
    loops = _random_loops(rng, width, height, per_side=cons.ear_loops_per_side, missing=missing,
                          dangling=dangling, fabric=fabric)

    corner_r = float(rng.uniform(2.0, 7.0))
    margin_top = float(rng.uniform(0.14, 0.22) * height)
    margin_bottom = float(rng.uniform(0.14, 0.22) * height)
    pleat_lines = []
    if pleats > 0:
        step = (height - margin_top - margin_bottom) / pleats
        pleat_lines = [margin_top + (k + 0.5) * step for k in range(pleats)]

    drawn: list[DefectParams] = []
    skip_edges = []
    if "open_seam" in wanted:
        edge = str(rng.choice(["top", "bottom", "left", "right"], p=[0.35, 0.35, 0.15, 0.15]))
        edge_len = width if edge in ("top", "bottom") else height
        length = float(rng.uniform(10.0, min(30.0, edge_len - 40)))
        start = float(rng.uniform(18.0, edge_len - 18.0 - length))
        drawn.append(DefectParams(code="open_seam", edge=edge, along_mm=start, size_mm=length,
                                  depth_mm=float(rng.uniform(1.2, 2.5)), seed=int(rng.integers(1 << 30))))
        skip_edges.append(edge)
    if "skipped_stitch" in wanted:
        gap = float(rng.uniform(3.0, 6.0) * sl)
        edge = str(rng.choice([e for e in ("top", "bottom") if e not in skip_edges] or ["top"]))
        # arc length along the seam path (clockwise from the top-left corner's end of the arc)
        rs = max(corner_r - seam_d, 1.0)
        straight = width - 2 * seam_d - 2 * rs
        off = float(rng.uniform(15.0, straight - 15.0 - gap))
        quarter = np.pi * rs / 2
        # the bottom edge is run right-to-left after the top, a corner, the right side, a corner
        bottom_start = straight + quarter + (height - 2 * seam_d - 2 * rs) + quarter
        along = off if edge == "top" else bottom_start + off
        drawn.append(DefectParams(code="skipped_stitch", along_mm=along, size_mm=gap, edge=edge))
    blobs: list[tuple[float, float, float]] = []
    for code in ("stain", "hole"):
        if code not in wanted:
            continue
        size = float(rng.uniform(4.0, 15.0) if code == "stain" else rng.uniform(2.0, 6.0))
        for _ in range(50):
            x = float(rng.uniform(seam_d + 3 + size / 2, width - seam_d - 3 - size / 2))
            y = float(rng.uniform(seam_d + 3 + size / 2, height - seam_d - 3 - size / 2))
            if (all(np.hypot(x - bx, y - by) > (size + bs) / 2 + 4 for bx, by, bs in blobs) and all(
                abs(y - pl) > size / 2 + 1.0 for pl in pleat_lines
            )) or _ == 49:
                break
        blobs.append((x, y, size))
        if code == "stain":
            tint_kind = rng.uniform()
            if tint_kind < 0.35:
                color = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.5, 0.8), rng.uniform(0.25, 0.45))  # coffee
            elif tint_kind < 0.55:
                color = _hsv(0, 0, rng.uniform(0.15, 0.3))  # grease / dirt
            elif tint_kind < 0.7:
                color = _hsv(rng.uniform(0.95, 1.0), rng.uniform(0.6, 0.9), rng.uniform(0.35, 0.6))  # wine
            elif tint_kind < 0.85:
                color = _hsv(rng.uniform(0.12, 0.16), rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.85))  # yellow
            else:
                color = _hsv(rng.uniform(0.55, 0.7), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6))  # ink
            lf = luminance(fabric.mean_color)
            if abs(luminance(color) - lf) < 0.15:  # keep it visible on this fabric
                color = tuple(float(c) for c in (np.asarray(color) * 0.35 if lf > 0.3 else
                                                 np.clip(np.asarray(color) * 2.5 + 0.15, 0, 1)))
            drawn.append(DefectParams(code="stain", x_mm=x, y_mm=y, size_mm=size, color=color,
                                      opacity=float(rng.uniform(0.45, 0.8)), seed=int(rng.integers(1 << 30))))
        else:
            drawn.append(DefectParams(code="hole", x_mm=x, y_mm=y, size_mm=size,
                                      seed=int(rng.integers(1 << 30))))
    for code in ("width", "height", "pleats", "stitch_length", "ear_loop"):
        if code in wanted:
            drawn.append(DefectParams(code=code))

    angle = float(rng.uniform(-15.0, 15.0))
    center = _place(rng, camera, width, height, loops, angle)
    return MaskParams(
        width_mm=width, height_mm=height, center_tray_mm=center, angle_deg=angle, pleats=pleats,
        fabric=fabric, loops=loops, thread=_random_thread(rng, fabric),
        thread_width_mm=float(rng.uniform(0.35, 0.5)), stitch_length_mm=sl, seam_distance_mm=seam_d,
        needle_gap_mm=float(rng.uniform(0.3, 0.5)), corner_radius_mm=corner_r,
        pleat_margin_top_mm=margin_top, pleat_margin_bottom_mm=margin_bottom,
        pleat_depth_mm=float(rng.uniform(6.0, 12.0)), stitch_phase_mm=float(rng.uniform(0, sl)),
        defects=tuple(drawn), loops_per_side=cons.ear_loops_per_side, seed=int(rng.integers(1 << 30)),
        requested=wanted,
    )
