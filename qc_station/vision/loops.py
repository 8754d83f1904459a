"""Ear loops per side, counted where they leave the body.

An ear loop attached at both ends leaves the side edge twice (near the top and the bottom
corner); a loop detached at one end leaves it once; no loop, never. So along lines parallel to
a side edge just outside the body (:data:`OFFSETS_MM`), the crossings are counted
and ``loops = crossings // 2``; the median over the offsets resists a loop leg that lies along
one of the lines or lint on the tray. The lines are sampled on the camera frame at
:data:`SAMPLE_MM`; a crossing is where the colour stands out of the running median colour
along the line (the local tray): a loop much like the tray (white elastic on a light grey
tray) is found though the mask's foreground threshold would miss it.
Crossings closer than :data:`MERGE_MM` are one (a flat
elastic's ribs, noise), and shorter than :data:`MIN_RUN_MM` are ignored (dust). A loop leg leaves
the edge steeply, so it crosses the next line out at nearly the same place; a scratch or a lint
fibre lying along the side crosses the lines obliquely, and where it crosses one line it is
millimetres away on the next. A crossing counts only if another line has one within
:data:`MAX_SHIFT_MM` per line step (a lone crossing of one line is dust for the median anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from qc_station.vision.geometry import MaskPose
from qc_station.vision.rectify import TrayView

OFFSETS_MM = (2.5, 4.0, 5.5, 7.0, 8.5)
MIN_RUN_MM = 1.0
MERGE_MM = 1.5
SAMPLE_MM = 0.25
#: The lines run from this far above the top edge to this far below the bottom edge.
OVERHANG_MM = 6.0
#: A loop sample stands this many robust sigmas above the running median of its line ...
LOOP_SIGMAS = 5.0
#: ... and at least this far in BGR grey levels (a loop similar to the tray, e.g. white on
#: light grey, still differs by tens of levels).
MIN_LOOP_CONTRAST = 8.0
#: Window of that running median (longer than a loop crossing, shorter than the light's changes).
BACKGROUND_MM = 25.0
#: A loop crossing moves at most this much along the side from one offset line to the next
#: (1.5 mm further out). Simulator loops: median 0.12, 99 % 0.75, max 1.75 mm over 3,184 steps;
#: the scratches that made a missing loop count (independent seed 52, case 35): 2.5-4.3 mm.
MAX_SHIFT_MM = 2.0


@dataclass(frozen=True)
class LoopCount:
    left: int
    right: int
    crossings_left: tuple[int, ...]
    crossings_right: tuple[int, ...]
    #: mask-frame mm (u, v) of the crossings on the middle offset line, for annotation
    points_mm: tuple[tuple[float, float], ...] = ()


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of True runs."""
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def _crossings(on: np.ndarray) -> list[tuple[int, int]]:
    merge = round(MERGE_MM / SAMPLE_MM)
    runs = []
    for a, b in _runs(on):
        if runs and a - runs[-1][1] <= merge:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((a, b))
    min_len = round(MIN_RUN_MM / SAMPLE_MM)
    return [(a, b) for a, b in runs if b - a >= min_len]


def _loop_pixels(colours: np.ndarray) -> np.ndarray:
    """Samples (n, 3 BGR) that stand out of the local tray along one line (a loop crossing)."""
    win = min(round(BACKGROUND_MM / SAMPLE_MM) | 1, 255)
    line = np.ascontiguousarray(colours.reshape(1, -1, 3), dtype=np.uint8)
    # a 1-row image: the k x k median is the running median along the line (replicated border)
    bg = cv2.medianBlur(line, win).reshape(-1, 3).astype(np.float32)
    diff = colours.astype(np.float32) - bg
    dist = np.sqrt((diff * diff).sum(axis=1))
    sigma = 1.4826 * np.median(dist) + 1e-3
    return dist > max(LOOP_SIGMAS * sigma, MIN_LOOP_CONTRAST)


def count_loops(image_bgr: np.ndarray, view: TrayView, pose: MaskPose) -> LoopCount:
    """Loops per side on a camera frame, given the body's pose."""
    v = np.arange(-OVERHANG_MM, pose.height_mm + OVERHANG_MM, SAMPLE_MM)
    counts: dict[str, list[int]] = {"left": [], "right": []}
    points: list[tuple[float, float]] = []
    mid = OFFSETS_MM[len(OFFSETS_MM) // 2]
    lines = [(side, off) for side in ("left", "right") for off in OFFSETS_MM]
    uv = np.concatenate([np.stack([np.full_like(v, -off if side == "left" else pose.width_mm + off), v], 1)
                         for side, off in lines])
    tray = pose.mask_to_tray(uv).astype(np.float32)
    colours = view.sample_grid(image_bgr, tray[None, :, 0], tray[None, :, 1])[0]
    centres = [np.array([(a + b) / 2 * SAMPLE_MM for a, b in _crossings(_loop_pixels(
        colours[k * len(v):(k + 1) * len(v)]))]) for k in range(len(lines))]
    for k, (side, off) in enumerate(lines):
        others = [(abs(j - k), centres[j]) for j, (sd, _o) in enumerate(lines) if sd == side and j != k]
        kept = [c for c in centres[k]
                if any(len(o) and np.min(np.abs(o - c)) <= MAX_SHIFT_MM * dj for dj, o in others)]
        counts[side].append(len(kept))
        if off == mid:
            u = uv[k * len(v), 0]
            points += [(float(u), float(v[0] + c)) for c in kept]
    left = int(np.median(counts["left"])) // 2
    right = int(np.median(counts["right"])) // 2
    return LoopCount(left, right, tuple(counts["left"]), tuple(counts["right"]),
                     tuple(points))
