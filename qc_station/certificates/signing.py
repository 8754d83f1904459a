"""Ed25519 signatures over a canonical JSON form, and their verification.

A signed document is::

    {"payload": {...}, "signature": {"alg": "Ed25519", "key_id": "...",
                                      "public_key": "<base64 raw 32 bytes>", "value": "<base64>"}}

The signature covers ``canonical(payload)``: JSON with sorted keys, no insignificant
whitespace, UTF-8, floats as Python's shortest round-trip repr. The file itself is written
in ``canonical(document)`` form, and :func:`verify_bytes` insists on it, so a one-byte change
anywhere in the file (even in whitespace or in the signature block) is reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG = "Ed25519"


def canonical(obj) -> bytes:
    """The canonical byte form of a JSON value (what is signed and what is written)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """Short fingerprint of a public key: first 16 hex of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    """The station's signing key (PEM, PKCS#8), created with mode 0600 on first use."""
    path = Path(path)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path.with_suffix(".tmp"), path)
    return key


def sign_payload(payload: dict, key: Ed25519PrivateKey) -> dict:
    """Wrap ``payload`` in a signed document."""
    raw_pub = public_key_bytes(key.public_key())
    return {
        "payload": payload,
        "signature": {
            "alg": ALG,
            "key_id": key_id(raw_pub),
            "public_key": _b64(raw_pub),
            "value": _b64(key.sign(canonical(payload))),
        },
    }


def document_bytes(document: dict) -> bytes:
    """The exact bytes to write for a signed document (canonical form + newline)."""
    return canonical(document) + b"\n"


@dataclass
class Verification:
    """Outcome of verifying a signed document: valid or not, and every reason why not."""

    valid: bool
    reasons: list[str] = field(default_factory=list)
    key_id: str | None = None
    trusted_key: bool | None = None  # None: no trusted key list was given
    payload: dict | None = None


def verify_bytes(data: bytes, *, trusted_public_keys: list[bytes] | None = None) -> Verification:
    """Verify a signed document as written on disk.

    Checks, in order: JSON syntax, structure, canonical form of the file, the signature over
    the payload, and (if given) that the signing key is one of ``trusted_public_keys``.
    """
    reasons: list[str] = []
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Verification(False, [f"not a JSON document: {exc}"])
    if not isinstance(doc, dict) or set(doc) != {"payload", "signature"}:
        return Verification(False, ["not a signed certificate: expected exactly 'payload' and 'signature'"])
    sig, payload = doc["signature"], doc["payload"]
    if not isinstance(sig, dict) or sig.get("alg") != ALG:
        return Verification(False, [f"unsupported signature block (need alg {ALG})"])
    try:
        raw_pub = base64.b64decode(sig["public_key"], validate=True)
        value = base64.b64decode(sig["value"], validate=True)
        pub = Ed25519PublicKey.from_public_bytes(raw_pub)
    except (KeyError, TypeError, ValueError) as exc:
        return Verification(False, [f"malformed signature block: {exc}"])
    if _b64(raw_pub) != sig["public_key"] or _b64(value) != sig["value"]:
        # base64 tolerates stray padding bits; a strict round trip catches a changed last char
        reasons.append("signature block is not in canonical base64: it was edited")
    kid = key_id(raw_pub)
    if sig.get("key_id") != kid:
        reasons.append(f"key_id {sig.get('key_id')!r} does not match the public key ({kid})")
    if data != document_bytes(doc):
        reasons.append("file is not in canonical form: it was edited after signing")
    try:
        pub.verify(value, canonical(payload))
    except InvalidSignature:
        reasons.append("signature does not match the content: the certificate was altered")
    trusted = None
    if trusted_public_keys is not None:
        trusted = raw_pub in trusted_public_keys
        if not trusted:
            reasons.append(f"signed by key {kid}, which is not one of the trusted station keys")
    return Verification(not reasons, reasons, kid, trusted, payload if not reasons else None)
