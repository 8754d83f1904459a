"""The station configuration file (``station.toml``), validated by pydantic.

``extra="forbid"`` everywhere: a typo in the file is an error naming the field, not a setting
silently ignored. Loading a file (:func:`load_config`) is separate from parsing a mapping
(:func:`parse_config`). The reference, with an example file, is ``docs/config.md``.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qc_station.errors import ConfigError

#: The camera of ``qc-station demo``: the simulator (see qc_station.capture).
DEFAULT_CAPTURE: dict[str, Any] = {"type": "sim", "mode": "conveyor"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSection(_Section):
    id: str = Field("station-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                    description="Stable id of this station, stored with every inspection")
    name: str = Field("QC station 1", description="Name shown on the screens")
    workshop: str = Field("", description="Workshop / site name (goes on batches and certificates)")


TriggerMode = Literal["placement", "manual", "every_frame", "conveyor-serial", "conveyor-gpio"]
CONVEYOR_MODES = ("conveyor-serial", "conveyor-gpio")


class SerialTriggerSection(_Section):
    """``[trigger.serial]``: the conveyor controller (``firmware/``) on USB serial, protocol v1."""

    port: str = Field(min_length=1, description="Serial device; prefer the stable /dev/serial/by-id/... "
                      "name (it survives re-plugging; /dev/ttyACM0 may come back as ttyACM1)")
    baud: int = Field(115200, ge=1200, le=4_000_000, description="Baud rate (USB CDC ignores it)")
    heartbeat_ms: int = Field(200, ge=20, le=5000, description="Heartbeat period; keep it well under "
                              "the controller's watchdog_ms (1500 by default)")
    retry_ms: int = Field(150, ge=20, le=5000, description="Resend an unacknowledged message after this")
    reconnect_min_s: float = Field(0.05, gt=0, le=60, description="First wait before reopening a lost port")
    reconnect_max_s: float = Field(2.0, gt=0, le=600, description="Upper bound of the doubling wait")
    belt_speed_pct: int | None = Field(
        None, ge=1, le=100,
        description="Start the belt at this speed when the link first comes up, and again after a "
        "watchdog stop (never after an e-stop); none = the belt is started at the controller",
    )


class GpioTriggerSection(_Section):
    """``[trigger.gpio]``: a beam-break photo-eye on a Raspberry Pi GPIO pin, read with gpiozero."""

    pin: int | str = Field(description="BCM pin number (17) or a gpiozero pin name (\"GPIO17\", \"BOARD11\")")
    pull_up: bool = Field(True, description="true for NPN (open-collector) sensors, false for PNP")
    debounce_ms: float = Field(20.0, ge=0, le=1000, description="Ignore edges closer than this")


class TriggerSection(_Section):
    """When to inspect; the conveyor modes read their settings from ``serial`` / ``gpio``."""

    mode: TriggerMode = Field(
        "placement",
        description="placement: inspect once per mask placed on the tray (presence + stability); "
        "manual: only on the API / screen button; conveyor-serial: the conveyor controller's trigger "
        "events over USB serial, verdicts sent back for its reject flap; conveyor-gpio: a photo-eye "
        "on a Pi GPIO pin (no reject flap); every_frame: every frame the source delivers is one mask "
        "(simulator, folder replay)",
    )
    min_interval_s: float = Field(0.0, ge=0, le=3600,
                                  description="Never inspect more often than this (every_frame mode)")
    max_trigger_age_ms: float = Field(
        800.0, gt=0, le=60_000,
        description="conveyor modes: a trigger older than this when the station gets to it (the "
        "station fell behind) means the mask has left the camera's view: it is not photographed "
        "and is answered FAIL (rejected)",
    )
    serial: SerialTriggerSection | None = None
    gpio: GpioTriggerSection | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _old_conveyor_mode(cls, v: Any) -> Any:
        if v == "conveyor":
            raise ValueError("'conveyor' is now 'conveyor-serial' (the controller on USB, with "
                             "[trigger.serial]) or 'conveyor-gpio' (a photo-eye on a GPIO pin, "
                             "with [trigger.gpio])")
        return v

    @model_validator(mode="after")
    def verify_mode_has_its_table(self) -> TriggerSection:
        # A table of another mode may stay in the file (switching back keeps its settings).
        if self.mode == "conveyor-serial" and self.serial is None:
            raise ValueError("mode 'conveyor-serial' needs a [trigger.serial] table with at least "
                             "port = \"...\"")
        if self.mode == "conveyor-gpio" and self.gpio is None:
            raise ValueError("mode 'conveyor-gpio' needs a [trigger.gpio] table with at least pin = ...")
        return self

    @property
    def conveyor(self) -> bool:
        """A belt brings the masks: inspect on the controller's / photo-eye's events."""
        return self.mode in CONVEYOR_MODES


class ModelSection(_Section):
    enabled: bool = Field(True, description="Run the ONNX defect classifier if a model is available")
    path: Path | None = Field(None, description="ONNX model file; empty = the model bundled in models/")
    threads: int = Field(1, ge=1, le=8, description="ONNX Runtime intra-op threads")


class ApiSection(_Section):
    host: str = Field("127.0.0.1", description="Bind address. Anything but loopback requires tokens")
    port: int = Field(8000, ge=1, le=65535)
    require_tokens: bool | None = Field(
        None, description="Require an API token for every request; default: only off loopback"
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, v: str) -> str:
        if v != "localhost":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(
                    f"{v!r} is not an IP address (use 127.0.0.1, 0.0.0.0 or an interface IP)"
                ) from None
        return v

    @property
    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    @property
    def tokens_required(self) -> bool:
        return (not self.is_loopback) or bool(self.require_tokens)

    @model_validator(mode="after")
    def verify_lan_needs_tokens(self) -> ApiSection:
        if not self.is_loopback and self.require_tokens is False:
            raise ValueError(
                f"host {self.host} is reachable from the network: require_tokens cannot be false there"
            )
        return self


class RetentionSection(_Section):
    keep_pass_days: float | None = Field(30.0, gt=0, description="Delete pass thumbnails after this")
    keep_reject_days: float | None = Field(
        None, gt=0, description="Delete reject images after this; empty = only when space runs out"
    )
    min_free_mb: float = Field(500.0, ge=0, description="Free-space guard for the data disk")
    jpeg_quality: int = Field(90, ge=50, le=100)
    thumb_width_px: int = Field(640, ge=64, le=4096)
    overlay_width_px: int = Field(1600, ge=320, le=10000,
                                  description="Annotated overlays are scaled down to this width")


class CertificatesSection(_Section):
    """Batch certificates (docs/certificates.md)."""

    public_url: str | None = Field(
        None, pattern=r"^https?://\S+$",
        description="Base URL printed in the QR code of certificates (e.g. http://qc-station.local:8000); "
        "empty = the address the certificate was requested on",
    )
    mode: Literal["100%", "iso2859"] = Field("100%", description="Acceptance basis")
    aql_critical: float = Field(0.0, ge=0, description="ISO 2859-1 AQL for critical defects")
    aql_major: float = Field(2.5, ge=0, description="ISO 2859-1 AQL for major defects")
    aql_minor: float = Field(4.0, ge=0, description="ISO 2859-1 AQL for minor defects")


class StationConfig(_Section):
    """The whole station configuration (one TOML file)."""

    data_dir: Path = Field(Path("qc-data"), description="Database + images (relative to the config file)")
    station: StationSection = StationSection()
    capture: Annotated[Any, Field(description="Frame source: a qc_station.capture CaptureConfig "
                                  "(picamera2 | opencv | folder | sim), see docs/capture.md",
                                  validate_default=True)] = None
    trigger: TriggerSection = TriggerSection()
    spec: str = Field("resilience-pleated", description="Bundled spec name or a spec TOML file")
    calibration: str = Field("sim", description="station.json path, or 'sim' for the simulator's calibration")
    calibration_max_age_days: float = Field(180.0, gt=0, description="Older calibrations show a warning")
    model: ModelSection = ModelSection()
    api: ApiSection = ApiSection()
    retention: RetentionSection = RetentionSection()
    certificates: CertificatesSection = CertificatesSection()

    @field_validator("capture", mode="before")
    @classmethod
    def _check_capture(cls, v: Any) -> Any:
        from pydantic import BaseModel as _Model
        from pydantic import TypeAdapter

        from qc_station.capture import CaptureConfig

        if isinstance(v, _Model):
            return v
        return TypeAdapter(CaptureConfig).validate_python(DEFAULT_CAPTURE if v is None else v)

    @model_validator(mode="after")
    def verify_trigger_fits_camera(self) -> StationConfig:
        if self.trigger.conveyor and getattr(self.capture, "type", None) == "folder":
            raise ValueError(f"trigger.mode '{self.trigger.mode}' needs a camera, not a folder source")
        return self

    def resolve_paths(self, base: Path) -> StationConfig:
        """Relative paths in the file are relative to the file's folder."""
        upd: dict[str, Any] = {}
        if not self.data_dir.is_absolute():
            upd["data_dir"] = base / self.data_dir
        if self.calibration != "sim" and not Path(self.calibration).is_absolute():
            upd["calibration"] = str(base / self.calibration)
        if self.spec.endswith(".toml") and not Path(self.spec).is_absolute():
            upd["spec"] = str(base / self.spec)
        cap = self.capture
        if getattr(cap, "type", None) == "folder" and not Path(cap.path).is_absolute():
            upd["capture"] = cap.model_copy(update={"path": str(base / cap.path)})
        if self.model.path is not None and not self.model.path.is_absolute():
            upd["model"] = self.model.model_copy(update={"path": base / self.model.path})
        return self.model_copy(update=upd)


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid station config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], *, source: str = "<data>") -> StationConfig:
    """Validate a mapping; :class:`ConfigError` naming every bad field."""
    try:
        return StationConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err, source)) from None


def load_config(path: str | Path) -> StationConfig:
    """Read ``station.toml``; relative paths inside are taken relative to its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (see docs/config.md for an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(data, source=str(path)).resolve_paths(path.resolve().parent)
