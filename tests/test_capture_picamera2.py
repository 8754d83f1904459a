"""Picamera2Source against a fake ``picamera2`` module that checks what we send."""

from __future__ import annotations

import sys
import types
from typing import ClassVar

import numpy as np
import pytest

from qc_station.capture.picamera2_source import Picamera2Source
from qc_station.errors import CameraError

SETTLED = {"ExposureTime": 8123, "AnalogueGain": 1.75, "ColourGains": (1.9, 1.6), "DigitalGain": 1.0,
           "ColourTemperature": 4800, "Lux": 410.0}


class FakeRequest:
    def __init__(self, cam: FakePicamera2) -> None:
        self.cam = cam
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        w, h = self.cam.config["main"]["size"]
        # "RGB888" in memory is B, G, R: byte 0 of each pixel is blue.
        arr = np.zeros((h, w, 3), np.uint8)
        arr[..., 0], arr[..., 1], arr[..., 2] = 200, 100, 50
        return arr

    def get_metadata(self) -> dict:
        md = dict(SETTLED)
        md.update({k: v for k, v in self.cam.applied.items() if k in ("ExposureTime", "AnalogueGain",
                                                                     "ColourGains", "LensPosition")})
        md["SensorTimestamp"] = 1_000_000 * self.cam.captures
        return md

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    instances: ClassVar[list[FakePicamera2]] = []
    has_focus = True
    fail_wait: BaseException | None = None

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.control_history: list[dict] = []
        self.applied: dict = {}
        self.config: dict = {}
        self.captures = 0
        self.requests: list[FakeRequest] = []
        self.camera_properties = {"Model": "imx708" if self.has_focus else "imx477"}
        self.camera_controls = {"ExposureTime": (26, 112015096, 20000), "AnalogueGain": (1.0, 16.0, 1.0),
                                "ColourGains": (0.0, 32.0, None), "AeEnable": (False, True, True),
                                "AwbEnable": (False, True, True)}
        if self.has_focus:
            self.camera_controls.update({"LensPosition": (0.0, 15.0, 1.0), "AfMode": (0, 2, 0)})
        FakePicamera2.instances.append(self)

    def create_still_configuration(self, main=None, buffer_count=1, **kwargs):
        assert not kwargs, f"unexpected configuration arguments {kwargs}"
        self.calls.append("create_still_configuration")
        return {"use_case": "still", "main": dict(main), "buffer_count": buffer_count}

    def configure(self, config):
        assert config["use_case"] == "still"
        self.calls.append("configure")
        self.config = config

    def start(self):
        assert self.config, "configure() before start()"
        self.calls.append("start")

    def set_controls(self, controls: dict):
        unknown = set(controls) - set(self.camera_controls)
        assert not unknown, f"controls not offered by this camera: {unknown}"
        self.control_history.append(dict(controls))
        self.applied.update(controls)

    def capture_metadata(self):
        self.calls.append("capture_metadata")
        return dict(SETTLED)

    def capture_request(self, wait=None):
        assert wait is False
        self.captures += 1
        return ("job", self.captures)

    def wait(self, job, timeout=None):
        assert timeout is not None and timeout > 0
        if self.fail_wait is not None:
            raise self.fail_wait
        req = FakeRequest(self)
        self.requests.append(req)
        return req

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch):
    FakePicamera2.instances = []
    FakePicamera2.has_focus = True
    FakePicamera2.fail_wait = None
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setitem(sys.modules, "libcamera", None)  # not on this machine: int AfMode fallback
    return FakePicamera2


def test_still_configuration_settle_then_lock_and_bgr_frames(fake_picamera2):
    sleeps: list[float] = []
    src = Picamera2Source(settle_s=1.5, lens_position=2.9, sleep=sleeps.append)
    with src:
        cam = fake_picamera2.instances[0]
        assert cam.config["main"] == {"size": (2304, 1296), "format": "RGB888"}
        assert cam.calls[:3] == ["create_still_configuration", "configure", "start"]
        assert sleeps == [1.5]
        # Focus first (fixed, manual), then AE / AWB off with the settled values.
        assert cam.control_history[0] == {"AfMode": 0, "LensPosition": 2.9}
        assert cam.control_history[-1] == {"AeEnable": False, "AwbEnable": False, "ExposureTime": 8123,
                                           "AnalogueGain": 1.75, "ColourGains": (1.9, 1.6)}
        assert cam.calls.index("capture_metadata") > cam.calls.index("start")

        frame = src.read(timeout_s=2.0)
        assert frame.image_bgr.shape == (1296, 2304, 3)
        assert frame.image_bgr.dtype == np.uint8
        # No channel swap: blue stays in channel 0 of our BGR frame.
        assert tuple(frame.image_bgr[10, 10]) == (200, 100, 50)
        md = frame.metadata
        assert md["exposure_us"] == 8123 and md["analogue_gain"] == 1.75
        assert md["colour_gains"] == (1.9, 1.6) and md["lens_position"] == 2.9
        assert md["locked"]["AeEnable"] is False and md["camera_model"] == "imx708"
        assert cam.requests[-1].released
        frame2 = src.read(timeout_s=2.0)
        assert (frame.seq, frame2.seq) == (0, 1)
        assert frame2.metadata["sensor_timestamp_ns"] > frame.metadata["sensor_timestamp_ns"]
        assert src.health().state == "ok" and src.health().frames_read == 2
    assert cam.calls[-2:] == ["stop", "close"]
    assert src.health().state == "closed"


def test_manual_values_override_the_settled_ones(fake_picamera2):
    with Picamera2Source(resolution=(640, 480), settle_s=0, exposure_us=5000, analogue_gain=2.0,
                         colour_gains=(1.5, 1.4), sleep=lambda s: None) as src:
        cam = fake_picamera2.instances[0]
        assert cam.control_history == [{"AeEnable": False, "AwbEnable": False, "ExposureTime": 5000,
                                         "AnalogueGain": 2.0, "ColourGains": (1.5, 1.4)}]
        assert src.read().image_bgr.shape == (480, 640, 3)


def test_lens_position_on_a_camera_without_focus_is_a_clear_error_and_releases(fake_picamera2):
    fake_picamera2.has_focus = False
    src = Picamera2Source(settle_s=0, lens_position=3.0)
    with pytest.raises(CameraError, match="no focus control"):
        src.open()
    assert fake_picamera2.instances[0].calls[-1] == "close"


def test_camera_released_when_the_body_of_with_raises(fake_picamera2):
    with pytest.raises(RuntimeError, match="boom"), Picamera2Source(settle_s=0, sleep=lambda s: None):
        raise RuntimeError("boom")
    assert fake_picamera2.instances[0].calls[-2:] == ["stop", "close"]


def test_capture_timeout_is_a_camera_fault(fake_picamera2):
    with Picamera2Source(settle_s=0, resolution=(64, 48)) as src:
        fake_picamera2.fail_wait = TimeoutError()
        with pytest.raises(CameraError, match="no frame"):
            src.read(timeout_s=0.5)
        health = src.health()
        assert health.state == "fault" and "no frame" in health.message


def test_off_a_pi_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    with pytest.raises(CameraError) as info:
        Picamera2Source().open()
    msg = str(info.value)
    assert "python3-picamera2" in msg and "--system-site-packages" in msg


def test_bad_arguments_fail_before_touching_the_device(fake_picamera2):
    with pytest.raises(ValueError):
        Picamera2Source(resolution=(0, 100))
    with pytest.raises(ValueError):
        Picamera2Source(analogue_gain=0.5)
    assert fake_picamera2.instances == []
