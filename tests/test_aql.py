"""ISO 2859-1 tables against rows printed in the standard (normal inspection, single)."""

import pytest

from qc_station.certificates.aql import code_letter, single_sampling_plan, table_2a


@pytest.mark.parametrize(
    ("lot", "level", "letter"),
    [(8, "II", "A"), (9, "II", "B"), (50, "II", "D"), (51, "II", "E"), (500, "II", "H"),
     (501, "II", "J"), (1200, "II", "J"), (3201, "II", "L"), (10001, "II", "M"), (35000, "II", "M"),
     (35001, "II", "N"), (500001, "II", "Q"), (1000, "I", "G"), (1000, "III", "K"),
     (600000, "III", "R"), (20, "I", "B")],
)
def test_code_letters(lot, level, letter):
    assert code_letter(lot, level) == letter


@pytest.mark.parametrize(
    ("letter", "aql", "cell"),
    [
        # rows as printed in Table 2-A
        ("A", 6.5, (0, 1)), ("A", 10.0, "up"), ("A", 4.0, "down"),
        ("H", 2.5, (3, 4)), ("H", 4.0, (5, 6)), ("H", 0.65, "down"),
        ("J", 1.0, (2, 3)), ("K", 2.5, (7, 8)), ("K", 4.0, (10, 11)), ("K", 0.10, (0, 1)),
        ("L", 2.5, (10, 11)), ("L", 0.25, (1, 2)), ("L", 0.15, "down"), ("L", 0.10, "up"),
        ("M", 0.65, (5, 6)), ("M", 1.0, (7, 8)), ("M", 2.5, (14, 15)), ("M", 4.0, (21, 22)),
        ("M", 6.5, "up"), ("M", 0.040, (0, 1)), ("G", 4.0, (3, 4)), ("Q", 0.010, (0, 1)),
        ("R", 0.010, "up"), ("R", 0.025, (1, 2)), ("C", 10.0, (1, 2)), ("D", 1.5, (0, 1)),
        ("D", 2.5, "up"), ("D", 4.0, "down"),
        ("D", 6.5, (1, 2)),
    ],
)
def test_table_2a_cells(letter, aql, cell):
    assert table_2a(letter, aql) == cell


def test_mask_lot_example_from_spec():
    # MASK_SPEC.md: a lot of 10,001-35,000 masks -> letter M, sample 315
    major = single_sampling_plan(20000, 2.5)
    minor = single_sampling_plan(20000, 4.0)
    critical = single_sampling_plan(20000, 0)
    assert (major.code_letter, major.sample_size, major.ac, major.re) == ("M", 315, 14, 15)
    assert (minor.ac, minor.re) == (21, 22)
    assert (critical.sample_size, critical.ac, critical.re) == (315, 0, 1)
    assert major.decide(14) == "accept" and major.decide(15) == "reject"


def test_arrows_are_followed():
    down = single_sampling_plan(400, 0.65)  # H at 0.65 -> arrow down -> J: n=80, 1/2
    assert (down.code_letter, down.plan_letter, down.sample_size, down.ac, down.re) == ("H", "J", 80, 1, 2)
    up = single_sampling_plan(5000, 0.10)  # L at 0.10 -> arrow up -> K: n=125, 0/1
    assert (up.plan_letter, up.sample_size, up.ac, up.re) == ("K", 125, 0, 1)


def test_arrow_leaving_the_table_turns_back():
    plan = single_sampling_plan(5, 10.0)  # A at 10 points up past the first row: use 0/1 at A
    assert (plan.plan_letter, plan.ac, plan.re) == ("A", 0, 1)


def test_small_lot_is_fully_inspected():
    plan = single_sampling_plan(10, 0.65)  # B -> arrow down to F (n=20) > lot
    assert plan.sample_size == 10


def test_bad_input():
    with pytest.raises(ValueError, match="preferred value"):
        single_sampling_plan(1000, 3.0)
    with pytest.raises(ValueError, match="at least 2"):
        code_letter(1)
