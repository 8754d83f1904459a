"""The one small interface every frame source implements, and its health bookkeeping.

A source is used like a file::

    with make_source(config) as source:      # open() ... close(), always released
        frame = source.read(timeout_s=2.0)   # -> Frame, or raises
        print(source.health())

``read`` raises :class:`qc_station.errors.CameraError` when the device fails (the station shows
a fault and :class:`~qc_station.capture.reconnect.ReconnectingSource` reopens it),
:class:`~qc_station.capture.frame.EndOfStream` when a finite source is finished, and
:class:`~qc_station.capture.frame.FrameTimeout` when nothing new arrived and that is normal.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from qc_station.capture.frame import Frame, SourceHealth


class FrameSource(ABC):
    """Base class of all frame sources: open / read / close, context manager, health.

    Subclasses implement :meth:`_open`, :meth:`_read` and :meth:`_close`; this class keeps the
    counters (thread-safe: the API reads ``health()`` while the capture loop reads frames)
    and numbers the frames.
    """

    def __init__(self, name: str, *, wall_clock=time.time) -> None:
        self.name = name
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._is_open = False
        self._seq = 0
        self._frames_read = 0
        self._decode_errors = 0
        self._reconnects = 0
        self._consecutive_failures = 0
        self._last_frame_time: float | None = None
        self._last_error: str | None = None
        self._fault: str | None = None

    # -- the interface ----------------------------------------------------------------------

    def open(self) -> None:
        """Acquire the device. Raises CameraError with a message saying what to do."""
        if self._is_open:
            return
        self._open()
        with self._lock:
            self._is_open = True
            self._fault = None

    def read(self, timeout_s: float = 5.0) -> Frame:
        """The next frame (blocking up to ``timeout_s``); see the module doc for what it raises."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if not self._is_open:
            self.open()
        return self._read(timeout_s)

    def close(self) -> None:
        """Release the device. Safe to call twice, and after a failed open."""
        try:
            self._close()
        finally:
            with self._lock:
                self._is_open = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    def health(self) -> SourceHealth:
        """A snapshot of how the source is doing."""
        with self._lock:
            if self._fault is not None:
                state, message = "fault", self._fault
            elif self._is_open:
                state, message = "ok", ""
            else:
                state, message = "closed", ""
            return SourceHealth(
                state=state,
                message=message,
                frames_read=self._frames_read,
                decode_errors=self._decode_errors,
                reconnects=self._reconnects,
                consecutive_failures=self._consecutive_failures,
                last_frame_time=self._last_frame_time,
                last_error=self._last_error,
            )

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} open={self._is_open}>"

    # -- for subclasses -----------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self, timeout_s: float) -> Frame: ...

    @abstractmethod
    def _close(self) -> None: ...

    def _make_frame(self, image_bgr: np.ndarray, metadata: Mapping[str, Any] | None = None,
                    timestamp: float | None = None) -> Frame:
        """Number a good frame and count it (call once per frame handed out)."""
        ts = self._wall_clock() if timestamp is None else timestamp
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._frames_read += 1
            self._consecutive_failures = 0
            self._last_frame_time = ts
            self._fault = None
        return Frame(image_bgr=image_bgr, timestamp=ts, seq=seq, source=self.name,
                     metadata=metadata or {})

    def _count_decode_error(self, message: str) -> None:
        with self._lock:
            self._decode_errors += 1
            self._last_error = message

    def _set_fault(self, message: str) -> None:
        with self._lock:
            self._fault = message
            self._last_error = message
            self._consecutive_failures += 1

    def _count_reconnect(self) -> None:
        with self._lock:
            self._reconnects += 1


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any 8-bit grey, BGR or BGRA image as contiguous H x W x 3 B, G, R."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"unsupported image shape {image.shape}")
