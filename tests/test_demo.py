"""`qc-station demo` and `qc-station serve` as real processes: they start, inspect, serve, stop cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qc_station.errors import CalibrationError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_THREAD_TIMEOUT": "4"}
    return subprocess.Popen(
        [sys.executable, "-m", "qc_station", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_url(proc: subprocess.Popen, timeout_s: float = 60) -> tuple[str, list[str]]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "operator screen:" in line:
            return line.split("operator screen:")[1].strip().rstrip("/"), lines
    proc.kill()
    raise AssertionError("no URL printed:\n" + "\n".join(lines) + (proc.stdout.read() or ""))


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()


def _wait_inspections(url: str, n: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = httpx.get(url + "/api/inspections", timeout=10).json()
        if page["total"] >= n:
            return page
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} inspections after {timeout_s} s")


@pytest.mark.slow
def test_demo_zero_config(tmp_path: Path) -> None:
    from qc_station.calibration import bundled_sim_calibration

    try:
        bundled_sim_calibration()
    except CalibrationError as exc:
        pytest.skip(f"bundled simulator calibration not available yet: {exc}")
    port = _free_port()
    proc = _start(["demo", "--port", str(port), "--rate", "2"], cwd=tmp_path)
    try:
        url, _ = _wait_for_url(proc)
        assert url == f"http://127.0.0.1:{port}"
        assert (tmp_path / "qc-data" / "qc.sqlite3").is_file()  # ./qc-data/ created, zero configuration
        batch = httpx.get(url + "/api/batches/current").json()
        assert batch["lot_id"].startswith("DEMO-")
        page = _wait_inspections(url, 1, 90)
        rec = page["items"][0]
        assert rec["batch_id"] == batch["id"] and rec["calibration_id"].startswith("cal-")
        assert rec["frame"]["source"].startswith("sim:conveyor")
        assert rec["images"], rec
        health = httpx.get(url + "/api/health").json()
        assert health["running"] is True and health["camera"]["ok"] is True
        assert httpx.get(url + "/").status_code == 200
    finally:
        rc = _stop(proc)
    assert rc == 0


def _truth_calibration(path: Path) -> None:
    """A station.json from the simulator camera's true parameters (the test's known station)."""
    from qc_station.calibration.model import StationCalibration
    from qc_station.sim.camera import default_camera

    c = default_camera()
    StationCalibration(
        board="sim-truth",
        image_size=c.image_size,
        camera_matrix=c.K.tolist(),
        dist_coeffs=c.dist,
        rms_px=0.0,
        tray_rvec=c.rvec,
        tray_tvec_mm=c.tvec_mm,
        mm_per_px=0.2,
    ).save(path)


@pytest.mark.slow
def test_serve_with_a_config_file(tmp_path: Path) -> None:
    import cv2

    from qc_station.capture.sim_source import SimSource

    frames = tmp_path / "incoming"
    frames.mkdir()
    with SimSource(mode="conveyor", seed=5) as sim:
        frame = sim.read(timeout_s=30).image_bgr
    for i in range(2):
        cv2.imwrite(str(frames / f"mask_{i}.png"), frame)
    _truth_calibration(tmp_path / "station.json")
    port = _free_port()
    (tmp_path / "station.toml").write_text(
        f"""
data_dir = "data"
calibration = "station.json"
[station]
id = "line-1"
name = "Line 1"
[capture]
type = "folder"
path = "incoming"
[trigger]
mode = "every_frame"
[model]
enabled = false
[api]
port = {port}
"""
    )
    proc = _start(["serve", "--config", "station.toml"], cwd=tmp_path)
    try:
        url, _ = _wait_for_url(proc)
        page = _wait_inspections(url, 2, 60)
        assert {r["station_id"] for r in page["items"]} == {"line-1"}
        assert {r["image_name"].rsplit("/", 1)[-1] for r in page["items"]} == {"mask_0.png", "mask_1.png"}
        assert (tmp_path / "data" / "qc.sqlite3").is_file()
        health = httpx.get(url + "/api/health").json()
        assert health["model"]["state"] == "absent" and "disabled" in health["model"]["message"]
    finally:
        rc = _stop(proc)
    assert rc == 0


def test_serve_refuses_lan_bind_without_tokens(tmp_path: Path) -> None:
    _truth_calibration(tmp_path / "station.json")
    (tmp_path / "station.toml").write_text(
        'calibration = "station.json"\n[capture]\ntype = "folder"\npath = "."\n'
        '[model]\nenabled = false\n[api]\nhost = "0.0.0.0"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "qc_station", "serve", "--config", "station.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 9, out.stderr
    assert "refusing to start" in out.stderr and "qc-station user add" in out.stderr


def test_serve_bad_config_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "station.toml").write_text("[api]\nprot = 8000\n")
    out = subprocess.run(
        [sys.executable, "-m", "qc_station", "serve", "--config", "station.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 9 and "api.prot" in out.stderr
