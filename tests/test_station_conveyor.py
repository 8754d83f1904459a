"""The station in conveyor mode, with real parts: the Station runtime + a real store + the real
firmware running the simulated belt behind a real pseudo-terminal + the ConveyorLink driver.

The oracle is the belt (what physically happened to each mask) and the store (what the station
decided for each trigger seq), never the controller's own counters alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import httpx
import pytest
from station_factories import image, result

from qc_station.api import create_app
from qc_station.api.server import ServerThread
from qc_station.capture.folder_source import FolderSource
from qc_station.config import parse_config
from qc_station.hardware.sim.belt import REJECTED, make_masks
from qc_station.hardware.sim.host import ControllerHost
from qc_station.spec import load_spec
from qc_station.station import ModelStatus, Station, make_conveyor
from qc_station.store import ImagePolicy, Store

VERDICTS = {"pass": ("pass", ()), "fail": ("fail", ("width",)), "unusable": ("unusable", ("blur",))}


class NamedInspector:
    """Stands in for the pipeline: the verdict is written in the frame's file name
    (``NN_pass.png``, ``NN_fail.png``, ``NN_unusable.png``; ``NN_crash.png`` raises)."""

    def __init__(self) -> None:
        self.calls = 0

    def inspect(self, image_bgr, image_name=None):
        self.calls += 1
        kind = Path(image_name).stem.split("_")[1]
        if kind == "crash":
            raise RuntimeError("scripted pipeline crash")
        verdict, codes = VERDICTS[kind]
        return result(verdict, *codes).model_copy(update={"image": image_name})

    def annotate(self, image_bgr, res):
        return image_bgr.copy()


def _frames(tmp_path: Path, kinds: list[str]) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, kind in enumerate(kinds):
        cv2.imwrite(str(folder / f"{i:02d}_{kind}.png"), image(240, 136, seed=i))
    return folder


def _host(n_masks: int, *, time_scale: float, seed: int = 0) -> ControllerHost:
    masks = make_masks(n_masks, p_defective=0.0, seed=seed)
    # The firmware's timeouts are simulated ms: scale them so they mean the same in wall time.
    return ControllerHost(masks, time_scale=time_scale, seed=seed, config_overrides={
        "watchdog_ms": int(800 * time_scale), "retry_ms": int(100 * time_scale)})


def _station(tmp_path: Path, host: ControllerHost, source, inspector, *, belt_speed_pct: int | None,
             max_trigger_age_ms: float = 800.0) -> tuple[Station, Store]:
    serial = {"port": host.port_path, "heartbeat_ms": 100, "retry_ms": 100, "reconnect_max_s": 0.2}
    if belt_speed_pct:
        serial["belt_speed_pct"] = belt_speed_pct
    cfg = parse_config({
        "data_dir": str(tmp_path / "data"), "station": {"id": "belt-1"},
        "trigger": {"mode": "conveyor-serial", "max_trigger_age_ms": max_trigger_age_ms, "serial": serial},
    })
    store = Store(cfg.data_dir, policy=ImagePolicy(min_free_mb=0))
    station = Station(config=cfg, store=store, inspector=inspector, source=source, trigger=None,
                      spec=load_spec(None), model_status=ModelStatus(True, sha256="ab" * 32),
                      conveyor=make_conveyor(cfg))
    return station, store


def _wait(cond, timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _run_belt(host: ControllerHost, station: Station, timeout_s: float) -> None:
    def done() -> bool:
        with host.lock:
            return host.belt.done()

    _wait(done, timeout_s, "every mask to leave the belt")


def _by_mask(host: ControllerHost, store: Store) -> dict[int, list]:
    """Stored inspections grouped by the physical mask their trigger's belt position points at."""
    out: dict[int, list] = {m.index: [] for m in host.belt.masks}
    for rec in store.list_inspections(limit=500).items:
        mask = host.belt.mask_at_eye(rec.frame.metadata["belt_position"])
        assert mask is not None, f"inspection {rec.id}: no mask at belt position {rec.frame.metadata}"
        out[mask.index].append(rec)
    return out


def test_every_fail_unusable_or_crashed_mask_is_rejected_and_no_pass_is(tmp_path: Path) -> None:
    kinds = ["pass", "fail", "pass", "unusable", "pass", "crash", "fail", "pass"]
    n = 12  # the folder loops: 12 masks see 8 frames, then the first 4 again
    host = _host(n, time_scale=2.5, seed=11).start()
    # 1.5 s: under the 1.66 s from eye to flap; a loaded machine must not turn this into a staleness test
    station, store = _station(tmp_path, host, FolderSource(_frames(tmp_path, kinds), loop=True),
                              NamedInspector(), belt_speed_pct=75, max_trigger_age_ms=1500)
    try:
        station.start()
        _run_belt(host, station, 30.0)
        link = station.conveyor.link
        counts = link.request_counts(timeout_s=2.0)
        health = station.health()
    finally:
        station.stop()
        host.stop()
    expected = [kinds[i % len(kinds)] for i in range(n)]
    stored = _by_mask(host, store)
    got = {}
    for m in host.belt.masks:
        recs = stored[m.index]
        assert len(recs) <= 1, f"mask {m.index} inspected {len(recs)} times"
        got[m.index] = recs[0].verdict if recs else "crash"
        passed = bool(recs) and recs[0].verdict == "pass"
        assert (m.outcome == REJECTED) == (not passed), (
            f"mask {m.index}: verdict {got[m.index]}, flap fired: {m.outcome == REJECTED}")
    # Each mask got the frame of its place in the folder (one trigger, one read) ...
    assert [got[i] for i in range(n)] == expected
    # ... and every stored result names its trigger.
    recs = store.list_inspections(limit=500).items
    seqs = sorted(r.frame.metadata["trigger_seq"] for r in recs)
    assert len(seqs) == n - expected.count("crash") and len(set(seqs)) == len(seqs)
    assert all(r.trigger == "conveyor-serial" for r in recs)
    assert all(r.frame.metadata["trigger_origin"] == "conveyor" for r in recs)
    assert sum(m.outcome == REJECTED for m in host.belt.masks) == n - expected.count("pass")
    # The controller rejected them on the station's FAIL, not fail-safe for lack of a verdict.
    assert counts is not None and counts.triggers == n
    assert counts.rejected_fail == n - expected.count("pass") and counts.rejected_noverdict == 0
    assert counts.passed == expected.count("pass")
    assert health.conveyor is not None and health.conveyor.ok and health.conveyor.details["triggers"] == n
    assert health.pipeline.ok  # the crash was followed by good inspections
    assert host.belt.record.misfires == 0 and host.error is None


def test_link_faults_show_in_health_and_recover(tmp_path: Path) -> None:
    host = _host(0, time_scale=1.0).start()
    station, store = _station(tmp_path, host, FolderSource(_frames(tmp_path, ["pass"]), loop=True),
                              NamedInspector(), belt_speed_pct=50)
    app = create_app(station.config, store, station)
    seen: list[str] = []
    try:
        with ServerThread(app) as srv:
            station.start()

            def conveyor_state() -> str:
                h = httpx.get(srv.url + "/api/health", timeout=5).json()
                seen.append(f"{h['status']}:{h['conveyor']['state']}")
                return h["conveyor"]["state"]

            _wait(lambda: conveyor_state() == "ok", what="the link to come up")
            _wait(lambda: host.belt.speed_mm_s > 0, what="the belt to start (belt_speed_pct)")
            assert seen[-1] in ("ok:ok", "degraded:ok")  # degraded: no calibration in this test

            host.unplug()  # the USB cable is pulled
            _wait(lambda: conveyor_state() == "disconnected", what="the link fault")
            h = httpx.get(srv.url + "/api/health", timeout=5).json()
            assert h["status"] == "fault" and h["running"] is True
            assert "not connected" in h["conveyor"]["message"]
            _wait(lambda: host.belt.speed_mm_s == 0, what="the controller's watchdog to stop the belt")

            host.replug()
            _wait(lambda: conveyor_state() == "ok", what="the link to recover")
            _wait(lambda: host.belt.speed_mm_s > 0, what="the belt to restart after the watchdog stop")
            link = station.conveyor.link
            assert link.stats.reconnects == 1

            link.estop()  # e-stop: a controller fault, shown in words; the belt must not restart alone
            _wait(lambda: conveyor_state() == "fault", what="the e-stop fault")
            h = httpx.get(srv.url + "/api/health", timeout=5).json()
            assert h["status"] == "fault" and "e-stop" in h["conveyor"]["message"]
            link.clear()
            _wait(lambda: conveyor_state() == "ok", what="the e-stop to clear")
            time.sleep(0.3)
            assert host.belt.speed_mm_s == 0  # clearing an e-stop never restarts the belt
            counts = link.request_counts(timeout_s=2.0)
            assert counts is not None and counts.watchdog_trips == 1 and counts.estops == 1
    finally:
        station.stop()
        host.stop()
    # Clean shutdown: the link's threads are gone and the port is released.
    assert not station.conveyor.link.connected and station.conveyor.link._serial is None
    assert not any(t.is_alive() for t in station.conveyor.link._threads)
    assert "fault:disconnected" in seen


def test_real_pipeline_fail_is_rejected_and_pass_goes_through(tmp_path: Path) -> None:
    pytest.importorskip("qc_station.vision.pipeline")
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.sim import render_case
    from qc_station.vision.pipeline import Inspector

    folder = tmp_path / "frames"
    folder.mkdir()
    truth = {"00.png": "pass", "01.png": "fail"}
    cv2.imwrite(str(folder / "00.png"), render_case(3000)[0])
    cv2.imwrite(str(folder / "01.png"), render_case(3500, defects=("width",))[0])
    inspector = Inspector(bundled_sim_calibration(), load_spec(None))
    # Real time, half speed: 6 s from the photo-eye to the flap, ~1 s per inspection here.
    host = _host(2, time_scale=1.0, seed=3).start()
    station, store = _station(tmp_path, host, FolderSource(folder), inspector, belt_speed_pct=50,
                              max_trigger_age_ms=5000)
    try:
        station.start()
        _run_belt(host, station, 40.0)
    finally:
        station.stop()
        host.stop()
    stored = _by_mask(host, store)
    for m in host.belt.masks:
        (rec,) = stored[m.index]
        want = truth[Path(rec.image_name).name]
        assert rec.verdict == want, f"{rec.image_name}: pipeline says {rec.verdict}, simulator truth {want}"
        assert (m.outcome == REJECTED) == (want != "pass")
        meta = rec.frame.metadata
        assert meta["trigger_seq"] >= 1 and meta["belt_position"] is not None
        assert 0 < meta["trigger_to_frame_ms"] <= meta["trigger_to_verdict_ms"]
        print(f"{rec.image_name}: {rec.verdict}, trigger -> frame {meta['trigger_to_frame_ms']} ms, "
              f"-> verdict sent {meta['trigger_to_verdict_ms']} ms, flap fired: {m.outcome == REJECTED}")


def test_conveyor_config_sections_and_errors() -> None:
    from qc_station.errors import ConfigError

    cfg = parse_config({"trigger": {"mode": "conveyor-serial", "serial": {"port": "/dev/ttyACM0"}}})
    assert cfg.trigger.conveyor and cfg.trigger.serial.baud == 115200
    assert cfg.trigger.serial.heartbeat_ms == 200
    cfg = parse_config({"trigger": {"mode": "conveyor-gpio", "gpio": {"pin": 17, "debounce_ms": 5}}})
    assert cfg.trigger.gpio.pin == 17 and cfg.trigger.gpio.pull_up
    # A table of another mode may stay in the file; it is not used.
    cfg = parse_config({"trigger": {"mode": "placement", "serial": {"port": "/dev/ttyACM0"}}})
    assert not cfg.trigger.conveyor and make_conveyor(cfg) is None
    for data, words in [
        ({"mode": "conveyor-serial"}, "needs a [trigger.serial] table"),
        ({"mode": "conveyor-gpio"}, "needs a [trigger.gpio] table"),
        ({"mode": "conveyor"}, "'conveyor' is now 'conveyor-serial'"),
        ({"mode": "conveyor-serial", "serial": {"port": "x", "prot": 1}}, "trigger.serial.prot"),
        ({"mode": "conveyor-serial", "serial": {"port": "x", "heartbeat_ms": 0}},
         "trigger.serial.heartbeat_ms"),
        ({"mode": "conveyor-gpio", "gpio": {"pin": 17, "bounce": 1}}, "trigger.gpio.bounce"),
    ]:
        with pytest.raises(ConfigError, match=__import__("re").escape(words)):
            parse_config({"trigger": data})
    with pytest.raises(ConfigError, match="needs a camera"):
        parse_config({"trigger": {"mode": "conveyor-gpio", "gpio": {"pin": 4}},
                      "capture": {"type": "folder", "path": "x"}})


def test_gpio_photo_eye_mode_inspects_each_beam_break(tmp_path: Path, monkeypatch) -> None:
    import sys
    import types

    devices = []

    class FakeInput:  # gpiozero.DigitalInputDevice, as the Pi would give it
        def __init__(self, pin, *, pull_up=False, bounce_time=None):
            self.pin, self.pull_up, self.bounce_time = pin, pull_up, bounce_time
            self.when_activated, self.closed = None, False
            devices.append(self)

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "gpiozero", types.SimpleNamespace(DigitalInputDevice=FakeInput))
    cfg = parse_config({"data_dir": str(tmp_path / "data"),
                        "trigger": {"mode": "conveyor-gpio", "gpio": {"pin": 22, "debounce_ms": 30}}})
    store = Store(cfg.data_dir, policy=ImagePolicy(min_free_mb=0))
    station = Station(config=cfg, store=store, inspector=NamedInspector(), trigger=None, spec=load_spec(None),
                      source=FolderSource(_frames(tmp_path, ["pass", "fail"])), conveyor=make_conveyor(cfg))
    (dev,) = devices
    assert (dev.pin, dev.pull_up, dev.bounce_time) == (22, True, 0.03)
    station.start()
    try:
        time.sleep(0.3)
        assert store.list_inspections().items == []  # no beam break, no inspection
        dev.when_activated()
        dev.when_activated()
        _wait(lambda: len(store.list_inspections().items) == 2, what="two inspections")
        recs = store.list_inspections().items[::-1]
        assert [r.verdict for r in recs] == ["pass", "fail"]
        assert [r.frame.metadata["trigger_seq"] for r in recs] == [1, 2]
        assert {r.frame.metadata["trigger_origin"] for r in recs} == {"photo_eye"}
        assert station.health().conveyor.ok and station.health().conveyor.details["source"] == "gpio:22"
    finally:
        station.stop()
    assert dev.closed


def test_serve_with_a_conveyor_config_connects_and_stops_cleanly(tmp_path: Path) -> None:
    from test_demo import _free_port, _start, _stop, _wait_for_url

    host = _host(0, time_scale=1.0).start()
    port = _free_port()
    (tmp_path / "station.toml").write_text(
        'data_dir = "data"\n[station]\nid = "belt-serve"\n[capture]\ntype = "sim"\nmode = "conveyor"\n'
        f'[trigger]\nmode = "conveyor-serial"\n[trigger.serial]\nport = "{host.port_path}"\n'
        f'[api]\nport = {port}\n'
    )
    proc = _start(["serve", "--config", str(tmp_path / "station.toml")], tmp_path)
    try:
        url, _ = _wait_for_url(proc, timeout_s=60)
        deadline = time.monotonic() + 15
        while True:
            conveyor = httpx.get(url + "/api/health", timeout=10).json()["conveyor"]
            if conveyor["ok"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert conveyor["ok"] and conveyor["details"]["connected"], conveyor
        assert conveyor["details"]["port"] == host.port_path and conveyor["details"]["firmware"]
    finally:
        rc = _stop(proc)
        host.stop()
    assert rc == 0, proc.stdout.read()


def test_documented_conveyor_examples_are_valid() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    (block,) = [b for b in blocks if "conveyor-serial" in b and "[trigger.serial]" in b]
    cfg = parse_config(tomllib.loads(block), source="docs/config.md")
    assert cfg.trigger.mode == "conveyor-serial" and cfg.trigger.serial.port.startswith("/dev/serial/by-id/")
    assert cfg.trigger.serial.belt_speed_pct == 75 and cfg.capture.type == "picamera2"
    # The commented GPIO variant, uncommented in place of the serial trigger, is valid too.
    head = block.split("[trigger]")[0]
    gpio = [ln[2:].split("  #")[0] for ln in block.splitlines()
            if re.match(r"# (\[trigger|mode|pin|pull_up|deb)", ln)]
    cfg = parse_config(tomllib.loads(head + "\n".join(gpio) + "\n"))
    assert cfg.trigger.mode == "conveyor-gpio" and cfg.trigger.gpio.pin == 17
    assert cfg.trigger.gpio.debounce_ms == 20


class RecordingLink:
    """A ConveyorLink double that records the verdicts (the verdict rules, without timing)."""

    def __init__(self) -> None:
        import queue

        from qc_station.hardware.reports import LinkStats

        self.port, self.connected, self.faults, self.info, self.stats = "fake", True, set(), None, LinkStats()
        self.on_fault = self.on_reject = None
        self.triggers: queue.Queue = queue.Queue()
        self.sent: list[tuple[int, bool]] = []
        self.started = self.closed = False

    def start(self):
        self.started = True

    def close(self):
        self.closed = True

    def next_trigger(self, timeout_s=None):
        import queue

        try:
            return self.triggers.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def send_verdict(self, seq: int, passed: bool) -> bool:
        self.sent.append((seq, passed))
        return True


def test_verdict_rules_stale_and_missing_frames_reject(tmp_path: Path) -> None:
    from qc_station.capture.triggers import TriggerEvent
    from qc_station.station_conveyor import ConveyorBridge

    cfg = parse_config({"data_dir": str(tmp_path / "data"),
                        "trigger": {"mode": "conveyor-serial", "serial": {"port": "fake"}}})
    store = Store(cfg.data_dir, policy=ImagePolicy(min_free_mb=0))
    link = RecordingLink()
    station = Station(config=cfg, store=store, inspector=NamedInspector(), trigger=None, spec=load_spec(None),
                      source=FolderSource(_frames(tmp_path, ["pass", "fail", "unusable", "crash"])),
                      conveyor=ConveyorBridge(link=link, max_trigger_age_ms=800))
    station.start()
    try:
        now = time.time()
        # the station fell behind: this mask has long left the view
        link.triggers.put(TriggerEvent(seq=7, timestamp=now - 5.0, belt_position=10))
        for seq in range(8, 13):  # 4 frames in the folder: the 5th trigger finds none
            link.triggers.put(TriggerEvent(seq=seq, timestamp=time.time(), belt_position=seq * 100))
        _wait(lambda: len(link.sent) == 6, what="six verdicts")
    finally:
        station.stop()
    assert link.started and link.closed
    # Only the pass is PASS: stale, fail, unusable, crashed and unphotographed masks are rejected.
    assert link.sent == [(7, False), (8, True), (9, False), (10, False), (11, False), (12, False)]
    recs = store.list_inspections().items[::-1]
    assert [(r.frame.metadata["trigger_seq"], r.verdict) for r in recs] == [(8, "pass"), (9, "fail"),
                                                                            (10, "unusable")]
    assert recs[0].frame.metadata["belt_position"] == 800
    h = station.health().conveyor
    assert h.details["not_photographed"] == 1 and h.details["verdicts_pass"] == 1
    assert h.details["verdicts_fail"] == 5 and h.details["triggers"] == 6
