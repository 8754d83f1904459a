"""The station runtime: frame source -> trigger -> Inspector -> annotate -> store -> live event.

On a conveyor (``trigger.mode = "conveyor-serial"`` / ``"conveyor-gpio"``) the trigger events
come from a :class:`~qc_station.station_conveyor.ConveyorBridge`: each one is photographed,
inspected and, on a serial controller, answered with its verdict as soon as the inspection is
done (before annotating and storing: the mask is travelling towards the reject flap).

One background thread runs :meth:`Station.run_loop`. Nothing in it may crash the station: a
camera that fails is a *fault* (shown in ``/api/health`` and on the operator screen) while the
source reconnects; a pipeline exception is logged and shown; a full disk still stores the
result without images when it can. Heavy parts (OpenCV, ONNX Runtime) are built by
:func:`build_station` from the config, so tests and the API can use a Station made of parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from qc_station.api.events import LiveEvent, LiveEvents
from qc_station.config import StationConfig
from qc_station.errors import CameraError, ModelError, StorageError
from qc_station.results import InspectionResult
from qc_station.spec import MaskSpec
from qc_station.station_conveyor import ConveyorBridge
from qc_station.store import FrameInfo, ImagePolicy, ImagesNotSavedError, InspectionRecord, Store
from qc_station.store.images import free_mb

if TYPE_CHECKING:
    from qc_station.capture.triggers import TriggerEvent

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 600.0


class InspectorLike(Protocol):
    def inspect(self, image_bgr, image_name: str | None = None) -> InspectionResult: ...
    def annotate(self, image_bgr, result: InspectionResult): ...


class TriggerLike(Protocol):
    def update(self, frame) -> bool: ...


# -- health -------------------------------------------------------------------------------------
class ComponentHealth(BaseModel):
    """One part of the station: ok or not, and why, in words an operator can act on."""

    ok: bool
    state: str
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class StationHealth(BaseModel):
    status: Literal["ok", "degraded", "fault"]
    station_id: str
    running: bool
    camera: ComponentHealth
    pipeline: ComponentHealth
    model: ComponentHealth
    calibration: ComponentHealth
    disk: ComponentHealth
    store: ComponentHealth
    conveyor: ComponentHealth | None = Field(
        None, description="Conveyor modes: the controller link (or photo-eye); null otherwise")
    last_inspection_at: float | None = None
    inspections_since_start: int = 0
    checked_at: float


def disk_health(store: Store) -> ComponentHealth:
    free = free_mb(store.data_dir)
    guard = store.policy.min_free_mb
    ok = free >= guard
    return ComponentHealth(
        ok=ok, state="ok" if ok else "low",
        message="" if ok else f"only {free:.0f} MB free on the data disk (guard {guard:.0f} MB): "
        "old pass images are being removed; free space or add storage",
        details={"free_mb": round(free, 1), "min_free_mb": guard, "data_dir": str(store.data_dir)},
    )


def calibration_health(calibration, max_age_days: float) -> ComponentHealth:
    if calibration is None:
        return ComponentHealth(ok=False, state="missing", message="no calibration loaded")
    try:
        created = datetime.fromisoformat(calibration.created_at).timestamp()
        age_days = (time.time() - created) / 86400
    except (TypeError, ValueError):
        age_days = None
    ok = age_days is not None and age_days <= max_age_days
    msg = "" if ok else (
        f"calibration is {age_days:.0f} days old (limit {max_age_days:.0f}): recalibrate"
        if age_days is not None else "calibration has no valid creation date"
    )
    return ComponentHealth(
        ok=ok, state="ok" if ok else "old", message=msg,
        details={"id": calibration.id, "created_at": calibration.created_at,
                 "age_days": round(age_days, 2) if age_days is not None else None,
                 "mm_per_px": calibration.mm_per_px, "rms_px": calibration.rms_px},
    )


@dataclass
class ModelStatus:
    """What :func:`build_station` knows about the defect model (for health)."""

    loaded: bool
    sha256: str | None = None
    message: str = ""

    def health(self) -> ComponentHealth:
        return ComponentHealth(
            ok=self.loaded, state="loaded" if self.loaded else "absent",
            message=self.message, details={"sha256": self.sha256},
        )


# -- the runtime ---------------------------------------------------------------------------------
class Station:
    """Runs the inspection loop in a background thread and publishes every result."""

    def __init__(
        self,
        *,
        config: StationConfig,
        store: Store,
        inspector: InspectorLike,
        source,
        trigger: TriggerLike | None,
        spec: MaskSpec,
        calibration=None,
        model_status: ModelStatus | None = None,
        events: LiveEvents | None = None,
        min_interval_s: float = 0.0,
        conveyor: ConveyorBridge | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.inspector = inspector
        self.source = source
        self.trigger = trigger
        self.spec = spec
        self.calibration = calibration
        self.model_status = model_status or ModelStatus(False, message="no defect model")
        self.events = events or LiveEvents()
        self.min_interval_s = min_interval_s
        self.conveyor = conveyor
        if conveyor is not None and conveyor.on_change is None:
            conveyor.on_change = self._publish_health
        self.station_id = config.station.id
        self._manual = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._camera_fault: str | None = None
        self._pipeline_fault: str | None = None
        self._store_fault: str | None = None
        self._ended = False
        self._last_inspection_at: float | None = None
        self._last_retention = 0.0
        self.count = 0
        #: (pipeline_ms, frame -> stored ms) of recent inspections, for the bench and health
        self.latencies: deque[tuple[float, float]] = deque(maxlen=1000)

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self.store.ensure_station(self.station_id, self.config.station.name, self.config.station.workshop)
        self._stop.clear()
        if self.conveyor is not None:
            self.conveyor.start()  # opens the port in its own thread: an absent controller is a fault
        self._thread = threading.Thread(target=self.run_loop, name="qc-station-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._manual.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self.conveyor is not None:
            self.conveyor.close()
        try:
            self.source.close()
        except Exception:  # closing a broken camera must not stop shutdown
            log.exception("closing the frame source failed")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_trigger(self) -> None:
        """Inspect the next frame whatever the trigger says (screen button, API, key)."""
        if not self.running:
            raise CameraError("the station loop is not running; check /api/health")
        self._manual.set()

    # -- the loop --------------------------------------------------------------------------
    def run_loop(self) -> None:
        from qc_station.capture.frame import EndOfStream, FrameTimeout

        last_fire = 0.0
        manual_only = self.config.trigger.mode == "manual"
        conveyor = self.conveyor
        if conveyor is not None:
            # Frames are read only on triggers: open the camera now, so the first mask does not wait
            # for it (picamera2 settles for a second) and a missing camera shows before a mask comes.
            try:
                self.source.open()
            except Exception as exc:  # shown as a fault; reads retry (a ReconnectingSource reopens)
                self._set_camera_fault(f"{type(exc).__name__}: {exc}" if not isinstance(exc, CameraError)
                                       else str(exc))
        while not self._stop.is_set():
            self._maybe_retention()
            belt_event = None
            if conveyor is not None and not self._manual.is_set():
                # the belt says when a mask is under the camera; read only then
                try:
                    belt_event = conveyor.wait(0.5)
                except Exception as exc:  # a driver bug is a fault, not a crash
                    log.exception("conveyor trigger failed")
                    self._pipeline_fault = f"conveyor trigger error: {type(exc).__name__}: {exc}"
                    self._stop.wait(0.5)
                    continue
                if belt_event is None:
                    continue
                if conveyor.is_stale(belt_event):  # fell behind: that mask has left the view
                    conveyor.answer(belt_event, False, "stale")
                    continue
            elif manual_only or self._ended:
                # nothing to watch between presses: do not read (or render) frames for nothing
                if not self._manual.wait(0.5) or self._stop.is_set():
                    continue
            elif self.min_interval_s and not self._manual.is_set():
                wait = last_fire + self.min_interval_s - time.monotonic()
                if wait > 0:
                    self._manual.wait(min(wait, 0.5))
                    continue
            frame, pause_s = None, 0.0
            try:
                frame = self.source.read(timeout_s=1.0)
            except FrameTimeout:
                pass
            except EndOfStream:
                self._ended = True
                self._manual.clear()
                self._publish_health()
            except CameraError as exc:
                self._set_camera_fault(str(exc))
                pause_s = 1.0
            except Exception as exc:  # a driver bug is a fault, not a crash
                log.exception("frame source failed")
                self._set_camera_fault(f"{type(exc).__name__}: {exc}")
                pause_s = 1.0
            if frame is None:
                if belt_event is not None:  # no picture of that mask: it must not pass
                    conveyor.answer(belt_event, False, "no_frame")
                if pause_s:
                    self._stop.wait(pause_s)
                continue
            self._set_camera_fault(None)
            if self._stop.is_set():  # stop() also sets the manual event to wake the loop: not a press
                if belt_event is not None:
                    conveyor.answer(belt_event, False, "stopping")
                break
            manual = self._manual.is_set()
            try:
                fire = (manual or belt_event is not None or self.trigger is None
                        or bool(self.trigger.update(frame)))
            except Exception as exc:
                log.exception("trigger failed")
                self._pipeline_fault = f"trigger error: {exc}"
                continue
            if not fire:
                continue
            self._manual.clear()
            last_fire = time.monotonic()
            label = self.config.trigger.mode if belt_event is not None or not manual else "manual"
            self.process(frame, trigger=label, event=belt_event)

    def process(self, frame, trigger: str = "", event: TriggerEvent | None = None) -> InspectionRecord | None:
        """Inspect one frame, store it and publish it. Returns the record (None if not stored).

        With a conveyor ``event`` the verdict goes back to the controller as soon as it is known
        (PASS only for ``pass``; fail, unusable and a crashed inspection are FAIL), and the
        event's seq and belt position are stored in the frame metadata.
        """
        t0 = time.perf_counter()
        try:
            try:
                result = self.inspector.inspect(frame.image_bgr, image_name=frame.metadata.get("path"))
            except Exception:
                if event is not None and self.conveyor is not None:
                    self.conveyor.answer(event, False, "pipeline_error")
                raise
            t_inspected = time.perf_counter()
            answered_at = None
            if event is not None and self.conveyor is not None:
                verdict = str(getattr(result.verdict, "value", result.verdict))
                self.conveyor.answer(event, verdict == "pass", verdict)
                answered_at = time.time()
            annotate = getattr(self.inspector, "annotate", None)
            annotated = annotate(frame.image_bgr, result) if annotate is not None else None
        except Exception as exc:
            log.exception("pipeline failed on frame %s", frame.seq)
            self._pipeline_fault = f"pipeline error on frame {frame.seq}: {type(exc).__name__}: {exc}"
            self._publish_health()
            return None
        t_annotated = time.perf_counter()
        pipeline_ms = (t_annotated - t0) * 1000
        self._pipeline_fault = None
        meta = frame.metadata_json() if hasattr(frame, "metadata_json") else dict(frame.metadata)
        if event is not None:
            meta.update(trigger_seq=event.seq, trigger_origin=event.origin, belt_position=event.belt_position,
                        trigger_at=event.timestamp,
                        trigger_to_frame_ms=round((frame.timestamp - event.timestamp) * 1000, 1))
            if answered_at is not None:
                meta["trigger_to_verdict_ms"] = round((answered_at - event.timestamp) * 1000, 1)
        info = FrameInfo(seq=frame.seq, timestamp=frame.timestamp, source=frame.source, metadata=meta)
        try:
            record = self.store.record_inspection(
                result, station_id=self.station_id, frame=info, frame_bgr=frame.image_bgr,
                annotated_bgr=annotated, trigger=trigger,
            )
            self._set_store_fault(None)
        except ImagesNotSavedError as exc:
            record = exc.record
            self._set_store_fault(str(exc))
        except StorageError as exc:
            log.error("%s", exc)
            self._set_store_fault(str(exc))
            return None
        stored_ms = (time.time() - frame.timestamp) * 1000
        self.latencies.append((pipeline_ms, stored_ms))
        self.count += 1
        self._last_inspection_at = record.ts_epoch
        data = record.model_dump(mode="json")
        data["station_inspect_ms"] = round((t_inspected - t0) * 1000, 2)
        data["station_annotate_ms"] = round((t_annotated - t_inspected) * 1000, 2)
        data["station_store_ms"] = round((time.perf_counter() - t_annotated) * 1000, 2)
        self.events.publish(LiveEvent("inspection", data, id=record.id))
        return record

    def _maybe_retention(self) -> None:
        now = time.monotonic()
        if now - self._last_retention < RETENTION_EVERY_S:
            return
        self._last_retention = now
        try:
            self.store.enforce_retention()
        except StorageError as exc:
            self._set_store_fault(str(exc))

    # -- faults and health ---------------------------------------------------------------------
    def _set_camera_fault(self, message: str | None) -> None:
        if message != self._camera_fault:
            if message:
                log.warning("camera fault: %s", message)
            self._camera_fault = message
            self._publish_health()

    def _set_store_fault(self, message: str | None) -> None:
        if message != self._store_fault:
            self._store_fault = message
            self._publish_health()

    def _publish_health(self) -> None:
        self.events.publish(LiveEvent("health", self.health().model_dump(mode="json")))

    def camera_health(self) -> ComponentHealth:
        try:
            src = self.source.health()
            details = src.__dict__ if hasattr(src, "__dict__") else {}
            details = {k: v for k, v in details.items() if isinstance(v, (int, float, str, type(None)))}
            state, message = getattr(src, "state", "ok"), getattr(src, "message", "")
        except Exception as exc:
            details, state, message = {}, "fault", f"health unavailable: {exc}"
        if self._camera_fault:
            state, message = "fault", self._camera_fault
        if self._ended:
            state, message = "ended", "the frame source has no more frames"
        details["source"] = getattr(self.source, "name", type(self.source).__name__)
        return ComponentHealth(ok=state == "ok", state=state, message=message or "", details=details)

    def health(self) -> StationHealth:
        camera = self.camera_health()
        pipeline = ComponentHealth(
            ok=self._pipeline_fault is None, state="ok" if self._pipeline_fault is None else "fault",
            message=self._pipeline_fault or "",
            details={"spec": self.spec.spec_id, "trigger": self.config.trigger.mode},
        )
        store = ComponentHealth(
            ok=self._store_fault is None, state="ok" if self._store_fault is None else "fault",
            message=self._store_fault or "", details={"schema_version": self.store.schema_version},
        )
        return assemble_health(
            self.station_id, self.running, camera=camera, pipeline=pipeline, model=self.model_status.health(),
            calibration=calibration_health(self.calibration, self.config.calibration_max_age_days),
            disk=disk_health(self.store), store=store, last=self._last_inspection_at, count=self.count,
            conveyor=self.conveyor.health() if self.conveyor is not None else None,
        )


def assemble_health(station_id, running, *, camera, pipeline, model, calibration, disk, store, last=None,
                    count=0, conveyor: ComponentHealth | None = None) -> StationHealth:
    """Overall status: fault if the station cannot inspect, store or talk to its conveyor;
    degraded for warnings."""
    if not (camera.ok and pipeline.ok and store.ok and running and (conveyor is None or conveyor.ok)):
        status = "fault"
    elif not (model.ok and calibration.ok and disk.ok):
        status = "degraded"
    else:
        status = "ok"
    return StationHealth(
        status=status, station_id=station_id, running=running, camera=camera, pipeline=pipeline, model=model,
        calibration=calibration, disk=disk, store=store, conveyor=conveyor, last_inspection_at=last,
        inspections_since_start=count, checked_at=time.time(),
    )


# -- building a real station from its config ---------------------------------------------------
def image_policy(config: StationConfig) -> ImagePolicy:
    r = config.retention
    return ImagePolicy(jpeg_quality=r.jpeg_quality, thumb_width_px=r.thumb_width_px,
                       overlay_width_px=r.overlay_width_px,
                       min_free_mb=r.min_free_mb,
                       keep_pass_days=r.keep_pass_days, keep_reject_days=r.keep_reject_days)


def load_parts(config: StationConfig):
    """Spec, calibration and model (with its status) named by the config."""
    from qc_station.calibration import load_calibration
    from qc_station.spec import load_spec

    spec = load_spec(config.spec)
    if config.calibration == "sim":
        from qc_station.calibration import bundled_sim_calibration

        calibration = bundled_sim_calibration()
    else:
        calibration = load_calibration(config.calibration)
    model, status = None, ModelStatus(False, message="defect model disabled in the config")
    if config.model.enabled:
        try:
            from qc_station.vision.defects import DefectModel
        except ImportError as exc:
            status = ModelStatus(False, message=f"defect model code not available ({exc}); geometry only")
        else:
            try:
                model = DefectModel.load(config.model.path, threads=config.model.threads)
                status = ModelStatus(True, sha256=getattr(model, "sha256", None))
            except ModelError as exc:
                if config.model.path is not None:
                    raise  # an explicitly named model that is broken is an error at start
                status = ModelStatus(False, message=f"no bundled defect model: {exc}; geometry only")
    return spec, calibration, model, status


def make_trigger(config: StationConfig):
    """The frame-watching trigger for ``config.trigger.mode`` (None: every frame / manual only /
    conveyor, whose events come from :func:`make_conveyor`)."""
    if config.trigger.mode != "placement":
        return None
    from qc_station.capture import triggers

    return triggers.PlacementTrigger()


def make_conveyor(config: StationConfig) -> ConveyorBridge | None:
    """The conveyor's trigger source for the conveyor modes (not started: no port opened yet).

    ``conveyor-gpio`` opens the GPIO pin here, so a station off a Pi (no gpiozero) or with a
    busy pin stops at start with a clear error.
    """
    t = config.trigger
    if t.mode == "conveyor-serial":
        from qc_station.hardware.link import ConveyorLink

        s = t.serial
        link = ConveyorLink(
            s.port, baudrate=s.baud, heartbeat_ms=s.heartbeat_ms, retry_ms=s.retry_ms,
            reconnect_min_s=s.reconnect_min_s, reconnect_max_s=max(s.reconnect_max_s, s.reconnect_min_s),
            station_name=config.station.id,
        )
        return ConveyorBridge(link=link, belt_speed_pct=s.belt_speed_pct,
                              max_trigger_age_ms=t.max_trigger_age_ms)
    if t.mode == "conveyor-gpio":
        from qc_station.capture.triggers import GpioPhotoEyeTrigger

        g = t.gpio
        eye = GpioPhotoEyeTrigger(g.pin, pull_up=g.pull_up, bounce_s=g.debounce_ms / 1000)
        return ConveyorBridge(trigger=eye, max_trigger_age_ms=t.max_trigger_age_ms)
    return None


def build_station(config: StationConfig, store: Store, *, events: LiveEvents | None = None) -> Station:
    """A ready-to-start Station from the config (loads spec, calibration, model; opens no camera yet)."""
    from qc_station.capture import make_source
    from qc_station.vision.pipeline import Inspector

    spec, calibration, model, status = load_parts(config)
    inspector = Inspector(calibration, spec, model=model)
    source = make_source(config.capture)  # cameras come wrapped in a ReconnectingSource
    return Station(
        config=config, store=store, inspector=inspector, source=source, trigger=make_trigger(config),
        spec=spec, calibration=calibration, model_status=status, events=events,
        min_interval_s=config.trigger.min_interval_s, conveyor=make_conveyor(config),
    )
