"""The runtime loop with real frame sources and a real server: frames -> store -> live events, faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import httpx
import pytest
from station_factories import image, result
from test_api import _read_events

from qc_station.api import create_app
from qc_station.api.server import ServerThread
from qc_station.capture.base import FrameSource
from qc_station.capture.folder_source import FolderSource
from qc_station.config import parse_config
from qc_station.errors import CameraError
from qc_station.spec import load_spec
from qc_station.station import Station
from qc_station.store import ImagePolicy, Store


class ScriptedInspector:
    """Stands in for the vision pipeline: verdicts chosen by the test, not computed."""

    def __init__(self, verdicts: list[tuple[str, tuple[str, ...]]], fail_on: int | None = None) -> None:
        self.verdicts = verdicts
        self.calls = 0
        self.fail_on = fail_on

    def inspect(self, image_bgr, image_name=None):
        i = self.calls
        self.calls += 1
        if i == self.fail_on:
            raise RuntimeError("scripted pipeline crash")
        verdict, codes = self.verdicts[i % len(self.verdicts)]
        return result(verdict, *codes).model_copy(update={"image": image_name})

    def annotate(self, image_bgr, res):
        out = image_bgr.copy()
        cv2.rectangle(out, (5, 5), (50, 50), (0, 0, 255), 3)
        return out


class FlakyCamera(FrameSource):
    """A camera that is unplugged for its first ``bad_reads`` reads, then works."""

    def __init__(self, bad_reads: int) -> None:
        super().__init__("flaky:0")
        self.bad_reads = bad_reads
        self.reads = 0

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self, timeout_s: float):
        self.reads += 1
        if self.reads <= self.bad_reads:
            self._set_fault("camera unplugged (USB device gone)")
            raise CameraError("camera unplugged (USB device gone)")
        time.sleep(0.05)
        return self._make_frame(image(seed=self.reads), {"exposure_us": 5000})


def _station(tmp_path: Path, source, inspector, mode: str = "every_frame", **kw) -> tuple[Station, Store]:
    cfg = parse_config({"data_dir": str(tmp_path), "station": {"id": "st-1"}, "trigger": {"mode": mode}})
    store = Store(tmp_path, policy=kw.pop("policy", ImagePolicy(min_free_mb=0)))
    station = Station(
        config=cfg, store=store, inspector=inspector, source=source, trigger=None, spec=load_spec(None), **kw
    )
    return station, store


def _wait(cond, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"mask_{i:02d}.png"), image(seed=i))
    return folder


def test_frames_are_inspected_stored_and_streamed(tmp_path: Path) -> None:
    verdicts = [("pass", ()), ("fail", ("stain",)), ("unusable", ("blur",))]
    station, store = _station(tmp_path, FolderSource(_folder(tmp_path, 3)), ScriptedInspector(verdicts))
    app = create_app(station.config, store, station)
    with ServerThread(app) as srv:
        got: list = []
        listener = threading.Thread(target=_read_events, args=(srv.url + "/api/events", 3, None, got))
        listener.start()
        _wait(lambda: station.events.subscriber_count > 0)
        station.start()
        listener.join(15)
        insp = [e["data"] for e in got if e["event"] == "inspection"]
        assert [e["verdict"] for e in insp] == ["pass", "fail", "unusable"]
        assert insp[1]["plain_words"] == ["stain"] and insp[1]["image_name"].endswith("mask_01.png")
        recs = store.list_inspections().items[::-1]
        assert [r.id for r in recs] == [e["id"] for e in insp]
        assert [sorted(i.kind for i in r.images) for r in recs] == [
            ["thumb"],
            ["annotated", "frame", "thumb"],
            ["annotated", "frame", "thumb"],
        ]
        assert recs[0].frame.source.startswith("folder:") and recs[0].trigger == "every_frame"
        assert all(r.frame.timestamp <= r.ts_epoch for r in recs)
        _wait(lambda: station.health().camera.state == "ended")  # the folder is done: not a crash
        health = httpx.get(srv.url + "/api/health").json()
        assert health["running"] is True and health["camera"]["state"] == "ended"
        assert len(station.latencies) == 3
        station.stop()


def test_camera_fault_is_shown_then_clears(tmp_path: Path) -> None:
    cam = FlakyCamera(bad_reads=2)
    station, store = _station(tmp_path, cam, ScriptedInspector([("pass", ())]))
    faults: list[str] = []
    real = station._set_camera_fault
    station._set_camera_fault = lambda m: (faults.append(m), real(m))  # record what the screen was told
    station.start()
    _wait(lambda: store.list_inspections().total >= 1, 15)
    assert faults[0] == "camera unplugged (USB device gone)" and faults[-1] is None
    assert station.running and station.health().camera.ok
    station.stop()


def test_fault_visible_in_health_while_camera_is_down(tmp_path: Path) -> None:
    station, store = _station(tmp_path, FlakyCamera(bad_reads=10**6), ScriptedInspector([("pass", ())]))
    app = create_app(station.config, store, station)
    station.start()
    with ServerThread(app) as srv:
        _wait(lambda: station.health().camera.state == "fault")
        h = httpx.get(srv.url + "/api/health").json()
        assert h["status"] == "fault" and "unplugged" in h["camera"]["message"] and h["running"] is True
    station.stop()


def test_manual_mode_inspects_only_on_trigger(tmp_path: Path) -> None:
    station, store = _station(
        tmp_path, FlakyCamera(bad_reads=0), ScriptedInspector([("fail", ("hole",))]), mode="manual"
    )
    app = create_app(station.config, store, station)
    station.start()
    with ServerThread(app) as srv:
        time.sleep(0.5)
        assert store.list_inspections().total == 0
        r = httpx.post(srv.url + "/api/trigger")
        assert r.status_code == 202, r.text
        _wait(lambda: store.list_inspections().total == 1)
        time.sleep(0.4)
        assert store.list_inspections().total == 1
        rec = store.list_inspections().items[0]
        assert rec.trigger == "manual" and rec.reason_codes == ["hole"]
    station.stop()
    with pytest.raises(CameraError, match="not running"):
        station.request_trigger()


def test_pipeline_crash_is_a_fault_not_the_end(tmp_path: Path) -> None:
    station, store = _station(
        tmp_path, FolderSource(_folder(tmp_path, 3)), ScriptedInspector([("pass", ())], fail_on=0)
    )
    station.start()
    _wait(lambda: store.list_inspections().total == 2)
    assert station.running
    station.stop()


def test_full_disk_still_stores_and_shows_the_fault(tmp_path: Path) -> None:
    station, store = _station(
        tmp_path,
        FolderSource(_folder(tmp_path, 1)),
        ScriptedInspector([("fail", ("stain",))]),
        policy=ImagePolicy(min_free_mb=1e12),
    )
    station.start()
    _wait(lambda: store.list_inspections().total == 1)
    _wait(lambda: not station.health().store.ok)
    h = station.health()
    assert "without its images" in h.store.message and h.status == "fault"
    assert store.list_inspections().items[0].images == []
    station.stop()


class NeverFires:
    def update(self, frame):
        return None


def test_stopping_is_not_a_manual_press(tmp_path: Path) -> None:
    station, store = _station(
        tmp_path, FlakyCamera(bad_reads=0), ScriptedInspector([("pass", ())]), mode="placement"
    )
    station.trigger = NeverFires()
    station.start()
    _wait(lambda: station.source.reads >= 3)
    station.stop()
    assert store.list_inspections().total == 0
