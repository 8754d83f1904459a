"""Adapter from the store to the certificate builder: one batch -> BatchInfo + InspectionRows.

The certificate code (:mod:`qc_station.certificates`) is pure and knows nothing of SQLite;
this module reads a batch and its inspections, points each reject at its stored image (the
annotated overlay first) and looks up calibration dates from the calibration files it is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from qc_station.certificates.content import BatchInfo, InspectionRow
from qc_station.errors import NotFoundError
from qc_station.store.db import Store
from qc_station.store.models import BatchRecord

#: Image kinds tried for a reject's thumbnail on the certificate, best first.
THUMB_KINDS = ("annotated", "thumb", "frame")


@dataclass(frozen=True)
class CertificateInputs:
    """Everything the store knows that goes on one batch certificate."""

    batch: BatchRecord
    info: BatchInfo
    rows: list[InspectionRow]
    calibration_dates: dict[str, str] = field(default_factory=dict)

    @property
    def basis_key(self) -> str:
        """Changes whenever the certificate's content would: batch state + inspections in it."""
        last = self.rows[-1].id if self.rows else "0"
        return f"{self.batch.id}:{len(self.rows)}:{last}:{self.batch.closed_at or 'open'}"


def find_batch(store: Store, ref: str | int) -> BatchRecord:
    """A batch by numeric id or by lot id (the newest batch of that lot)."""
    text = str(ref).strip()
    if text.isdigit():
        try:
            return store.get_batch(int(text))
        except NotFoundError:
            pass  # a lot id may be all digits too
    page = store.list_batches(lot_id=text, limit=1)
    if page.items:
        return page.items[0]
    raise NotFoundError(f"no batch with id or lot id {text!r} (list them: GET /api/batches)")


def certificate_inputs(
    store: Store, batch_id: int, *, calibrations: Iterable[object] = ()
) -> CertificateInputs:
    """Read batch ``batch_id`` and its inspections (oldest first) for a certificate.

    ``calibrations`` are StationCalibration objects the station knows (its current one, the
    bundled simulator one); their ``created_at`` become the calibration dates on the certificate.
    """
    batch = store.get_batch(batch_id)
    rows = store.query(
        "SELECT id, ts, verdict, reason_codes, width_mm, height_mm, station_id, calibration_id, model_sha256 "
        "FROM inspections WHERE batch_id = ? ORDER BY id",
        (batch_id,),
    )
    thumbs = _reject_thumbnails(store, batch_id)
    items = [
        InspectionRow(
            id=str(r["id"]), time=r["ts"], verdict=r["verdict"], reason_codes=json.loads(r["reason_codes"]),
            width_mm=r["width_mm"], height_mm=r["height_mm"], station_id=r["station_id"],
            calibration_id=r["calibration_id"] or "", model_sha256=r["model_sha256"],
            thumbnail_path=thumbs.get(r["id"]),
        )
        for r in rows
    ]
    stations = sorted({r.station_id for r in items} or {batch.station_id})
    info = BatchInfo(
        batch_id=str(batch.id), lot_id=batch.lot_id, workshop=batch.workshop, operator=batch.operator,
        station_ids=stations, opened_at=batch.opened_at, closed_at=batch.closed_at,
    )
    dates = {}
    for cal in calibrations:
        cid, created = getattr(cal, "id", None), getattr(cal, "created_at", None)
        if cid and created:
            dates[cid] = created
    return CertificateInputs(batch, info, items, dates)


def _reject_thumbnails(store: Store, batch_id: int) -> dict[int, str]:
    """Inspection id -> image file for each failed inspection of the batch that still has one."""
    found: dict[int, tuple[int, str]] = {}
    for r in store.query(
        "SELECT m.inspection_id, m.kind, m.path FROM images m JOIN inspections i ON i.id = m.inspection_id "
        "WHERE i.batch_id = ? AND i.verdict = 'fail'",
        (batch_id,),
    ):
        rank = THUMB_KINDS.index(r["kind"]) if r["kind"] in THUMB_KINDS else len(THUMB_KINDS)
        path = store.images.path(r["path"])
        best = found.get(r["inspection_id"])
        if path.is_file() and (best is None or rank < best[0]):
            found[r["inspection_id"]] = (rank, str(path))
    return {k: v[1] for k, v in found.items()}
