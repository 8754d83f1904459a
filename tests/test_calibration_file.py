"""station.json round trip and identity, image errors, and the `calibrate` command end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_calibration_synthetic import BOARD, random_pose, warp_view

from qc_station.calibration import load_calibration
from qc_station.calibration.station import calibrate
from qc_station.cli import main
from qc_station.errors import CalibrationError, ImageError

K = np.array([[1150.0, 0, 641.0], [0, 1150.0, 362.0], [0, 0, 1]])


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """8 board views + a plane view + a blank one, as PNG files."""
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(11)
    (folder / "views").mkdir()
    for k in range(8):
        cv2.imwrite(str(folder / "views" / f"view{k:02d}.png"), warp_view(K, *random_pose(rng), rng))
    cv2.imwrite(str(folder / "views" / "view99-blank.png"), np.full((720, 1280), 90, np.uint8))
    rvec = np.array([0.02, 0.01, -0.1])
    tvec = np.array([0.0, 0.0, 380.0]) - cv2.Rodrigues(rvec)[0] @ np.array([100.0, 75.0, 0.0])
    cv2.imwrite(str(folder / "plane.png"), warp_view(K, rvec, tvec, rng))
    return folder


@pytest.fixture(scope="module")
def station(image_dir):
    views = sorted(str(p) for p in (image_dir / "views").glob("*.png"))
    return calibrate(views, image_dir / "plane.png", BOARD)


def test_rejected_views_are_recorded(station):
    assert len(station.views_used) == 8
    assert [r.image.endswith("view99-blank.png") for r in station.views_rejected] == [True]
    assert "blank" in station.views_rejected[0].reason


def test_round_trip_and_stable_id(station, tmp_path):
    path = station.save(tmp_path / "station.json")
    loaded = load_calibration(path)
    assert loaded == station and loaded.id == station.id
    data = json.loads(path.read_text())
    for field in ("id", "camera_matrix", "dist_coeffs", "image_size", "rms_px", "tray_rvec",
                  "tray_tvec_mm", "mm_per_px", "board", "schema_version"):
        assert field in data
    assert data["image_size"] == [1280, 720] and len(data["camera_matrix"]) == 3
    # Same content -> same id, whenever it was made; any content change -> another id.
    later = station.model_copy(update={"created_at": "2030-01-01T00:00:00+00:00"})
    assert later.content_hash() == station.id
    assert station.model_copy(update={"mm_per_px": station.mm_per_px * 1.01}).content_hash() != station.id


def test_edited_file_is_refused(station, tmp_path):
    path = station.save(tmp_path / "station.json")
    data = json.loads(path.read_text())
    data["mm_per_px"] = data["mm_per_px"] * 1.02
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="modified after it was written"):
        load_calibration(path)


def test_missing_and_corrupt_images_are_named(image_dir, tmp_path):
    views = sorted(str(p) for p in (image_dir / "views").glob("view0*.png"))
    with pytest.raises(ImageError, match=r"image not found: .*nope\.png"):
        calibrate([str(tmp_path / "nope.png"), *views], image_dir / "plane.png", BOARD)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(ImageError, match=r"cannot decode image .*corrupt.png"):
        calibrate([str(corrupt), *views], image_dir / "plane.png", BOARD)
    with pytest.raises(ImageError, match=r"corrupt\.png"):
        calibrate(views, corrupt, BOARD)


def test_plane_image_without_board_is_refused(image_dir):
    views = sorted(str(p) for p in (image_dir / "views").glob("view0*.png"))
    with pytest.raises(CalibrationError, match=r"plane image .*view99-blank\.png: board not found"):
        calibrate(views, image_dir / "views" / "view99-blank.png", BOARD)


def test_cli_calibrate_prints_and_writes(image_dir, tmp_path, capsys):
    out = tmp_path / "station.json"
    code = main(["calibrate", "--images", str(image_dir / "views" / "*.png"),
                 "--plane", str(image_dir / "plane.png"), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "[9/9]" in text and "view99-blank.png: rejected: board not found" in text
    assert "view03.png: " in text and " corners" in text
    for words in ("RMS reprojection error", "per-view RMS", "fx ", "k1 ", "mm per px", "above the tray",
                  "squares measure 25.0"):
        assert words in text
    cal = load_calibration(out)
    assert cal.id in text and cal.rms_px < 0.3


def test_same_photos_give_the_same_id(image_dir, station):
    views = sorted(str(p) for p in (image_dir / "views").glob("*.png"))
    again = calibrate(views, image_dir / "plane.png", BOARD)
    changed = {k: v for k, v in again.model_dump().items() if v != getattr(station, k)}
    assert again.id == station.id, changed


def test_cli_calibrate_refuses_too_few_views(image_dir, tmp_path, capsys):
    code = main(["calibrate", "--images", str(image_dir / "views" / "view0[0-2].png"),
                 str(image_dir / "views" / "view99-blank.png"),
                 "--plane", str(image_dir / "plane.png"), "--out", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == CalibrationError.exit_code
    assert "only 3 usable view(s) of 4" in err and "view99-blank.png: board not found" in err
    assert not (tmp_path / "s.json").exists()


def test_cli_calibrate_missing_files(tmp_path, capsys):
    code = main(["calibrate", "--images", str(tmp_path / "none" / "*.png"), "--plane", "p.png",
                 "--out", str(tmp_path / "s.json")])
    assert code == ImageError.exit_code
    assert "no images match" in capsys.readouterr().err


def test_example_calibration_is_the_bundled_one():
    from pathlib import Path

    from qc_station.calibration import bundled_sim_calibration

    example = Path(__file__).resolve().parents[1] / "calibration" / "example-station.json"
    assert load_calibration(example).id == bundled_sim_calibration().id, (
        "copy qc_station/calibration/data/sim-default.json to calibration/example-station.json")
