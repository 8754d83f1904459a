"""ConveyorLink: the station's end of the serial link to the conveyor controller (pyserial).

Protocol v1 (``firmware/protocol.md``). A reader thread owns the port: it opens it, says
HELLO, reads lines and dispatches them; when the port disappears (USB unplugged) it closes it
and reopens with exponential backoff, forever, until :meth:`ConveyorLink.close`. A second
thread sends the heartbeat that keeps the controller's watchdog quiet and retransmits
messages that were not acknowledged in time (kept across reconnects, so a verdict sent while
the cable was out still arrives).

Trigger events go to ``on_trigger`` (e.g. ``ConveyorTrigger.feed``) and to the queue read by
:meth:`next_trigger`. Their ``seq`` is the station's: it stays unique when the controller
reboots and starts counting masks at 1 again; :meth:`send_verdict` maps it back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from qc_station.hardware import codec
from qc_station.hardware.events import TriggerEvent
from qc_station.hardware.reports import (
    ControllerCounts,
    ControllerInfo,
    ControllerStatus,
    FaultReport,
    LinkStats,
    RejectReport,
)

log = logging.getLogger(__name__)


def _open_serial(port: str, baudrate: int) -> Any:
    import serial  # pyserial

    return serial.Serial(port, baudrate=baudrate, timeout=0.02, write_timeout=0.5, exclusive=True)


class ConveyorLink:
    """Serial driver for the conveyor controller. Use as a context manager or call
    :meth:`start` / :meth:`close`.

    >>> with ConveyorLink("/dev/serial/by-id/usb-MicroPython_Board-if00",
    ...                   on_trigger=trigger.feed) as link:       # doctest: +SKIP
    ...     link.wait_connected(5.0)
    ...     link.belt_run(75)
    ...     event = link.next_trigger(timeout_s=2.0)
    ...     link.send_verdict(event.seq, passed=True)
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        heartbeat_ms: int = 200,
        retry_ms: int = 150,
        max_tries: int = 20,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        station_name: str = "qc-station",
        on_trigger: Callable[[TriggerEvent], Any] | None = None,
        on_reject: Callable[[RejectReport], Any] | None = None,
        on_fault: Callable[[FaultReport], Any] | None = None,
        serial_factory: Callable[[str, int], Any] = _open_serial,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.heartbeat_ms = heartbeat_ms
        self.retry_ms = retry_ms
        self.max_tries = max_tries
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.station_name = station_name
        self.on_trigger = on_trigger
        self.on_reject = on_reject
        self.on_fault = on_fault
        self._serial_factory = serial_factory

        self.stats = LinkStats()
        self.info: ControllerInfo | None = None
        self.status: ControllerStatus | None = None
        self.counts: ControllerCounts | None = None
        self.faults: set[str] = set()
        # The most recent flap rejects, for status pages; bounded so a long shift can't grow it.
        self.rejections: deque[RejectReport] = deque(maxlen=1024)
        self.triggers: queue.Queue[TriggerEvent] = queue.Queue()

        self._lock = threading.RLock()  # state below + writes
        self._serial: Any = None
        self._connected = threading.Event()  # HELLO answered on the current connection
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tx_seq = random.randint(1, codec.SEQ_MAX)  # a restarted station never looks like a duplicate
        self._pending: dict[int, list[Any]] = {}  # seq -> [line, last_sent, tries, kind]
        self._recent_rx: deque[int] = deque(maxlen=64)
        self._asm = codec.LineAssembler()
        self._status_event = threading.Condition(self._lock)
        self._counts_event = threading.Condition(self._lock)
        # Controller mask id <-> station seq (unique across controller reboots).
        self._boot_id: int | None = None
        self._seq_offset = 0
        self._max_seq = 0
        self._mask_of_seq: dict[int, tuple[int | None, int]] = {}
        self._seen_masks: deque[int] = deque(maxlen=512)
        self._seen_rejects: deque[int] = deque(maxlen=512)
        self._hello_seq = 0
        self._hello_at = 0.0
        self._last_state_seq: dict[str, int] = {}  # controller seq of the last applied report

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ConveyorLink:
        """Start the reader and heartbeat threads (returns at once; see :meth:`wait_connected`)."""
        for name, target in (("conveyor-reader", self._reader), ("conveyor-heartbeat", self._ticker)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop the threads and release the port."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._drop_port()

    def __enter__(self) -> ConveyorLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """The port is open and the controller answered our HELLO."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    # ------------------------------------------------------------------ commands
    def send_verdict(self, seq: int, passed: bool) -> bool:
        """Tell the controller what to do with mask ``seq`` (a TriggerEvent.seq). Returns False
        when the mask belongs to a previous controller boot (it was already rejected fail-safe)."""
        with self._lock:
            boot, mask_id = self._mask_of_seq.get(seq, (self._boot_id, seq - self._seq_offset))
            if boot != self._boot_id or mask_id < 1:
                self.stats.stale_verdicts += 1
                return False
            self._send("VERDICT", (mask_id, "PASS" if passed else "FAIL"))
        return True

    def belt_run(self, speed_pct: int) -> None:
        self._send("BELT", ("RUN", int(speed_pct)))

    def belt_stop(self) -> None:
        self._send("BELT", ("STOP",))

    def belt_speed(self, speed_pct: int) -> None:
        self._send("BELT", ("SPEED", int(speed_pct)))

    def estop(self) -> None:
        """Software e-stop: latches in the controller exactly like the button."""
        self._send("ESTOP")

    def clear(self) -> None:
        """Clear a latched e-stop (refused by the controller while the button is still pressed)."""
        self._send("CLEAR")

    def request_status(self, timeout_s: float = 1.0) -> ControllerStatus | None:
        with self._lock:
            before = self.status
            self._send("STATUS")
            self._status_event.wait_for(lambda: self.status is not before, timeout_s)
            return self.status if self.status is not before else None

    def request_counts(self, timeout_s: float = 1.0) -> ControllerCounts | None:
        with self._lock:
            before = self.counts
            self._send("COUNTS")
            self._counts_event.wait_for(lambda: self.counts is not before, timeout_s)
            return self.counts if self.counts is not before else None

    def next_trigger(self, timeout_s: float | None = None) -> TriggerEvent | None:
        try:
            return self.triggers.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def pending(self) -> int:
        """Messages sent and not yet acknowledged."""
        with self._lock:
            return len(self._pending)

    # ------------------------------------------------------------------ sending
    def _send(self, kind: str, fields: tuple[object, ...] = (), reliable: bool = True) -> int:
        with self._lock:
            self._tx_seq = codec.next_seq(self._tx_seq)
            line = codec.encode(self._tx_seq, kind, fields)
            if reliable:
                self._pending[self._tx_seq] = [line, time.monotonic(), 1, kind]
            self._write(line)
            return self._tx_seq

    def _write(self, data: bytes) -> None:
        with self._lock:
            port = self._serial
            if port is None:
                return  # retransmitted after the reconnect
            try:
                port.write(data)
            except Exception as exc:  # pyserial raises SerialException / OSError / timeouts
                log.warning("conveyor link: write failed (%s)", exc)
                self._drop_port()

    # ------------------------------------------------------------------ threads
    def _reader(self) -> None:
        delay = self.reconnect_min_s
        while not self._stop.is_set():
            if self._serial is None:
                try:
                    port = self._serial_factory(self.port, self.baudrate)
                except Exception as exc:
                    log.debug("conveyor link: cannot open %s (%s), retry in %.2fs", self.port, exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.reconnect_max_s)
                    continue
                delay = self.reconnect_min_s
                with self._lock:
                    self._serial = port
                    self._asm = codec.LineAssembler()
                    log.info("conveyor link: %s open, saying HELLO", self.port)
                    self._say_hello()
            port = self._serial
            if port is None:
                continue
            try:
                data = port.read(256)
            except Exception as exc:
                log.warning("conveyor link: read failed (%s); reconnecting", exc)
                self._drop_port()
                continue
            if data:
                self._feed(data)

    def _ticker(self) -> None:
        last_hb = 0.0
        while not self._stop.wait(0.01):
            now = time.monotonic()
            with self._lock:
                if self._serial is None:
                    continue
                if (
                    not self._connected.is_set()
                    and self._hello_seq not in self._pending
                    and now - self._hello_at >= 1.0
                ):
                    self._say_hello()  # nobody answered (firmware still booting?): ask again
                if self._connected.is_set() and now - last_hb >= self.heartbeat_ms / 1000:
                    last_hb = now
                    self._send("HB", reliable=False)  # the next one replaces a lost one
                for seq, entry in list(self._pending.items()):
                    if now - entry[1] < self.retry_ms / 1000:
                        continue
                    if entry[2] >= self.max_tries:
                        del self._pending[seq]
                        self.stats.dropped += 1
                        log.error("conveyor link: gave up on %s (seq %d)", entry[3], seq)
                        continue
                    entry[1] = now
                    entry[2] += 1
                    self.stats.retransmits += 1
                    self._write(entry[0])

    def _say_hello(self) -> None:
        self._hello_at = time.monotonic()
        self._hello_seq = self._send("HELLO", (codec.PROTOCOL_VERSION, self.station_name))

    def _drop_port(self) -> None:
        with self._lock:
            port, self._serial = self._serial, None
            was_connected = self._connected.is_set()
            self._connected.clear()
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
            if was_connected and not self._stop.is_set():
                self.stats.reconnects += 1

    # ------------------------------------------------------------------ receiving
    def _feed(self, data: bytes) -> None:
        for item in self._asm.feed(data):
            if isinstance(item, str):
                self._garbage(0, item)
                continue
            try:
                msg = codec.decode(item)
            except codec.ProtocolError as exc:
                self._garbage(exc.seq, exc.reason)
                continue
            if msg.kind == "ACK":
                with self._lock:
                    self._pending.pop(msg.seq, None)
            elif msg.kind == "NAK":
                self._on_nak(msg)
            elif msg.seq == 0:
                self._garbage(0, codec.NAK_FORMAT)
            elif msg.kind != "HELLO" and msg.seq in self._recent_rx:
                self.stats.dup_lines += 1
                self._write(codec.encode(msg.seq, "ACK"))
            else:
                try:
                    reason = self._handle(msg)
                except (codec.ProtocolError, ValueError, TypeError, IndexError) as exc:
                    reason = getattr(exc, "reason", codec.NAK_FIELD)
                if reason is None:
                    self._recent_rx.append(msg.seq)
                    self._write(codec.encode(msg.seq, "ACK"))
                else:
                    self._write(codec.encode(msg.seq, "NAK", (reason,)))

    def _garbage(self, seq: int, reason: str) -> None:
        self.stats.bad_lines += 1
        self._write(codec.encode(seq, "NAK", (reason,)))

    def _on_nak(self, msg: codec.Message) -> None:
        self.stats.naks_received += 1
        with self._lock:
            if msg.seq == 0:
                now = time.monotonic()
                for entry in self._pending.values():
                    entry[1] = now
                    self.stats.retransmits += 1
                    self._write(entry[0])
            else:
                entry = self._pending.pop(msg.seq, None)
                if entry is not None:
                    self.stats.refused += 1
                    reason = msg.fields[0] if msg.fields else "?"
                    log.warning("conveyor controller refused %s: %s", entry[3], reason)

    def _handle(self, msg: codec.Message) -> str | None:
        f = msg.fields
        if msg.kind == "TRIG":
            mask_id, belt_position, _ctl_ms = int(f[0]), int(f[1]), int(f[2])
            self._on_trig(mask_id, belt_position)
        elif msg.kind == "REJECTED":
            mask_id, reason, belt_position = int(f[0]), f[1], int(f[2])
            with self._lock:
                seq = self._seq_offset + mask_id
                if seq in self._seen_rejects:
                    return None
                self._seen_rejects.append(seq)
                report = RejectReport(seq, reason, belt_position)
                self.rejections.append(report)
            self._call(self.on_reject, report)
        elif msg.kind == "FAULT":
            report = FaultReport(f[0], f[1] == "1")
            if not self._newer("FAULT:" + report.code, msg.seq):
                return None  # a retransmitted old report arriving after a newer one
            with self._lock:
                (self.faults.add if report.active else self.faults.discard)(report.code)
            log.warning("conveyor fault %s %s", report.code, "raised" if report.active else "cleared")
            self._call(self.on_fault, report)
        elif msg.kind == "STATUS":
            status = ControllerStatus(f[0] == "RUN", int(f[1]), f[2] == "1", f[3], int(f[4]), int(f[5]))
            if not self._newer("STATUS", msg.seq):
                return None
            with self._lock:
                self.status = status
                self._status_event.notify_all()
        elif msg.kind == "COUNTS":
            counts = ControllerCounts.from_fields(f)
            if not self._newer("COUNTS", msg.seq):
                return None
            with self._lock:
                self.counts = counts
                self._counts_event.notify_all()
        elif msg.kind == "HELLO":
            info = ControllerInfo(int(f[0]), f[1], int(f[2]))
            if info.protocol_version != codec.PROTOCOL_VERSION:
                log.error(
                    "conveyor controller speaks protocol v%d, we speak v%d",
                    info.protocol_version,
                    codec.PROTOCOL_VERSION,
                )
                return codec.NAK_VERSION
            with self._lock:
                self._recent_rx.clear()
                if self._boot_id is not None and info.boot_id != self._boot_id:
                    log.warning(
                        "conveyor controller rebooted (boot id %d -> %d)", self._boot_id, info.boot_id
                    )
                    self._seq_offset = self._max_seq
                    self._last_state_seq.clear()
                self._boot_id = info.boot_id
                self.info = info
                self._connected.set()
        else:
            return codec.NAK_TYPE
        return None

    def _newer(self, key: str, seq: int) -> bool:
        """State reports (STATUS, FAULT, COUNTS) are applied only when newer than the last one
        applied: a retransmission of an old one may arrive after a newer one."""
        with self._lock:
            last = self._last_state_seq.get(key)
            if last is not None and not 0 < (seq - last) % (codec.SEQ_MAX + 1) < 32768:
                return False
            self._last_state_seq[key] = seq
            return True

    def _on_trig(self, mask_id: int, belt_position: int) -> None:
        with self._lock:
            seq = self._seq_offset + mask_id
            if seq in self._seen_masks:
                return  # a retransmitted TRIG whose ACK was lost: never inspect a mask twice
            self._seen_masks.append(seq)
            self._max_seq = max(self._max_seq, seq)
            self._mask_of_seq[seq] = (self._boot_id, mask_id)
            if len(self._mask_of_seq) > 4096:
                self._mask_of_seq.pop(next(iter(self._mask_of_seq)))
        event = TriggerEvent(seq=seq, timestamp=time.time(), origin="conveyor", belt_position=belt_position)
        self.triggers.put(event)
        self._call(self.on_trigger, event)

    @staticmethod
    def _call(callback: Callable[[Any], Any] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            callback(arg)
        except Exception:
            log.exception("conveyor link: callback %r failed", callback)
