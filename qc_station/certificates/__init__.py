"""Per-batch QC certificates: content, ISO 2859-1 plans, PDF, Ed25519 signing, verification."""

from qc_station.certificates.content import BatchInfo, CertificateSettings, InspectionRow, build_payload
from qc_station.certificates.issue import IssuedCertificate, issue_certificate, verify_file, verify_pdf_bytes
from qc_station.certificates.signing import Verification, load_or_create_key, verify_bytes

__all__ = [
    "BatchInfo",
    "CertificateSettings",
    "InspectionRow",
    "IssuedCertificate",
    "Verification",
    "build_payload",
    "issue_certificate",
    "load_or_create_key",
    "verify_bytes",
    "verify_file",
    "verify_pdf_bytes",
]
