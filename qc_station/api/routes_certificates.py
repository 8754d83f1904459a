"""Batch certificates: download (coordinator role), verify (open), the station's public keys (open).

- ``GET /api/batches/{id}/certificate.pdf`` / ``.json``: issue (or serve the identical earlier
  issue of) the signed certificate of a batch. Needs coordinator when tokens are in use.
- ``POST /api/certificates/verify``: upload a certificate JSON, or a PDF together with its
  JSON (multipart fields ``file`` and ``json``), or send one as the raw body; answers valid or
  invalid with every reason, and whether the signing key is one of this station's keys.
- ``GET /api/certificates/{certificate_id}.pdf`` / ``.json``: an issued certificate again, by id
  (coordinator), e.g. the JSON of a PDF of a batch that is still growing.
- ``GET /api/keys``: the station's public key(s), to verify certificates offline.
- Pages: ``/coordinator`` (batches + downloads + verify form) and ``/verify`` (where the QR
  code of a certificate points; the verify form alone).

Verifying and the public keys are open even when tokens are required: a buyer holding a
certificate has no station account, and neither reveals anything that is not printed on it.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from qc_station.api.params import BadRequestError
from qc_station.api.routes_dashboard import spec_for
from qc_station.certificates.content import CertificateSettings
from qc_station.certificates.issue import verify_pdf_bytes
from qc_station.certificates.service import ISSUED_DIR, issue_for_batch, station_keys
from qc_station.certificates.signing import verify_bytes
from qc_station.errors import NotFoundError

MAX_UPLOAD = 20 * 1024 * 1024
CERT_ID = re.compile(r"QC-\d{8}-[0-9A-F]{10}")
Mode = Annotated[Literal["100%", "iso2859"] | None,
                 Query(description="Acceptance basis (default: the station config's)")]
Aql = Annotated[float | None, Query(ge=0, le=10, description="ISO 2859-1 AQL (default: the config's)")]


class KeyView(BaseModel):
    key_id: str
    alg: str = "Ed25519"
    public_key: str  # base64 of the raw 32-byte key
    current: bool


class Keys(BaseModel):
    station_id: str
    keys: list[KeyView]


class VerifyAnswer(BaseModel):
    valid: bool
    reasons: list[str]
    checked: str  # "json" or "pdf+json"
    key_id: str | None = None
    station_key: bool | None = None
    certificate_id: str | None = None
    lot_id: str | None = None
    batch_id: str | None = None
    decision: str | None = None
    issued_at: str | None = None


def build(ctx) -> APIRouter:
    router = APIRouter(tags=["certificates"])
    coordinator = ctx.auth.role("coordinator")
    static = resources.files("qc_station.web") / "static"
    data_dir = ctx.store.data_dir

    def calibrations() -> list:
        cal = getattr(ctx.station, "calibration", None) if ctx.station is not None else None
        found = [cal] if cal is not None else []
        try:
            if ctx.settings.calibration == "sim":
                from qc_station.calibration import bundled_sim_calibration

                found.append(bundled_sim_calibration())
            elif cal is None:
                from qc_station.calibration import load_calibration

                found.append(load_calibration(ctx.settings.calibration))
        except Exception:  # a missing file only costs the date on the certificate
            pass
        return found

    def settings_for(request: Request, mode, aql_critical, aql_major, aql_minor) -> CertificateSettings:
        conf = ctx.settings.certificates
        base = (conf.public_url or str(request.base_url)).rstrip("/")
        return CertificateSettings(
            mode=mode or conf.mode,
            aql_critical=conf.aql_critical if aql_critical is None else aql_critical,
            aql_major=conf.aql_major if aql_major is None else aql_major,
            aql_minor=conf.aql_minor if aql_minor is None else aql_minor,
            verify_url=f"{base}/verify",
        )

    def issue(request: Request, batch_id: int, mode, aql_critical, aql_major, aql_minor, actor):
        batch = ctx.store.get_batch(batch_id)
        settings = settings_for(request, mode, aql_critical, aql_major, aql_minor)
        return issue_for_batch(ctx.store, batch_id, spec_for(ctx, batch.spec_name), settings,
                               data_dir=data_dir, calibrations=calibrations(), actor=actor.label)

    @router.get("/api/batches/{batch_id}/certificate.pdf", response_class=Response,
                responses={200: {"content": {"application/pdf": {}}}})
    def certificate_pdf(request: Request, batch_id: int, mode: Mode = None, aql_critical: Aql = None,
                        aql_major: Aql = None, aql_minor: Aql = None, actor=Depends(coordinator)) -> Response:
        """The batch certificate as a PDF report (its signed JSON holds this PDF's SHA-256)."""
        got = issue(request, batch_id, mode, aql_critical, aql_major, aql_minor, actor)
        return Response(got.certificate.pdf_bytes, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{got.certificate.certificate_id}.pdf"',
            "X-Certificate-Id": got.certificate.certificate_id})

    @router.get("/api/batches/{batch_id}/certificate.json", response_class=Response,
                responses={200: {"content": {"application/json": {}}}})
    def certificate_json(request: Request, batch_id: int, mode: Mode = None, aql_critical: Aql = None,
                         aql_major: Aql = None, aql_minor: Aql = None,
                         actor=Depends(coordinator)) -> Response:
        """The signed certificate (canonical JSON; any change to its bytes makes it invalid)."""
        got = issue(request, batch_id, mode, aql_critical, aql_major, aql_minor, actor)
        return Response(got.certificate.json_bytes, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{got.certificate.certificate_id}.json"',
            "X-Certificate-Id": got.certificate.certificate_id})

    @router.get("/api/certificates/{certificate_id}.{ext}", response_class=Response,
                responses={200: {"content": {"application/pdf": {}, "application/json": {}}}})
    def issued(certificate_id: str, ext: Literal["pdf", "json"], actor=Depends(coordinator)) -> Response:
        """A certificate this station issued earlier, by id: e.g. the JSON that goes with a PDF
        (its ``X-Certificate-Id``) while an open batch keeps growing."""
        if not CERT_ID.fullmatch(certificate_id):
            raise BadRequestError(f"{certificate_id!r} is not a certificate id (QC-YYYYMMDD-XXXXXXXXXX)")
        path = Path(data_dir) / ISSUED_DIR / f"{certificate_id}.{ext}"
        if not path.is_file():
            raise NotFoundError(f"this station has no issued certificate {certificate_id}")
        media = "application/pdf" if ext == "pdf" else "application/json"
        return Response(path.read_bytes(), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{certificate_id}.{ext}"',
            "X-Certificate-Id": certificate_id})

    @router.get("/api/keys", response_model=Keys)
    def keys() -> Keys:
        """The station's public Ed25519 key(s); the current signing key is created if missing."""
        from qc_station.certificates.service import signing_key

        signing_key(data_dir)
        return Keys(station_id=ctx.station_id, keys=[
            KeyView(key_id=k.key_id, public_key=k.public_key_b64, current=k.current)
            for k in station_keys(data_dir)])

    @router.post("/api/certificates/verify", response_model=VerifyAnswer,
                 openapi_extra={"requestBody": {"content": {
                     "multipart/form-data": {"schema": {"type": "object", "properties": {
                         "file": {"type": "string", "format": "binary"},
                         "json": {"type": "string", "format": "binary"}}, "required": ["file"]}},
                     "application/json": {}, "application/pdf": {}}}})
    async def verify(request: Request) -> VerifyAnswer:
        """Is this certificate genuine and unchanged, and signed by this station? Reasons if not."""
        main, companion = await _uploads(request)
        trusted = [k.public_key for k in station_keys(data_dir)]
        if main.startswith(b"%PDF"):
            v = verify_pdf_bytes(main, companion, trusted_public_keys=trusted)
            checked = "pdf+json"
        else:
            v = verify_bytes(main, trusted_public_keys=trusted)
            checked = "json"
        p = v.payload or {}
        return VerifyAnswer(
            valid=v.valid, reasons=v.reasons, checked=checked, key_id=v.key_id, station_key=v.trusted_key,
            certificate_id=p.get("certificate_id"), lot_id=(p.get("batch") or {}).get("lot_id"),
            batch_id=(p.get("batch") or {}).get("batch_id"),
            decision=(p.get("acceptance") or {}).get("decision"), issued_at=p.get("issued_at"))

    def page(name: str):
        def serve() -> FileResponse:
            return FileResponse(str(static / name), headers={"Cache-Control": "no-cache"})
        return serve

    router.add_api_route("/coordinator", page("coordinator.html"), include_in_schema=False)
    router.add_api_route("/verify", page("coordinator.html"), include_in_schema=False)
    return router


async def _uploads(request: Request) -> tuple[bytes, bytes | None]:
    """(certificate file, its JSON if the file is a PDF) from a multipart form or a raw body."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_UPLOAD:
        raise BadRequestError(f"upload too large ({length} bytes; limit {MAX_UPLOAD})")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_part_size=MAX_UPLOAD)
        files = {}
        for field in ("file", "json"):
            item = form.get(field)
            if item is None or isinstance(item, str):
                files[field] = item.encode() if isinstance(item, str) and item else None
            else:
                files[field] = await item.read()
        if not files["file"]:
            raise BadRequestError("send the certificate in the form field 'file' (and its JSON in 'json' "
                                  "when 'file' is the PDF)")
        return files["file"], files["json"]
    body = await request.body()
    if not body:
        raise BadRequestError("empty request: upload a certificate JSON (or PDF + JSON as multipart "
                              "fields 'file' and 'json')")
    return body, None
