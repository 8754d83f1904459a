"""Whole frames: a mask on a tray seen through a camera, and the mask alone in its own frame."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from qc_station.sim.camera import CameraModel, default_camera
from qc_station.sim.draw import Layer, draw_mask_layer, layer_extent_mm
from qc_station.sim.geometry import mm_per_px_at_center, plane_points, tray_points
from qc_station.sim.params import MaskParams, random_mask_params
from qc_station.sim.sensor import expose
from qc_station.sim.tray import TRAYS, pick_tray, tray_texture
from qc_station.sim.truth import SIM_UNUSABLE, MaskTruth, SceneTruth


def mask_to_tray(params: MaskParams, xy_mask_mm: np.ndarray) -> np.ndarray:
    """Mask-frame points (N x 2 mm) -> tray-frame points (N x 2 mm) for this mask's pose."""
    a = np.deg2rad(params.angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    half = np.array([params.width_mm / 2, params.height_mm / 2])
    return (np.asarray(xy_mask_mm, np.float64) - half) @ rot.T + np.asarray(params.center_tray_mm)


def mask_truth(params: MaskParams, layer: Layer) -> MaskTruth:
    """The truth of a drawn mask, from its parameters and what the painter reported."""
    return MaskTruth(
        width_mm=float(params.width_mm),
        height_mm=float(params.height_mm),
        center_tray_mm=(float(params.center_tray_mm[0]), float(params.center_tray_mm[1])),
        angle_deg=float(params.angle_deg),
        pleats=int(params.pleats),
        ear_loops_left=params.loops_on("left"),
        ear_loops_right=params.loops_on("right"),
        stitch_length_mm=float(params.stitch_length_mm),
        seam_distance_mm=float(params.seam_distance_mm),
        defects=layer.defects,
    )


def _check_unusable(unusable: Iterable[str]) -> tuple[str, ...]:
    u = tuple(dict.fromkeys(unusable))
    bad = [c for c in u if c not in SIM_UNUSABLE]
    if bad:
        raise ValueError(f"unknown unusable case(s) {bad}; the simulator renders {list(SIM_UNUSABLE)}")
    return u


def _drop_shadow(alpha: np.ndarray, blur_px: float, strength: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), blur_px) * np.float32(strength)


def render_scene(
    camera: CameraModel,
    params: MaskParams | None,
    rng: np.random.Generator,
    *,
    unusable: Iterable[str] = (),
    tray: str | None = None,
) -> tuple[np.ndarray, SceneTruth]:
    """Photograph ``params`` (None = empty tray) lying on a tray through ``camera``.

    Returns the frame (BGR uint8, ``camera.image_size``) and its exact truth. ``unusable`` may
    hold ``"blur"`` (motion blur 15-40 px), ``"exposure"`` (clipped over/under-exposure) and
    ``"no_mask"`` (the mask is left out). ``tray`` forces a tray kind (see ``TRAYS``).
    """
    unusable = _check_unusable(unusable)
    if params is None or "no_mask" in unusable:
        params = None
        if "no_mask" not in unusable:
            unusable = ("no_mask", *unusable)
    w, h = camera.image_size
    mmpp = mm_per_px_at_center(camera)
    fabric_mean = params.fabric.mean_color if params is not None else rng.uniform(0, 1, 3)
    loops = [lp.color for lp in params.loops] if params is not None else []
    kind = tray or pick_tray(rng, fabric_mean, loops=loops)
    if kind not in TRAYS:
        raise ValueError(f"unknown tray {kind!r}; choose from {list(TRAYS)}")
    frame = tray_texture(rng, h, w, kind, px_per_mm=1 / mmpp)
    knobs: dict = {"tray": kind, "camera": camera.name}
    truth_mask = None
    if params is not None:
        layer = draw_mask_layer(params, mm_per_px=mmpp)
        _composite(camera, params, layer, frame, rng)
        truth_mask = mask_truth(params, layer)
        knobs.update(pattern=params.fabric.pattern, loops=[lp.style for lp in params.loops][:1])
    image = expose(frame, rng, unusable=unusable, info=knobs)
    return image, SceneTruth(mask=truth_mask, unusable=unusable, mm_per_px_center=mmpp, params=knobs)


def _composite(camera: CameraModel, params: MaskParams, layer: Layer, frame: np.ndarray,
               rng: np.random.Generator) -> None:
    """Warp the painted layer through the camera and lay it (with its shadow) on ``frame``."""
    w, h = camera.image_size
    x0, y0, x1, y1 = layer_extent_mm(params)
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    edges = np.concatenate([box + t * (np.roll(box, -1, axis=0) - box) for t in np.linspace(0, 1, 9)])
    px = camera.project(mask_to_tray(params, edges))
    c0, r0 = np.floor(px.min(axis=0)).astype(int) - 4
    c1, r1 = np.ceil(px.max(axis=0)).astype(int) + 5
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)
    if c1 <= c0 or r1 <= r0:
        return
    X, Y = tray_points(camera)
    X, Y = X[r0:r1, c0:c1], Y[r0:r1, c0:c1]
    a = np.deg2rad(params.angle_deg)
    ca, sa = np.float32(np.cos(a)), np.float32(np.sin(a))
    s = layer.mm_per_px
    ox, oy = layer.origin_mm

    def layer_map(X, Y):
        dx = X - np.float32(params.center_tray_mm[0])
        dy = Y - np.float32(params.center_tray_mm[1])
        mapx = (ca * dx + sa * dy + np.float32(params.width_mm / 2 - ox)) / np.float32(s)
        mapy = (-sa * dx + ca * dy + np.float32(params.height_mm / 2 - oy)) / np.float32(s)
        return mapx, mapy

    mapx, mapy = layer_map(X, Y)  # the tray plane: where the shadow falls
    if params.thickness_mm > 0:  # the mask's top surface is nearer the camera than the tray
        R = camera.R
        t_top = np.asarray(camera.tvec_mm, np.float64) - R[:, 2] * params.thickness_mm
        Xt, Yt, _ = plane_points(camera, R, t_top, roi=(c0, r0, c1, r1))
        top_x, top_y = layer_map(Xt, Yt)
    else:
        top_x, top_y = mapx, mapy
    fg = cv2.remap(layer.rgba, top_x, top_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # soft shadow under the edges: the light comes from a little off the vertical
    blur_mm = rng.uniform(0.8, 2.2)
    off = rng.uniform(-1.2, 1.2, 2)
    shadow = _drop_shadow(np.ascontiguousarray(layer.rgba[..., 3]), blur_mm / s, rng.uniform(0.25, 0.5))
    sh = cv2.remap(shadow, mapx - np.float32(off[0] / s), mapy - np.float32(off[1] / s), cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    roi = frame[r0:r1, c0:c1]
    roi *= (1 - sh)[..., None]
    roi *= 1 - fg[..., 3:4]
    roi += fg[..., :3]


def render_case(
    seed: int,
    *,
    defects: Iterable[str] = (),
    unusable: Iterable[str] = (),
    camera: CameraModel | None = None,
    spec=None,
) -> tuple[np.ndarray, SceneTruth]:
    """One frame from a seed: random mask (with ``defects``), tray, lighting and pose."""
    rng = np.random.default_rng(seed)
    camera = camera or default_camera()
    unusable = _check_unusable(unusable)
    params = None
    if "no_mask" not in unusable:
        params = random_mask_params(rng, defects=defects, spec=spec, camera=camera)
    return render_scene(camera, params, rng, unusable=unusable)


def render_mask_plane(
    params: MaskParams,
    *,
    mm_per_px: float = 0.2,
    margin_mm: float = 10.0,
    rng: np.random.Generator | None = None,
    tray: str | None = None,
    sensor: bool = True,
    supersample: bool = True,
) -> tuple[np.ndarray, MaskTruth]:
    """The mask in its own frame, no camera: pixel (col, row) is at mask-frame mm
    ``(-margin_mm + col * mm_per_px, -margin_mm + row * mm_per_px)`` (top-left of the outline at
    ``margin_mm``). Same painter as :func:`render_scene`; lighting, noise and JPEG are applied
    unless ``sensor`` is False. Loops outside the margin are cut off. ``supersample=False``
    paints at the output resolution (~3x faster, for bulk training data).
    """
    rng = rng if rng is not None else np.random.default_rng(params.seed)
    extent = (-margin_mm, -margin_mm, params.width_mm + margin_mm, params.height_mm + margin_mm)
    layer = draw_mask_layer(params, mm_per_px=mm_per_px, extent_mm=extent, supersample=supersample)
    h, w = layer.rgba.shape[:2]
    kind = tray or pick_tray(rng, params.fabric.mean_color, loops=[lp.color for lp in params.loops])
    frame = tray_texture(rng, h, w, kind, px_per_mm=1 / mm_per_px)
    alpha = np.ascontiguousarray(layer.rgba[..., 3])
    shadow = _drop_shadow(alpha, rng.uniform(0.8, 2.2) / mm_per_px, rng.uniform(0.25, 0.5))
    off = rng.uniform(-1.2, 1.2, 2) / mm_per_px
    shadow = cv2.warpAffine(shadow, np.float32([[1, 0, off[0]], [0, 1, off[1]]]), (w, h))
    frame *= (1 - shadow)[..., None]
    frame *= 1 - layer.rgba[..., 3:4]
    frame += layer.rgba[..., :3]
    if sensor:
        image = expose(frame, rng, vignetting=False)
    else:
        image = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
    return image, mask_truth(params, layer)
