"""Raspberry Pi cameras (Camera Module 3 / HQ / Global Shutter) through picamera2.

Measurement needs constant images: after a settle period with auto exposure and auto white
balance running, the source reads the settled values from the frame metadata and **locks**
them (``AeEnable=False``, ``AwbEnable=False``, ``ExposureTime``, ``AnalogueGain``,
``ColourGains``). On a Camera Module 3 the focus can be fixed with ``LensPosition`` (dioptres,
1 / distance in metres: ~2.9 for a tray 350 mm away).

Channel order: picamera2's ``"RGB888"`` format is **B, G, R in memory** (libcamera names the
format by its 32-bit word, little-endian), which is exactly our ``Frame.image_bgr``; no
conversion happens.

picamera2 is not on PyPI in a usable form for the Pi: install ``python3-picamera2`` from apt
and create the venv with ``--system-site-packages`` (see docs/raspberry-pi.md). It is imported
lazily, so this module imports anywhere.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from qc_station.capture.base import FrameSource
from qc_station.capture.frame import Frame
from qc_station.errors import CameraError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not importable. On Raspberry Pi OS: `sudo apt install -y python3-picamera2` and "
    "create the venv with `python3 -m venv --system-site-packages`; see docs/raspberry-pi.md. "
    "Off a Pi use another capture type (opencv, folder or sim)."
)

#: libcamera's AfModeEnum.Manual (used when libcamera's Python module is not importable).
_AF_MODE_MANUAL = 0


def _import_picamera2():
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:  # also a broken libcamera binding underneath
        raise CameraError(f"{INSTALL_HINT} ({exc})") from exc


def _af_mode_manual() -> Any:
    try:
        from libcamera import controls  # type: ignore[import-not-found]

        return controls.AfModeEnum.Manual
    except Exception:
        return _AF_MODE_MANUAL


class Picamera2Source(FrameSource):
    """A Pi camera in still-capture configuration with locked exposure, gain and white balance.

    Args:
        camera_num: index of the camera (0 = the first CSI port).
        resolution: (width, height) of the main stream; 2304 x 1296 is the Camera Module 3's
            full-field binned mode (fast, low noise) and what the station is calibrated at.
        settle_s: how long auto exposure / white balance run before they are locked.
        lens_position: fixed focus in dioptres (Camera Module 3 only); None leaves focus alone.
        exposure_us, analogue_gain, colour_gains: lock to these values instead of the settled
            ones (each independently); ``colour_gains`` is (red, blue).
        buffer_count: main-stream buffers (2 keeps memory low at full resolution).
        sleep: injectable for tests.
    """

    def __init__(
        self,
        *,
        camera_num: int = 0,
        resolution: tuple[int, int] = (2304, 1296),
        settle_s: float = 1.0,
        lens_position: float | None = None,
        exposure_us: int | None = None,
        analogue_gain: float | None = None,
        colour_gains: tuple[float, float] | None = None,
        buffer_count: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(f"picamera2:{camera_num}")
        w, h = resolution
        if w <= 0 or h <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if settle_s < 0:
            raise ValueError(f"settle_s must be >= 0, got {settle_s}")
        if exposure_us is not None and exposure_us <= 0:
            raise ValueError(f"exposure_us must be > 0, got {exposure_us}")
        if analogue_gain is not None and analogue_gain < 1.0:
            raise ValueError(f"analogue_gain must be >= 1.0, got {analogue_gain}")
        if colour_gains is not None and (len(colour_gains) != 2 or min(colour_gains) <= 0):
            raise ValueError(f"colour_gains must be (red, blue) > 0, got {colour_gains}")
        if lens_position is not None and lens_position < 0:
            raise ValueError(f"lens_position (dioptres) must be >= 0, got {lens_position}")
        self.camera_num = camera_num
        self.resolution = (int(w), int(h))
        self.settle_s = settle_s
        self.lens_position = lens_position
        self.exposure_us = exposure_us
        self.analogue_gain = analogue_gain
        self.colour_gains = colour_gains
        self.buffer_count = buffer_count
        self._sleep = sleep
        self._cam: Any = None
        #: The controls that were locked at open (also in every frame's metadata).
        self.locked_controls: dict[str, Any] = {}
        self._model = ""

    # -- open ---------------------------------------------------------------------------------

    def _open(self) -> None:
        module = _import_picamera2()
        try:
            cam = module.Picamera2(self.camera_num)
        except (RuntimeError, IndexError, OSError) as exc:
            raise CameraError(
                f"camera {self.camera_num} could not be opened ({exc}); check the ribbon cable, "
                "`rpicam-hello --list-cameras`, and that no other program holds the camera"
            ) from exc
        self._cam = cam
        try:
            self._configure_and_lock(cam)
        except CameraError:
            self._close()
            raise
        except Exception as exc:
            self._close()
            raise CameraError(f"camera {self.camera_num} failed to start: {exc}") from exc

    def _configure_and_lock(self, cam: Any) -> None:
        available = dict(getattr(cam, "camera_controls", {}) or {})
        self._model = str((getattr(cam, "camera_properties", {}) or {}).get("Model", ""))
        if self.lens_position is not None and "LensPosition" not in available:
            raise CameraError(
                f"lens_position is set but camera {self.camera_num} ({self._model or 'unknown model'}) "
                "has no focus control; only the Camera Module 3 has one: remove lens_position"
            )
        if self.exposure_us is not None and "ExposureTime" in available:
            lo, hi, _ = available["ExposureTime"]
            if not lo <= self.exposure_us <= hi:
                raise CameraError(f"exposure_us={self.exposure_us} outside the sensor's range {lo}..{hi}")

        config = cam.create_still_configuration(
            main={"size": self.resolution, "format": "RGB888"},
            buffer_count=self.buffer_count,
        )
        cam.configure(config)
        cam.start()
        if self.lens_position is not None:
            cam.set_controls({"AfMode": _af_mode_manual(), "LensPosition": float(self.lens_position)})
        # Let AE / AWB converge, then read what they settled on.
        if self.settle_s > 0:
            self._sleep(self.settle_s)
        settled = dict(cam.capture_metadata())
        try:
            exposure = int(self.exposure_us or settled["ExposureTime"])
            gain = float(self.analogue_gain or settled["AnalogueGain"])
            red, blue = self.colour_gains or settled["ColourGains"]
        except KeyError as exc:
            raise CameraError(f"camera metadata lacks {exc}; cannot lock exposure / white balance") from exc
        locked: dict[str, Any] = {
            "AeEnable": False,
            "AwbEnable": False,
            "ExposureTime": exposure,
            "AnalogueGain": gain,
            "ColourGains": (float(red), float(blue)),
        }
        cam.set_controls(locked)
        if self.lens_position is not None:
            locked["LensPosition"] = float(self.lens_position)
        self.locked_controls = locked
        log.info("camera %s (%s) locked: %s", self.camera_num, self._model, locked)

    # -- read ---------------------------------------------------------------------------------

    def _read(self, timeout_s: float) -> Frame:
        cam = self._cam
        if cam is None:
            raise CameraError(f"camera {self.camera_num} is not open")
        try:
            try:
                # picamera2 >= 0.3.13 (Bookworm ships newer): an async job we can wait on with a timeout.
                job = cam.capture_request(wait=False)
                request = cam.wait(job, timeout=timeout_s)
            except TypeError:  # an older picamera2 without the timeout: block
                request = cam.capture_request()
        except TimeoutError as exc:
            self._set_fault(f"no frame from camera {self.camera_num} within {timeout_s:.1f} s")
            raise CameraError(f"no frame from camera {self.camera_num} within {timeout_s:.1f} s") from exc
        except Exception as exc:
            self._set_fault(f"camera {self.camera_num} failed: {exc}")
            raise CameraError(f"camera {self.camera_num} failed: {exc}") from exc
        try:
            image = request.make_array("main")  # "RGB888" = B, G, R bytes: already our order
            md = dict(request.get_metadata())
        finally:
            request.release()
        if image.ndim != 3 or image.shape[2] != 3:
            raise CameraError(f"unexpected main-stream array shape {image.shape}; expected RGB888")
        return self._make_frame(image, self._metadata(md))

    def _metadata(self, md: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "camera": "picamera2",
            "camera_num": self.camera_num,
            "camera_model": self._model,
            "exposure_us": md.get("ExposureTime"),
            "analogue_gain": md.get("AnalogueGain"),
            "digital_gain": md.get("DigitalGain"),
            "colour_gains": tuple(md["ColourGains"]) if "ColourGains" in md else None,
            "lens_position": md.get("LensPosition"),
            "colour_temperature_k": md.get("ColourTemperature"),
            "lux": md.get("Lux"),
            "focus_fom": md.get("FocusFoM"),
            "sensor_timestamp_ns": md.get("SensorTimestamp"),
            "locked": dict(self.locked_controls),
        }
        return {k: v for k, v in out.items() if v is not None}

    # -- close --------------------------------------------------------------------------------

    def _close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.stop()
        except Exception as exc:  # already stopped / device gone: closing must still happen
            log.debug("picamera2 stop failed: %s", exc)
        try:
            cam.close()
        except Exception as exc:
            log.warning("picamera2 close failed: %s", exc)
