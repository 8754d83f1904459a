"""The station's side of a conveyor: trigger events in, verdicts out, the link's health.

:class:`ConveyorBridge` sits between :class:`~qc_station.station.Station` and either

* the conveyor controller's serial link (:class:`~qc_station.hardware.link.ConveyorLink`,
  ``trigger.mode = "conveyor-serial"``): trigger events come from the controller, and every one
  is answered with a verdict so the controller can work the reject flap; or
* a photo-eye on a GPIO pin (:class:`~qc_station.capture.triggers.GpioPhotoEyeTrigger`,
  ``"conveyor-gpio"``): trigger events only, there is no flap to answer.

Rejecting is the safe side: a trigger whose frame could not be taken, an inspection that
crashed, an ``unusable`` frame and a ``fail`` are all answered FAIL; only ``pass`` is PASS. Link
trouble (cable out, controller watchdog, e-stop, jam) is a station fault in ``/api/health``,
never an exception in the station loop; the link reconnects on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qc_station.capture.triggers import TriggerEvent

log = logging.getLogger(__name__)

#: What each controller fault means for the operator (FAULT codes of firmware/protocol.md).
FAULT_WORDS = {
    "ESTOP": "e-stop latched at the conveyor: release the button, then clear it at the controller",
    "WATCHDOG": "the conveyor controller lost the station's heartbeat and stopped the belt",
    "EYE": "photo-eye blocked (jam or dirty lens): belt stopped, clear the belt",
    "OVERFLOW": "too many masks between the photo-eye and the reject flap: belt stopped",
}


class ConveyorBridge:
    """Trigger source + verdict sink of a conveyor station (see the module doc).

    Args:
        link: a started-by-us ConveyorLink (``conveyor-serial``), or None.
        trigger: a queue-like trigger with ``wait(timeout_s)`` and ``close()`` (``conveyor-gpio``).
        belt_speed_pct: run the belt at this speed when the link first comes up and after a
            watchdog stop (never after an e-stop: clearing an e-stop must not restart a machine).
        max_trigger_age_ms: older events are not photographed (the mask has left the view).
        on_change: called (no arguments) when the health changes, to publish it.
    """

    def __init__(
        self,
        *,
        link: Any = None,
        trigger: Any = None,
        belt_speed_pct: int | None = None,
        max_trigger_age_ms: float = 800.0,
        on_change: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (link is None) == (trigger is None):
            raise ValueError("a conveyor bridge needs exactly one of link / trigger")
        self.link = link
        self.trigger = trigger
        self.belt_speed_pct = belt_speed_pct
        self.max_trigger_age_ms = max_trigger_age_ms
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._was_connected: bool | None = None
        self._belt_started = False
        self._last_seq: int | None = None
        self.answered: Counter[str] = Counter()  # why -> verdicts sent ("pass", "fail", "unusable", ...)
        self.triggers = 0
        self.missed = 0  # gaps in the event sequence
        self.not_photographed = 0  # events too old when the station got to them
        self.rejected_at_flap = 0
        self.last_reject: str | None = None
        if link is not None:
            link.on_fault = self._on_fault
            link.on_reject = self._on_reject

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.link is not None:
            self.link.start()

    def close(self) -> None:
        """Stop the link's threads and release the port (or the GPIO pin)."""
        target = self.link if self.link is not None else self.trigger
        try:
            target.close()
        except Exception:  # shutting down must go on
            log.exception("closing the conveyor trigger failed")

    # ------------------------------------------------------------------ events in
    def wait(self, timeout_s: float) -> TriggerEvent | None:
        """The next trigger event, or None after ``timeout_s`` (also notices link changes)."""
        if self.link is None:
            event = self.trigger.wait(timeout_s)
        else:
            self._watch_connection()
            event = self.link.next_trigger(timeout_s=timeout_s)
        if event is not None:
            with self._lock:
                self.triggers += 1
                if self._last_seq is not None and event.seq > self._last_seq + 1:
                    self.missed += event.seq - self._last_seq - 1
                self._last_seq = event.seq
        return event

    def age_ms(self, event: TriggerEvent) -> float:
        return (self._clock() - event.timestamp) * 1000.0

    def is_stale(self, event: TriggerEvent) -> bool:
        """True when the mask of ``event`` has most likely left the camera's view."""
        return self.age_ms(event) > self.max_trigger_age_ms

    # ------------------------------------------------------------------ verdicts out
    def answer(self, event: TriggerEvent, passed: bool, why: str) -> None:
        """Send the verdict for ``event`` (PASS only for a pass; anything else rejects)."""
        with self._lock:
            self.answered[why] += 1
            if why == "stale":
                self.not_photographed += 1
        if why == "stale":
            log.warning("conveyor trigger %d is %.0f ms old: mask not photographed, rejecting it",
                        event.seq, self.age_ms(event))
            self._changed()
        if self.link is None:
            return  # a bare photo-eye has no flap to work
        try:
            if not self.link.send_verdict(event.seq, passed):
                log.warning("verdict for trigger %d not sent: the controller rebooted since "
                            "(it has rejected that mask fail-safe)", event.seq)
        except Exception:  # the link must never take the station down
            log.exception("sending the verdict for trigger %d failed", event.seq)

    # ------------------------------------------------------------------ link state
    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("publishing the conveyor health failed")

    def _watch_connection(self) -> None:
        connected = bool(self.link.connected)
        if connected == self._was_connected:
            return
        self._was_connected = connected
        if connected:
            log.info("conveyor controller connected on %s", self.link.port)
            if self.belt_speed_pct and not self._belt_started:
                self._belt_started = True
                self._belt_run()
        else:
            log.warning("conveyor controller not connected on %s (reconnecting)", self.link.port)
        self._changed()

    def _belt_run(self) -> None:
        try:
            self.link.belt_run(self.belt_speed_pct)
        except Exception:
            log.exception("starting the belt failed")

    def _on_fault(self, report: Any) -> None:
        # Called from the link's reader thread.
        if report.code == "WATCHDOG" and not report.active and self.belt_speed_pct:
            self._belt_run()  # the station is back: the watchdog stop was ours to undo
        self._changed()

    def _on_reject(self, report: Any) -> None:
        with self._lock:
            self.rejected_at_flap += 1
            self.last_reject = report.reason

    # ------------------------------------------------------------------ health
    def health(self):
        """A ComponentHealth: ok, ``disconnected`` or ``fault`` with words to act on."""
        from qc_station.station import ComponentHealth

        with self._lock:
            details: dict[str, Any] = {
                "triggers": self.triggers, "missed": self.missed, "not_photographed": self.not_photographed,
                "verdicts_pass": self.answered["pass"],
                "verdicts_fail": sum(n for why, n in self.answered.items() if why != "pass"),
            }
        if self.link is None:
            details["source"] = f"gpio:{getattr(self.trigger, 'pin', '?')}"
            return ComponentHealth(ok=True, state="ok", details=details)
        link = self.link
        faults = sorted(link.faults)
        info = link.info
        stats = link.stats
        details.update({
            "port": link.port, "connected": link.connected, "faults": ",".join(faults),
            "firmware": info.firmware_version if info else None, "boot_id": info.boot_id if info else None,
            "rejected_at_flap": self.rejected_at_flap, "reconnects": stats.reconnects,
            "retransmits": stats.retransmits, "dropped": stats.dropped, "bad_lines": stats.bad_lines,
        })
        if not link.connected:
            return ComponentHealth(
                ok=False, state="disconnected", details=details,
                message=f"conveyor controller not connected on {link.port}: check its USB cable "
                "(reconnecting; the controller stops the belt when the link is quiet)",
            )
        if faults:
            words = "; ".join(FAULT_WORDS.get(code, f"controller fault {code}") for code in faults)
            return ComponentHealth(ok=False, state="fault", message=words, details=details)
        return ComponentHealth(ok=True, state="ok", details=details)
