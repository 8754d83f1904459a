"""When to inspect: a mask was laid on the tray, a button was pressed, or the belt says so.

* :class:`PlacementTrigger` (tray mode) watches the frames: it fires **once** when a mask is
  present and the scene has been still for ``stable_frames`` frames with nothing touching the
  image border (the operator's hands have left). It re-arms only after the tray was seen empty
  again, or when a still scene differs clearly from the one it fired on (the mask was swapped
  without the tray being seen empty). A mask left lying for a minute is counted once.
* :class:`ManualTrigger`: a thread-safe request set by the API, a key or a button.
* :class:`ConveyorTrigger`: events pushed by the conveyor controller's driver
  (``qc_station.hardware``) through :meth:`ConveyorTrigger.feed`; duplicates by sequence number
  are dropped, gaps counted.
* :class:`GpioPhotoEyeTrigger`: a photo-eye (beam break) on a Pi GPIO via gpiozero.

All of them produce :class:`TriggerEvent`.
"""

from __future__ import annotations

import enum
import importlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from qc_station.capture.frame import Frame
from qc_station.errors import CameraError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerEvent:
    """One request to inspect.

    Attributes:
        seq: sequence number from the trigger's origin (the controller's for a conveyor).
        timestamp: ``time.time()`` when the event happened (or was received).
        origin: ``"placement"``, ``"manual"``, ``"conveyor"`` or ``"photo_eye"``.
        belt_position: encoder counts at the photo-eye (conveyor), else None.
        frame_seq: the frame the placement trigger fired on (inspect that frame), else None.
        note: who / what asked (e.g. ``"api:alice"``, ``"key"``).
    """

    seq: int
    timestamp: float
    origin: str = "conveyor"
    belt_position: int | None = None
    frame_seq: int | None = None
    note: str = ""


class TriggerSink(Protocol):
    """What a trigger-event producer (the conveyor serial driver) needs from us."""

    def feed(self, event: TriggerEvent) -> None: ...


# ---------------------------------------------------------------------------------------------
# tray mode


class PlacementState(enum.Enum):
    EMPTY = "empty"  # armed: waiting for a mask
    FIRED = "fired"  # fired for the mask lying there; waiting for the tray to empty


@dataclass(frozen=True)
class Observation:
    """What the placement trigger saw in one frame (for the log, tests and tuning)."""

    foreground_frac: float  # share of tray pixels that differ from the empty-tray background
    motion_frac: float  # share of pixels that changed since the previous frame
    border_frac: float  # share of the border band covered by foreground (arms reach in there)
    stable_count: int  # consecutive still frames so far
    state: PlacementState


class PlacementTrigger:
    """Fire once per mask laid on the tray (see the module doc).

    Work is done on a small grey copy (``work_width`` px wide, blurred), so a frame costs a
    few milliseconds on a Pi.

    Args:
        work_width: width of the downscaled grey image.
        diff_threshold: grey-level difference (0-255) that counts a pixel as changed.
        present_frac: foreground share above which something is on the tray.
        empty_frac: foreground share below which the tray is empty (hysteresis vs present_frac).
        motion_frac: changed-pixel share between frames below which the frame is still.
        stable_frames: consecutive still frames needed (K) before firing / re-arming.
        border_px: width of the border band (work pixels) checked for arms.
        border_frac: foreground share of the band above which hands are still in view.
        swap_frac: a still scene whose difference to the fired scene exceeds this share of
            the fired foreground counts as a new mask (swapped without emptying the tray).
        background_alpha: how fast the empty-tray background follows slow light changes.
    """

    def __init__(
        self,
        *,
        work_width: int = 160,
        diff_threshold: float = 28.0,
        present_frac: float = 0.02,
        empty_frac: float = 0.006,
        motion_frac: float = 0.004,
        stable_frames: int = 3,
        border_px: int = 2,
        border_frac: float = 0.02,
        swap_frac: float = 0.5,
        background_alpha: float = 0.1,
    ) -> None:
        if not 0 < empty_frac < present_frac < 1:
            raise ValueError("need 0 < empty_frac < present_frac < 1")
        if stable_frames < 1:
            raise ValueError("stable_frames must be >= 1")
        self.work_width = work_width
        self.diff_threshold = diff_threshold
        self.present_frac = present_frac
        self.empty_frac = empty_frac
        self.motion_frac = motion_frac
        self.stable_frames = stable_frames
        self.border_px = border_px
        self.border_frac = border_frac
        self.swap_frac = swap_frac
        self.background_alpha = background_alpha
        self._lock = threading.Lock()
        self.reset()

    def reset(self, background: Frame | np.ndarray | None = None) -> None:
        """Forget everything; optionally start from a known empty-tray image."""
        with getattr(self, "_lock", threading.Lock()):
            self._background: np.ndarray | None = None if background is None else self._small(background)
            self._previous: np.ndarray | None = None
            self._fired_scene: np.ndarray | None = None
            self._fired_fg = 0.0
            self._stable = 0
            self._state = PlacementState.EMPTY
            self._event_seq = 0
            self.last: Observation | None = None

    @property
    def state(self) -> PlacementState:
        return self._state

    @property
    def has_background(self) -> bool:
        return self._background is not None

    def _small(self, image: Frame | np.ndarray) -> np.ndarray:
        img = image.image_bgr if isinstance(image, Frame) else image
        h, w = img.shape[:2]
        ww = min(self.work_width, w)
        hh = max(1, round(h * ww / w))
        # Take every k-th pixel first (k keeps >= 2 source pixels per work pixel), then average:
        # ~10x cheaper than converting the full frame, same result after the blur below.
        k = max(1, w // (ww * 2))
        if k > 1:
            img = np.ascontiguousarray(img[::k, ::k])
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        small = cv2.resize(grey, (ww, hh), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small, (3, 3), 0).astype(np.float32)

    def update(self, frame: Frame) -> TriggerEvent | None:
        """Feed the next frame; returns an event on the frame a placement is complete."""
        with self._lock:
            return self._update(frame)

    def _update(self, frame: Frame) -> TriggerEvent | None:
        small = self._small(frame)
        if self._background is None or self._background.shape != small.shape:
            # The first frame is taken as the empty tray; start with an empty tray (or reset()).
            self._background = small.copy()
            self._previous = small
            self.last = Observation(0.0, 0.0, 0.0, 0, self._state)
            return None
        fg_mask = np.abs(small - self._background) > self.diff_threshold
        fg = float(fg_mask.mean())
        b = self.border_px
        band = np.concatenate([fg_mask[:b].ravel(), fg_mask[-b:].ravel(),
                               fg_mask[:, :b].ravel(), fg_mask[:, -b:].ravel()])
        border = float(band.mean())
        prev = self._previous if self._previous is not None else small
        motion = float((np.abs(small - prev) > self.diff_threshold).mean())
        self._previous = small
        self._stable = self._stable + 1 if motion <= self.motion_frac else 0
        still = self._stable >= self.stable_frames
        event = None

        if self._state is PlacementState.EMPTY:
            if fg <= self.empty_frac and self._stable >= 1:
                # Follow slow light changes while the tray is empty and nothing moves.
                cv2.accumulateWeighted(small, self._background, self.background_alpha)
            elif fg >= self.present_frac and still and border <= self.border_frac:
                event = self._fire(frame, small, fg)
        else:  # FIRED
            if fg <= self.empty_frac and still:
                self._state = PlacementState.EMPTY  # re-armed: the tray was seen empty
                self._fired_scene = None
            elif fg >= self.present_frac and still and border <= self.border_frac:
                changed = float((np.abs(small - self._fired_scene) > self.diff_threshold).mean())
                if changed > self.swap_frac * max(self._fired_fg, fg):
                    event = self._fire(frame, small, fg)
        self.last = Observation(fg, motion, border, self._stable, self._state)
        return event

    def _fire(self, frame: Frame, small: np.ndarray, fg: float) -> TriggerEvent:
        self._state = PlacementState.FIRED
        self._fired_scene = small.copy()
        self._fired_fg = fg
        self._event_seq += 1
        log.debug("placement trigger fired on frame %d (fg %.3f)", frame.seq, fg)
        return TriggerEvent(seq=self._event_seq, timestamp=frame.timestamp, origin="placement",
                            frame_seq=frame.seq)


# ---------------------------------------------------------------------------------------------
# manual


class ManualTrigger:
    """An inspection request from a person (API call, key, push button). Thread-safe.

    Presses that arrive before the station took the previous one are merged (a bouncing
    button or an impatient double click inspects once); ``merged`` counts them.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._cond = threading.Condition()
        self._pending: TriggerEvent | None = None
        self._seq = 0
        self._clock = clock
        self.merged = 0

    def fire(self, note: str = "") -> int:
        """Request an inspection; returns the request's sequence number."""
        with self._cond:
            if self._pending is not None:
                self.merged += 1
                return self._pending.seq
            self._seq += 1
            self._pending = TriggerEvent(seq=self._seq, timestamp=self._clock(), origin="manual", note=note)
            self._cond.notify_all()
            return self._seq

    def poll(self) -> TriggerEvent | None:
        """Take the pending request, if any (never blocks)."""
        with self._cond:
            event, self._pending = self._pending, None
            return event

    def wait(self, timeout_s: float | None = None) -> TriggerEvent | None:
        """Block until a request arrives (or ``timeout_s`` passes: None)."""
        with self._cond:
            if self._pending is None:
                self._cond.wait_for(lambda: self._pending is not None, timeout=timeout_s)
            event, self._pending = self._pending, None
            return event


# ---------------------------------------------------------------------------------------------
# conveyor


class ConveyorTrigger:
    """Trigger events from the conveyor controller (or a photo-eye), queued for the station.

    The serial driver in ``qc_station.hardware`` calls :meth:`feed` from its reader thread
    with ``TriggerEvent(seq=..., timestamp=..., belt_position=...)``; the station calls
    :meth:`wait`. A repeated ``seq`` (a retransmitted line) is dropped so one mask is never
    inspected twice; a jump in ``seq`` counts the missing events in ``missed``.
    """

    def __init__(self, *, maxsize: int = 64, dedup_window: int = 256) -> None:
        self._queue: queue.Queue[TriggerEvent] = queue.Queue(maxsize=maxsize)
        self._recent: deque[int] = deque(maxlen=dedup_window)
        self._recent_set: set[int] = set()
        self._lock = threading.Lock()
        self._last_seq: int | None = None
        self.received = 0
        self.duplicates = 0
        self.missed = 0
        self.overflowed = 0
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def feed(self, event: TriggerEvent) -> bool:
        """Queue an event (thread-safe). Returns False when it was a duplicate or the queue is full."""
        with self._lock:
            if event.seq in self._recent_set:
                self.duplicates += 1
                return False
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(event.seq)
            self._recent_set.add(event.seq)
            if self._last_seq is not None and event.seq > self._last_seq + 1:
                self.missed += event.seq - self._last_seq - 1
                log.warning("conveyor trigger: %d event(s) missing before seq %d",
                            event.seq - self._last_seq - 1, event.seq)
            self._last_seq = event.seq
            self.received += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            # The station is far behind; the controller rejects un-answered masks (fail safe).
            with self._lock:
                self.overflowed += 1
            log.error("conveyor trigger queue full: dropped seq %d (controller will reject it)", event.seq)
            return False
        return True

    def wait(self, timeout_s: float | None = None) -> TriggerEvent | None:
        """The next event, or None after ``timeout_s``."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def poll(self) -> TriggerEvent | None:
        return self.wait(timeout_s=0) if not self._queue.empty() else None

    def pump(self, events: Iterable[TriggerEvent]) -> threading.Thread:
        """Feed every event of an iterable (e.g. the serial driver's generator) in a daemon thread."""

        def run() -> None:
            for event in events:
                if self._stop.is_set():
                    break
                self.feed(event)

        thread = threading.Thread(target=run, name="conveyor-trigger-pump", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()


def _import_gpiozero() -> Any:
    try:
        return importlib.import_module("gpiozero")
    except ImportError as exc:
        raise CameraError(
            "gpiozero is not importable: on Raspberry Pi OS `sudo apt install python3-gpiozero` "
            f"(and a venv with --system-site-packages), elsewhere `pip install qc-station[pi]` ({exc})"
        ) from exc


class GpioPhotoEyeTrigger(ConveyorTrigger):
    """A beam-break photo-eye wired to a Pi GPIO pin, read with gpiozero.

    Most industrial NPN photo-eyes pull the line low when the beam is broken: ``pull_up=True``
    and the mask is seen on the *activated* edge (gpiozero inverts for pull-ups). For a PNP
    (push-pull) sensor use ``pull_up=False``. ``bounce_s`` debounces a fabric edge flickering
    through the beam.
    """

    def __init__(self, pin: int | str, *, pull_up: bool = True, bounce_s: float = 0.02,
                 clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        gpiozero = _import_gpiozero()
        self._clock = clock
        self._count = 0
        self.pin = pin
        try:
            self._device = gpiozero.DigitalInputDevice(pin, pull_up=pull_up, bounce_time=bounce_s)
        except Exception as exc:
            raise CameraError(f"cannot open GPIO pin {pin} for the photo-eye: {exc}") from exc
        self._device.when_activated = self._on_beam_broken

    def _on_beam_broken(self, *_: Any) -> None:
        self._count += 1
        self.feed(TriggerEvent(seq=self._count, timestamp=self._clock(), origin="photo_eye"))

    def close(self) -> None:
        super().close()
        device, self._device = getattr(self, "_device", None), None
        if device is not None:
            device.close()
