"""The calibration file (``station.json``): a contract between calibration and inspection.

Fields (all lengths on the tray in millimetres, all image quantities in pixels):

- ``schema_version``: format version of this file (1).
- ``id``: content hash ``cal-<12 hex>`` of everything below except ``id`` and ``created_at``;
  inspections store it so a result can be traced to the calibration that produced it.
- ``created_at``: ISO 8601 UTC time the calibration was computed.
- ``board``: the board used, e.g. ``charuco:8x6:25:18:DICT_5X5_100`` or ``chessboard:9x6:30``.
- ``image_size``: ``[width, height]`` of the images the intrinsics belong to.
- ``camera_matrix``: 3x3 intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
- ``dist_coeffs``: distortion in OpenCV order ``k1, k2, p1, p2, k3[, k4, k5, k6]``.
- ``rms_px``: RMS reprojection error of the intrinsic calibration over the used views.
- ``per_view_rms_px``: RMS reprojection error per used view, same order as ``views_used``.
- ``views_used`` / ``views_rejected``: image names; rejected ones carry the reason.
- ``tray_rvec`` / ``tray_tvec_mm``: pose of the tray plane in the camera frame (Rodrigues
  vector, translation in mm), i.e. tray point ``P`` (x right, y down, z = 0, mm) maps to camera
  coordinates ``R P + t``. The tray frame's origin is the board origin in the plane image.
- ``tray_rms_px``: reprojection error of the tray-plane pose fit.
- ``mm_per_px``: size of one pixel on the tray at the image centre (geometric mean of x, y).
- ``camera_height_mm`` / ``tilt_deg``: the camera centre's height above the tray and the
  angle between the optical axis and the tray normal (for a sanity check by eye).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qc_station.errors import CalibrationError

SCHEMA_VERSION = 1
_UNHASHED = {"id", "created_at"}


class RejectedView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    image: str
    reason: str


class StationCalibration(BaseModel):
    """A station's camera intrinsics + tray-plane pose. See the module docstring per field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    board: str
    image_size: tuple[int, int]
    camera_matrix: tuple[tuple[float, float, float], ...]
    dist_coeffs: tuple[float, ...]
    rms_px: float
    per_view_rms_px: tuple[float, ...] = ()
    views_used: tuple[str, ...] = ()
    views_rejected: tuple[RejectedView, ...] = ()
    tray_rvec: tuple[float, float, float]
    tray_tvec_mm: tuple[float, float, float]
    tray_rms_px: float = 0.0
    mm_per_px: float
    camera_height_mm: float = 0.0
    tilt_deg: float = 0.0

    @field_validator("camera_matrix")
    @classmethod
    def _check_k(cls, v):
        if len(v) != 3 or v[0][0] <= 0 or v[1][1] <= 0:
            raise ValueError("camera_matrix must be 3x3 with positive fx, fy")
        return v

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, v):
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {v} (this station reads {SCHEMA_VERSION})")
        return v

    # -- identity ---------------------------------------------------------------
    def content_hash(self) -> str:
        """``cal-`` + 12 hex of the canonical JSON of every field except id / created_at."""
        data = self.model_dump(mode="json", exclude=_UNHASHED)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return "cal-" + hashlib.sha256(blob).hexdigest()[:12]

    def with_id(self) -> StationCalibration:
        """A copy whose ``id`` is its content hash."""
        return self.model_copy(update={"id": self.content_hash()})

    # -- numpy views -------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.camera_matrix, dtype=np.float64)

    @property
    def dist(self) -> np.ndarray:
        return np.asarray(self.dist_coeffs, dtype=np.float64)

    @property
    def rvec(self) -> np.ndarray:
        return np.asarray(self.tray_rvec, dtype=np.float64).reshape(3, 1)

    @property
    def tvec(self) -> np.ndarray:
        return np.asarray(self.tray_tvec_mm, dtype=np.float64).reshape(3, 1)

    # -- files ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename) with the id filled in."""
        path = Path(path)
        cal = self.with_id()
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(cal.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


def load_calibration(path: str | Path) -> StationCalibration:
    """Read and validate a calibration file; a clear :class:`CalibrationError` otherwise.

    The stored id must match the content: an edited file is refused rather than silently
    attributed to the original calibration.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file not found: {path} (run `qc-station calibrate`, or `qc-station demo` "
            "which uses the bundled simulator calibration)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc}") from None
    try:
        cal = StationCalibration.model_validate(data)
    except ValidationError as err:
        fields = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise CalibrationError(f"invalid calibration file {path}: {fields}") from None
    if cal.id and cal.id != cal.content_hash():
        raise CalibrationError(
            f"calibration file {path} was modified after it was written: id {cal.id} does not "
            f"match its content ({cal.content_hash()}); recalibrate instead of editing by hand"
        )
    return cal.with_id()
