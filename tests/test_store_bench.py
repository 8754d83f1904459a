"""`qc-station bench-store` runs end to end (short) and reports zero losses."""

from __future__ import annotations

import pytest

from qc_station.cli import main
from qc_station.cli.bench_store import parse_mix, pct, replay_plan
from qc_station.errors import ConfigError


def test_helpers() -> None:
    assert pct([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0 and pct([1.0, 2.0], 100) == 2.0
    assert parse_mix("pass=8,fail=2") == {"pass": 0.8, "fail": 0.2}
    with pytest.raises(ConfigError):
        parse_mix("good=1")

    class S:
        def __init__(self, v):
            self.result = type("R", (), {"verdict": v})()

    plan = replay_plan([S("pass"), S("fail"), S("unusable")], {"pass": 0.8, "fail": 0.15, "unusable": 0.05})
    assert [plan.count(i) for i in range(3)] == [80, 15, 5]


@pytest.mark.slow
def test_bench_store_short_run(tmp_path, capsys) -> None:
    rc = main(
        [
            "bench-store",
            "--seconds",
            "3",
            "--rate",
            "10",
            "--samples",
            "2",
            "--e2e",
            "0",
            "--data",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "30 due, 30 rows stored" in out
    assert "losses: not stored 0, rows missing 0, not delivered 0, image files missing 0" in out
    assert "integrity_check: ok" in out and "result: OK, no loss" in out
