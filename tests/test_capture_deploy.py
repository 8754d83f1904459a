"""The Raspberry Pi deployment files: scripts lint clean, the unit and example config are valid,
the pip constraints keep out the versions known to break, and the self-test sees crashes."""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from qc_station.capture import Picamera2Config, parse_capture_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCRIPTS = [DEPLOY / "install-pi.sh", DEPLOY / "kiosk" / "qc-station-kiosk.sh"]


def _selftest():
    spec = importlib.util.spec_from_file_location("pi_selftest", DEPLOY / "pi_selftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pi_selftest"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_shellcheck_clean(script):
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install -y shellcheck)")
    proc = subprocess.run(["shellcheck", "--severity=style", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_install_script_help_needs_no_root():
    proc = subprocess.run(["bash", str(DEPLOY / "install-pi.sh"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--kiosk" in proc.stdout and "Bookworm" in proc.stdout


def test_systemd_unit_runs_serve_as_its_own_user_and_restarts():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "qc-station.service")
    svc = unit["Service"]
    assert svc["ExecStart"] == ("/opt/qc-station/venv/bin/qc-station serve "
                                "--config /etc/qc-station/station.toml")
    assert svc["Restart"] == "on-failure" and float(svc["RestartSec"]) > 0
    assert svc["User"] == "qcstation" and svc["User"] != "root"
    script = (DEPLOY / "install-pi.sh").read_text()
    assert "for g in video render gpio dialout" in script  # device groups of the service user
    assert "PrivateDevices" not in svc  # the camera lives in /dev
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]


def test_example_station_config_is_valid():
    data = tomllib.loads((DEPLOY / "station.example.toml").read_text())
    capture = parse_capture_config(data["capture"])
    assert isinstance(capture, Picamera2Config) and capture.lens_position == pytest.approx(2.9)
    try:
        from qc_station.config import parse_config
    except ImportError:  # the station config module is another helper's; check it when present
        return
    cfg = parse_config(data, source="deploy/station.example.toml")
    assert cfg.capture.type == "picamera2" and str(cfg.data_dir) == "/var/lib/qc-station"


def test_pi_constraints_keep_out_the_known_bad_versions():
    reqs = {}
    for line in (DEPLOY / "constraints-pi.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            reqs[r.name] = r.specifier
    ort = reqs["onnxruntime"]
    assert not ort.contains("1.21.0")  # SIGILL on a Pi 4 (reported, and reproduced on an emulated A72)
    assert ort.contains("1.26.0")  # the newest that ran on the emulated Cortex-A72
    assert not ort.contains("1.28.0")  # not verifiable here (crashes under QEMU 7.2 on any CPU model)
    assert not reqs["numpy"].contains("2.0.1") and reqs["numpy"].contains("1.26.4")
    assert not reqs["opencv-python-headless"].contains("4.12.0.88")
    assert reqs["opencv-python-headless"].contains("4.11.0.86")


def test_selftest_reports_sigill_and_optional_parts():
    st = _selftest()
    dead = st.run_child("onnxruntime", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    assert dead.sigill and not dead.ok and "Illegal instruction" in dead.detail
    assert st.exit_status([dead]) == st.EXIT_CRASHED
    segv = st.run_child("onnxruntime", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert segv.killed_by == 11 and "SIGSEGV" in segv.detail and st.exit_status([segv]) == st.EXIT_CRASHED
    fine = st.run_child("numpy", "import numpy; print(numpy.__version__)")
    missing = st.run_child("picamera2", "import no_such_module_here", optional=True)
    assert fine.ok and not missing.ok and missing.optional
    assert st.exit_status([fine, missing]) == st.EXIT_OK
    broken = st.run_child("opencv", "raise SystemExit(3)")
    assert st.exit_status([fine, broken]) == st.EXIT_FAILED
