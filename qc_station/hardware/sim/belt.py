"""A simulated conveyor belt with masks, a photo-eye, a quadrature encoder and a reject flap.

Physics only: the belt moves at the speed the motor pins command (with a finite
acceleration), the encoder pins toggle in quadrature as it travels, the photo-eye sees the
masks' bodies (with edge bounce and fluttering ear loops), and the flap diverts whatever mask
is under it when the reject pin rises. It never looks at the controller's state; what
happened to each mask is recorded here and is the ground truth the tests check.

Belt coordinates: mm along the belt, photo-eye at 0, downstream positive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from qc_station.hardware.sim.fake_machine import FakeMachine

PASSED_OUT = "passed"  # went past the flap to the end of the belt
REJECTED = "rejected"  # diverted by the flap

_QUAD = ((0, 0), (1, 0), (1, 1), (0, 1))  # (A, B) forward sequence


@dataclass
class BeltMask:
    """One mask on the belt and what physically happened to it."""

    index: int
    start_mm: float  # leading (downstream) edge at belt travel 0; negative = still upstream
    length_mm: float  # along the belt
    loop_mm: float  # ear loops trailing behind the body
    hang_gap_mm: float = 0.0  # an ear loop hanging down behind the body: a second, solid beam
    hang_len_mm: float = 0.0  # break this far behind the tail, this long (0: none)
    defective: bool = False  # simulator truth (what the camera would show)
    case: Any = None  # optional simulator case for rendering its frame
    outcome: str | None = None
    fire_point_ms: int | None = None  # sim ms when its leading edge reached the controller's fire point
    hit_offset_mm: float | None = None  # where on the body the flap hit (0 = leading edge)

    def lead(self, travel_mm: float) -> float:
        return self.start_mm + travel_mm


@dataclass(frozen=True)
class BeltGeometry:
    """Where things are (mm) and how the drive behaves."""

    flap_mm: float = 1200.0  # reject flap downstream of the photo-eye
    fire_lead_mm: float = 1245.0  # leading edge position at which the controller should fire
    end_mm: float = 1500.0  # end of the belt (passed masks fall in the good bin)
    mm_per_count: float = 0.5
    max_speed_mm_s: float = 400.0  # at 100 % PWM
    accel_mm_s2: float = 2000.0


@dataclass
class BeltRecord:
    """Everything that physically happened."""

    misfires: int = 0  # flap fired with no mask under it
    double_hits: int = 0  # flap fired at a mask already rejected (impossible: it left the belt)
    fires: list[tuple[int, int | None]] = field(default_factory=list)  # (sim ms, mask index)


def make_masks(
    n: int,
    *,
    pitch_mm: float = 300.0,
    jitter_mm: float = 25.0,
    p_defective: float = 0.3,
    p_hanging_loop: float = 0.2,
    seed: int = 0,
) -> list[BeltMask]:
    """``n`` masks one pitch apart upstream of the eye (one per second at 300 mm/s); some have
    an ear loop hanging behind them that breaks the beam a second time."""
    rng = random.Random(seed)
    masks = []
    for i in range(n):
        hang = rng.random() < p_hanging_loop
        gap, length = (rng.uniform(4.0, 10.0), rng.uniform(4.0, 8.0)) if hang else (0.0, 0.0)
        masks.append(
            BeltMask(
                index=i,
                start_mm=-100.0 - i * pitch_mm + rng.uniform(-jitter_mm, jitter_mm),
                length_mm=rng.uniform(90.0, 100.0),
                loop_mm=max(rng.uniform(0.0, 25.0), gap + length),
                hang_gap_mm=gap,
                hang_len_mm=length,
                defective=rng.random() < p_defective,
            )
        )
    return masks


class SimBelt:
    """Drives the fake board's input pins from the belt's motion; watches its output pins."""

    def __init__(
        self,
        board: FakeMachine,
        pins: ModuleType,
        masks: list[BeltMask],
        geometry: BeltGeometry | None = None,
        *,
        seed: int = 0,
        clock_ms: Any = None,
    ) -> None:
        self.board = board
        self.pins = pins  # the firmware's config module (pin numbers)
        self.geo = geometry or BeltGeometry()
        self.masks = sorted(masks, key=lambda m: -m.start_mm)  # most downstream first
        self.rng = random.Random(seed)
        self.travel_mm = 0.0
        self.speed_mm_s = 0.0
        self.sim_ms = 0
        self.record = BeltRecord()
        self._q = 0
        self._eye_idx = 0  # first mask whose tail has not yet passed the eye
        self._fire_idx = 0  # first mask that has not reached the fire point
        self._end_idx = 0  # first mask still on the belt section before the end
        # Inputs as wired: e-stop NC closed (reads 0), eye clear, encoder at (0, 0).
        for pin_id in (pins.PIN_ESTOP, pins.PIN_PHOTO_EYE, pins.PIN_ENC_A, pins.PIN_ENC_B):
            board.levels[pin_id] = 0
        board.output_listeners.append(self._on_output)

    # ------------------------------------------------------------------ operator actions
    def press_estop(self) -> None:
        self.board.drive(self.pins.PIN_ESTOP, 1)

    def release_estop(self) -> None:
        self.board.drive(self.pins.PIN_ESTOP, 0)

    # ------------------------------------------------------------------ physics
    def step(self, dt_ms: int = 1) -> None:
        self.sim_ms += dt_ms
        dt = dt_ms / 1000.0
        pwm = self.board.pwms.get(self.pins.PIN_BELT_PWM)
        enabled = self.board.level(self.pins.PIN_BELT_ENABLE)
        target = self.geo.max_speed_mm_s * (pwm.duty if pwm else 0) / 65535 if enabled else 0.0
        dv = self.geo.accel_mm_s2 * dt
        self.speed_mm_s = (
            min(target, self.speed_mm_s + dv)
            if target >= self.speed_mm_s
            else max(target, self.speed_mm_s - dv)
        )
        self.travel_mm += self.speed_mm_s * dt
        self._encoder()
        self._eye()
        self._progress()

    def _encoder(self) -> None:
        q = int(self.travel_mm // (self.geo.mm_per_count / 2))
        while self._q != q:
            self._q += 1 if q > self._q else -1
            a, b = _QUAD[self._q % 4]
            # Only one channel changes per quadrature step.
            self.board.drive(self.pins.PIN_ENC_B, b)
            self.board.drive(self.pins.PIN_ENC_A, a)

    def _eye(self) -> None:
        masks, t = self.masks, self.travel_mm
        while self._eye_idx < len(masks) and (
            masks[self._eye_idx].outcome is not None
            or masks[self._eye_idx].lead(t) - masks[self._eye_idx].length_mm - masks[self._eye_idx].loop_mm
            > 1.0
        ):
            self._eye_idx += 1
        blocked = False
        for m in masks[self._eye_idx : self._eye_idx + 2]:
            lead = m.lead(t)
            tail = lead - m.length_mm
            if tail + 0.4 <= 0.0 <= lead - 0.4:
                blocked = True  # the body
            elif abs(lead) < 0.4 or abs(tail) < 0.4:
                blocked = blocked or self.rng.random() < 0.5  # edge bounce
            elif m.hang_len_mm and tail - m.hang_gap_mm - m.hang_len_mm <= 0.0 <= tail - m.hang_gap_mm:
                blocked = True  # a hanging loop: long enough to pass the debounce
            elif tail - m.loop_mm <= 0.0 < tail:
                blocked = blocked or self.rng.random() < 0.2  # a dangling ear loop flutters
        self.board.drive(self.pins.PIN_PHOTO_EYE, 1 if blocked else 0)

    def _progress(self) -> None:
        masks, t = self.masks, self.travel_mm
        while self._fire_idx < len(masks) and masks[self._fire_idx].lead(t) >= self.geo.fire_lead_mm:
            masks[self._fire_idx].fire_point_ms = self.sim_ms
            self._fire_idx += 1
        while self._end_idx < len(masks) and (
            masks[self._end_idx].outcome is not None
            or masks[self._end_idx].lead(t) - masks[self._end_idx].length_mm > self.geo.end_mm
        ):
            if masks[self._end_idx].outcome is None:
                masks[self._end_idx].outcome = PASSED_OUT
            self._end_idx += 1

    def _on_output(self, pin_id: int, level: int) -> None:
        if pin_id != self.pins.PIN_REJECT or not level:
            return
        t, flap = self.travel_mm, self.geo.flap_mm
        hit = None
        for m in self.masks[self._end_idx :]:
            lead = m.lead(t)
            if lead < flap:
                break
            if lead - m.length_mm <= flap <= lead and m.outcome is None:
                hit = m
                break
        self.record.fires.append((self.sim_ms, hit.index if hit else None))
        if hit is None:
            self.record.misfires += 1
            return
        hit.outcome = REJECTED
        hit.hit_offset_mm = hit.lead(t) - flap

    # ------------------------------------------------------------------ queries
    def mask_at_eye(self, belt_position_counts: int, tolerance_mm: float = 15.0) -> BeltMask | None:
        """The mask whose leading edge was at the photo-eye when the encoder read this count
        (what a camera triggered by that event photographs)."""
        travel = belt_position_counts * self.geo.mm_per_count
        best, best_err = None, tolerance_mm
        for m in self.masks:
            err = abs(m.lead(travel))
            if err <= best_err:
                best, best_err = m, err
        return best

    def done(self) -> bool:
        """Every mask has left the belt (rejected or out the end)."""
        return all(m.outcome is not None for m in self.masks)
