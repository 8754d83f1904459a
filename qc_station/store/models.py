"""Typed records the store returns (pydantic), shared with the API as response models."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from qc_station.results import Finding, Measurements, Quality, Reason, Verdict

Role = Literal["operator", "supervisor", "coordinator", "admin"]
ImageKind = Literal["frame", "annotated", "thumb"]

#: Rank of each role: a route that needs a role accepts that role and every higher one.
ROLE_RANK: dict[str, int] = {"operator": 1, "supervisor": 2, "coordinator": 3, "admin": 4}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StationRecord(_Record):
    id: str
    name: str
    workshop: str = ""
    created_at: str


class BatchRecord(_Record):
    """A production lot inspected on one station; at most one is open per station."""

    id: int
    station_id: str
    lot_id: str
    spec_name: str
    spec_version: int
    spec_id: str
    workshop: str = ""
    operator: str = ""
    note: str = ""
    opened_at: str
    closed_at: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class FrameInfo(_Record):
    """Where a frame came from (capture.Frame without its pixels)."""

    seq: int | None = None
    timestamp: float | None = Field(None, description="Capture time, Unix seconds")
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ImageRef(_Record):
    kind: ImageKind
    url: str
    bytes: int


class InspectionRecord(_Record):
    """One stored inspection: the InspectionResult plus where, when and which batch."""

    id: int
    uid: str
    station_id: str
    batch_id: int | None
    ts: str = Field(description="Time the result was stored, ISO 8601 UTC")
    ts_epoch: float
    verdict: Verdict
    reason_codes: list[str]
    reasons: list[Reason]
    plain_words: list[str] = Field(description="The reasons in words an operator reads")
    measurements: Measurements | None = None
    defects: list[Finding] = Field(default_factory=list)
    anomaly_score: float | None = None
    quality: Quality | None = None
    spec_name: str | None = None
    spec_version: int | None = None
    spec_id: str | None = None
    calibration_id: str | None = None
    model_sha256: str | None = None
    software_version: str | None = None
    timing_ms: dict[str, float] = Field(default_factory=dict)
    pipeline_ms: float | None = None
    frame: FrameInfo = FrameInfo()
    image_name: str | None = None
    trigger: str = ""
    image_note: str = Field("", description="Why images are missing, if they are")
    images: list[ImageRef] = Field(default_factory=list)


class UserRecord(_Record):
    id: int
    name: str
    role: Role
    created_at: str
    disabled: bool = False


class AuditEntry(_Record):
    id: int
    ts: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; ``next_before_id`` continues it (keyset pagination)."""

    items: list[T]
    total: int
    limit: int
    next_before_id: int | None = None
