"""ISO 2859-1 single sampling plans (normal inspection), written as data.

Two tables of the standard are encoded here:

- Table 1 (sample size code letters): lot-size ranges x inspection level -> code letter.
- Table 2-A (single sampling, normal inspection): code letter x AQL -> Ac / Re, with the
  standard's arrows ("use the first plan below / above"). The table is diagonal: a cell's
  entry depends only on ``letter_index + aql_index`` (one letter down and one AQL step
  left gives the same Ac/Re), so it is stored as that one diagonal sequence; the tests
  check it against rows printed in the standard.

AQL 0 is not in the standard; mask-lot practice uses it for critical defects meaning
"accept on zero": Ac 0 / Re 1 at the code letter's sample size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["I", "II", "III"]

LETTERS = "ABCDEFGHJKLMNPQR"
SAMPLE_SIZE = dict(zip(LETTERS, (2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000),
                       strict=True))

# Table 1: upper bound of each lot-size range, and the letter per general level I, II, III.
_LOT_RANGES: tuple[tuple[int, str, str, str], ...] = (
    (8, "A", "A", "B"),
    (15, "A", "B", "C"),
    (25, "B", "C", "D"),
    (50, "C", "D", "E"),
    (90, "C", "E", "F"),
    (150, "D", "F", "G"),
    (280, "E", "G", "H"),
    (500, "F", "H", "J"),
    (1200, "G", "J", "K"),
    (3200, "H", "K", "L"),
    (10000, "J", "L", "M"),
    (35000, "K", "M", "N"),
    (150000, "L", "N", "P"),
    (500000, "M", "P", "Q"),
    (10**12, "N", "Q", "R"),
)

#: Preferred AQL values of Table 2-A (percent nonconforming range).
AQLS = (0.010, 0.015, 0.025, 0.040, 0.065, 0.10, 0.15, 0.25, 0.40, 0.65, 1.0, 1.5, 2.5, 4.0, 6.5, 10.0)

# Table 2-A along its diagonal: index = letter_index + aql_index. "down"/"up" are the arrows.
_DIAGONAL_FIRST = 14  # A at AQL 6.5 is the first 0/1 cell
_DIAGONAL: tuple[tuple[int, int] | str, ...] = (
    (0, 1), "up", "down", (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15), (21, 22),
)


@dataclass(frozen=True)
class SamplingPlan:
    """One single-sampling plan: inspect ``sample_size`` units, accept if defectives <= ac."""

    lot_size: int
    level: str
    code_letter: str  # the letter from Table 1
    plan_letter: str  # the letter actually used after following arrows
    aql: float
    sample_size: int
    ac: int
    re: int

    def decide(self, defectives: int) -> Literal["accept", "reject"]:
        """Accept when the defectives found in the sample are at most Ac."""
        return "accept" if defectives <= self.ac else "reject"


def code_letter(lot_size: int, level: Level = "II") -> str:
    """Sample size code letter for a lot size (ISO 2859-1 Table 1, general levels)."""
    if lot_size < 2:
        raise ValueError(f"lot size must be at least 2, got {lot_size}")
    column = {"I": 1, "II": 2, "III": 3}[level]
    for row in _LOT_RANGES:
        if lot_size <= row[0]:
            return row[column]
    raise AssertionError("unreachable: last range is open-ended")


def _cell(letter_index: int, aql_index: int) -> tuple[int, int] | str:
    k = letter_index + aql_index - _DIAGONAL_FIRST
    if k < 0:
        return "down"
    if k >= len(_DIAGONAL):
        return "up"
    return _DIAGONAL[k]


def table_2a(letter: str, aql: float) -> tuple[int, int] | str:
    """The raw Table 2-A cell: (Ac, Re), or the arrow "down" / "up"."""
    return _cell(LETTERS.index(letter), _aql_index(aql))


def _aql_index(aql: float) -> int:
    for i, value in enumerate(AQLS):
        if abs(value - aql) < 1e-9:
            return i
    raise ValueError(f"AQL {aql} is not a preferred value of ISO 2859-1 ({', '.join(map(str, AQLS))}, or 0)")


def single_sampling_plan(lot_size: int, aql: float, level: Level = "II") -> SamplingPlan:
    """The normal-inspection single sampling plan for a lot, following the table's arrows.

    >>> p = single_sampling_plan(20000, 2.5)
    >>> (p.code_letter, p.sample_size, p.ac, p.re)
    ('M', 315, 14, 15)
    """
    letter = code_letter(lot_size, level)
    i = LETTERS.index(letter)
    if aql == 0:
        ac, re = 0, 1
        plan_i = i
    else:
        j = _aql_index(aql)
        plan_i = i
        cell = _cell(plan_i, j)
        while isinstance(cell, str):
            step = 1 if cell == "down" else -1
            if plan_i + step < 0:
                # Only A at AQL 10 points up past the first row: take A's nearest plan, 0/1.
                cell = (0, 1)
                break
            plan_i += step
            cell = _cell(plan_i, j)
        ac, re = cell
    plan_letter = LETTERS[plan_i]
    n = SAMPLE_SIZE[plan_letter]
    # A sample as large as the lot means 100 % inspection (the standard's rule).
    return SamplingPlan(lot_size, level, letter, plan_letter, aql, min(n, lot_size), ac, re)
