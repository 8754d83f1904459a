import json

import pytest

from qc_station.certificates.signing import (
    canonical,
    document_bytes,
    load_or_create_key,
    public_key_bytes,
    sign_payload,
    verify_bytes,
)

PAYLOAD = {"certificate_id": "QC-1", "batch": "LOT-42", "counts": {"passed": 97, "failed": 3},
           "width": {"mean_mm": 180.12, "cpk": 1.41}, "note": "Atelier d'insertion — Lyon"}


@pytest.fixture()
def key(tmp_path):
    return load_or_create_key(tmp_path / "keys" / "station.pem")


def test_key_is_created_once_with_private_mode(tmp_path):
    path = tmp_path / "keys" / "station.pem"
    k1 = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    k2 = load_or_create_key(path)
    assert public_key_bytes(k1.public_key()) == public_key_bytes(k2.public_key())


def test_round_trip_valid_and_trusted(key):
    data = document_bytes(sign_payload(PAYLOAD, key))
    v = verify_bytes(data, trusted_public_keys=[public_key_bytes(key.public_key())])
    assert v.valid and v.trusted_key and v.payload == PAYLOAD and v.reasons == []


def test_every_single_byte_change_is_detected(key):
    data = document_bytes(sign_payload(PAYLOAD, key))
    for i in range(len(data)):
        for delta in (1, 0x20):
            altered = bytearray(data)
            altered[i] = (altered[i] + delta) % 256
            v = verify_bytes(bytes(altered))
            assert not v.valid, f"change at byte {i} (+{delta}) went unnoticed"
            assert v.reasons


def test_reasons_are_specific(key, tmp_path):
    doc = sign_payload(PAYLOAD, key)
    tampered = json.loads(canonical(doc))
    tampered["payload"]["counts"]["failed"] = 0
    v = verify_bytes(document_bytes(tampered))
    assert any("altered" in r for r in v.reasons)
    pretty = json.dumps(doc, indent=2).encode()
    v = verify_bytes(pretty)
    assert v.reasons == ["file is not in canonical form: it was edited after signing"]
    other = load_or_create_key(tmp_path / "other.pem")
    v = verify_bytes(document_bytes(doc), trusted_public_keys=[public_key_bytes(other.public_key())])
    assert not v.valid and "not one of the trusted station keys" in v.reasons[0]
    assert "not a JSON document" in verify_bytes(b"\x00garbage").reasons[0]
    assert "expected exactly" in verify_bytes(b'{"a": 1}').reasons[0]
