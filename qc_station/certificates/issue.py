"""Issue a signed certificate (JSON + PDF) and verify either file later."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qc_station.certificates.content import BatchInfo, CertificateSettings, InspectionRow, build_payload
from qc_station.certificates.pdf import render_pdf
from qc_station.certificates.signing import (
    Verification,
    document_bytes,
    key_id,
    public_key_bytes,
    sign_payload,
    verify_bytes,
)
from qc_station.spec import MaskSpec


@dataclass(frozen=True)
class IssuedCertificate:
    certificate_id: str
    json_bytes: bytes
    pdf_bytes: bytes

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``<id>.json`` and ``<id>.pdf`` atomically; returns both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, data in ((".json", self.json_bytes), (".pdf", self.pdf_bytes)):
            final = out / f"{self.certificate_id}{suffix}"
            tmp = final.with_suffix(suffix + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            paths.append(final)
        return paths[0], paths[1]


def issue_certificate(
    batch: BatchInfo,
    spec: MaskSpec,
    rows: list[InspectionRow],
    key: Ed25519PrivateKey,
    settings: CertificateSettings | None = None,
    *,
    calibration_dates: dict[str, str] | None = None,
    **payload_kw,
) -> IssuedCertificate:
    """Build, draw and sign a batch certificate. The signed JSON holds the PDF's SHA-256."""
    payload = build_payload(batch, spec, rows, settings, calibration_dates=calibration_dates, **payload_kw)
    kid = key_id(public_key_bytes(key.public_key()))
    thumbs = {r.id: r.thumbnail_path for r in rows if r.thumbnail_path}
    pdf = render_pdf(payload, key_id=kid, thumbnails=thumbs)
    payload["pdf_sha256"] = hashlib.sha256(pdf).hexdigest()
    return IssuedCertificate(payload["certificate_id"], document_bytes(sign_payload(payload, key)), pdf)


def verify_file(
    path: str | Path,
    *,
    json_path: str | Path | None = None,
    trusted_public_keys: list[bytes] | None = None,
) -> Verification:
    """Verify a certificate JSON, or a PDF against its JSON (default: same name, ``.json``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Verification(False, [f"cannot read {path}: {exc.strerror or exc}"])
    if not data.startswith(b"%PDF"):
        return verify_bytes(data, trusted_public_keys=trusted_public_keys)
    return verify_pdf_bytes(data, _sibling_json(path, json_path), trusted_public_keys=trusted_public_keys)


def _sibling_json(pdf_path: Path, json_path: str | Path | None) -> bytes | None:
    candidate = Path(json_path) if json_path else pdf_path.with_suffix(".json")
    try:
        return candidate.read_bytes()
    except OSError:
        return None


def verify_pdf_bytes(pdf: bytes, json_bytes: bytes | None, *,
                     trusted_public_keys: list[bytes] | None = None) -> Verification:
    """A PDF is valid when its signed JSON is valid and names this PDF's exact SHA-256."""
    if json_bytes is None:
        return Verification(False, ["the signed JSON certificate that goes with this PDF was not found "
                                    "(keep <id>.json next to <id>.pdf, or pass it with --json)"])
    v = verify_bytes(json_bytes, trusted_public_keys=trusted_public_keys)
    if not v.valid:
        return v
    digest = hashlib.sha256(pdf).hexdigest()
    if v.payload.get("pdf_sha256") != digest:
        return Verification(False, [f"PDF does not match its signed certificate: sha256 {digest[:16]}... "
                                    f"!= {str(v.payload.get('pdf_sha256'))[:16]}... (PDF altered?)"],
                            v.key_id, v.trusted_key)
    return v
