import pytest

from qc_station.cli import main
from qc_station.errors import SpecError
from qc_station.spec import bundled_specs, dump_spec_toml, load_spec, parse_spec


def test_default_spec_values():
    spec = load_spec()
    assert spec.name == "resilience-pleated" and spec.version == 1
    assert (spec.dimensions.width_mm.lower, spec.dimensions.width_mm.upper) == (175, 185)
    assert (spec.dimensions.height_mm.lower, spec.dimensions.height_mm.upper) == (90, 100)
    assert spec.construction.pleats == 3 and spec.construction.ear_loops_per_side == 1
    assert spec.seam.stitch_length_mm.lower == 2.0 and spec.seam.stitch_length_mm.upper == 3.0
    assert spec.seam.distance_mm.nominal == 5.0


def test_variants_bundled():
    assert {"resilience-pleated", "afnor-pleated-2", "afnor-child"} <= set(bundled_specs())
    assert load_spec("afnor-pleated-2").construction.pleats == 2


def test_spec_id_is_content_hash(tmp_path):
    spec = load_spec()
    p = tmp_path / "copy.toml"
    p.write_text(dump_spec_toml(spec))
    assert load_spec(p).spec_id == spec.spec_id
    p.write_text(dump_spec_toml(spec).replace("nominal = 180.0", "nominal = 181.0"))
    assert load_spec(p).spec_id != spec.spec_id


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["dimensions"].pop("width_mm"), "dimensions.width_mm"),
        (lambda d: d["construction"].update(pleats=-1), "construction.pleats"),
        (lambda d: d["seam"].update(stich_length_mm=2.5), "seam.stich_length_mm"),
        (lambda d: d["dimensions"]["height_mm"].update(lower=99.0, upper=91.0), "dimensions.height_mm"),
    ],
)
def test_invalid_spec_names_the_field(mutate, field):
    data = load_spec().model_dump(mode="json")
    mutate(data)
    with pytest.raises(SpecError) as exc:
        parse_spec(data, source="test")
    assert field in str(exc.value)


def test_cli_check_reports_field_and_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(dump_spec_toml(load_spec()).replace("pleats = 3", 'pleats = "three"'))
    assert main(["spec", "check", str(bad)]) == 3
    assert "construction.pleats" in capsys.readouterr().err
    bad.write_text("name = [")
    assert main(["spec", "check", str(bad)]) == 3
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["spec", "check", str(tmp_path / "missing.toml")]) == 3
