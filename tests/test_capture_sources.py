"""Frame, OpenCVSource (a real small video file), FolderSource (replay and hot folder)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_station.capture import EndOfStream, Frame, FrameTimeout
from qc_station.capture.folder_source import FolderSource
from qc_station.capture.opencv_source import OpenCVSource
from qc_station.errors import CameraError


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


# -- Frame ---------------------------------------------------------------------------------------

def test_frame_checks_its_image_and_freezes_metadata():
    img = np.zeros((4, 6, 3), np.uint8)
    f = Frame(img, 1.0, 0, "x", {"exposure_us": 100})
    assert f.size == (6, 4)
    with pytest.raises(TypeError):
        f.metadata["exposure_us"] = 5  # read-only mapping
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.seq = 3
    with pytest.raises(ValueError, match="H x W x 3"):
        Frame(np.zeros((4, 6), np.uint8), 1.0, 0, "x")
    with pytest.raises(ValueError, match="uint8"):
        Frame(np.zeros((4, 6, 3), np.float32), 1.0, 0, "x")


def test_metadata_json_is_json_safe():
    @dataclasses.dataclass(frozen=True)
    class Truth:
        width_mm: float
        codes: tuple[str, ...]

    f = Frame(np.zeros((2, 2, 3), np.uint8), 1.0, 0, "x",
              {"gains": (1.5, np.float32(2.0)), "truth": Truth(180.0, ("stain",)), "bad": float("nan")})
    out = json.loads(json.dumps(f.metadata_json()))
    assert out == {"gains": [1.5, 2.0], "truth": {"width_mm": 180.0, "codes": ["stain"]}, "bad": None}


# -- OpenCV: a real MJPG/avi written here ------------------------------------------------------

def _write_video(path: Path, n: int, size=(160, 120)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened(), "this OpenCV build cannot write MJPG/avi"
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, :, 2] = 40 + 20 * i  # red grows frame by frame
        img[:, :, 0] = 30
        writer.write(img)
    writer.release()


def test_opencv_source_reads_a_video_file_to_its_end(tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video, 5)
    with OpenCVSource(str(video)) as src:
        frames = [src.read(timeout_s=1.0) for _ in range(5)]
        with pytest.raises(EndOfStream):
            src.read(timeout_s=1.0)
        assert src.health().state == "ok"
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image_bgr.shape == (120, 160, 3)
    # BGR order survives: red (channel 2) grows, blue stays ~30 (JPEG tolerance).
    reds = [int(np.median(f.image_bgr[:, :, 2])) for f in frames]
    assert all(abs(r - (40 + 20 * i)) <= 6 for i, r in enumerate(reds)), reds
    assert abs(int(np.median(frames[0].image_bgr[:, :, 0])) - 30) <= 6
    assert frames[3].metadata["frame_index"] == 3
    assert src.health().frames_read == 5 and src.health().state == "closed"


def test_opencv_source_missing_file_and_device_are_camera_errors(tmp_path):
    with pytest.raises(CameraError, match="not found"):
        OpenCVSource(str(tmp_path / "nope.avi")).open()
    src = OpenCVSource(97)  # no /dev/video97 here
    assert src.kind == "device" and src.name == "opencv:97"
    with pytest.raises(CameraError, match="cannot open device"):
        src.open()
    assert OpenCVSource("rtsp://10.0.0.9/stream").kind == "stream"
    assert OpenCVSource("2").device == 2


# -- folder replay -----------------------------------------------------------------------------

def _img(value: int, size=(40, 30)) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.uint8)


def test_folder_replay_in_name_order_skips_corrupt_files_and_loops(tmp_path):
    cv2.imwrite(str(tmp_path / "b.png"), _img(20))
    cv2.imwrite(str(tmp_path / "a.jpg"), _img(10))
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # corrupt
    cv2.imwrite(str(tmp_path / "d.PNG"), _img(40))
    (tmp_path / "notes.txt").write_text("not an image")
    with FolderSource(tmp_path) as src:
        names = [src.read().metadata["file_name"] for _ in range(3)]
        with pytest.raises(EndOfStream):
            src.read()
        health = src.health()
    assert names == ["a.jpg", "b.png", "d.PNG"]
    assert health.decode_errors == 1 and "c.png" in health.last_error
    assert health.frames_read == 3

    with FolderSource(tmp_path, loop=True) as src:
        names = [src.read().metadata["file_name"] for _ in range(7)]
    assert names == ["a.jpg", "b.png", "d.PNG"] * 2 + ["a.jpg"]


def test_folder_replay_of_only_corrupt_files_ends_instead_of_spinning(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with FolderSource(tmp_path, loop=True) as src, pytest.raises(EndOfStream):
        src.read()
    assert src.health().decode_errors == 1


def test_missing_folder_is_a_camera_error(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        FolderSource(tmp_path / "nope").open()


# -- hot folder ----------------------------------------------------------------------------------

def test_hot_folder_waits_until_a_file_is_complete(tmp_path):
    clock = FakeClock()
    cv2.imwrite(str(tmp_path / "old.png"), _img(5))  # there before start: ignored
    src = FolderSource(tmp_path, mode="watch", stable_s=0.5, poll_s=0.1, clock=clock, sleep=clock.sleep)
    with src:
        with pytest.raises(FrameTimeout):
            src.read(timeout_s=1.0)

        _ok, png = cv2.imencode(".png", _img(77, (64, 48)))
        data = png.tobytes()
        target = tmp_path / "new.png"
        target.write_bytes(data[: len(data) // 2])  # half written
        # While the size keeps changing, nothing is read.
        with pytest.raises(FrameTimeout):
            src.read(timeout_s=0.3)
        target.write_bytes(data)  # now complete (size changes once more, then stays)
        t0 = clock.t
        frame = src.read(timeout_s=2.0)
        assert frame.metadata["file_name"] == "new.png"
        assert clock.t - t0 >= 0.5  # waited for the size to be stable
        assert int(frame.image_bgr.mean()) == 77

        # A corrupt drop is skipped and counted; the next good one is read.
        (tmp_path / "z_bad.jpg").write_bytes(b"\xff\xd8\xff junk")
        os.utime(tmp_path / "z_bad.jpg", (1, 1))  # oldest: read first
        cv2.imwrite(str(tmp_path / "z_good.png"), _img(99))
        frame = src.read(timeout_s=2.0)
        assert frame.metadata["file_name"] == "z_good.png"
        assert src.health().decode_errors == 1
        with pytest.raises(FrameTimeout):
            src.read(timeout_s=1.0)


def test_hot_folder_include_existing_takes_files_oldest_first(tmp_path):
    clock = FakeClock()
    for i, name in enumerate(["c.png", "a.png", "b.png"]):
        cv2.imwrite(str(tmp_path / name), _img(10 * i))
        os.utime(tmp_path / name, (100 + i, 100 + i))
    with FolderSource(tmp_path, mode="watch", include_existing=True, stable_s=0.2, clock=clock,
                      sleep=clock.sleep) as src:
        names = [src.read(timeout_s=1.0).metadata["file_name"] for _ in range(3)]
    assert names == ["c.png", "a.png", "b.png"]
