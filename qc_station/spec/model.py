"""The prototype spec: what a good mask is, as versioned data.

A spec is a TOML file validated by :class:`MaskSpec` (``extra="forbid"``: a typo fails at
load with the field's name). Loading a file (:func:`load_spec`) is separate from parsing a
mapping (:meth:`MaskSpec.model_validate`) so both are easy to test.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qc_station.errors import SpecError

DEFAULT_SPEC = "resilience-pleated"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerance(_Strict):
    """A nominal value with its accepted interval (inclusive)."""

    nominal: float
    lower: float
    upper: float

    @model_validator(mode="after")
    def verify_order(self) -> Tolerance:
        if not self.lower <= self.nominal <= self.upper:
            raise ValueError(
                f"needs lower <= nominal <= upper, got {self.lower} / {self.nominal} / {self.upper}"
            )
        return self

    def contains(self, value: float) -> bool:
        """True when ``value`` is inside the accepted interval."""
        return self.lower <= value <= self.upper


class Dimensions(_Strict):
    width_mm: Tolerance = Field(description="Finished width, loops excluded")
    height_mm: Tolerance = Field(description="Pleated (finished) height")
    outline_height_mm: float = Field(
        0.0, ge=0, le=10,
        description="Height of the mask's outer edge above the tray (hem thickness). The camera "
        "sees a raised edge magnified by H / (H - h), about +0.4 % per mm at 350 mm, so the "
        "outline is measured in that plane. 0 = flat; `spec teach` absorbs it into the nominal.",
    )


class Construction(_Strict):
    pleats: Annotated[int, Field(ge=0, le=8, description="Number of pleats, exactly")]
    ear_loops_per_side: Annotated[int, Field(ge=0, le=2, description="Loops on each side")] = 1
    ties: bool = Field(False, description="Ties instead of loops (duck-bill style)")


class Seam(_Strict):
    distance_mm: Tolerance = Field(description="Perimeter top-stitch distance from the edge")
    stitch_length_mm: Tolerance = Field(description="Median stitch length")
    max_gap_stitches: float = Field(
        2.0, gt=0, description="A gap in the stitch line longer than this many stitches is a skip"
    )
    open_seam_min_mm: float = Field(
        6.0, gt=0, description="Edge separated / seam missing over at least this length"
    )


class Appearance(_Strict):
    stain_min_mm: float = Field(3.0, ge=0, description="A stain this size (mm) or larger fails")
    hole_min_mm: float = Field(0.0, ge=0, description="A hole of any size above this fails")
    defect_probability: float = Field(
        0.5, gt=0, lt=1, description="Classifier probability above which a finding counts"
    )
    anomaly_threshold: float | None = Field(
        None, description="Anomaly score above which a mask fails; None = the model's default"
    )


class Severities(_Strict):
    """ISO 2859-1 severity class per defect code (used by certificates)."""

    width: str = "major"
    height: str = "major"
    pleats: str = "major"
    ear_loop: str = "critical"
    stitch_length: str = "minor"
    seam_position: str = "minor"
    skipped_stitch: str = "major"
    open_seam: str = "major"
    stain: str = "minor"
    hole: str = "critical"
    anomaly: str = "major"


class MaskSpec(_Strict):
    """One product spec (a prototype design), identified by name + version."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: Annotated[int, Field(ge=1)]
    description: str = ""
    dimensions: Dimensions
    construction: Construction
    seam: Seam
    appearance: Appearance = Appearance()
    severity: Severities = Severities()

    def severity_of(self, code: str) -> str:
        """ISO 2859-1 class of a reason code (codes without a class count as major)."""
        return getattr(self.severity, code, "major")

    @property
    def spec_id(self) -> str:
        """Stable content hash: two files with the same values have the same id."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return f"{self.name}@{self.version}:{hashlib.sha256(blob).hexdigest()[:12]}"


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid spec {source}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  - {field}: {e['msg']}")
    return "\n".join(lines)


def parse_spec(data: dict, *, source: str = "<data>") -> MaskSpec:
    """Validate a mapping as a spec; raises :class:`SpecError` naming each bad field."""
    try:
        return MaskSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_format_validation_error(err, source)) from None


def bundled_specs() -> list[str]:
    """Names of the spec files shipped with the package."""
    folder = resources.files("qc_station.spec") / "specs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(ref: str | Path | None = None) -> MaskSpec:
    """Load a spec from a TOML file path, or a bundled spec by name (default spec if None)."""
    ref = DEFAULT_SPEC if ref is None else ref
    path = Path(ref)
    if path.suffix != ".toml" and not path.exists():
        if str(ref) not in bundled_specs():
            raise SpecError(
                f"no spec file {str(ref)!r} and no bundled spec of that name "
                f"(bundled: {', '.join(bundled_specs())})"
            )
        text = (resources.files("qc_station.spec") / "specs" / f"{ref}.toml").read_text()
        source = f"bundled:{ref}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"spec file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read spec file {path}: {exc}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec file {source} is not valid TOML: {exc}") from None
    return parse_spec(data, source=source)


def dump_spec_toml(spec: MaskSpec) -> str:
    """Serialise a spec to TOML text (for ``spec teach``)."""
    import tomli_w

    return tomli_w.dumps(spec.model_dump(mode="json", exclude_none=True))
