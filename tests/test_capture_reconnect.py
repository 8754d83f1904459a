"""ReconnectingSource with a flaky fake camera and a fake clock (no real waiting)."""

from __future__ import annotations

import numpy as np
import pytest

from qc_station.capture.base import FrameSource
from qc_station.capture.frame import EndOfStream, Frame
from qc_station.capture.reconnect import ReconnectingSource
from qc_station.errors import CameraError


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.t += s


class FlakyCamera(FrameSource):
    """Delivers ``good`` frames, then its reads fail, and ``open_failures`` reopen attempts fail."""

    def __init__(self, *, good: int, read_failures: int = 1, open_failures: int = 0,
                 end_after: int | None = None):
        super().__init__("flaky")
        self.good, self.read_failures, self.open_failures = good, read_failures, open_failures
        self.end_after = end_after
        self.opens = self.closes = self.delivered = 0

    def _open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.open_failures > 0:
            self.open_failures -= 1
            raise CameraError("device not found")

    def _read(self, timeout_s: float) -> Frame:
        if self.end_after is not None and self.delivered >= self.end_after:
            raise EndOfStream("done")
        if self.delivered >= self.good and self.read_failures > 0:
            self.read_failures -= 1
            raise CameraError("unplugged")
        self.delivered += 1
        return self._make_frame(np.full((4, 4, 3), self.delivered, np.uint8), {"n": self.delivered})

    def _close(self) -> None:
        self.closes += 1


def test_camera_that_disappears_is_reopened_with_bounded_exponential_backoff():
    clock = FakeClock()
    cam = FlakyCamera(good=2, read_failures=1, open_failures=4)
    src = ReconnectingSource(cam, initial_backoff_s=0.5, max_backoff_s=3.0, clock=clock, sleep=clock.sleep)
    with src:
        assert [src.read(timeout_s=1.0).metadata["n"] for _ in range(2)] == [1, 2]
        # The camera goes away: the read fails within its timeout, as a visible fault.
        with pytest.raises(CameraError, match=r"unplugged|device not found"):
            src.read(timeout_s=1.0)
        health = src.health()
        assert health.state == "fault" and "retrying in" in health.message
        assert health.frames_read == 2
        # The station keeps calling read; reopening goes on behind the scenes until it works.
        frames = []
        for _ in range(10):
            try:
                frames.append(src.read(timeout_s=2.0))
                break
            except CameraError:
                assert src.health().state == "fault"
        assert frames and frames[0].metadata["n"] == 3
        assert frames[0].seq == 2  # numbering continues across the reconnect
    # 1 read failure + 4 failed reopen attempts: waits double from 0.5 and stop at 3.0.
    assert src.backoff_history == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert max(clock.sleeps) <= 3.0
    health = src.health()
    assert health.reconnects == 1 and health.consecutive_failures == 0
    assert cam.opens == 6  # first open, 4 failed reopen attempts, the good one
    assert cam.closes == 2  # after the failed read, and at the end
    assert health.state == "closed"


def test_health_recovers_to_ok_after_reconnect():
    clock = FakeClock()
    cam = FlakyCamera(good=1, read_failures=2)
    src = ReconnectingSource(cam, initial_backoff_s=0.1, max_backoff_s=1.0, clock=clock, sleep=clock.sleep)
    src.open()
    src.read()
    frame = src.read(timeout_s=5.0)  # two failures absorbed inside the timeout
    assert frame.metadata["n"] == 2
    h = src.health()
    assert h.state == "ok" and h.reconnects == 2 and h.last_error and "unplugged" in h.last_error
    src.close()


def test_device_absent_at_start_is_a_fault_not_a_crash():
    clock = FakeClock()

    class Absent(FlakyCamera):
        def _open(self) -> None:
            self.opens += 1
            raise CameraError("no camera")

    src = ReconnectingSource(Absent(good=0), initial_backoff_s=1.0, max_backoff_s=8.0, clock=clock,
                             sleep=clock.sleep)
    src.open()  # does not raise
    assert src.health().state == "fault"
    for _ in range(6):
        with pytest.raises(CameraError, match="no camera"):
            src.read(timeout_s=2.0)
    assert src.backoff_history[-1] == 8.0 and clock.t < 60
    src.close()


def test_end_of_stream_passes_through_without_reconnecting():
    clock = FakeClock()
    cam = FlakyCamera(good=5, read_failures=0, end_after=1)
    with ReconnectingSource(cam, clock=clock, sleep=clock.sleep) as src:
        src.read()
        with pytest.raises(EndOfStream):
            src.read()
        assert src.health().state == "ok" and cam.opens == 1


def test_bad_backoff_settings_rejected():
    with pytest.raises(ValueError):
        ReconnectingSource(FlakyCamera(good=1), initial_backoff_s=5, max_backoff_s=1)
