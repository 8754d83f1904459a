"""``qc-station inspect``: the JSON Lines contract, bad input, annotation; ``spec teach``."""

from __future__ import annotations

import json
import tomllib
from importlib import resources

import cv2
import numpy as np
import pytest

from qc_station import sim
from qc_station.calibration import bundled_sim_calibration
from qc_station.cli import main
from qc_station.results import REASON_CODES
from qc_station.vision.annotate import _box_path, _project
from qc_station.vision.geometry import MaskPose

CONTRACT_KEYS = {"image", "verdict", "reasons", "measurements", "timing_ms"}
MEASUREMENT_KEYS = {"width_mm", "height_mm", "pleats", "ear_loops", "stitch_length_mm"}


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """A calibration file and three photos: a good mask, a mask with a missing loop, an empty tray."""
    d = tmp_path_factory.mktemp("station")
    cal_path = bundled_sim_calibration().save(d / "station.json")
    frames = {
        "good.png": sim.render_case(101),
        "loop.jpg": sim.render_case(21, defects=("ear_loop",)),
        "empty.png": sim.render_case(13, unusable=("no_mask",)),
    }
    paths = {}
    for name, (image, truth) in frames.items():
        cv2.imwrite(str(d / name), image)
        paths[name] = (str(d / name), image, truth)
    corrupt = d / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    paths["corrupt.jpg"] = (str(corrupt), None, None)
    return d, str(cal_path), paths


def _json_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_lines_contract_in_input_order(station, capsys):
    _d, cal, p = station
    order = ["loop.jpg", "corrupt.jpg", "good.png", "empty.png", "good.png"]
    rc = main(["inspect", *[p[n][0] for n in order], "--calibration", cal, "--json", "--no-model"])
    assert rc == 0
    lines = _json_lines(capsys)
    assert [x["image"] for x in lines] == [p[n][0] for n in order]
    for x in lines:
        assert set(x) >= CONTRACT_KEYS
        assert "defects" not in x and "anomaly_score" not in x  # no model: no classifier keys
        for r in x["reasons"]:
            assert r["code"] in REASON_CODES and r["message"]
    loop, corrupt, good, empty, good2 = lines
    assert loop["verdict"] == "fail" and "ear_loop" in [r["code"] for r in loop["reasons"]]
    r = next(r for r in loop["reasons"] if r["code"] == "ear_loop")
    assert {"value", "lower", "upper", "severity", "box_mm"} <= set(r)
    assert corrupt["verdict"] == "unusable" and [r["code"] for r in corrupt["reasons"]] == ["unreadable"]
    assert corrupt["measurements"] is None
    assert good["verdict"] == "pass" and good["reasons"] == []
    assert set(good["measurements"]) >= MEASUREMENT_KEYS
    truth = p["good.png"][2].mask
    assert abs(good["measurements"]["width_mm"] - truth.width_mm) < 0.5
    assert good["measurements"]["pleats"] == truth.pleats and good["measurements"]["ear_loops"] == 2
    assert good["timing_ms"]["total"] > 0 and good["provenance"]["model_sha256"] is None
    assert empty["verdict"] == "unusable" and [r["code"] for r in empty["reasons"]] == ["no_mask"]
    assert good2 == {**good, "timing_ms": good2["timing_ms"]}


def test_table_without_json(station, capsys):
    _d, cal, p = station
    assert main(["inspect", p["good.png"][0], p["corrupt.jpg"][0], "--calibration", cal, "--no-model"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "UNUSABLE" in out and "picture could not be read" in out


def test_missing_or_invalid_calibration_is_a_clear_error(station, tmp_path, capsys):
    _d, cal, p = station
    assert main(["inspect", p["good.png"][0], "--calibration", str(tmp_path / "nope.json")]) == 4
    assert "calibration file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    with open(cal) as f:
        data = json.load(f)
    del data["camera_matrix"]
    bad.write_text(json.dumps(data))
    assert main(["inspect", p["good.png"][0], "--calibration", str(bad)]) == 4
    assert "camera_matrix" in capsys.readouterr().err


def test_invalid_spec_names_the_field(station, tmp_path, capsys):
    _d, cal, p = station
    spec = tmp_path / "bad.toml"
    text = (resources.files("qc_station.spec") / "specs" / "resilience-pleated.toml").read_text()
    spec.write_text(text.replace("pleats = 3", "pleats = -1"))
    assert main(["inspect", p["good.png"][0], "--calibration", cal, "--spec", str(spec)]) == 3
    err = capsys.readouterr().err
    assert "construction.pleats" in err
    assert main(["inspect", p["good.png"][0], "--calibration", cal, "--spec", str(tmp_path / "x.toml")]) == 3


def test_annotated_images_mark_each_reason_where_it_is(station, tmp_path, capsys):
    _d, cal, p = station
    out = tmp_path / "ann"
    names = ["loop.jpg", "good.png", "corrupt.jpg"]
    assert main(["inspect", *[p[n][0] for n in names], "--calibration", cal, "--json", "--no-model",
                 "--annotate", str(out)]) == 0
    lines = _json_lines(capsys)
    files = sorted(x.name for x in out.iterdir())
    assert files == ["corrupt.annotated.jpg", "good.annotated.jpg", "loop.annotated.jpg"]
    calibration = bundled_sim_calibration()
    result = lines[0]
    original = p["loop.jpg"][1].astype(np.int16)
    annotated = cv2.imread(str(out / "loop.annotated.jpg")).astype(np.int16)
    assert annotated.shape == original.shape
    m = result["measurements"]
    pose = MaskPose(tuple(m["center_tray_mm"]), m["angle_deg"], m["width_mm"], m["height_mm"])
    for reason in result["reasons"]:
        # the reason's box, as projected into the photo, is drawn over (pixels changed along it)
        path = _project(calibration, pose, _box_path(*reason["box_mm"])).round().astype(int)
        h, w = original.shape[:2]
        ok = (path[:, 0] >= 0) & (path[:, 0] < w) & (path[:, 1] >= 0) & (path[:, 1] < h)
        xs, ys = path[ok, 0], path[ok, 1]
        changed = np.abs(annotated[ys, xs] - original[ys, xs]).max(axis=1) > 40
        assert changed.mean() > 0.5, reason["code"]
    # a part of the tray far from the mask and the banner is left as it was
    assert np.abs(annotated[-60:, :200] - original[-60:, :200]).mean() < 4
    banner = cv2.imread(str(out / "good.annotated.jpg"))[20:60, 20:300]
    assert banner[..., 1].mean() > banner[..., 2].mean() + 40  # the green PASS banner


def test_teach_writes_a_spec_from_measured_means(station, tmp_path, capsys):
    _d, cal, p = station
    out = tmp_path / "taught.toml"
    rc = main(["spec", "teach", p["good.png"][0], p["corrupt.jpg"][0], "--calibration", cal,
               "--out", str(out), "--name", "workshop-a", "--version", "3", "--height-tol", "4"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "left out" in text and "taught from 1 of 2" in text
    data = tomllib.loads(out.read_text())
    truth = p["good.png"][2].mask
    w, h = data["dimensions"]["width_mm"], data["dimensions"]["height_mm"]
    assert data["name"] == "workshop-a" and data["version"] == 3
    assert abs(w["nominal"] - truth.width_mm) < 0.5 and w["upper"] - w["nominal"] == pytest.approx(5.0)
    assert h["upper"] - h["nominal"] == pytest.approx(4.0) and h["nominal"] - h["lower"] == pytest.approx(4.0)
    assert data["construction"]["pleats"] == truth.pleats
    assert main(["spec", "check", str(out)]) == 0
