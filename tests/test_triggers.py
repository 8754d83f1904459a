"""Triggers on synthetic frame sequences: exactly one inspection per mask laid on the tray."""

from __future__ import annotations

import sys
import threading
import types

import cv2
import numpy as np
import pytest

from qc_station.capture.frame import Frame
from qc_station.capture.triggers import (
    ConveyorTrigger,
    GpioPhotoEyeTrigger,
    ManualTrigger,
    PlacementState,
    PlacementTrigger,
    TriggerEvent,
)
from qc_station.errors import CameraError

W, H = 640, 360


class Scene:
    """A dark tray with vignetting and noise; masks and arms drawn on it."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W]
        vignette = 1.0 - 0.25 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2)
        tray = (55 * vignette)[..., None] * np.array([1.0, 1.05, 1.0])
        self.tray = np.clip(tray, 0, 255).astype(np.uint8)
        self.seq = 0
        cv2.setRNGSeed(seed)

    def frame(self, masks=(), arms=(), light: float = 1.0) -> Frame:
        img = self.tray.copy()
        for cx, cy, angle, colour in masks:
            box = cv2.boxPoints(((cx, cy), (180 * 1.4, 95 * 1.4), angle)).astype(np.int32)
            cv2.fillConvexPoly(img, box, colour)
            cv2.polylines(img, [box], True, (30, 30, 30), 2)  # the seam
        for tip_x, tip_y in arms:  # an arm from the bottom edge to (tip_x, tip_y)
            cv2.line(img, (int(tip_x) + 40, H + 20), (int(tip_x), int(tip_y)), (120, 150, 205), 60)
            cv2.circle(img, (int(tip_x), int(tip_y)), 35, (120, 150, 205), -1)
        if light != 1.0:
            img = cv2.convertScaleAbs(img, alpha=light)
        noise = np.empty(img.shape, np.int16)
        cv2.randn(noise, 0, 2.0)  # sensor noise (cv2's RNG: fast; seeded in __init__)
        img = cv2.add(img, noise, dtype=cv2.CV_8U)
        f = Frame(img, 1000.0 + self.seq * 0.2, self.seq, "synthetic")
        self.seq += 1
        return f


MASK_A = (250, 170, 8, (200, 190, 230))
MASK_B = (420, 200, -10, (90, 160, 60))


def _moving_arms(scene: Scene, n: int, masks=()) -> list[Frame]:
    return [scene.frame(masks, arms=[(200 + 37 * k, 120 + 25 * (k % 3)), (420 - 30 * k, 150)])
            for k in range(n)]


def _run(trigger: PlacementTrigger, frames: list[Frame]) -> list[TriggerEvent]:
    events = []
    for f in frames:
        ev = trigger.update(f)
        if ev is not None:
            events.append(ev)
    return events


def test_one_trigger_per_placement_over_a_realistic_session():
    s = Scene(1)
    frames: list[Frame] = []
    frames += [s.frame() for _ in range(10)]  # empty tray
    frames += _moving_arms(s, 4)  # hands come in (no mask yet)
    frames += _moving_arms(s, 4, masks=[MASK_A])  # laying the mask
    first_still = len(frames)
    frames += [s.frame([MASK_A]) for _ in range(60)]  # it lies there for a long time
    frames += _moving_arms(s, 5, masks=[MASK_A])  # hands take it away
    frames += [s.frame() for _ in range(8)]  # empty again
    frames += _moving_arms(s, 3, masks=[MASK_B])
    second_still = len(frames)
    frames += [s.frame([MASK_B]) for _ in range(30)]
    frames += _moving_arms(s, 3, masks=[MASK_B])
    frames += [s.frame() for _ in range(5)]

    trig = PlacementTrigger(stable_frames=3)
    events = _run(trig, frames)
    assert len(events) == 2, [e.frame_seq for e in events]
    # Fires within a few frames of the hands leaving, on a frame showing the mask at rest.
    assert first_still <= events[0].frame_seq <= first_still + 4
    assert second_still <= events[1].frame_seq <= second_still + 4
    assert [e.seq for e in events] == [1, 2] and all(e.origin == "placement" for e in events)
    assert trig.state is PlacementState.EMPTY  # re-armed at the end


def test_hands_resting_at_the_border_block_the_trigger_until_they_leave():
    s = Scene(2)
    frames = [s.frame() for _ in range(5)]
    frames += [s.frame([MASK_A], arms=[(250, 250)]) for _ in range(20)]  # still, but an arm in view
    leave = len(frames)
    frames += [s.frame([MASK_A]) for _ in range(10)]
    events = _run(PlacementTrigger(), frames)
    assert len(events) == 1 and events[0].frame_seq >= leave


def test_noise_lighting_flicker_and_empty_hands_never_fire():
    s = Scene(3)
    frames = [s.frame(light=1.0 + 0.03 * np.sin(k)) for k in range(40)]
    frames += _moving_arms(s, 6)  # someone reaches in and out without laying anything
    frames += [s.frame() for _ in range(20)]
    trig = PlacementTrigger()
    assert _run(trig, frames) == []
    assert trig.last is not None and trig.last.foreground_frac < 0.006


def test_nudged_mask_is_not_counted_twice_but_a_swapped_one_is():
    s = Scene(4)
    frames = [s.frame() for _ in range(5)]
    frames += [s.frame([MASK_A]) for _ in range(10)]
    nudged = (MASK_A[0] + 4, MASK_A[1] + 3, MASK_A[2] + 1, MASK_A[3])
    frames += _moving_arms(s, 2, masks=[MASK_A])
    frames += [s.frame([nudged]) for _ in range(10)]  # straightened a little: same mask
    frames += _moving_arms(s, 3, masks=[MASK_B])  # swapped without the tray being seen empty
    swap = len(frames)
    frames += [s.frame([MASK_B]) for _ in range(10)]
    events = _run(PlacementTrigger(), frames)
    assert len(events) == 2
    assert events[1].frame_seq >= swap


def test_known_background_and_reset():
    s = Scene(5)
    background = s.frame()
    trig = PlacementTrigger(stable_frames=2)
    trig.reset(background)
    assert trig.has_background
    # With the empty tray known, a mask already lying there at the first frame is found.
    events = _run(trig, [s.frame([MASK_B]) for _ in range(5)])
    assert len(events) == 1
    with pytest.raises(ValueError):
        PlacementTrigger(present_frac=0.001, empty_frac=0.01)


# -- manual ----------------------------------------------------------------------------------------

def test_manual_trigger_is_thread_safe_and_merges_presses_waiting_to_be_taken():
    trig = ManualTrigger()
    assert trig.poll() is None
    assert trig.wait(timeout_s=0.01) is None
    taken: list[TriggerEvent] = []
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set() or True:
            ev = trig.wait(timeout_s=0.05)
            if ev is not None:
                taken.append(ev)
            elif stop.is_set():
                return

    def presser() -> None:
        for _ in range(200):
            trig.fire(note="button")

    c = threading.Thread(target=consumer)
    c.start()
    pressers = [threading.Thread(target=presser) for _ in range(4)]
    for p in pressers:
        p.start()
    for p in pressers:
        p.join()
    stop.set()
    c.join(timeout=5)
    seqs = [e.seq for e in taken]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    assert len(taken) + trig.merged == 800  # every press either became a request or was merged
    assert all(e.origin == "manual" and e.note == "button" for e in taken)


# -- conveyor --------------------------------------------------------------------------------------

def test_conveyor_trigger_drops_duplicates_and_counts_gaps():
    trig = ConveyorTrigger()
    for seq in (1, 2, 2, 3, 6, 6, 7):  # a retransmitted 2 and 6; 4 and 5 lost
        trig.feed(TriggerEvent(seq=seq, timestamp=float(seq), belt_position=seq * 1000))
    got = []
    while (ev := trig.wait(timeout_s=0.01)) is not None:
        got.append((ev.seq, ev.belt_position))
    assert got == [(1, 1000), (2, 2000), (3, 3000), (6, 6000), (7, 7000)]
    assert (trig.received, trig.duplicates, trig.missed) == (5, 2, 2)


def test_conveyor_trigger_pumps_a_driver_generator_and_survives_overflow():
    trig = ConveyorTrigger(maxsize=3)

    def driver():
        for seq in range(1, 6):
            yield TriggerEvent(seq=seq, timestamp=0.0, belt_position=10 * seq)

    trig.pump(driver()).join(timeout=5)
    assert [trig.wait(0.01).seq for _ in range(3)] == [1, 2, 3]
    assert trig.wait(0.01) is None and trig.overflowed == 2


# -- GPIO photo-eye (fake gpiozero) -----------------------------------------------------------

class FakeInput:
    instances: list = []  # noqa: RUF012 - test double

    def __init__(self, pin, *, pull_up=False, bounce_time=None):
        self.pin, self.pull_up, self.bounce_time = pin, pull_up, bounce_time
        self.when_activated = None
        self.closed = False
        FakeInput.instances.append(self)

    def close(self):
        self.closed = True


def test_gpio_photo_eye_via_fake_gpiozero(monkeypatch):
    FakeInput.instances = []
    module = types.ModuleType("gpiozero")
    module.DigitalInputDevice = FakeInput
    monkeypatch.setitem(sys.modules, "gpiozero", module)
    trig = GpioPhotoEyeTrigger(17, bounce_s=0.03, clock=lambda: 42.0)
    dev = FakeInput.instances[0]
    assert (dev.pin, dev.pull_up, dev.bounce_time) == (17, True, 0.03)
    dev.when_activated()  # beam broken by a mask
    dev.when_activated()
    events = [trig.wait(0.01), trig.wait(0.01)]
    assert [(e.seq, e.origin, e.timestamp) for e in events] == [(1, "photo_eye", 42.0),
                                                                (2, "photo_eye", 42.0)]
    trig.close()
    assert dev.closed


def test_gpio_photo_eye_without_gpiozero_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    with pytest.raises(CameraError, match="python3-gpiozero"):
        GpioPhotoEyeTrigger(17)
