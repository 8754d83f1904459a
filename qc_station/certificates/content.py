"""What a batch certificate says: counts, dimensional statistics, acceptance, traceability.

Pure: typed inputs (batch, spec, one row per inspection) in, a JSON-ready payload out. The
store builds the inputs (``qc_station.store``), :mod:`.pdf` draws the payload and
:mod:`.signing` signs it.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qc_station import __version__
from qc_station.certificates.aql import single_sampling_plan
from qc_station.spc import capability
from qc_station.spec import MaskSpec

SEVERITY_ORDER = ("critical", "major", "minor")


class CertificateSettings(BaseModel):
    """How lots are accepted. Defaults: 100 % inspection; ISO 2859-1 level II shown alongside."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["100%", "iso2859"] = Field("100%", description="Acceptance basis")
    level: Literal["I", "II", "III"] = "II"
    aql_critical: float = 0.0
    aql_major: float = 2.5
    aql_minor: float = 4.0
    verify_url: str = Field("http://127.0.0.1:8000/api/certificates/verify",
                            description="Where the QR code on the PDF points")


class BatchInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str
    lot_id: str
    workshop: str = ""
    operator: str = ""
    station_ids: list[str] = []
    opened_at: str
    closed_at: str | None = None


class InspectionRow(BaseModel):
    """The part of one stored inspection a certificate needs."""

    model_config = ConfigDict(extra="forbid")

    id: str
    time: str
    verdict: Literal["pass", "fail", "unusable"]
    reason_codes: list[str] = []
    width_mm: float | None = None
    height_mm: float | None = None
    station_id: str = ""
    calibration_id: str = ""
    model_sha256: str | None = None
    thumbnail_path: str | None = None


def _stats(values: list[float], lower: float, upper: float) -> dict:
    """Summary of one dimension over the batch, in inspection order.

    Cp/Cpk use the short-term sigma from the moving range (as the dashboard's control
    charts do); Pp/Ppk use the overall standard deviation, which also contains drift.
    """
    n = len(values)
    if n == 0:
        return {"n": 0}
    mean = statistics.fmean(values)
    out = {"n": n, "mean_mm": round(mean, 3), "min_mm": round(min(values), 3),
           "max_mm": round(max(values), 3), "lsl_mm": lower, "usl_mm": upper,
           "sd_mm": None, "cp": None, "cpk": None, "pp": None, "ppk": None}
    if n >= 2:
        _, cp, cpk = capability(values, lsl=lower, usl=upper)
        out["cp"] = None if cp is None else round(cp, 3)
        out["cpk"] = None if cpk is None else round(cpk, 3)
        sd = statistics.stdev(values)
        out["sd_mm"] = round(sd, 4)
        if sd > 0:
            out["pp"] = round((upper - lower) / (6 * sd), 3)
            out["ppk"] = round(min(upper - mean, mean - lower) / (3 * sd), 3)
    return out


def severities(codes: list[str], spec: MaskSpec) -> set[str]:
    """The ISO 2859 classes (critical / major / minor) of a mask's reason codes."""
    return {spec.severity_of(c) for c in codes}


def worst_severity(codes: list[str], spec: MaskSpec) -> str | None:
    """The most serious ISO 2859 class among a mask's reason codes (None if it passed)."""
    found = severities(codes, spec)
    return next((s for s in SEVERITY_ORDER if s in found), None)


def _sampling(rows: list[InspectionRow], spec: MaskSpec, settings: CertificateSettings, seed: str) -> dict:
    """Apply the ISO 2859-1 plans to a reproducible random sample of the judged masks."""
    lot_size = len(rows)
    if lot_size < 2:
        return {"applicable": False, "why": "fewer than 2 judged masks"}
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    per_class = {}
    accepted = True
    for severity, aql in (("critical", settings.aql_critical), ("major", settings.aql_major),
                          ("minor", settings.aql_minor)):
        plan = single_sampling_plan(lot_size, aql, settings.level)
        sample = rng.sample(rows, plan.sample_size)
        # A unit counts against every class at or above its worst defect (standard practice
        # counts nonconforming units per class).
        found = sum(1 for r in sample if severity in _classes(r, spec))
        decision = plan.decide(found)
        accepted &= decision == "accept"
        per_class[severity] = {
            "aql": aql, "code_letter": plan.code_letter, "plan_letter": plan.plan_letter,
            "sample_size": plan.sample_size, "ac": plan.ac, "re": plan.re,
            "nonconforming_in_sample": found, "decision": decision,
        }
    return {"applicable": True, "lot_size": lot_size, "level": settings.level,
            "decision": "accept" if accepted else "reject", "per_class": per_class}


def _classes(row: InspectionRow, spec: MaskSpec) -> set[str]:
    return severities(row.reason_codes, spec) if row.verdict == "fail" else set()


def build_payload(
    batch: BatchInfo,
    spec: MaskSpec,
    rows: list[InspectionRow],
    settings: CertificateSettings | None = None,
    *,
    calibration_dates: dict[str, str] | None = None,
    issued_at: datetime | None = None,
    certificate_id: str | None = None,
) -> dict:
    """The certificate's content (before signing); the last 12 rejects are listed by id."""
    settings = settings or CertificateSettings()
    issued = (issued_at or datetime.now(UTC)).astimezone(UTC)
    cert_id = certificate_id or f"QC-{issued:%Y%m%d}-{uuid.uuid4().hex[:10].upper()}"
    judged = [r for r in rows if r.verdict in ("pass", "fail")]
    failed = [r for r in judged if r.verdict == "fail"]
    unusable = [r for r in rows if r.verdict == "unusable"]
    by_reason: dict[str, int] = {}
    for r in failed:
        for code in dict.fromkeys(r.reason_codes):
            by_reason[code] = by_reason.get(code, 0) + 1
    by_severity = {s: 0 for s in SEVERITY_ORDER}
    for r in failed:
        sev = worst_severity(r.reason_codes, spec)
        if sev:
            by_severity[sev] += 1
    unusable_by_reason: dict[str, int] = {}
    for r in unusable:
        for code in dict.fromkeys(r.reason_codes or ["unreadable"]):
            unusable_by_reason[code] = unusable_by_reason.get(code, 0) + 1
    d = spec.dimensions
    widths = [r.width_mm for r in judged if r.width_mm is not None]
    heights = [r.height_mm for r in judged if r.height_mm is not None]
    cal_ids = sorted({r.calibration_id for r in rows if r.calibration_id})
    models = sorted({r.model_sha256 for r in rows if r.model_sha256})
    sampling = _sampling(judged, spec, settings, cert_id)
    if settings.mode == "100%":
        complete = batch.closed_at is not None and len(judged) > 0
        decision = "accepted" if complete else "not decided"
        basis = (f"100% inspection: each of the {len(judged)} masks received its own verdict; the "
                 f"{len(judged) - len(failed)} passed masks form the accepted lot and the {len(failed)} "
                 "rejected masks were removed." if complete else
                 "100% inspection not complete (batch still open or no mask judged).")
    else:
        decision = {"accept": "accepted", "reject": "rejected"}.get(sampling.get("decision"), "not decided")
        basis = (f"ISO 2859-1 single sampling, normal inspection, general level {settings.level}, AQL "
                 f"critical {settings.aql_critical} / major {settings.aql_major} / minor "
                 f"{settings.aql_minor}, applied to a reproducible random sample of the judged masks.")
    return {
        "schema": "qc-station/certificate/1",
        "certificate_id": cert_id,
        "issued_at": issued.isoformat(timespec="seconds"),
        "batch": batch.model_dump(),
        "product": {
            "spec_name": spec.name, "spec_version": spec.version, "spec_id": spec.spec_id,
            "description": spec.description,
            "limits": {
                "width_mm": [d.width_mm.lower, d.width_mm.upper],
                "height_mm": [d.height_mm.lower, d.height_mm.upper],
                "pleats": spec.construction.pleats,
                "ear_loops_per_side": spec.construction.ear_loops_per_side,
                "stitch_length_mm": [spec.seam.stitch_length_mm.lower, spec.seam.stitch_length_mm.upper],
                "seam_distance_mm": [spec.seam.distance_mm.lower, spec.seam.distance_mm.upper],
            },
        },
        "traceability": {
            "calibrations": [{"id": c, "created_at": (calibration_dates or {}).get(c)} for c in cal_ids],
            "model_sha256": models,
            "software_version": __version__,
        },
        "counts": {
            "frames": len(rows), "inspected": len(judged), "passed": len(judged) - len(failed),
            "failed": len(failed), "failed_by_reason": dict(sorted(by_reason.items())),
            "failed_by_severity": by_severity, "unusable": len(unusable),
            "unusable_by_reason": dict(sorted(unusable_by_reason.items())),
            "pass_rate": round((len(judged) - len(failed)) / len(judged), 4) if judged else None,
        },
        "dimensions": {
            "width": _stats(widths, d.width_mm.lower, d.width_mm.upper),
            "height": _stats(heights, d.height_mm.lower, d.height_mm.upper),
        },
        "acceptance": {"mode": settings.mode, "decision": decision, "basis": basis,
                       "iso2859": sampling},
        "rejects": [
            {"inspection_id": r.id, "time": r.time, "reasons": r.reason_codes}
            for r in failed[-12:]
        ],
        "verify_url": settings.verify_url,
    }
