"""The station side of certificates: its signing key(s), settings checks, issuing for a stored batch.

Shared by ``qc-station certificate`` and the API. The signing key lives in the data folder
(``<data>/keys/station-ed25519.pem``, created on first use, mode 0600). Every ``*.pem`` in
that folder, plus any ``*.pub`` (base64 of a raw 32-byte public key, e.g. of a retired or
replaced key), is a *station key*: certificates signed by one of them verify as trusted.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qc_station.certificates.aql import AQLS
from qc_station.certificates.content import CertificateSettings
from qc_station.certificates.issue import IssuedCertificate, issue_certificate
from qc_station.certificates.signing import key_id, load_or_create_key, public_key_bytes
from qc_station.errors import QCError
from qc_station.spec import MaskSpec

KEY_DIR = "keys"
KEY_FILE = "station-ed25519.pem"
ISSUED_DIR = "certificates"
_issue_lock = threading.Lock()


class CertificateSettingsError(QCError):
    """Certificate options that the standard's tables cannot use (e.g. a non-preferred AQL)."""

    exit_code = 2
    http_status = 400


@dataclass(frozen=True)
class StationKey:
    key_id: str
    public_key: bytes  # raw 32 bytes
    source: str  # file name in the key folder
    current: bool  # the one that signs new certificates

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode("ascii")


def signing_key(data_dir: str | Path) -> Ed25519PrivateKey:
    """The station's signing key, created in ``<data>/keys/`` on first use."""
    return load_or_create_key(Path(data_dir) / KEY_DIR / KEY_FILE)


def station_keys(data_dir: str | Path) -> list[StationKey]:
    """Every public key this station vouches for (current key first). Unreadable files are skipped."""
    folder = Path(data_dir) / KEY_DIR
    keys: dict[bytes, StationKey] = {}
    for path in sorted(folder.glob("*.pem")) + sorted(folder.glob("*.pub")):
        try:
            if path.suffix == ".pem":
                priv = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if not isinstance(priv, Ed25519PrivateKey):
                    continue
                raw = public_key_bytes(priv.public_key())
            else:
                raw = base64.b64decode(path.read_text().strip(), validate=True)
                if len(raw) != 32:
                    continue
        except (OSError, ValueError, TypeError):
            continue
        keys.setdefault(raw, StationKey(key_id(raw), raw, path.name, path.name == KEY_FILE))
    return sorted(keys.values(), key=lambda k: (not k.current, k.source))


def check_settings(settings: CertificateSettings) -> CertificateSettings:
    """Refuse AQLs that are not preferred values of ISO 2859-1 (0 = none allowed)."""
    for name in ("aql_critical", "aql_major", "aql_minor"):
        value = getattr(settings, name)
        if value != 0 and not any(abs(value - a) < 1e-9 for a in AQLS):
            raise CertificateSettingsError(
                f"{name.replace('_', '-')} {value:g} is not a preferred AQL of ISO 2859-1 "
                f"(use 0 or one of {', '.join(f'{a:g}' for a in AQLS)})"
            )
    return settings


@dataclass(frozen=True)
class BatchCertificate:
    certificate: IssuedCertificate
    json_path: Path
    pdf_path: Path
    reused: bool  # an identical earlier issue was served again


def issue_for_batch(
    store,
    batch_id: int,
    spec: MaskSpec,
    settings: CertificateSettings,
    *,
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    calibrations: Iterable[object] = (),
    reuse: bool = True,
    actor: str = "system",
) -> BatchCertificate:
    """Issue (sign, draw, write) the certificate of a stored batch.

    With ``reuse`` an earlier certificate is served again while nothing it depends on changed
    (same inspections, batch state, settings, spec and key), so a PDF and its JSON fetched one
    after the other belong together. Files go to ``out_dir`` (default ``<data>/certificates``).
    """
    from qc_station.store.certificate_rows import certificate_inputs

    check_settings(settings)
    out = Path(out_dir) if out_dir is not None else Path(data_dir) / ISSUED_DIR
    key = signing_key(data_dir)
    inputs = certificate_inputs(store, batch_id, calibrations=calibrations)
    basis = hashlib.sha256("|".join([
        inputs.basis_key, settings.model_dump_json(), spec.spec_id,
        key_id(public_key_bytes(key.public_key())),
    ]).encode()).hexdigest()[:16]
    marker = out / f"batch-{batch_id}-{basis}.issued"
    with _issue_lock:
        if reuse and marker.is_file():
            cert_id = marker.read_text().strip()
            jp, pp = out / f"{cert_id}.json", out / f"{cert_id}.pdf"
            if jp.is_file() and pp.is_file():
                cert = IssuedCertificate(cert_id, jp.read_bytes(), pp.read_bytes())
                return BatchCertificate(cert, jp, pp, True)
        cert = issue_certificate(inputs.info, spec, inputs.rows, key, settings,
                                 calibration_dates=inputs.calibration_dates)
        jp, pp = cert.write(out)
        if reuse:
            marker.write_text(cert.certificate_id + "\n")
    store.audit(actor, "certificate.issue", f"batch:{batch_id}",
                {"certificate_id": cert.certificate_id, "mode": settings.mode,
                 "inspections": len(inputs.rows)})
    return BatchCertificate(cert, jp, pp, False)
