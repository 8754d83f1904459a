"""What the conveyor controller reports to the station (decoded, typed)."""

from __future__ import annotations

from dataclasses import dataclass, fields

#: Why a mask was rejected at the flap.
REJECT_FAIL = "FAIL"  # the station said FAIL
REJECT_NOVERDICT = "NOVERDICT"  # no verdict had arrived when it reached the flap (fail safe)


@dataclass(frozen=True)
class RejectReport:
    """The controller fired the reject actuator for this mask."""

    seq: int  # station-side trigger seq (as in TriggerEvent.seq)
    reason: str  # REJECT_FAIL or REJECT_NOVERDICT
    belt_position: int  # encoder counts when it fired


@dataclass(frozen=True)
class FaultReport:
    """A fault was raised (``active``) or cleared: ``ESTOP``, ``WATCHDOG``, ``OVERFLOW``."""

    code: str
    active: bool


@dataclass(frozen=True)
class ControllerStatus:
    """The controller's state (STATUS message)."""

    running: bool
    speed_pct: int
    estop_latched: bool
    fault: str  # most important active fault, "NONE" when healthy
    belt_position: int
    in_flight: int  # masks between photo-eye and flap


@dataclass(frozen=True)
class ControllerCounts:
    """Counters since the controller booted (COUNTS message; unknown keys are ignored)."""

    triggers: int = 0
    passed: int = 0
    rejected_fail: int = 0
    rejected_noverdict: int = 0
    late_verdicts: int = 0
    dup_verdicts: int = 0
    eye_glitches: int = 0
    bad_lines: int = 0
    dup_lines: int = 0
    retransmits: int = 0
    dropped: int = 0
    watchdog_trips: int = 0
    estops: int = 0
    stale_commands: int = 0  # BELT / CLEAR overtaken by a newer command, ignored

    @classmethod
    def from_fields(cls, items: tuple[str, ...]) -> ControllerCounts:
        known = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for item in items:
            key, _, value = item.partition("=")
            if key in known and value.lstrip("-").isdigit():
                values[key] = int(value)
        return cls(**values)


@dataclass(frozen=True)
class ControllerInfo:
    """From the controller's HELLO."""

    protocol_version: int
    firmware_version: str
    boot_id: int


@dataclass
class LinkStats:
    """The station side's view of the link."""

    bad_lines: int = 0  # garbage / corrupt lines received (NAKed, ignored)
    dup_lines: int = 0  # duplicates received (re-ACKed, ignored)
    retransmits: int = 0
    dropped: int = 0  # messages given up after max tries
    naks_received: int = 0
    refused: int = 0  # NAKed by the controller as invalid in its state (e.g. BELT while e-stop)
    reconnects: int = 0
    stale_verdicts: int = 0  # verdicts for masks of a previous controller boot (not sent)
