"""The ``[capture]`` section of the station config: which camera, and how. One of four types.

Examples (TOML, in ``station.toml``)::

    [capture]                 # Raspberry Pi Camera Module 3, focus fixed for a 350 mm tray
    type = "picamera2"
    width = 2304
    height = 1296
    lens_position = 2.9

    [capture]                 # a USB camera
    type = "opencv"
    device = 0
    width = 1920
    height = 1080
    fourcc = "MJPG"

    [capture]                 # a hot folder another program drops photos into
    type = "folder"
    path = "/srv/qc/incoming"
    mode = "watch"

    [capture]                 # the simulator (what `qc-station demo` uses)
    type = "sim"
    mode = "tray"
    seed = 1
    defect_rates = { stain = 0.1, hole = 0.05 }

Unknown keys are errors (``extra="forbid"``), so a typo fails at load, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from qc_station.capture.base import FrameSource
from qc_station.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconnectConfig(_Strict):
    """How a camera that disappeared is reopened (bounded exponential backoff)."""

    enabled: bool = Field(True, description="Wrap the camera in a reconnecting source")
    initial_backoff_s: float = Field(0.5, gt=0, le=60, description="Wait before the first reopen attempt")
    max_backoff_s: float = Field(30.0, gt=0, le=600, description="Upper bound of the doubling wait")


class Picamera2Config(_Strict):
    """A Raspberry Pi camera via picamera2 (python3-picamera2 from apt)."""

    type: Literal["picamera2"] = "picamera2"
    camera_num: int = Field(0, ge=0, description="Camera index (0 = first CSI connector)")
    width: int = Field(2304, gt=0, le=10000, description="Main-stream width, px")
    height: int = Field(1296, gt=0, le=10000, description="Main-stream height, px")
    settle_s: float = Field(
        1.0, ge=0, le=30, description="Auto exposure / white balance run this long, then lock")
    lens_position: float | None = Field(
        None, ge=0, le=32, description="Fixed focus in dioptres (1/m), Camera Module 3 only; ~2.9 at 350 mm")
    exposure_us: int | None = Field(
        None, gt=0, description="Lock exposure to this instead of the settled value")
    analogue_gain: float | None = Field(
        None, ge=1.0, description="Lock gain to this instead of the settled value")
    colour_gains: tuple[float, float] | None = Field(
        None, description="Lock white balance (red, blue gains) instead of the settled values")
    buffer_count: int = Field(2, ge=1, le=8, description="Main-stream buffers")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class OpenCVConfig(_Strict):
    """A USB/UVC camera index, an RTSP/HTTP URL or a video file, via cv2.VideoCapture."""

    type: Literal["opencv"] = "opencv"
    device: int | str = Field(0, description="Camera index, stream URL or video file path")
    width: int | None = Field(None, gt=0, description="Requested width, px (camera may differ)")
    height: int | None = Field(None, gt=0, description="Requested height, px")
    fourcc: str | None = Field(None, min_length=4, max_length=4, description="Pixel format, e.g. MJPG")
    buffer_size: int | None = Field(1, ge=1, description="Driver buffer; 1 = freshest frame")
    open_timeout_s: float = Field(10.0, gt=0, description="Streams: connect / read timeout")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class FolderConfig(_Strict):
    """Image files in a folder: replay in name order, or watch for new files."""

    type: Literal["folder"] = "folder"
    path: str = Field(description="The folder")
    mode: Literal["replay", "watch"] = Field(
        "replay", description="replay existing files / watch for new ones")
    loop: bool = Field(False, description="replay: start again after the last file")
    patterns: tuple[str, ...] = Field(
        ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff", "*.webp"), description="File globs")
    stable_s: float = Field(0.5, ge=0, description="watch: file size unchanged this long = complete")
    poll_s: float = Field(0.1, gt=0, description="watch: folder listing interval")
    include_existing: bool = Field(False, description="watch: also take files present at start")


class SimConfig(_Strict):
    """The simulator: a tray with an operator, or a conveyor, with a defect mix."""

    type: Literal["sim"] = "sim"
    mode: Literal["tray", "conveyor"] = "tray"
    seed: int = Field(0, description="Seed of everything drawn")
    defect_rates: dict[str, float] | None = Field(
        None, description="Probability per defect code per mask (None: a demo mix)")
    unusable_rates: dict[str, float] | None = Field(
        None, description="Probability per unusable case (no_mask, blur, exposure)")
    empty_frames: int = Field(6, ge=0, description="tray: frames of empty tray per cycle")
    hands_frames: int = Field(4, ge=0, description="tray: frames with hands, placing and removing")
    still_frames: int = Field(12, ge=1, description="tray: frames the mask lies still")
    fps: float | None = Field(None, gt=0, description="Pace reads to this rate (None: unpaced)")
    noise_sigma: float = Field(1.5, ge=0, le=20, description="Per-frame sensor noise, grey levels")
    tray: Literal["dark_grey", "black", "green", "light_grey"] | None = Field(
        "dark_grey", description="The station's tray, fixed for the session (None: random per mask)")

    @field_validator("defect_rates", "unusable_rates")
    @classmethod
    def _known_codes(cls, rates: dict[str, float] | None, info) -> dict[str, float] | None:
        from qc_station.sim.truth import SIM_DEFECTS, SIM_UNUSABLE

        if rates is None:
            return None
        allowed = SIM_DEFECTS if info.field_name == "defect_rates" else SIM_UNUSABLE
        for code, p in rates.items():
            if code not in allowed:
                raise ValueError(f"unknown code {code!r}; choose from {', '.join(allowed)}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"rate of {code!r} must be in [0, 1], got {p}")
        return rates


CaptureConfig = Annotated[
    Picamera2Config | OpenCVConfig | FolderConfig | SimConfig,
    Field(discriminator="type"),
]

AnyCaptureConfig = Picamera2Config | OpenCVConfig | FolderConfig | SimConfig

_ADAPTER: TypeAdapter[Any] = TypeAdapter(CaptureConfig)


def parse_capture_config(data: dict[str, Any]) -> AnyCaptureConfig:
    """Validate a ``[capture]`` table; a bad one raises ConfigError naming the field."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"capture.{where}: {err['msg']}")
        raise ConfigError("invalid [capture] config:\n  " + "\n  ".join(lines)) from exc


def make_source(config: AnyCaptureConfig | dict[str, Any]) -> FrameSource:
    """Build the frame source a config describes (not yet opened).

    Cameras (picamera2, opencv devices and streams) are wrapped in a
    :class:`~qc_station.capture.reconnect.ReconnectingSource` unless ``reconnect.enabled`` is
    false; files, folders and the simulator are not (they do not disappear).
    """
    if isinstance(config, dict):
        config = parse_capture_config(config)
    source: FrameSource
    reconnect: ReconnectConfig | None = None
    if isinstance(config, Picamera2Config):
        from qc_station.capture.picamera2_source import Picamera2Source

        source = Picamera2Source(
            camera_num=config.camera_num, resolution=(config.width, config.height),
            settle_s=config.settle_s, lens_position=config.lens_position, exposure_us=config.exposure_us,
            analogue_gain=config.analogue_gain, colour_gains=config.colour_gains,
            buffer_count=config.buffer_count,
        )
        reconnect = config.reconnect
    elif isinstance(config, OpenCVConfig):
        from qc_station.capture.opencv_source import OpenCVSource

        resolution = (config.width, config.height) if config.width and config.height else None
        opencv = OpenCVSource(config.device, resolution=resolution, fourcc=config.fourcc,
                              buffer_size=config.buffer_size, open_timeout_s=config.open_timeout_s)
        source = opencv
        if opencv.kind != "file":
            reconnect = config.reconnect
    elif isinstance(config, FolderConfig):
        from qc_station.capture.folder_source import FolderSource

        source = FolderSource(config.path, mode=config.mode, loop=config.loop, patterns=config.patterns,
                              stable_s=config.stable_s, poll_s=config.poll_s,
                              include_existing=config.include_existing)
    elif isinstance(config, SimConfig):
        from qc_station.capture.sim_source import SimSource

        source = SimSource(mode=config.mode, seed=config.seed, defect_rates=config.defect_rates,
                           unusable_rates=config.unusable_rates, empty_frames=config.empty_frames,
                           hands_frames=config.hands_frames, still_frames=config.still_frames,
                           fps=config.fps, noise_sigma=config.noise_sigma, tray=config.tray)
    else:  # pragma: no cover - the union is closed
        raise ConfigError(f"unknown capture config {type(config).__name__}")
    if reconnect is not None and reconnect.enabled:
        from qc_station.capture.reconnect import ReconnectingSource

        source = ReconnectingSource(source, initial_backoff_s=reconnect.initial_backoff_s,
                                    max_backoff_s=max(reconnect.max_backoff_s, reconnect.initial_backoff_s))
    return source
