"""The simulator: photographs of masks on a tray through a real camera model, with exact truth.

Everything is drawn in the tray plane (the mask painted in its own frame at twice the output
resolution, then antialiased), warped through the camera (pinhole + Brown-Conrady distortion,
tilted pose) and exposed (vignetting, uneven light, shadows, defocus, noise, JPEG). The truth
comes from how the scene was drawn, never from ``qc_station.vision``. See docs/simulator.md.
"""

from qc_station.sim.boards import (
    BoardSpec,
    charuco_board,
    parse_board,
    plane_view_truth,
    render_board_views,
    render_plane_view,
)
from qc_station.sim.camera import CameraModel, camera_looking_at, default_camera, random_camera
from qc_station.sim.params import (
    DefectParams,
    FabricParams,
    LoopParams,
    MaskParams,
    random_mask_params,
)
from qc_station.sim.scene import mask_to_tray, render_case, render_mask_plane, render_scene
from qc_station.sim.tray import TRAYS
from qc_station.sim.truth import (
    SIM_DEFECTS,
    SIM_UNUSABLE,
    BoardViewTruth,
    DefectTruth,
    MaskTruth,
    SceneTruth,
)

__all__ = [
    "SIM_DEFECTS",
    "SIM_UNUSABLE",
    "TRAYS",
    "BoardSpec",
    "BoardViewTruth",
    "CameraModel",
    "DefectParams",
    "DefectTruth",
    "FabricParams",
    "LoopParams",
    "MaskParams",
    "MaskTruth",
    "SceneTruth",
    "camera_looking_at",
    "charuco_board",
    "default_camera",
    "mask_to_tray",
    "parse_board",
    "plane_view_truth",
    "random_camera",
    "random_mask_params",
    "render_board_views",
    "render_case",
    "render_mask_plane",
    "render_plane_view",
    "render_scene",
]
