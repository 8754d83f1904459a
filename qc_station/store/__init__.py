"""Storage: one SQLite file (WAL, synchronous=FULL, migrations) + image files beside it.

``Store`` is the one entry point; ``queries`` holds the statistics; ``models`` the typed records.
"""

from qc_station.store.db import DB_NAME, ImagesNotSavedError, Store
from qc_station.store.images import ImagePolicy
from qc_station.store.models import (
    ROLE_RANK,
    AuditEntry,
    BatchRecord,
    FrameInfo,
    InspectionRecord,
    Page,
    UserRecord,
)

__all__ = [
    "DB_NAME",
    "ROLE_RANK",
    "AuditEntry",
    "BatchRecord",
    "FrameInfo",
    "ImagePolicy",
    "ImagesNotSavedError",
    "InspectionRecord",
    "Page",
    "Store",
    "UserRecord",
]
