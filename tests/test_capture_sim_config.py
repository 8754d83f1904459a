"""SimSource (with a stand-in simulator, and once with the real one), CaptureConfig / make_source."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

from qc_station.capture import (
    SIM_TRUTH_KEY,
    FolderConfig,
    OpenCVConfig,
    Picamera2Config,
    SimConfig,
    make_source,
    parse_capture_config,
)
from qc_station.capture.folder_source import FolderSource
from qc_station.capture.opencv_source import OpenCVSource
from qc_station.capture.picamera2_source import Picamera2Source
from qc_station.capture.reconnect import ReconnectingSource
from qc_station.capture.sim_source import SimSource
from qc_station.capture.triggers import PlacementTrigger
from qc_station.errors import ConfigError
from qc_station.sim.camera import CameraModel
from qc_station.sim.truth import MaskTruth, SceneTruth


def fake_sim() -> types.SimpleNamespace:
    """The simulator's public API, drawing a flat rectangle: fast and exact."""
    calls = {"render": 0}

    def default_camera():
        return CameraModel(image_size=(320, 180), fx=300.0, fy=300.0, cx=160.0, cy=90.0,
                           tvec_mm=(0.0, 0.0, 350.0), name="fake")

    def random_mask_params(rng, defects=()):
        return types.SimpleNamespace(center=(float(rng.uniform(-60, 60)), float(rng.uniform(-30, 30))),
                                     defects=tuple(defects))

    def render_scene(camera, params, rng, *, unusable=(), tray=None):
        calls["render"] += 1
        img = np.full((180, 320, 3), 60, np.uint8)
        if "no_mask" in unusable or params is None:
            return img, SceneTruth(mask=None, unusable=("no_mask",))
        u, v = camera.project(np.array([[*params.center, 0.0]]))[0]
        cv2.rectangle(img, (int(u - 45), int(v - 24)), (int(u + 45), int(v + 24)), (210, 200, 230), -1)
        truth = MaskTruth(width_mm=180.0, height_mm=95.0, center_tray_mm=params.center, angle_deg=0.0,
                          pleats=3, ear_loops_left=1, ear_loops_right=1, stitch_length_mm=2.5,
                          seam_distance_mm=5.0)
        return img, SceneTruth(mask=truth, unusable=tuple(unusable))

    return types.SimpleNamespace(default_camera=default_camera, random_mask_params=random_mask_params,
                                 render_scene=render_scene, calls=calls)


def test_tray_mode_plays_placements_and_the_trigger_fires_once_each():
    sim = fake_sim()
    src = SimSource(mode="tray", seed=7, empty_frames=4, hands_frames=3, still_frames=20,
                    defect_rates={}, unusable_rates={}, sim=sim)
    trig = PlacementTrigger()
    fired_on = []
    with src:
        frames = [src.read() for _ in range(3 * (4 + 3 + 20 + 3))]
    for f in frames:
        if trig.update(f) is not None:
            fired_on.append(f)
    phases = [f.metadata["sim_phase"] for f in frames[:30]]
    assert phases == ["empty"] * 4 + ["placing"] * 3 + ["placed"] * 20 + ["removing"] * 3
    assert len(fired_on) == 3
    assert [f.metadata["sim_placement"] for f in fired_on] == [0, 1, 2]
    assert all(f.metadata["sim_phase"] == "placed" for f in fired_on)
    truth = fired_on[0].metadata[SIM_TRUTH_KEY]
    assert isinstance(truth, SceneTruth) and truth.mask is not None and truth.mask.width_mm == 180.0
    assert frames[0].metadata[SIM_TRUTH_KEY].mask is None  # the empty tray
    assert sim.calls["render"] == 4  # one empty tray + one render per placement, not per frame
    # Fresh sensor noise on every frame: still frames are not bit-identical.
    still = [f for f in frames if f.metadata["sim_phase"] == "placed"][:2]
    assert not np.array_equal(still[0].image_bgr, still[1].image_bgr)


def test_defect_mix_follows_the_configured_rates():
    src = SimSource(mode="conveyor", seed=3, defect_rates={"stain": 1.0, "hole": 0.0, "width": 0.5},
                    unusable_rates={"blur": 0.0}, sim=fake_sim(), noise_sigma=0)
    with src:
        frames = [src.read() for _ in range(200)]
    stains = sum("stain" in f.metadata["sim_defects"] for f in frames)
    holes = sum("hole" in f.metadata["sim_defects"] for f in frames)
    widths = sum("width" in f.metadata["sim_defects"] for f in frames)
    assert stains == 200 and holes == 0 and 70 <= widths <= 130
    assert [f.metadata["belt_index"] for f in frames[:3]] == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown defect"):
        SimSource(defect_rates={"scorch": 0.1}, sim=fake_sim())


def test_fps_pacing_uses_the_injected_clock():
    t = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        t[0] += s

    src = SimSource(mode="conveyor", fps=4.0, sim=fake_sim(), clock=lambda: t[0], sleep=sleep)
    with src:
        for _ in range(3):
            src.read()
    assert slept == [0.25, 0.25]


@pytest.mark.slow
def test_real_simulator_tray_keeps_one_tray_and_lamp_between_masks():
    src = SimSource(mode="tray", seed=11, empty_frames=2, hands_frames=1, still_frames=5,
                    defect_rates={}, unusable_rates={})
    with src:
        if src._station is None:
            pytest.skip("the simulator's parts for fixed-tray rendering changed; SimSource fell back")
        frames = [src.read() for _ in range(2 + 1 + 5 + 1 + 2)]
    empty_before, placed, empty_after = frames[0], frames[3], frames[-1]
    assert placed.image_bgr.shape == (1296, 2304, 3)
    truth = placed.metadata[SIM_TRUTH_KEY]
    assert truth.mask is not None and 170 < truth.mask.width_mm < 190
    # The same tray and light before and after the mask: only noise differs.
    diff = np.abs(empty_before.image_bgr.astype(int) - empty_after.image_bgr.astype(int))
    assert np.percentile(diff, 99) <= 12
    trig = PlacementTrigger()
    assert sum(trig.update(f) is not None for f in frames) == 1


# -- config --------------------------------------------------------------------------------------

def test_make_source_builds_each_type(tmp_path):
    cam = make_source({"type": "picamera2", "lens_position": 2.9})
    assert isinstance(cam, ReconnectingSource) and isinstance(cam.inner, Picamera2Source)
    assert cam.inner.resolution == (2304, 1296) and cam.inner.lens_position == 2.9
    usb = make_source(OpenCVConfig(device=0, width=1920, height=1080, fourcc="MJPG",
                                   reconnect={"enabled": False}))
    assert isinstance(usb, OpenCVSource) and usb.resolution == (1920, 1080)
    video = make_source({"type": "opencv", "device": str(tmp_path / "v.avi")})
    assert isinstance(video, OpenCVSource)  # a file is not reconnected
    folder = make_source(FolderConfig(path=str(tmp_path), mode="watch"))
    assert isinstance(folder, FolderSource) and folder.mode == "watch"
    sim = make_source({"type": "sim", "mode": "conveyor", "seed": 4, "defect_rates": {"stain": 0.2}})
    assert isinstance(sim, SimSource) and sim.defect_rates == {"stain": 0.2}


def test_capture_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"capture\.picamera2\.lens_postion"):
        parse_capture_config({"type": "picamera2", "lens_postion": 2.9})  # typo
    with pytest.raises(ConfigError, match="type"):
        parse_capture_config({"type": "webcam"})
    with pytest.raises(ConfigError, match="unknown code 'scorch'"):
        parse_capture_config({"type": "sim", "defect_rates": {"scorch": 0.1}})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        parse_capture_config({"type": "sim", "unusable_rates": {"blur": 1.5}})
    cfg = parse_capture_config({"type": "picamera2"})
    assert isinstance(cfg, Picamera2Config) and cfg.reconnect.max_backoff_s == 30.0
    assert isinstance(parse_capture_config({"type": "sim"}), SimConfig)
