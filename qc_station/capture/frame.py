"""What every frame source hands the station: a :class:`Frame`, plus the source's health.

Channel order is part of the type's name: ``Frame.image_bgr`` is always H x W x 3, ``uint8``,
channels **B, G, R** (OpenCV's order). Sources convert on the way in, so nothing downstream
has to guess. (picamera2's ``"RGB888"`` format already is B, G, R in memory; see
:mod:`qc_station.capture.picamera2_source`.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

#: The metadata key under which :class:`~qc_station.capture.sim_source.SimSource` attaches the
#: simulator's :class:`~qc_station.sim.truth.SceneTruth` of the frame (for demos / benchmarks).
SIM_TRUTH_KEY = "sim_truth"


class EndOfStream(Exception):
    """A finite source (video file, folder replay without loop) has no more frames.

    Not a fault: the station stops reading from this source, it does not reconnect.
    """


class FrameTimeout(Exception):
    """No new frame arrived within ``timeout_s`` and that is normal for this source.

    Raised by sources that wait for something to happen (a hot folder with no new file).
    A camera that stops delivering raises :class:`qc_station.errors.CameraError` instead.
    """


@dataclass(frozen=True)
class Frame:
    """One captured image with everything known about how it was taken.

    Attributes:
        image_bgr: H x W x 3 ``uint8`` array, channel order B, G, R.
        timestamp: wall-clock capture time, seconds since the epoch (``time.time()``).
        seq: sequence number within the source (0, 1, 2, ... since it was created).
        source: a short name of the source, e.g. ``"picamera2:0"``, ``"folder:/srv/in"``.
        metadata: what the source knows about the exposure (read-only mapping), e.g.
            ``exposure_us``, ``analogue_gain``, ``colour_gains``, ``lens_position``,
            ``path``. Stored with the inspection (see :meth:`metadata_json`).
    """

    image_bgr: np.ndarray
    timestamp: float
    seq: int
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image_bgr
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            shape = getattr(img, "shape", None)
            raise ValueError(f"Frame.image_bgr must be an H x W x 3 array (B, G, R), got shape {shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"Frame.image_bgr must be uint8, got {img.dtype}")
        if self.seq < 0:
            raise ValueError(f"Frame.seq must be >= 0, got {self.seq}")
        # A read-only view of a private copy of the mapping: the frame is a record, not a scratchpad.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])

    def metadata_json(self) -> dict[str, Any]:
        """The metadata as JSON-safe values, for storing with the inspection.

        Tuples become lists, numpy scalars become Python numbers, dataclasses (e.g. the
        simulator's truth) become dicts, non-finite floats become ``None``; anything else
        that JSON cannot hold becomes its ``str()``.
        """
        return {str(k): _jsonable(v) for k, v in self.metadata.items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


HealthState = Literal["ok", "fault", "closed"]


@dataclass(frozen=True)
class SourceHealth:
    """How a frame source is doing, for ``/api/health`` and the operator screen.

    ``state`` is ``"ok"`` (delivering), ``"fault"`` (device gone / failing; ``message`` says why
    and what the station is doing about it) or ``"closed"`` (not opened yet, or released).
    """

    state: HealthState
    message: str = ""
    frames_read: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    consecutive_failures: int = 0
    last_frame_time: float | None = None  # time.time() of the last good frame
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the source is delivering frames."""
        return self.state == "ok"
