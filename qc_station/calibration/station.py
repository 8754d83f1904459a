"""The whole calibration: board views -> intrinsics, plane image -> tray pose -> ``StationCalibration``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc_station.calibration.boards import BoardDetection, BoardSpec, detect_board, parse_board
from qc_station.calibration.intrinsics import MAX_RMS_PX, MIN_VIEWS, Intrinsics, calibrate_intrinsics
from qc_station.calibration.model import RejectedView, StationCalibration
from qc_station.calibration.plane import TrayPose, estimate_tray_pose
from qc_station.errors import CalibrationError, ImageError

#: An image given either as a file path or as an already loaded (name, BGR/gray array) pair.
ImageInput = str | Path | tuple[str, np.ndarray]


@dataclass(frozen=True)
class ViewProgress:
    """Reported once per board view as it is examined (for the CLI's one line per view)."""

    index: int
    total: int
    name: str
    detection: BoardDetection


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as grayscale; :class:`ImageError` naming the file if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise ImageError(f"cannot decode image {path} (corrupt or not an image)")
    return image


def _load(item: ImageInput, index: int) -> tuple[str, np.ndarray]:
    if isinstance(item, tuple):
        name, image = item
        return str(name), np.asarray(image)
    return str(item), read_image(item)


def calibrate(
    images: Sequence[ImageInput],
    plane_image: ImageInput,
    board: BoardSpec | str | None = None,
    *,
    min_views: int = MIN_VIEWS,
    max_rms_px: float = MAX_RMS_PX,
    fix_k3: bool = False,
    progress: Callable[[ViewProgress], None] | None = None,
) -> StationCalibration:
    """Calibrate a station: intrinsics from ``images`` (board views), tray plane from ``plane_image``.

    Images are paths or ``(name, array)`` pairs. Unusable views are rejected with a reason each
    (reported through ``progress`` as they are examined); the result is refused with a
    :class:`CalibrationError` listing them when too few views remain or the error is too high.
    A missing or corrupt file is an :class:`ImageError` naming it. The returned calibration has
    its content-hash ``id`` filled in; write it with ``.save(path)``.
    """
    spec = parse_board(board)
    items = list(images)
    plane_name, plane = _load(plane_image, -1)  # a missing plane file fails before the long part
    detections = list(_detect_all(items, spec, progress))
    intr = calibrate_intrinsics(detections, min_views=min_views, max_rms_px=max_rms_px, fix_k3=fix_k3)
    plane_det = detect_board(spec, plane)
    if plane_det.image_size != intr.image_size:
        w, h = plane_det.image_size
        raise CalibrationError(
            f"plane image {plane_name} is {w}x{h} but the board views are "
            f"{intr.image_size[0]}x{intr.image_size[1]}; use the same camera mode")
    if not plane_det.ok:
        raise CalibrationError(f"plane image {plane_name}: {plane_det.reason}")
    pose = estimate_tray_pose(intr.K, intr.dist, plane_det)
    return to_station_calibration(spec, intr, pose)


def _detect_all(items: Iterable[ImageInput], spec: BoardSpec,
                progress: Callable[[ViewProgress], None] | None):
    items = list(items)
    for k, item in enumerate(items):
        name, image = _load(item, k)
        det = detect_board(spec, image)
        if progress is not None:
            progress(ViewProgress(k, len(items), name, det))
        yield name, det


def to_station_calibration(spec: BoardSpec, intr: Intrinsics, pose: TrayPose) -> StationCalibration:
    """Assemble the station.json model (id = content hash) from the fitted parts.

    Values are rounded far below their precision (1e-6 px, 1e-6 mm, 1e-9 for unitless ones) so
    the same photos give the same id: OpenCV's multithreaded fit varies in the last bits.
    """

    def r(values, digits: int) -> tuple[float, ...]:
        return tuple(round(float(x), digits) + 0.0 for x in np.ravel(values))  # + 0.0: no "-0.0"

    return StationCalibration(
        board=spec.name,
        image_size=intr.image_size,
        camera_matrix=tuple(r(row, 6) for row in intr.K),
        dist_coeffs=r(intr.dist, 9),
        rms_px=round(intr.rms_px, 6),
        per_view_rms_px=r(intr.per_view_rms_px, 6),
        views_used=intr.views_used,
        views_rejected=tuple(RejectedView(image=v.name, reason=v.reason) for v in intr.rejected),
        tray_rvec=r(pose.rvec, 9),
        tray_tvec_mm=r(pose.tvec_mm, 6),
        tray_rms_px=round(pose.rms_px, 6),
        mm_per_px=round(pose.mm_per_px, 9),
        camera_height_mm=round(pose.camera_height_mm, 3),
        tilt_deg=round(pose.tilt_deg, 4),
    ).with_id()
