"""The station's serial driver against the real firmware over a real pseudo-terminal pair."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from qc_station.hardware import codec
from qc_station.hardware.link import ConveyorLink
from qc_station.hardware.reports import FaultReport
from qc_station.hardware.sim.belt import make_masks
from qc_station.hardware.sim.host import ControllerHost


def wait_for(cond: Callable[[], object], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


@pytest.fixture
def host() -> Iterator[ControllerHost]:
    h = ControllerHost([], time_scale=1.0, config_overrides={"watchdog_ms": 5000}).start()
    yield h
    h.stop()


@pytest.fixture
def link(host: ControllerHost) -> Iterator[ConveyorLink]:
    faults: list[FaultReport] = []
    lk = ConveyorLink(host.port_path, heartbeat_ms=50, retry_ms=100, on_fault=faults.append)
    lk.faults_seen = faults  # type: ignore[attr-defined]
    with lk:
        assert lk.wait_connected(5.0), "no HELLO from the simulated controller"
        yield lk


def write_to_station(host: ControllerHost, data: bytes) -> None:
    """Put raw bytes on the wire towards the station, as if the controller had sent them."""
    with host.lock:
        assert host._master is not None
        os.write(host._master, data)


def test_hello_status_and_belt_commands(host: ControllerHost, link: ConveyorLink) -> None:
    assert link.info is not None
    assert link.info.protocol_version == codec.PROTOCOL_VERSION
    assert link.info.firmware_version == host.fw.config.FIRMWARE_VERSION
    link.belt_run(55)
    assert wait_for(lambda: host.controller.running)
    status = link.request_status()
    assert status is not None and status.running and status.speed_pct == 55 and status.fault == "NONE"
    link.belt_stop()
    assert wait_for(lambda: not host.controller.running)
    assert host.board.level(host.fw.config.PIN_BELT_ENABLE) == 0


def test_estop_is_reported_and_refuses_belt_until_cleared(host: ControllerHost, link: ConveyorLink) -> None:
    link.belt_run(50)
    assert wait_for(lambda: host.controller.running)
    with host.lock:
        host.belt.press_estop()
    assert wait_for(lambda: "ESTOP" in link.faults)
    assert wait_for(lambda: FaultReport("ESTOP", True) in link.faults_seen)  # type: ignore[attr-defined]
    with host.lock:
        host.belt.release_estop()
    link.belt_run(50)  # refused: latched
    assert wait_for(lambda: link.stats.refused == 1)
    assert not host.controller.running
    refused = link.stats.refused
    for _ in range(25):  # the release must be stable (estop_release_ms) before CLEAR is accepted
        link.clear()
        if wait_for(lambda: "ESTOP" not in link.faults, 0.2):
            break
    assert "ESTOP" not in link.faults
    assert link.stats.refused >= refused
    link.belt_run(50)
    assert wait_for(lambda: host.controller.running)


def test_driver_reconnects_after_unplug_and_delivers_what_was_sent_meanwhile(
    host: ControllerHost, link: ConveyorLink
) -> None:
    link.belt_run(40)
    assert wait_for(lambda: host.controller.running)
    host.unplug()
    assert wait_for(lambda: not link.connected, 3.0), "driver did not notice the unplug"
    link.belt_speed(70)  # sent while unplugged: must arrive after the reconnect
    time.sleep(0.3)
    host.replug()
    assert wait_for(lambda: link.connected, 5.0), "driver did not reconnect"
    assert link.stats.reconnects >= 1
    assert wait_for(lambda: host.controller.speed_pct == 70)
    assert wait_for(lambda: link.pending() == 0)
    status = link.request_status()
    assert status is not None and status.speed_pct == 70


def test_repeated_unplugs(host: ControllerHost, link: ConveyorLink) -> None:
    for _ in range(3):
        host.unplug()
        assert wait_for(lambda: not link.connected, 3.0)
        host.replug()
        assert wait_for(lambda: link.connected, 5.0)
    assert link.stats.reconnects >= 3
    assert link.request_status() is not None


def test_garbage_from_the_controller_is_nakd_and_survived(host: ControllerHost, link: ConveyorLink) -> None:
    before = link.stats.bad_lines
    write_to_station(host, b"\x00\xffnoise\n$3,TRIG,1,2,3*0000\n$9,TRIG,5\n" + b"$" + b"7" * 400 + b"\n")
    assert wait_for(lambda: link.stats.bad_lines >= before + 4)
    assert link.triggers.empty()  # nothing acted upon
    assert link.request_status() is not None  # and the link still works
    assert wait_for(lambda: host.controller.link.naks_received >= 4)  # the controller got our NAKs


def test_a_duplicated_trigger_line_gives_one_event(host: ControllerHost, link: ConveyorLink) -> None:
    events = []
    got = threading.Event()

    def on_trigger(e: object) -> None:
        events.append(e)
        got.set()

    link.on_trigger = on_trigger
    line = codec.encode(60000, "TRIG", (77, 1234, 5))
    write_to_station(host, line + line)  # the same line twice
    write_to_station(host, codec.encode(60001, "TRIG", (77, 1234, 5)))  # a retransmit, new seq
    assert got.wait(3.0)
    time.sleep(0.2)
    assert len(events) == 1
    ev = events[0]
    assert (ev.seq, ev.belt_position, ev.origin) == (77, 1234, "conveyor")
    assert link.stats.dup_lines >= 1


def test_trigger_from_a_passing_mask_and_verdict_back() -> None:
    with (
        ControllerHost(make_masks(1), time_scale=5.0) as host,
        ConveyorLink(host.port_path, heartbeat_ms=50) as link,
    ):
        assert link.wait_connected(5.0)
        link.belt_run(75)
        event = link.next_trigger(timeout_s=5.0)
        assert event is not None and event.seq == 1 and event.origin == "conveyor"
        with host.lock:
            mask = host.belt.mask_at_eye(event.belt_position)
        assert mask is not None and mask.index == 0
        assert link.send_verdict(event.seq, passed=False)
        assert wait_for(
            lambda: bool(host.controller.in_flight) and host.controller.in_flight[0].verdict == "FAIL"
        )
        assert wait_for(lambda: len(link.rejections) == 1, 10.0)
        assert link.rejections[0].seq == 1 and link.rejections[0].reason == "FAIL"
        assert wait_for(lambda: mask.outcome == "rejected")


def test_controller_reboot_keeps_station_trigger_seqs_unique(
    host: ControllerHost, link: ConveyorLink
) -> None:
    """After a reboot the controller numbers masks from 1 again; the station's seqs must not
    repeat (ConveyorTrigger drops repeated seqs as duplicates) and old verdicts are not sent."""
    from qc_station.capture.triggers import ConveyorTrigger

    sink = ConveyorTrigger()
    link.on_trigger = sink.feed
    boot = link.info.boot_id if link.info else 0
    write_to_station(host, codec.encode(60010, "TRIG", (1, 100, 0)))
    first = sink.wait(3.0)
    assert first is not None and first.seq == 1
    write_to_station(host, codec.encode(1, "HELLO", (1, "9.9.9", boot + 1)))  # rebooted
    assert wait_for(lambda: link.info is not None and link.info.boot_id == boot + 1)
    write_to_station(host, codec.encode(2, "TRIG", (1, 40, 0)))  # mask 1 of the new boot
    second = sink.wait(3.0)
    assert second is not None and second.seq == 2 and second.belt_position == 40
    assert sink.duplicates == 0
    assert link.send_verdict(first.seq, passed=True) is False  # that mask was already rejected
    assert link.stats.stale_verdicts == 1
    assert link.send_verdict(second.seq, passed=True) is True


def test_driver_says_hello_again_when_the_firmware_was_not_listening_yet() -> None:
    host = ControllerHost([], time_scale=1.0)
    try:
        with ConveyorLink(host.port_path, retry_ms=50, max_tries=3) as link:
            time.sleep(0.5)
            with host.lock:  # the Pico was still booting: what the station sent is lost
                assert host._master is not None
                lost = os.read(host._master, 4096)
            assert b"HELLO" in lost
            assert not link.connected
            host.start()
            assert link.wait_connected(5.0), "the driver never retried HELLO"
    finally:
        host.stop()


def test_counts_parse_ignores_unknown_names() -> None:
    from qc_station.hardware.reports import ControllerCounts

    c = ControllerCounts.from_fields(("triggers=5", "future_counter=9", "passed=x", "rejected_fail=2"))
    assert (c.triggers, c.passed, c.rejected_fail) == (5, 0, 2)
