"""The station config: the documented example is valid, typos name their field, paths resolve."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from qc_station.config import load_config, parse_config
from qc_station.errors import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_documented_example_is_valid(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S).group(1)
    cfg = parse_config(tomllib.loads(block), source="docs/config.md")
    assert cfg.station.id == "line-1-tray" and cfg.capture.type == "picamera2"
    assert cfg.capture.lens_position == 2.9 and cfg.trigger.mode == "placement"
    assert cfg.retention.keep_pass_days == 30 and cfg.api.tokens_required is False


def test_defaults_are_the_demo_station() -> None:
    cfg = parse_config({})
    assert cfg.capture.type == "sim" and cfg.calibration == "sim" and cfg.api.host == "127.0.0.1"
    assert cfg.api.port == 8000 and not cfg.api.tokens_required


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"api": {"prot": 8000}}, "api.prot"),
        ({"api": {"port": 70000}}, "api.port"),
        ({"api": {"host": "my-pc"}}, "api.host"),
        ({"trigger": {"mode": "sometimes"}}, "trigger.mode"),
        ({"retention": {"min_free_mb": -1}}, "retention.min_free_mb"),
        ({"station": {"id": "has spaces"}}, "station.id"),
        ({"capture": {"type": "webcam"}}, "capture"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_errors_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse_config(data)


def test_lan_bind_forces_tokens() -> None:
    assert parse_config({"api": {"host": "0.0.0.0"}}).api.tokens_required
    assert parse_config({"api": {"require_tokens": True}}).api.tokens_required
    with pytest.raises(ConfigError, match="require_tokens cannot be false"):
        parse_config({"api": {"host": "192.168.1.20", "require_tokens": False}})


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    (tmp_path / "station.toml").write_text(
        'data_dir = "data"\ncalibration = "cal/station.json"\nspec = "specs/mine.toml"\n'
        '[capture]\ntype = "folder"\npath = "in"\n[model]\npath = "m.onnx"\n'
    )
    cfg = load_config(tmp_path / "station.toml")
    assert cfg.data_dir == tmp_path / "data" and cfg.calibration == str(tmp_path / "cal/station.json")
    assert cfg.spec == str(tmp_path / "specs/mine.toml") and cfg.capture.path == str(tmp_path / "in")
    assert cfg.model.path == tmp_path / "m.onnx"
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[api\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")
