"""The controller logic from firmware/ (the files flashed to the Pico), run under CPython with a
fake ``machine`` module: photo-eye debounce, reject by encoder distance, fail-safe, e-stop
latch, watchdog, stack light, link behaviour on garbage and duplicates."""

from __future__ import annotations

import pytest

from qc_station.hardware import codec
from qc_station.hardware.sim.fake_machine import FakeMachine
from qc_station.hardware.sim.firmware import SimClock, load_firmware

FW = load_firmware()
PINS = FW.config
QUAD = ((0, 0), (1, 0), (1, 1), (0, 1))


class Bench:
    """The firmware wired by main.build() to a fake board; we play sensors and station."""

    def __init__(self, **cfg: object) -> None:
        self.board = FakeMachine()
        for pin in (PINS.PIN_ESTOP, PINS.PIN_PHOTO_EYE, PINS.PIN_ENC_A, PINS.PIN_ENC_B):
            self.board.levels[pin] = 0
        self.clock = SimClock((1 << 30) - 700)  # the ticks wrap during every test
        self.out = bytearray()
        bench = self

        class Transport:
            def read(self) -> bytes:
                return b""

            def write(self, data: bytes) -> None:
                bench.out += data

        self.cfg = FW.config.Config(**cfg)
        self.ctl = FW.main.build(self.board, Transport(), self.clock, self.cfg, boot_id=7)
        self._seq = 40
        self._q = 0

    # station side
    def send(self, kind: str, *fields: object, seq: int | None = None) -> int:
        if seq is None:
            self._seq += 1
            seq = self._seq
        self.ctl.feed(codec.encode(seq, kind, fields))
        return seq

    def messages(self) -> list[codec.Message]:
        lines = bytes(self.out).split(b"\n")
        self.out.clear()
        msgs = [codec.decode(line) for line in lines if line]
        for m in msgs:  # ACK what the controller sends, like the station does
            if m.kind not in ("ACK", "NAK"):
                self.ctl.feed(codec.encode(m.seq, "ACK"))
        self.out.clear()
        return msgs

    def kinds(self, kind: str) -> list[codec.Message]:
        return [m for m in self.messages() if m.kind == kind]

    # sensors
    def run(self, ms: int) -> None:
        for _ in range(ms):
            self.clock.advance(1)
            self.ctl.poll()

    def move(self, counts: int) -> None:
        """Turn the encoder forward by ``counts`` (2 quadrature steps each), polling as we go."""
        for _ in range(counts * 2):
            self._q += 1
            a, b = QUAD[self._q % 4]
            self.board.drive(PINS.PIN_ENC_B, b)
            self.board.drive(PINS.PIN_ENC_A, a)
            self.ctl.poll()

    def eye(self, level: int, hold_ms: int = 0) -> None:
        self.board.drive(PINS.PIN_PHOTO_EYE, level)
        self.run(hold_ms)

    def mask_passes_eye(self) -> None:
        self.eye(1, 20)
        self.move(10)
        self.eye(0, 20)

    def level(self, pin: int) -> int:
        return self.board.level(pin)


@pytest.fixture
def bench() -> Bench:
    b = Bench()
    b.send("HELLO", 1, "test")
    b.messages()
    return b


def reject_counts(b: Bench) -> int:
    return b.cfg.counts(b.cfg.reject_distance_mm + b.cfg.reject_offset_mm)


# ------------------------------------------------------------------------- debounce / eye
def test_debouncer_ignores_bounces_and_stamps_the_first_stable_edge() -> None:
    d = FW.controller.Debouncer(0, 8, SimClock().diff)
    changes = []
    levels = [1, 1, 0, 1, 0] + [1] * 12 + [0] * 5 + [1] * 10
    for t, level in enumerate(levels):
        if d.update(level, t, tag=100 + t):
            changes.append((t, d.state, d.edge_ms, d.edge_tag))
    # The stable run of 1s began at t=5; accepted 8 ms later; the 5 ms drop-out is ignored.
    assert changes == [(13, 1, 5, 105)]


def test_photo_eye_trigger_carries_mask_number_encoder_count_and_edge_time(bench: Bench) -> None:
    bench.move(100)
    edge_ms = (bench.clock.ms() + 1) % (1 << 30)
    bench.eye(1, 1)
    bench.eye(0, 1)  # 1 ms glitch
    bench.eye(1, 30)
    trig = bench.kinds("TRIG")
    assert len(trig) == 1
    assert trig[0].fields[:2] == ("1", "100")
    assert int(trig[0].fields[2]) == (edge_ms + 2) % (1 << 30)  # start of the stable run
    assert bench.ctl.counts.triggers == 1


def test_short_glitches_never_trigger(bench: Bench) -> None:
    for _ in range(20):
        bench.eye(1, bench.cfg.eye_debounce_ms - 2)
        bench.eye(0, 3)
    assert bench.kinds("TRIG") == []


def test_a_second_beam_break_within_the_mask_pitch_is_not_a_new_mask(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.move(20)  # an ear loop flapping 10 mm behind the mask
    bench.mask_passes_eye()
    bench.move(300)
    bench.mask_passes_eye()
    assert [m.fields[0] for m in bench.kinds("TRIG")] == ["1", "2"]
    assert bench.ctl.counts.eye_glitches == 1


# ------------------------------------------------------------------------- reject
def test_reject_fires_at_an_encoder_distance_however_long_it_takes(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.messages()
    bench.send("VERDICT", 1, "FAIL")
    bench.move(reject_counts(bench) - 10 - 1)  # the 10 counts the mask moved under the eye
    bench.run(60_000)  # belt stopped for a minute: time alone must not fire the flap
    assert bench.level(PINS.PIN_REJECT) == 0
    bench.move(1)
    assert bench.level(PINS.PIN_REJECT) == 1
    rejected = bench.kinds("REJECTED")
    assert [(m.fields[0], m.fields[1]) for m in rejected] == [("1", "FAIL")]
    bench.run(bench.cfg.reject_pulse_ms + 1)
    assert bench.level(PINS.PIN_REJECT) == 0
    assert bench.ctl.counts.rejected_fail == 1


def test_missing_verdict_is_rejected_fail_safe_and_a_late_verdict_never_fires_again(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.move(reject_counts(bench))
    assert bench.level(PINS.PIN_REJECT) == 1
    assert [(m.fields[0], m.fields[1]) for m in bench.kinds("REJECTED")] == [("1", "NOVERDICT")]
    bench.run(500)
    seq = bench.send("VERDICT", 1, "PASS")  # too late
    assert (seq, "ACK") in [(m.seq, m.kind) for m in bench.messages()]
    bench.move(500)
    assert bench.kinds("REJECTED") == []
    c = bench.ctl.counts
    assert (c.rejected_noverdict, c.late_verdicts, c.passed) == (1, 1, 0)


def test_pass_is_not_rejected_and_a_fail_is(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.move(300)
    bench.mask_passes_eye()
    bench.send("VERDICT", 1, "PASS")
    bench.send("VERDICT", 2, "FAIL")
    fires = []
    for _ in range(reject_counts(bench) + 400):
        bench.move(1)
        if bench.level(PINS.PIN_REJECT):
            fires.append(bench.ctl.io.encoder.count())
            bench.run(bench.cfg.reject_pulse_ms + 1)
    assert len(fires) == 1
    assert [(m.fields[0], m.fields[1]) for m in bench.kinds("REJECTED")] == [("2", "FAIL")]
    assert (bench.ctl.counts.passed, bench.ctl.counts.rejected_fail) == (1, 1)


def test_duplicated_verdict_line_is_reacked_and_never_acted_twice(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.messages()
    seq = bench.send("VERDICT", 1, "FAIL")
    bench.send("VERDICT", 1, "FAIL", seq=seq)  # the same line again (our ACK was lost)
    acks = [m for m in bench.messages() if m.kind == "ACK" and m.seq == seq]
    assert len(acks) == 2
    assert bench.ctl.link.dup_lines == 1
    bench.move(reject_counts(bench) + 300)
    assert len(bench.kinds("REJECTED")) == 1
    assert bench.ctl.counts.dup_verdicts == 0  # suppressed by sequence number, not re-applied


def test_conflicting_second_verdict_fails_safe(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.send("VERDICT", 1, "PASS")
    bench.send("VERDICT", 1, "FAIL")  # a new message, contradicting: reject
    bench.move(reject_counts(bench) + 10)
    assert [m.fields[1] for m in bench.kinds("REJECTED")] == ["FAIL"]
    assert bench.ctl.counts.dup_verdicts == 1


def test_garbage_is_nakd_counted_and_never_acted_upon(bench: Bench) -> None:
    bench.mask_passes_eye()
    line = bytearray(codec.encode(99, "VERDICT", (1, "FAIL")))
    line[5] ^= 0x01  # one bit flipped on the wire
    bench.ctl.feed(bytes(line))
    bench.ctl.feed(b"\x00\xffnoise\n$1,VERDICT,1,FAIL\n")  # and a line without a CRC
    naks = [m for m in bench.messages() if m.kind == "NAK"]
    assert [n.seq for n in naks] == [0, 0, 0]
    assert {n.fields[0] for n in naks} == {"CRC", "FORMAT"}
    assert bench.ctl.link.bad_lines == 3
    bench.send("VERDICT", 1, "PASS")
    bench.move(reject_counts(bench) + 10)
    assert bench.kinds("REJECTED") == []
    assert bench.ctl.counts.passed == 1


def test_intact_but_invalid_messages_are_refused(bench: Bench) -> None:
    s1 = bench.send("FROB", 1)
    s2 = bench.send("VERDICT", 1, "MAYBE")
    s3 = bench.send("HELLO", 2, "future-station")
    naks = {m.seq: m.fields[0] for m in bench.messages() if m.kind == "NAK"}
    assert naks == {s1: "TYPE", s2: "FIELD", s3: "VERSION"}


def test_controller_retransmits_until_acknowledged() -> None:
    b = Bench(retry_ms=200, max_tries=3, watchdog_ms=100_000)
    b.send("HELLO", 1, "t")
    b.messages()  # ACKs HELLO + STATUS
    b.mask_passes_eye()
    first = bytes(b.out)
    assert b"TRIG" in first
    b.out.clear()
    b.run(201)
    assert bytes(b.out) == first  # same line, same sequence number
    b.out.clear()
    b.run(2000)
    assert b.ctl.link.dropped == 1 and b.ctl.link.retransmits == 2


# ------------------------------------------------------------------------- e-stop
def test_estop_stops_everything_and_latches_until_cleared(bench: Bench) -> None:
    bench.send("BELT", "RUN", 60)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 1
    assert bench.board.pwms[PINS.PIN_BELT_PWM].duty == 60 * 65535 // 100
    bench.messages()
    bench.board.drive(PINS.PIN_ESTOP, 1)  # pressed
    bench.run(1)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0
    assert bench.board.pwms[PINS.PIN_BELT_PWM].duty == 0
    assert bench.level(PINS.PIN_LIGHT_RED) == 1 and bench.level(PINS.PIN_LIGHT_GREEN) == 0
    assert ("ESTOP", "1") in [m.fields for m in bench.kinds("FAULT")]
    seq = bench.send("CLEAR")
    assert [m.fields for m in bench.messages() if m.kind == "NAK" and m.seq == seq] == [("STATE",)]
    bench.board.drive(PINS.PIN_ESTOP, 0)  # released: still latched
    bench.run(500)
    assert bench.ctl.estop_latched and bench.level(PINS.PIN_BELT_ENABLE) == 0
    seq = bench.send("BELT", "RUN", 60)
    assert [m.fields for m in bench.messages() if m.kind == "NAK" and m.seq == seq] == [("STATE",)]
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0
    bench.send("CLEAR")
    faults = [m.fields for m in bench.kinds("FAULT")]
    assert ("ESTOP", "0") in faults
    assert not bench.ctl.estop_latched
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0  # clearing never restarts the belt by itself
    bench.send("BELT", "RUN", 60)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 1


def test_estop_press_is_reported_and_software_estop_latches_too(bench: Bench) -> None:
    bench.send("BELT", "RUN", 50)
    bench.messages()
    bench.board.drive(PINS.PIN_ESTOP, 1)
    bench.run(1)
    assert ("ESTOP", "1") in [m.fields for m in bench.kinds("FAULT")]
    bench.board.drive(PINS.PIN_ESTOP, 0)
    bench.run(100)
    bench.send("CLEAR")
    bench.send("BELT", "RUN", 50)
    bench.send("ESTOP")
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0 and bench.ctl.estop_latched
    assert bench.ctl.counts.estops == 2


def test_estop_also_drops_a_firing_reject_actuator(bench: Bench) -> None:
    bench.mask_passes_eye()
    bench.move(reject_counts(bench))
    assert bench.level(PINS.PIN_REJECT) == 1
    bench.board.drive(PINS.PIN_ESTOP, 1)
    bench.run(1)
    assert bench.level(PINS.PIN_REJECT) == 0


# ------------------------------------------------------------------------- watchdog / lights
def test_watchdog_stops_the_belt_shows_amber_and_reports() -> None:
    b = Bench(watchdog_ms=1500)
    b.send("HELLO", 1, "t")
    b.send("BELT", "RUN", 80)
    b.messages()
    for _ in range(10):  # heartbeats keep it running (the ticks wrap in here)
        b.run(1000)
        b.send("HB")
    assert b.level(PINS.PIN_BELT_ENABLE) == 1 and b.level(PINS.PIN_LIGHT_GREEN) == 1
    b.messages()
    b.run(1500)
    assert b.level(PINS.PIN_BELT_ENABLE) == 1  # exactly N ms is still fine
    b.run(1)
    assert b.level(PINS.PIN_BELT_ENABLE) == 0
    assert b.level(PINS.PIN_LIGHT_AMBER) == 1 and b.level(PINS.PIN_LIGHT_GREEN) == 0
    assert [m.fields for m in b.kinds("FAULT")] == [("WATCHDOG", "1")]
    b.run(5000)
    assert b.ctl.counts.watchdog_trips == 1
    b.send("HB")
    assert [m.fields for m in b.kinds("FAULT")] == [("WATCHDOG", "0")]
    assert b.level(PINS.PIN_BELT_ENABLE) == 0  # stays stopped until the station says RUN
    b.send("BELT", "RUN", 80)
    assert b.level(PINS.PIN_BELT_ENABLE) == 1


def test_watchdog_is_not_armed_before_the_station_first_speaks() -> None:
    b = Bench(watchdog_ms=100)
    b.run(1000)
    assert b.ctl.counts.watchdog_trips == 0


def test_stack_light_shows_the_last_outcome_and_chirps_on_reject(bench: Bench) -> None:
    bench.send("BELT", "RUN", 50)
    bench.mask_passes_eye()
    bench.move(300)
    bench.mask_passes_eye()
    bench.send("VERDICT", 1, "PASS")
    bench.send("VERDICT", 2, "FAIL")
    assert bench.level(PINS.PIN_LIGHT_GREEN) == 1
    bench.move(reject_counts(bench) - 10 - 300 + 1)  # mask 1 at the flap: passes
    assert bench.level(PINS.PIN_LIGHT_GREEN) == 1 and bench.level(PINS.PIN_LIGHT_RED) == 0
    bench.move(300)  # mask 2 at the flap: rejected
    assert bench.level(PINS.PIN_LIGHT_RED) == 1 and bench.level(PINS.PIN_LIGHT_GREEN) == 0
    assert bench.level(PINS.PIN_BUZZER) == 1
    bench.run(bench.cfg.red_chirp_ms + 1)
    assert bench.level(PINS.PIN_BUZZER) == 0 and bench.level(PINS.PIN_LIGHT_RED) == 1


def test_status_and_counts_report_the_state(bench: Bench) -> None:
    bench.send("BELT", "RUN", 42)
    bench.messages()
    bench.send("STATUS")
    (status,) = bench.kinds("STATUS")
    assert status.fields == ("RUN", "42", "0", "NONE", "0", "0")
    bench.send("COUNTS")
    (counts,) = bench.kinds("COUNTS")
    assert "triggers=0" in counts.fields and "rejected_noverdict=0" in counts.fields


def test_a_photo_eye_blocked_longer_than_any_mask_stops_the_belt(bench: Bench) -> None:
    bench.send("BELT", "RUN", 50)
    bench.messages()
    bench.eye(1, 20)
    bench.move(bench.cfg.counts(bench.cfg.max_block_mm) + 2)  # a jam / dirty lens
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0
    assert ("EYE", "1") in [m.fields for m in bench.kinds("FAULT")]
    seq = bench.send("BELT", "RUN", 50)
    assert [m.fields for m in bench.messages() if m.kind == "NAK" and m.seq == seq] == [("STATE",)]
    bench.send("CLEAR")  # still blocked: the fault stays
    assert bench.ctl.eye_fault
    bench.eye(0, 20)
    bench.send("CLEAR")
    assert ("EYE", "0") in [m.fields for m in bench.kinds("FAULT")]
    bench.send("BELT", "RUN", 50)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 1


def test_an_overtaken_command_is_never_applied_out_of_order(bench: Bench) -> None:
    # RUN (seq 60) was lost on the wire; STOP (61) arrived; then RUN's retransmission arrives.
    bench.send("BELT", "STOP", seq=61)
    bench.send("BELT", "RUN", 50, seq=60)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 0
    # The same for CLEAR overtaken by a newer ESTOP.
    bench.send("ESTOP", seq=63)
    bench.send("CLEAR", seq=62)
    assert bench.ctl.estop_latched
    assert bench.ctl.counts.stale_commands == 2
    acks = {m.seq for m in bench.messages() if m.kind == "ACK"}
    assert {60, 61, 62, 63} <= acks  # acknowledged (so not resent), just not applied
    bench.send("CLEAR", seq=64)
    bench.send("BELT", "RUN", 50, seq=65)
    assert bench.level(PINS.PIN_BELT_ENABLE) == 1


# ------------------------------------------------------------------------- main.py on a "Pico"
def _pico(monkeypatch: pytest.MonkeyPatch, service_jumper: bool) -> FakeMachine:
    """A fake board installed as the ``machine`` module, with MicroPython's ticks on ``time``."""
    import sys
    import time

    board = FakeMachine()
    for pin in (PINS.PIN_ESTOP, PINS.PIN_PHOTO_EYE, PINS.PIN_ENC_A, PINS.PIN_ENC_B):
        board.levels[pin] = 0
    board.levels[PINS.PIN_SERVICE] = 0 if service_jumper else 1
    monkeypatch.setitem(sys.modules, "machine", board)
    clock = SimClock()
    monkeypatch.setattr(time, "ticks_ms", clock.ms, raising=False)
    monkeypatch.setattr(time, "ticks_diff", clock.diff, raising=False)
    monkeypatch.setattr(time, "ticks_add", clock.add, raising=False)
    board.sim_clock = clock  # type: ignore[attr-defined]
    return board


def test_main_run_stays_out_of_the_way_with_the_service_jumper(monkeypatch: pytest.MonkeyPatch) -> None:
    board = _pico(monkeypatch, service_jumper=True)
    assert FW.main.run() is None
    assert board.uarts == {} and board.wdt is None  # nothing started, REPL free


def test_main_run_boots_answers_and_feeds_the_hardware_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    board = _pico(monkeypatch, service_jumper=False)
    monkeypatch.setattr(FW.config, "LINK", "uart")

    class PowerOff(Exception):
        pass

    def feed(wdt: object) -> None:  # one main-loop pass per millisecond
        board.sim_clock.advance(1)  # type: ignore[attr-defined]
        n = board.sim_clock.now  # type: ignore[attr-defined]
        if n == 5:
            board.uarts[0].rx += codec.encode(9, "HELLO", (1, "station"))
        if n == 10:
            board.uarts[0].rx += codec.encode(10, "BELT", ("RUN", 30))
        if n > 50:
            raise PowerOff

    monkeypatch.setattr(board.WDT, "feed", feed)
    with pytest.raises(PowerOff):
        FW.main.run()
    assert board.wdt is not None and board.wdt.timeout == 2000
    sent = [codec.decode(x) for x in bytes(board.uarts[0].tx).split(b"\n") if x]
    kinds = [m.kind for m in sent]
    assert kinds[0] == "HELLO"  # the boot announcement
    assert {(m.kind, m.seq) for m in sent if m.kind == "ACK"} == {("ACK", 9), ("ACK", 10)}
    assert board.level(PINS.PIN_BELT_ENABLE) == 1
    assert board.pwms[PINS.PIN_BELT_PWM].duty == 30 * 65535 // 100
