"""Frame sources (cameras, folders, the simulator) and the triggers that say when to inspect.

Light to import: OpenCV and the device libraries (picamera2, gpiozero) load only when a
source that needs them is built. See docs/capture.md.
"""

from qc_station.capture.base import FrameSource
from qc_station.capture.config import (
    CaptureConfig,
    FolderConfig,
    OpenCVConfig,
    Picamera2Config,
    ReconnectConfig,
    SimConfig,
    make_source,
    parse_capture_config,
)
from qc_station.capture.frame import SIM_TRUTH_KEY, EndOfStream, Frame, FrameTimeout, SourceHealth

__all__ = [
    "SIM_TRUTH_KEY",
    "CaptureConfig",
    "EndOfStream",
    "FolderConfig",
    "Frame",
    "FrameSource",
    "FrameTimeout",
    "OpenCVConfig",
    "Picamera2Config",
    "ReconnectConfig",
    "SimConfig",
    "SourceHealth",
    "make_source",
    "parse_capture_config",
]
