"""Run the real firmware against the simulated belt, talking over a real pseudo-terminal.

The host thread advances a simulated clock (``time_scale`` x wall time, in 1 ms steps),
steps the belt physics and the firmware's own main-loop function (``main.step``) and shuttles
bytes between the firmware's UART and the master side of a pty. The station's driver opens
the slave side by a stable symlink (like ``/dev/serial/by-id/...``), so unplugging
(:meth:`ControllerHost.unplug`) and plugging back in (:meth:`ControllerHost.replug`, a new pty
behind the same symlink) look to it exactly like a USB CDC device coming and going.

A :class:`LineFaults` injector can drop, duplicate, corrupt and interleave garbage lines in
both directions; a sniffer records when each VERDICT was actually handed to the firmware.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import tempfile
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qc_station.hardware import codec
from qc_station.hardware.sim.belt import BeltGeometry, BeltMask, SimBelt
from qc_station.hardware.sim.fake_machine import FakeMachine
from qc_station.hardware.sim.firmware import Firmware, SimClock, load_firmware

_GARBAGE = (
    b"\x00\xff\xfe garbage\n",
    b"$12,VERDICT,3,FAIL*0000\n",  # wrong CRC: must never reject mask 3
    b"$$$***\n",
    b"$7,TRIG,1,2\n",  # no CRC at all
    b"\x03\x04AT+RESET\r\n",
    b"$" + b"9" * 200 + b"\n",  # overlong
)


@dataclass
class LineFaults:
    """Per-line fault probabilities, applied independently in each direction."""

    p_drop: float = 0.0
    p_dup: float = 0.0
    p_corrupt: float = 0.0
    p_garbage: float = 0.0  # an extra garbage line before this one
    injected: dict[str, int] = field(
        default_factory=lambda: {"drop": 0, "dup": 0, "corrupt": 0, "garbage": 0}
    )

    def apply(self, line: bytes, rng: random.Random) -> bytes:
        out = b""
        if rng.random() < self.p_garbage:
            out += rng.choice(_GARBAGE)
            self.injected["garbage"] += 1
        if rng.random() < self.p_drop:
            self.injected["drop"] += 1
            return out
        if rng.random() < self.p_corrupt and len(line) > 3:
            i = rng.randrange(1, len(line) - 1)
            line = line[:i] + bytes([line[i] ^ (1 << rng.randrange(7)) or 0x41]) + line[i + 1 :]
            self.injected["corrupt"] += 1
        out += line
        if rng.random() < self.p_dup:
            out += line
            self.injected["dup"] += 1
        return out


class _LineSplitter:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [line + b"\n" for line in lines]


class ControllerHost:
    """The firmware + belt running in a thread at the far end of a pty."""

    def __init__(
        self,
        masks: list[BeltMask],
        *,
        time_scale: float = 5.0,
        config_overrides: dict[str, Any] | None = None,
        geometry: BeltGeometry | None = None,
        faults: LineFaults | None = None,
        seed: int = 0,
        clock_start_ms: int = (1 << 30) - 3000,  # wraps 3 s in: the firmware must be wrap-safe
        firmware: Firmware | None = None,
        step_ms: int = 1,
    ) -> None:
        self.fw = firmware or load_firmware()
        self.step_ms = step_ms  # firmware main-loop period in simulated ms
        self.error: BaseException | None = None
        self.time_scale = time_scale
        self.faults = faults or LineFaults()
        self.rng = random.Random(seed + 1)
        overrides = dict(config_overrides or {})
        self.cfg = self.fw.config.Config(**overrides)
        geo = geometry or BeltGeometry()
        geo = BeltGeometry(
            flap_mm=self.cfg.reject_distance_mm,
            fire_lead_mm=self.cfg.reject_distance_mm + self.cfg.reject_offset_mm,
            end_mm=max(geo.end_mm, self.cfg.reject_distance_mm + 300.0),
            mm_per_count=self.cfg.mm_per_count,
            max_speed_mm_s=geo.max_speed_mm_s,
            accel_mm_s2=geo.accel_mm_s2,
        )
        self.board = FakeMachine()
        self.belt = SimBelt(self.board, self.fw.config, masks, geo, seed=seed)
        self.clock = SimClock(clock_start_ms)
        self.uart = self.board.UART(0, 115200)
        self.transport = self.fw.main.UartTransport(self.uart)
        self.controller = self.fw.main.build(
            self.board, self.transport, self.clock, self.cfg, boot_id=1 + seed % 30000
        )
        self.lock = threading.RLock()  # hold it to look at the belt / controller consistently
        self.verdict_delivered_ms: dict[int, int] = {}  # mask id -> sim ms of first intact VERDICT
        self._tmp = tempfile.TemporaryDirectory(prefix="qc-conveyor-")
        self.port_path = str(Path(self._tmp.name) / "ttyCONVEYOR")
        self._master: int | None = None
        self._slave: int | None = None
        self._to_ctl = _LineSplitter()
        self._to_pi = _LineSplitter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sim_ms = 0
        self.replug()

    # ------------------------------------------------------------------ the cable
    def replug(self) -> None:
        """A new pty pair behind the symlink (the device re-enumerated)."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port_path)
        os.symlink(os.ttyname(slave), self.port_path)
        with self.lock:
            self._master, self._slave = master, slave

    def unplug(self) -> None:
        """The device disappears: the driver's reads and writes fail, the symlink goes away."""
        with self.lock:
            master, slave = self._master, self._slave
            self._master = self._slave = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port_path)
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)

    # ------------------------------------------------------------------ running
    def start(self) -> ControllerHost:
        self._thread = threading.Thread(target=self._run, name="conveyor-firmware-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.unplug()
        self._tmp.cleanup()

    def __enter__(self) -> ControllerHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_sim_ms(self, sim_ms: int, timeout_s: float = 30.0) -> bool:
        """Block until the simulation has run ``sim_ms`` milliseconds from its start."""
        deadline = time.monotonic() + timeout_s
        while self.sim_ms < sim_ms:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a firmware crash: on the Pico the hardware WDT would reset it
            self.error = exc
            raise

    def _loop(self) -> None:
        t0 = time.monotonic()
        step, dt = self.fw.main.step, self.step_ms
        while not self._stop.is_set():
            target = int((time.monotonic() - t0) * self.time_scale * 1000)
            with self.lock:
                self._pump_in()
                n = min(target - self.sim_ms, 20) // dt  # read the wire at least every 20 sim ms
                for _ in range(max(n, 0)):
                    self.sim_ms += dt
                    self.clock.advance(dt)
                    self.belt.step(dt)
                    step(self.controller, self.transport)
                self._pump_out()
            if n <= 0:
                time.sleep(0.0005)

    def _pump_in(self) -> None:
        if self._master is None:
            return
        try:
            if not select.select([self._master], [], [], 0)[0]:
                return
            data = os.read(self._master, 4096)
        except OSError:
            return  # nobody has the slave open right now
        for line in self._to_ctl.feed(data):
            wire = self.faults.apply(line, self.rng)
            self._sniff(wire)
            self.uart.rx += wire

    def _pump_out(self) -> None:
        if not self.uart.tx:
            return
        data, self.uart.tx = bytes(self.uart.tx), bytearray()
        if self._master is None:
            return  # unplugged: the bytes are lost, as on a real cable
        out = b"".join(self.faults.apply(line, self.rng) for line in self._to_pi.feed(data))
        with contextlib.suppress(OSError):
            os.write(self._master, out)

    def _sniff(self, wire: bytes) -> None:
        for raw in wire.split(b"\n"):
            try:
                msg = codec.decode(raw)
            except codec.ProtocolError:
                continue
            if msg.kind == "VERDICT" and msg.fields and msg.fields[0].isdigit():
                self.verdict_delivered_ms.setdefault(int(msg.fields[0]), self.sim_ms)
