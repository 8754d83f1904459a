import numpy as np
import pytest

from qc_station.spc import control_chart, western_electric


def test_limits_match_textbook_imr():
    x = [10.0, 12.0, 11.0, 13.0, 12.0]
    c = control_chart("w", x, nominal=12, lsl=6, usl=18)
    mr_bar = (2 + 1 + 2 + 1) / 4
    assert c.mr_bar == pytest.approx(mr_bar)
    assert c.sigma == pytest.approx(mr_bar / 1.128)
    assert c.ucl == pytest.approx(11.6 + 2.66 * mr_bar, abs=0.01)
    assert c.mr_ucl == pytest.approx(3.267 * mr_bar)
    assert c.cpk == pytest.approx(min(18 - 11.6, 11.6 - 6) / (3 * c.sigma))


def test_in_control_process_raises_few_alerts():
    rng = np.random.default_rng(3)
    x = list(180 + rng.normal(0, 1.0, 60))
    c = control_chart("width", x, nominal=180, lsl=175, usl=185)
    assert len(c.alerts) <= 1


def test_eight_narrower_than_nominal_is_flagged_before_out_of_tolerance():
    rng = np.random.default_rng(4)
    good = list(180 + rng.normal(0, 0.8, 30))
    drift = list(178.6 + rng.uniform(-0.3, 0.3, 10))  # narrower, still inside 175-185
    c = control_chart("width", good + drift, nominal=180, lsl=175, usl=185)
    we4 = [a for a in c.alerts if a.rule == "WE4" and a.side == "below"]
    assert we4, c.alerts
    assert we4[0].last <= 30 + 9 and "narrower" in we4[0].message
    assert all(175 <= v <= 185 for v in good + drift)


def test_rule_one_and_trend():
    x = [0.0, 0.1, -0.1, 0.2, -0.2, 4.5, 0.0]
    assert [a.rule for a in western_electric(x, 0.0, 1.0)] == ["WE1"]
    up = [0.0, -0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert any(a.rule == "N3" and a.side == "up" for a in western_electric(up, 0.0, 1.0))


def test_runs_are_reported_once():
    x = [-0.5] * 20
    a = [al for al in western_electric(x, 0.0, 1.0) if al.rule == "WE4"]
    assert len(a) == 1 and (a[0].first, a[0].last) == (0, 19)


def test_short_series():
    assert control_chart("w", [180.0], nominal=180, lsl=175, usl=185).alerts == ()
    assert control_chart("w", [], nominal=180, lsl=175, usl=185).n == 0
