"""Truth and camera as JSON-ready dicts (for files written by ``qc-station sim``)."""

from __future__ import annotations

import dataclasses

from qc_station.sim.camera import CameraModel
from qc_station.sim.truth import MaskTruth


def truth_json(truth) -> dict:
    """Any truth dataclass (SceneTruth, MaskTruth, BoardViewTruth) -> plain JSON types."""
    doc = dataclasses.asdict(truth)
    if isinstance(truth, MaskTruth):
        doc["ear_loops"] = truth.ear_loops
        doc["defect_codes"] = list(truth.defect_codes)
    elif getattr(truth, "mask", None) is not None:
        doc["mask"]["ear_loops"] = truth.mask.ear_loops
        doc["mask"]["defect_codes"] = list(truth.mask.defect_codes)
    return doc


def camera_json(camera: CameraModel) -> dict:
    """The camera that took the frames: intrinsics, OpenCV distortion order, tray pose."""
    return {
        "name": camera.name,
        "image_size": list(camera.image_size),
        "camera_matrix": camera.K.tolist(),
        "dist_coeffs": list(camera.dist),
        "rvec": list(camera.rvec),
        "tvec_mm": list(camera.tvec_mm),
        "height_mm": camera.height_mm,
    }
