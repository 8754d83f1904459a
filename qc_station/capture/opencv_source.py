"""USB / UVC cameras, RTSP streams and video files through ``cv2.VideoCapture``.

``device`` is an int (a ``/dev/videoN`` index), a URL (``rtsp://``, ``http://``) or a path to a
video file. A file ends (:class:`EndOfStream`); a live device that stops delivering is a fault
(:class:`CameraError`, to be reconnected by :class:`ReconnectingSource`).

OpenCV already returns B, G, R; grey or 4-channel frames are converted to 3 channels.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import cv2

from qc_station.capture.base import FrameSource, to_bgr
from qc_station.capture.frame import EndOfStream, Frame
from qc_station.errors import CameraError

log = logging.getLogger(__name__)

_STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "gst:")


def _kind(device: int | str) -> str:
    if isinstance(device, int):
        return "device"
    if device.isdigit():
        return "device"
    if device.lower().startswith(_STREAM_PREFIXES):
        return "stream"
    return "file"


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture`` behind the FrameSource interface.

    Args:
        device: camera index, stream URL or video file path.
        resolution: (width, height) to request from a camera; the camera may pick another
            size (the actual one is in every frame's metadata and logged once).
        fourcc: pixel format to request from a USB camera, e.g. ``"MJPG"`` (needed by most
            UVC cameras for full resolution at a usable frame rate).
        buffer_size: driver-side buffer; 1 keeps the frame fresh when the station reads on a
            trigger instead of continuously.
        open_timeout_s: for streams: how long to wait for the connection.
    """

    def __init__(
        self,
        device: int | str,
        *,
        resolution: tuple[int, int] | None = None,
        fourcc: str | None = None,
        buffer_size: int | None = 1,
        open_timeout_s: float = 10.0,
    ) -> None:
        kind = _kind(device)
        if kind == "device" and isinstance(device, str):
            device = int(device)
        super().__init__(f"opencv:{device}")
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.device = device
        self.kind = kind
        self.resolution = resolution
        self.fourcc = fourcc
        self.buffer_size = buffer_size
        self.open_timeout_s = open_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._actual_size: tuple[int, int] | None = None

    def _open(self) -> None:
        if self.kind == "file" and not os.path.isfile(str(self.device)):
            raise CameraError(f"video file not found: {self.device}")
        params: list[int] = []
        if self.kind == "stream":
            ms = int(self.open_timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(self.device, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            hint = {
                "device": "is it plugged in (`v4l2-ctl --list-devices`) and not used by another program?",
                "stream": "check the URL, the network and the camera's credentials",
                "file": "is it a video format this OpenCV build can decode?",
            }[self.kind]
            raise CameraError(f"cannot open {self.kind} {self.device!r}: {hint}")
        if self.kind == "device":
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
            if self.resolution:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.resolution[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.resolution[1])
            if self.buffer_size is not None:
                cap.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_size)
        self._actual_size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.resolution and self._actual_size != tuple(self.resolution):
            log.warning("%s: asked for %s, got %s", self.name, self.resolution, self._actual_size)
        self._cap = cap

    def _read(self, timeout_s: float) -> Frame:
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.name} is not open")
        # cv2 has no per-call timeout; streams use the READ_TIMEOUT set at open.
        ok, image = cap.read()
        if not ok or image is None:
            if self.kind == "file":
                raise EndOfStream(f"end of video file {self.device}")
            msg = f"{self.kind} {self.device!r} delivered no frame (unplugged or stream dropped?)"
            self._set_fault(msg)
            raise CameraError(msg)
        meta: dict[str, Any] = {"camera": "opencv", "device": str(self.device)}
        if self.kind == "file":
            meta["position_ms"] = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            meta["frame_index"] = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
        else:
            for key, prop in (("exposure", cv2.CAP_PROP_EXPOSURE), ("gain", cv2.CAP_PROP_GAIN),
                              ("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE)):
                value = cap.get(prop)
                if value not in (0.0, -1.0):
                    meta[key] = float(value)
        try:
            return self._make_frame(to_bgr(image), meta)
        except ValueError as exc:  # e.g. a 16-bit stream: one bad frame, not a dead camera
            self._count_decode_error(f"{self.name}: {exc}")
            raise CameraError(f"{self.name}: {exc}") from exc

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
