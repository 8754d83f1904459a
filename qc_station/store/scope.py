"""Which inspections a query covers: one filter shape for the store, the stats and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """Which inspections a query covers (None = no restriction). Times: Unix seconds.

    The operator is the batch's operator (inspections are filed under batches).
    """

    batch_id: int | None = None
    station_id: str | None = None
    operator: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, alias: str = "i") -> tuple[str, list]:
        """SQL condition on the inspections table (aliased ``alias``) and its parameters."""
        cond, params = ["1"], []
        for col, val in (("batch_id", self.batch_id), ("station_id", self.station_id)):
            if val is not None:
                cond.append(f"{alias}.{col} = ?")
                params.append(val)
        if self.operator is not None:
            cond.append(f"{alias}.batch_id IN (SELECT id FROM batches WHERE operator = ?)")
            params.append(self.operator)
        if self.since is not None:
            cond.append(f"{alias}.ts_epoch >= ?")
            params.append(self.since)
        if self.until is not None:
            cond.append(f"{alias}.ts_epoch < ?")
            params.append(self.until)
        return " AND ".join(cond), params

    def narrowed(self, **kw) -> Scope:
        """A copy with some fields replaced."""
        return Scope(**{**self.__dict__, **kw})
