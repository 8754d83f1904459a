"""Training data from the simulator: mask-plane renders, per-cell labels, augmentation.

Every sample is cut from a simulator render of the mask plane at 0.2 mm/px (the same frame and
scale as the pipeline's :class:`MaskCrop`). Labels come from the simulator's truth boxes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc_station.training.net import CELL_PX, CLASSES
from qc_station.vision.types import MaskCrop

MM_PER_PX = 0.2
MARGIN_MM = 10.0
#: A cell is a positive for a code when at least this fraction of it lies in the truth box.
POS_FRACTION = 0.04


def sim_backend():
    """(random_mask_params, render_mask_plane, name): the real simulator, else the proxy."""
    try:
        from qc_station.sim import random_mask_params, render_mask_plane

        return random_mask_params, render_mask_plane, "qc_station.sim"
    except ImportError:
        from qc_station.training import proxy_sim

        return proxy_sim.random_mask_params, proxy_sim.render_mask_plane, "qc_station.training.proxy_sim"


def renderer_fingerprint() -> str:
    """Short hash of the renderer's source (the simulator package, or the proxy, plus this module).

    Render caches are keyed by it: the same seeds render other masks once the simulator changes,
    and a cache keyed by name alone once served stale masks to a benchmark (v0.3.1's figures).
    """
    import hashlib

    name = sim_backend()[2]
    root = Path(__file__).resolve().parents[1]
    if name == "qc_station.sim":
        files = sorted((root / "sim").glob("*.py"))
    else:
        files = [Path(__file__).with_name("proxy_sim.py")]
    h = hashlib.sha256()
    for f in [*files, Path(__file__)]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Rendered:
    """One simulator render, ready for the runtime (``crop``) and for labelling (``truth``)."""

    crop: MaskCrop
    truth: object  # qc_station.sim.truth.MaskTruth


def render(seed: int, defects: tuple[str, ...] = ()) -> Rendered:
    """Render one mask plane with the given defect codes, deterministic for ``seed``."""
    random_params, render_plane, _ = sim_backend()
    rng = np.random.default_rng(seed)
    params = random_params(rng, defects=tuple(defects))
    image, truth = render_plane(params, mm_per_px=MM_PER_PX, margin_mm=MARGIN_MM, rng=rng)
    body = body_from_truth(image.shape[:2], truth.width_mm, truth.height_mm)
    crop = MaskCrop(
        image=np.ascontiguousarray(image),
        body=body,
        mm_per_px=MM_PER_PX,
        origin_mm=(-MARGIN_MM, -MARGIN_MM),
        width_mm=float(truth.width_mm),
        height_mm=float(truth.height_mm),
    )
    return Rendered(crop, truth)


_INSPECTOR = None  # one per process (pool workers fork with none and make their own)


class _CropCatcher:
    """Stands in for the model inside the pipeline to keep the crop the pipeline made."""

    sha256 = None

    def __init__(self):
        self.crop: MaskCrop | None = None

    def predict(self, crop: MaskCrop):
        self.crop = crop
        return None


def pipeline_crop(seed: int, defects: tuple[str, ...] = ()) -> tuple[MaskCrop, tuple] | None:
    """A full camera frame (``sim.render_case``) through the inspection pipeline: its own crop.

    What the station really feeds the model (camera warp and blur, rectification resampling,
    the measured mask frame), unlike :func:`render`'s mask plane. Returns ``(crop, truths)``
    with ``truths`` as ``((code, box_mm), ...)``, or None when the pipeline made no crop (a
    gated or unsegmented frame). Needs the real simulator.
    """
    global _INSPECTOR
    from qc_station.sim import render_case

    if _INSPECTOR is None:
        from qc_station.calibration import bundled_sim_calibration
        from qc_station.spec import load_spec
        from qc_station.vision.pipeline import Inspector

        _INSPECTOR = Inspector(bundled_sim_calibration(), load_spec(), model=_CropCatcher())
    frame, truth = render_case(seed, defects=tuple(defects))
    catcher = _INSPECTOR.model
    catcher.crop = None
    try:
        _INSPECTOR.inspect(frame)
    except Exception:  # a pipeline failure is the pipeline's bug (its own tests), not a model figure
        return None
    if catcher.crop is None or truth.mask is None:
        return None
    return catcher.crop, tuple((d.code, d.box_mm) for d in truth.mask.defects)


@dataclass(frozen=True)
class TruthBox:
    """One defect's truth box in mask-frame mm (what :func:`pixel_labels` needs of a truth)."""

    code: str
    box_mm: tuple[float, float, float, float]


@dataclass(frozen=True)
class TruthBoxes:
    defects: tuple[TruthBox, ...]


def pipeline_rendered(seed: int, defects: tuple[str, ...] = ()) -> Rendered | None:
    """:func:`pipeline_crop` as a :class:`Rendered` (patches and labels are cut the same way)."""
    got = pipeline_crop(seed, defects)
    if got is None:
        return None
    crop, truths = got
    return Rendered(crop, TruthBoxes(tuple(TruthBox(code, tuple(box)) for code, box in truths)))


def body_from_truth(shape: tuple[int, int], width_mm: float, height_mm: float) -> np.ndarray:
    """The finished outline as a bool mask (the mask frame's rectangle, margins excluded)."""
    body = np.zeros(shape, bool)
    x0 = y0 = round(MARGIN_MM / MM_PER_PX)
    body[y0 : y0 + round(height_mm / MM_PER_PX), x0 : x0 + round(width_mm / MM_PER_PX)] = True
    return body


def pixel_labels(truth, crop: MaskCrop, classes: tuple[str, ...] = CLASSES) -> np.ndarray:
    """C x H x W uint8: 1 inside each truth box of that class."""
    h, w = crop.image.shape[:2]
    lab = np.zeros((len(classes), h, w), np.uint8)
    for d in truth.defects:
        if d.code not in classes:
            continue
        x, y, bw, bh = d.box_mm
        c0, r0 = crop.to_px(x, y)
        c1, r1 = crop.to_px(x + bw, y + bh)
        c0, r0 = max(0, int(np.floor(c0))), max(0, int(np.floor(r0)))
        c1, r1 = min(w, int(np.ceil(c1)) + 1), min(h, int(np.ceil(r1)) + 1)
        lab[classes.index(d.code), r0:r1, c0:c1] = 1
    return lab


def cell_targets(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel labels (C x H x W, H, W multiples of a cell) -> (targets, loss weights) per cell.

    Cells next to a positive are ignored (weight 0): they see the defect in their window, and
    whether they fire only widens the box by one cell.
    """
    c, h, w = lab.shape
    frac = lab.reshape(c, h // CELL_PX, CELL_PX, w // CELL_PX, CELL_PX).mean(axis=(2, 4))
    pos = frac >= POS_FRACTION
    near = np.stack([cv2.dilate(p.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for p in pos])
    weight = np.where(near & ~pos, 0.0, 1.0).astype(np.float32)
    return pos.astype(np.float32), weight


def augment(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Strong photometric + small geometric variation (the sim gives fabrics, prints, trays).

    ``img`` H x W x 3 uint8, ``lab`` C x H x W; both keep their size.
    """
    h, w = img.shape[:2]
    if rng.random() < 0.7:  # small rotation + scale (residual de-rotation / scale error)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), rng.uniform(0.93, 1.07))
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lab = np.stack([cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_NEAREST) for x in lab])
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, :, ::-1]
    if rng.random() < 0.5:
        img, lab = img[::-1], lab[:, ::-1]
    return photometric(img, rng), np.ascontiguousarray(lab)


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting, colour, blur, noise and JPEG variation of a BGR uint8 image (same size)."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    # brightness / contrast / per-channel colour gain / gamma
    f = (f - 128.0) * rng.uniform(0.6, 1.4) + 128.0 + rng.uniform(-40, 40)
    f *= rng.uniform(0.8, 1.2, 3).astype(np.float32)
    f = np.clip(f, 0, 255)
    f = 255.0 * (f / 255.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.3:  # uneven light / vignetting ramp
        ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.2), w, dtype=np.float32)
        if rng.random() < 0.5:
            f *= ramp[None, :, None]
        else:
            f *= np.linspace(0.8, 1.15, h, dtype=np.float32)[:, None, None]
    if rng.random() < 0.5:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.3, 1.4))
    if rng.random() < 0.7:
        f += rng.normal(0, rng.uniform(1, 9), f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        _, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
        out = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out)


@dataclass
class PatchBank:
    """Pre-cut training patches (image + pixel labels), augmented afresh every epoch."""

    images: np.ndarray  # N x S x S x 3 uint8
    labels: np.ndarray  # N x C x S x S uint8


def cut_patches(
    r: Rendered, rng: np.random.Generator, size: int, n_random: int, n_per_defect: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Patches of ``size`` px around each defect (random offsets) and at random places."""
    lab = pixel_labels(r.truth, r.crop)
    img = r.crop.image
    h, w = img.shape[:2]
    centres = []
    for d in r.truth.defects:
        if d.code not in CLASSES:
            continue
        x, y, bw, bh = d.box_mm
        c, rr = r.crop.to_px(x + bw / 2, y + bh / 2)
        for _ in range(n_per_defect):
            centres.append((c + rng.uniform(-0.35, 0.35) * size, rr + rng.uniform(-0.35, 0.35) * size))
    # random places, biased to the body's border band where seams and edges are
    for _ in range(n_random):
        centres.append((rng.uniform(0, w), rng.uniform(0, h)))
    ims, labs = [], []
    for cx, cy in centres:
        x0 = int(np.clip(cx - size / 2, 0, w - size))
        y0 = int(np.clip(cy - size / 2, 0, h - size))
        ims.append(img[y0 : y0 + size, x0 : x0 + size].copy())
        labs.append(lab[:, y0 : y0 + size, x0 : x0 + size].copy())
    return ims, labs
