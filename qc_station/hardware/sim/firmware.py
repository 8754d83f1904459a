"""Load the firmware's own source files (``firmware/*.py``) into this Python process.

No copy: the very files that are flashed to the Pico are imported by their bare module names,
as MicroPython does, with ``firmware/`` put on ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from qc_station.errors import ConfigError

MODULES = ("protocol", "debounce", "encoder", "link", "config", "controller", "main")


def firmware_dir() -> Path:
    """``$QC_FIRMWARE_DIR`` or the checkout's ``firmware/`` folder."""
    env = os.environ.get("QC_FIRMWARE_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "firmware"
    if not (path / "controller.py").is_file():
        raise ConfigError(
            f"firmware sources not found in {path}: "
            "run from a checkout of the repository or set QC_FIRMWARE_DIR"
        )
    return path.resolve()


@dataclass(frozen=True)
class Firmware:
    """The firmware modules, imported from ``path``."""

    path: Path
    protocol: ModuleType
    config: ModuleType
    controller: ModuleType
    main: ModuleType


def load_firmware(path: Path | None = None) -> Firmware:
    """Import the firmware modules (once per process) and check they come from ``path``."""
    path = (path or firmware_dir()).resolve()
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    mods: dict[str, ModuleType] = {}
    for name in MODULES:
        mod = sys.modules.get(name) or importlib.import_module(name)
        origin = Path(getattr(mod, "__file__", "") or "").resolve().parent
        if origin != path:
            raise ConfigError(f"module {name!r} was imported from {origin}, not from the firmware in {path}")
        mods[name] = mod
    return Firmware(path, mods["protocol"], mods["config"], mods["controller"], mods["main"])


class SimClock:
    """The firmware's clock in simulation: milliseconds that wrap like MicroPython's ticks_ms
    (period 2**30), advanced by the simulation, not by the wall clock."""

    PERIOD = 1 << 30

    def __init__(self, start_ms: int = 0) -> None:
        self.now = start_ms % self.PERIOD

    def ms(self) -> int:
        return self.now

    def advance(self, dt_ms: int) -> None:
        self.now = (self.now + dt_ms) % self.PERIOD

    def diff(self, a: int, b: int) -> int:
        half = self.PERIOD // 2
        return ((a - b + half) % self.PERIOD) - half

    def add(self, a: int, b: int) -> int:
        return (a + b) % self.PERIOD
