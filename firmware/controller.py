# The conveyor controller's logic: photo-eye triggers, belt, e-stop latch, reject by encoder
# distance, stack light, watchdog, and the station link. Plain Python taking injected pins
# and clock, so the very same file runs on the Pico (main.py wires machine.Pin) and in the
# CPython tests (a fake machine module and a simulated belt). MicroPython subset only.

from debounce import Debouncer
from link import Link
from protocol import NAK_FIELD, NAK_STATE, NAK_TYPE, NAK_VERSION, PROTOCOL_VERSION, parse_uint

# Outcome of a mask at the reject point (also the REJECTED reason field).
PASSED = "PASS"
REJECT_FAIL = "FAIL"  # the station said FAIL
REJECT_NOVERDICT = "NOVERDICT"  # no verdict when it reached the flap: rejected fail-safe

FAULT_NONE = "NONE"
FAULT_ESTOP = "ESTOP"
FAULT_WATCHDOG = "WATCHDOG"
FAULT_OVERFLOW = "OVERFLOW"
FAULT_EYE = "EYE"  # beam blocked for longer than any mask: dirty lens, jam, misaligned sensor


class Io:
    """The controller's pins. Inputs have ``value()``; outputs ``value(v)``; ``belt_pwm`` has
    ``duty_u16(v)``; ``encoder`` has ``count()``."""

    def __init__(self, eye, estop, encoder, belt_enable, belt_pwm, reject, green, amber, red, buzzer):
        self.eye = eye
        self.estop = estop
        self.encoder = encoder
        self.belt_enable = belt_enable
        self.belt_pwm = belt_pwm
        self.reject = reject
        self.green = green
        self.amber = amber
        self.red = red
        self.buzzer = buzzer


class Counts:
    """What the controller has seen since boot (reported by COUNTS)."""

    NAMES = (
        "triggers",
        "passed",
        "rejected_fail",
        "rejected_noverdict",
        "late_verdicts",
        "dup_verdicts",
        "eye_glitches",
        "bad_lines",
        "dup_lines",
        "retransmits",
        "dropped",
        "watchdog_trips",
        "estops",
        "stale_commands",
    )

    def __init__(self):
        for name in self.NAMES:
            setattr(self, name, 0)


class Mask:
    """A mask between the photo-eye and the reject flap."""

    def __init__(self, mask_id, edge_count, fire_at_count):
        self.mask_id = mask_id
        self.edge_count = edge_count
        self.fire_at_count = fire_at_count
        self.verdict = None  # None (not yet), PASSED or REJECT_FAIL


class Controller:
    """Call ``feed(bytes)`` with whatever arrived from the station and ``poll()`` as often as
    possible (every millisecond or faster). Nothing here blocks or touches hardware directly."""

    def __init__(self, io, clock, write, config, boot_id=1, firmware_version="0"):
        self.io = io
        self.clock = clock
        self.cfg = config
        self.boot_id = boot_id
        self.firmware_version = firmware_version
        self.link = Link(write, clock, retry_ms=config.retry_ms, max_tries=config.max_tries)
        self.counts = Counts()
        now = clock.ms()
        self._eye = Debouncer(0, config.eye_debounce_ms, clock.diff)  # 1 = beam broken
        self._estop_release = Debouncer(1, config.estop_release_ms, clock.diff)  # 1 = released
        self._reject_counts = config.counts(config.reject_distance_mm + config.reject_offset_mm)
        self._min_pitch = config.counts(config.min_pitch_mm)
        self._next_mask = 1
        self._last_trigger_count = None
        self.in_flight = []
        self._finished = []  # (mask_id, outcome) of the last masks past the flap
        self.running = False
        self.speed_pct = 0
        self.estop_latched = False
        self.link_lost = False  # watchdog: no message from the station for watchdog_ms
        self.overflow = False
        self.eye_fault = False
        self._max_block = config.counts(config.max_block_mm)
        self._block_start = 0
        self._last_cmd_seq = None  # seq of the last BELT / ESTOP / CLEAR applied
        self._heard = False  # watchdog armed once the station has spoken
        self._last_rx = now
        self._reject_off_at = None
        self._chirp_until = None
        self.last_outcome = None
        self._apply_belt()
        # Announce the (re)boot: a station that is listening learns that mask numbers restart.
        self.link.send("HELLO", (PROTOCOL_VERSION, self.firmware_version, self.boot_id))
        self.poll()

    # ----------------------------------------------------------------- station link
    def feed(self, data):
        self.link.feed(data, self._handle)

    def _handle(self, seq, kind, fields):
        self._last_rx = self.clock.ms()
        self._heard = True
        if self.link_lost:
            self.link_lost = False  # the station is back; the belt stays stopped
            self._report_fault(FAULT_WATCHDOG, 0)
        if kind == "HB":
            return None
        if kind == "VERDICT":
            return self._on_verdict(fields)
        if kind == "HELLO":
            if not fields or parse_uint(fields[0]) != PROTOCOL_VERSION:
                return NAK_VERSION
            self.link.reset_rx()
            self._last_cmd_seq = None  # the station's sequence numbers start afresh
            self.link.send("HELLO", (PROTOCOL_VERSION, self.firmware_version, self.boot_id))
            self.send_status()
            return None
        if kind == "ESTOP":
            self._fresh_command(seq)
            self._latch_estop()  # always: stopping is never out of order
            return None
        if kind in ("BELT", "CLEAR") and not self._fresh_command(seq):
            # A retransmission of an older command overtaken by a newer one (its first copy
            # was lost): a RUN must not undo a later STOP, a CLEAR must not undo a later ESTOP.
            self.counts.stale_commands += 1
            return None
        if kind == "BELT":
            return self._on_belt(fields)
        if kind == "CLEAR":
            if self.io.estop.value() == self.cfg.estop_active or not self._estop_release.state:
                return NAK_STATE  # the button is still pressed: clearing must not restart anything
            if self.estop_latched:
                self.estop_latched = False
                self._report_fault(FAULT_ESTOP, 0)
            if self.overflow:
                self.overflow = False
                self._report_fault(FAULT_OVERFLOW, 0)
            if self.eye_fault and not self._eye.state:
                self.eye_fault = False
                self._report_fault(FAULT_EYE, 0)
            return None
        if kind == "STATUS":
            self.send_status()
            return None
        if kind == "COUNTS":
            self.send_counts()
            return None
        return NAK_TYPE

    def _fresh_command(self, seq):
        last = self._last_cmd_seq
        if last is not None and not 0 < (seq - last) % 65536 < 32768:
            return False
        self._last_cmd_seq = seq
        return True

    def _on_verdict(self, fields):
        if len(fields) != 2 or fields[1] not in (PASSED, REJECT_FAIL):
            return NAK_FIELD
        mask_id = parse_uint(fields[0])
        verdict = fields[1]
        for mask in self.in_flight:
            if mask.mask_id == mask_id:
                if mask.verdict is None:
                    mask.verdict = verdict
                else:
                    self.counts.dup_verdicts += 1
                    if verdict == REJECT_FAIL:
                        mask.verdict = REJECT_FAIL  # conflicting answers: fail safe
                return None
        # Not on the belt any more (or never was): acknowledged, never acted upon.
        for done_id, outcome in self._finished:
            if done_id == mask_id and outcome != REJECT_NOVERDICT:
                self.counts.dup_verdicts += 1
                return None
        self.counts.late_verdicts += 1
        return None

    def _on_belt(self, fields):
        if not fields:
            return NAK_FIELD
        if fields[0] == "STOP" and len(fields) == 1:
            self.running = False
        elif fields[0] in ("RUN", "SPEED") and len(fields) == 2:
            pct = parse_uint(fields[1], 100)
            if fields[0] == "RUN":
                if self.fault() != FAULT_NONE:
                    return NAK_STATE
                if pct == 0:
                    return NAK_FIELD
                self.running = True
            self.speed_pct = pct
        else:
            return NAK_FIELD
        self._apply_belt()
        self.send_status()
        return None

    def send_status(self):
        self.link.send(
            "STATUS",
            (
                "RUN" if self.running else "STOP",
                self.speed_pct,
                1 if self.estop_latched else 0,
                self.fault(),
                self.io.encoder.count(),
                len(self.in_flight),
            ),
        )

    def send_counts(self):
        self._sync_link_counts()
        fields = []
        for name in Counts.NAMES:
            fields.append(name + "=" + str(getattr(self.counts, name)))
        self.link.send("COUNTS", fields)

    def _sync_link_counts(self):
        self.counts.bad_lines = self.link.bad_lines
        self.counts.dup_lines = self.link.dup_lines
        self.counts.retransmits = self.link.retransmits
        self.counts.dropped = self.link.dropped

    # ----------------------------------------------------------------- the loop
    def poll(self):
        now = self.clock.ms()
        count = self.io.encoder.count()
        self._check_estop(now)
        self._check_eye(now, count)
        self._check_reject(now, count)
        self._check_watchdog(now)
        self._update_lights(now)
        self.link.poll()

    def _check_estop(self, now):
        pressed = self.io.estop.value() == self.cfg.estop_active
        # Pressing acts on the very first sample (no debounce); release must be stable.
        self._estop_release.update(0 if pressed else 1, now)
        if pressed:
            self._estop_release.state = 0
            if not self.estop_latched:
                self._latch_estop()

    def _latch_estop(self):
        if self.estop_latched:
            return
        self.estop_latched = True
        self.counts.estops += 1
        self.running = False
        self._apply_belt()
        self.io.reject.value(0)
        self._reject_off_at = None
        self._report_fault(FAULT_ESTOP, 1)

    def _check_eye(self, now, count):
        active = 1 if self.io.eye.value() == self.cfg.eye_active else 0
        if not self._eye.update(active, now, count) or not self._eye.state:
            if self._eye.state and not self.eye_fault and count - self._block_start > self._max_block:
                # Blocked for longer than any mask: masks behind would pass untracked.
                self.eye_fault = True
                self.running = False
                self._apply_belt()
                self._report_fault(FAULT_EYE, 1)
            return
        edge = self._eye.edge_tag
        self._block_start = edge
        if self._last_trigger_count is not None and edge - self._last_trigger_count < self._min_pitch:
            self.counts.eye_glitches += 1  # a flapping ear loop, not a new mask
            return
        self._last_trigger_count = edge
        mask_id = self._next_mask
        self._next_mask += 1
        if len(self.in_flight) >= self.cfg.max_in_flight and not self.overflow:
            self.overflow = True  # more masks on the belt than it can hold: something is wrong
            self.running = False
            self._apply_belt()
            self._report_fault(FAULT_OVERFLOW, 1)
        self.in_flight.append(Mask(mask_id, edge, edge + self._reject_counts))
        self.counts.triggers += 1
        self.link.send("TRIG", (mask_id, edge, self._eye.edge_ms))

    def _check_reject(self, now, count):
        if self._reject_off_at is not None and self.clock.diff(now, self._reject_off_at) >= 0:
            self.io.reject.value(0)
            self._reject_off_at = None
        while self.in_flight and count >= self.in_flight[0].fire_at_count:
            mask = self.in_flight.pop(0)
            if mask.verdict == PASSED:
                outcome = PASSED
                self.counts.passed += 1
            else:
                outcome = REJECT_FAIL if mask.verdict == REJECT_FAIL else REJECT_NOVERDICT
                if outcome == REJECT_FAIL:
                    self.counts.rejected_fail += 1
                else:
                    self.counts.rejected_noverdict += 1
                self.io.reject.value(1)
                self._reject_off_at = self.clock.add(now, self.cfg.reject_pulse_ms)
                self._chirp_until = self.clock.add(now, self.cfg.red_chirp_ms)
                self.link.send("REJECTED", (mask.mask_id, outcome, count))
            self.last_outcome = outcome
            self._finished.append((mask.mask_id, outcome))
            if len(self._finished) > 32:
                self._finished.pop(0)

    def _check_watchdog(self, now):
        if not self._heard or self.link_lost:
            return
        if self.clock.diff(now, self._last_rx) > self.cfg.watchdog_ms:
            self.link_lost = True
            self.counts.watchdog_trips += 1
            self.running = False
            self._apply_belt()
            self._report_fault(FAULT_WATCHDOG, 1)

    def fault(self):
        """The most important active fault, or NONE."""
        if self.estop_latched:
            return FAULT_ESTOP
        if self.link_lost:
            return FAULT_WATCHDOG
        if self.eye_fault:
            return FAULT_EYE
        if self.overflow:
            return FAULT_OVERFLOW
        return FAULT_NONE

    def _report_fault(self, code, active):
        self.link.send("FAULT", (code, active))
        self.send_status()

    def _apply_belt(self):
        on = self.running and not self.estop_latched
        self.io.belt_enable.value(1 if on else 0)
        self.io.belt_pwm.duty_u16((self.speed_pct * 65535) // 100 if on else 0)

    def _update_lights(self, now):
        # See README "Stack light": red = e-stop / last mask rejected, amber = link lost or
        # stopped, green = running and the last mask passed.
        green = amber = red = buzz = 0
        blink = (now // 500) & 1
        if self.estop_latched:
            red = 1
            buzz = 1 if (now // 250) % 4 == 0 else 0
        elif self.link_lost or self.overflow or self.eye_fault:
            amber = 1
            red = blink if (self.overflow or self.eye_fault) else 0
        elif not self.running:
            amber = blink
        elif self.last_outcome is None or self.last_outcome == PASSED:
            green = 1
        else:
            red = 1
        if self._chirp_until is not None:
            if self.clock.diff(now, self._chirp_until) < 0:
                buzz = 1
            else:
                self._chirp_until = None
        self.io.green.value(green)
        self.io.amber.value(amber)
        self.io.red.value(red)
        self.io.buzzer.value(buzz)
