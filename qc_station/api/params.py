"""Query-parameter parsing shared by the routes (clear 400s, never a 500)."""

from __future__ import annotations

from datetime import UTC, datetime

from qc_station.errors import QCError
from qc_station.results import REASON_CODES


class BadRequestError(QCError):
    """A request parameter has a valid type but an unusable value."""

    http_status = 400


def parse_time(value: str | None, name: str) -> float | None:
    """Unix seconds, or ISO 8601 (naive = UTC), as Unix seconds."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(
            f"{name}={value!r} is not a time: use ISO 8601 (2026-11-28T14:00:00Z) or Unix seconds"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def check_reason(code: str | None) -> str | None:
    if code is not None and code not in REASON_CODES:
        raise BadRequestError(f"unknown reason {code!r}; known: {', '.join(REASON_CODES)}")
    return code
