"""Keep a camera alive: reopen it with bounded exponential backoff when it disappears.

A USB camera unplugged, a ribbon cable wiggled, an RTSP stream dropped: the station must show
a *fault* and keep trying, never crash. :class:`ReconnectingSource` wraps any source; when the
inner ``read`` fails (``CameraError``) it closes the device, records the fault in ``health()``
and reopens it after 0.5 s, 1 s, 2 s ... up to ``max_backoff_s`` between attempts. ``read``
itself still raises ``CameraError`` when no frame could be had within its timeout, so the
station's loop simply shows ``health()`` and calls ``read`` again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from qc_station.capture.base import FrameSource
from qc_station.capture.frame import Frame, SourceHealth
from qc_station.errors import CameraError

log = logging.getLogger(__name__)


class ReconnectingSource(FrameSource):
    """Wrap ``inner`` so that device failures become a visible fault plus automatic reopening.

    Args:
        inner: the real source (its ``EndOfStream`` / ``FrameTimeout`` pass through untouched).
        initial_backoff_s: wait before the first reopen attempt.
        max_backoff_s: the waits double up to this bound.
        factor: growth of the wait per failed attempt.
        clock, sleep: injectable (``time.monotonic`` / ``time.sleep``), so tests need no real waits.
    """

    def __init__(
        self,
        inner: FrameSource,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        factor: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if initial_backoff_s <= 0 or max_backoff_s < initial_backoff_s or factor < 1:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s and factor >= 1")
        super().__init__(inner.name)
        self.inner = inner
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.factor = factor
        self._clock = clock
        self._sleep = sleep
        self._failures = 0  # failed attempts since the last good frame
        self._next_attempt = 0.0  # clock time of the next reopen attempt
        self._inner_open = False
        #: The waits scheduled so far (for tests and the log).
        self.backoff_history: list[float] = []

    def backoff_s(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures (bounded exponential)."""
        return min(self.max_backoff_s, self.initial_backoff_s * self.factor ** max(0, failures - 1))

    # -- FrameSource ----------------------------------------------------------------------------

    def open(self) -> None:
        """Try to open the device; a failure is a fault to retry, not an exception."""
        if self._is_open:
            return
        with self._lock:
            self._is_open = True
        self._try_open()

    def _open(self) -> None:  # pragma: no cover - open() is overridden
        self._try_open()

    def _try_open(self) -> bool:
        try:
            self.inner.open()
        except CameraError as exc:
            self._fail(f"cannot open {self.inner.name}: {exc}")
            return False
        if self._failures:
            self._count_reconnect()
            log.info("%s: reconnected after %d failed attempt(s)", self.name, self._failures)
        self._inner_open = True
        return True

    def _fail(self, message: str) -> None:
        self._failures += 1
        wait = self.backoff_s(self._failures)
        self.backoff_history.append(wait)
        self._next_attempt = self._clock() + wait
        self._set_fault(f"{message}; retrying in {wait:.1f} s")
        log.warning("%s: %s; retrying in %.1f s", self.name, message, wait)

    def _read(self, timeout_s: float) -> Frame:
        deadline = self._clock() + timeout_s
        while True:
            if not self._inner_open:
                now = self._clock()
                if now < self._next_attempt:
                    if self._next_attempt > deadline:
                        # Use up the caller's timeout (no busy loop in the station), then report.
                        self._sleep(max(0.0, deadline - now))
                        raise CameraError(self.health().message or f"{self.name} unavailable")
                    self._sleep(self._next_attempt - now)
                if not self._try_open():
                    continue
            try:
                frame = self.inner.read(timeout_s=max(1e-3, deadline - self._clock()))
            except CameraError as exc:
                self._drop_inner()
                self._fail(str(exc))
                continue
            self._failures = 0
            # Re-number through our own counters so seq stays monotonic across reconnects.
            return self._make_frame(frame.image_bgr, frame.metadata, timestamp=frame.timestamp)

    def _drop_inner(self) -> None:
        self._inner_open = False
        try:
            self.inner.close()
        except Exception as exc:  # the device is already gone; closing is best effort
            log.debug("%s: close after failure: %s", self.name, exc)

    def _close(self) -> None:
        self._drop_inner()
        with self._lock:
            self._fault = None

    def health(self) -> SourceHealth:
        own = super().health()
        inner = self.inner.health()
        return SourceHealth(
            state=own.state,
            message=own.message,
            frames_read=own.frames_read,
            decode_errors=inner.decode_errors,
            reconnects=own.reconnects,
            consecutive_failures=self._failures,
            last_frame_time=own.last_frame_time,
            last_error=own.last_error or inner.last_error,
        )
