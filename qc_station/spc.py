"""Statistical process control for finished dimensions: I-MR charts and drift rules.

Pure functions over a series of measurements in time order. The station uses individuals
(one mask = one point) and moving-range charts, because masks arrive one at a time:

- sigma is estimated from the average moving range (MR-bar / d2, d2 = 1.128 for n = 2), so
  a slow drift does not inflate it the way an overall standard deviation would;
- the **centre line for the run rules is the spec's nominal** (a target chart): the point
  is to warn that the line is drifting away from the prototype *before* masks go out of
  tolerance, e.g. "8 masks in a row narrower than nominal";
- control limits are drawn around the process mean (classic I-MR), spec limits beside them.

Western Electric rules (zones measured from the centre in sigmas):
  WE1 one point beyond 3 sigma; WE2 two of three consecutive beyond 2 sigma, same side;
  WE3 four of five consecutive beyond 1 sigma, same side; WE4 eight in a row on one side.
Nelson's trend rule N3: six points in a row steadily increasing or decreasing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

D2 = 1.128  # E[range] / sigma for subgroups of 2
D4 = 3.267  # MR chart upper limit factor for n = 2


@dataclass(frozen=True)
class Alert:
    """One rule violation: which rule, where (indices into the series), in words."""

    rule: str
    first: int
    last: int
    side: str  # "above" / "below" / "up" / "down"
    message: str


@dataclass(frozen=True)
class ControlChart:
    """Limits and alerts for one measured dimension."""

    name: str
    n: int
    nominal: float
    lsl: float
    usl: float
    mean: float | None = None
    sigma: float | None = None  # short-term, from the moving range
    ucl: float | None = None
    lcl: float | None = None
    mr_bar: float | None = None
    mr_ucl: float | None = None
    cp: float | None = None
    cpk: float | None = None
    alerts: tuple[Alert, ...] = field(default_factory=tuple)


def _side(x: float, centre: float) -> int:
    return (x > centre) - (x < centre)


def western_electric(values: list[float], centre: float, sigma: float, *, name: str = "value",
                     unit: str = "mm") -> list[Alert]:
    """Rule violations in ``values`` around ``centre`` with zone width ``sigma``.

    A run that keeps violating is reported once, from its first to its last point.
    """
    values = [float(v) for v in values]  # numpy scalars compare to numpy bools
    alerts: list[Alert] = []
    if sigma <= 0 or not values:
        return alerts
    z = [(v - centre) / sigma for v in values]

    def add(rule: str, i0: int, i1: int, side: str, text: str) -> None:
        # merge with the latest alert of the same rule and side, even if other rules fired in between
        k = next((k for k in range(len(alerts) - 1, -1, -1)
                  if alerts[k].rule == rule and alerts[k].side == side), None)
        if k is not None and i0 <= alerts[k].last + 1:
            alerts[k] = Alert(rule, alerts[k].first, max(i1, alerts[k].last), side, alerts[k].message)
        else:
            alerts.append(Alert(rule, i0, i1, side, text))

    for i, zi in enumerate(z):
        where = "above" if zi > 0 else "below"
        if abs(zi) > 3:
            add("WE1", i, i, where, f"{name} {values[i]:.2f} {unit}: beyond 3 sigma {where} nominal")
        for rule, window, need, k in (("WE2", 3, 2, 2.0), ("WE3", 5, 4, 1.0)):
            if i + 1 >= window:
                w = z[i + 1 - window: i + 1]
                for s, label in ((1, "above"), (-1, "below")):
                    if sum(1 for x in w if s * x > k) >= need and s * zi > k:
                        add(rule, i + 1 - window, i, label,
                            f"{need} of {window} {name}s beyond {k:g} sigma {label} nominal")
        if i >= 7:
            sides = {_side(v, centre) for v in values[i - 7: i + 1]}
            if sides in ({1}, {-1}):
                label = "above" if sides == {1} else "below"
                word = {"above": "wider/higher", "below": "narrower/lower"}[label]
                add("WE4", i - 7, i, label, f"8 masks in a row {word} than nominal ({name})")
        if i >= 5:
            w = values[i - 5: i + 1]
            diffs = [b - a for a, b in itertools.pairwise(w)]
            if all(d > 0 for d in diffs) or all(d < 0 for d in diffs):
                label = "up" if diffs[0] > 0 else "down"
                add("N3", i - 5, i, label, f"6 {name}s in a row trending {label}")
    return alerts


def capability(
    values: list[float], *, lsl: float, usl: float
) -> tuple[float | None, float | None, float | None]:
    """Short-term (sigma, Cp, Cpk) of a series in time order; sigma = MR-bar / d2.

    None where there are fewer than two values or no variation.
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        return None, None, None
    mr_bar = sum(abs(b - a) for a, b in itertools.pairwise(values)) / (len(values) - 1)
    sigma = mr_bar / D2
    if sigma <= 0:
        return sigma, None, None
    mean = sum(values) / len(values)
    return sigma, (usl - lsl) / (6 * sigma), min(usl - mean, mean - lsl) / (3 * sigma)


def control_chart(name: str, values: list[float], *, nominal: float, lsl: float, usl: float) -> ControlChart:
    """I-MR chart limits, Cp/Cpk and drift alerts for one dimension, in time order."""
    values = [float(v) for v in values]
    n = len(values)
    if n < 2:
        return ControlChart(name, n, nominal, lsl, usl, mean=values[0] if values else None)
    mean = sum(values) / n
    sigma, cp, cpk = capability(values, lsl=lsl, usl=usl)
    mr_bar = sigma * D2
    alerts = western_electric(values, nominal, sigma, name=name) if sigma > 0 else []
    return ControlChart(name, n, nominal, lsl, usl, mean=mean, sigma=sigma, ucl=mean + 3 * sigma,
                        lcl=mean - 3 * sigma, mr_bar=mr_bar, mr_ucl=D4 * mr_bar, cp=cp, cpk=cpk,
                        alerts=tuple(alerts))
