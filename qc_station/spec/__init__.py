"""Product specs (what a good mask is) as versioned, validated data."""

from qc_station.spec.model import (
    DEFAULT_SPEC,
    MaskSpec,
    Tolerance,
    bundled_specs,
    dump_spec_toml,
    load_spec,
    parse_spec,
)

__all__ = [
    "DEFAULT_SPEC",
    "MaskSpec",
    "Tolerance",
    "bundled_specs",
    "dump_spec_toml",
    "load_spec",
    "parse_spec",
]
