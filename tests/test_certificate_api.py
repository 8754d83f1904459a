"""Certificate routes on a real server with tokens in use: roles, round trip, tampering, keys, the PDF."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dashboard_seed import served

from qc_station.calibration import bundled_sim_calibration
from qc_station.certificates.aql import single_sampling_plan
from qc_station.certificates.signing import document_bytes, sign_payload


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served(tmp_path_factory.mktemp("certs"), tokens=True) as s, \
            httpx.Client(base_url=s.url, timeout=60) as client:
        yield s, client


def _as(s, role: str) -> dict:
    return {"Authorization": f"Bearer {s.tokens[role]}"}


def _verify(client, main: bytes, companion: bytes | None = None) -> dict:
    files = {"file": ("cert", main)}
    if companion is not None:
        files["json"] = ("cert.json", companion)
    r = client.post("/api/certificates/verify", files=files)
    assert r.status_code == 200, r.text
    return r.json()


def test_only_coordinators_download(site) -> None:
    s, client = site
    url = f"/api/batches/{s.seeded.batch_a}/certificate"
    assert client.get(url + ".pdf").status_code == 401
    for role in ("operator", "supervisor"):
        for ext in (".pdf", ".json"):
            r = client.get(url + ext, headers=_as(s, role))
            assert r.status_code == 403 and "coordinator" in r.json()["detail"], (role, ext)
    for role in ("coordinator", "admin"):
        r = client.get(url + ".json", headers=_as(s, role))
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert client.get(url + ".pdf", params={"token": s.tokens["coordinator"]}).content.startswith(b"%PDF")
    # open: the public keys and verifying (a buyer has no account)
    assert client.get("/api/keys").status_code == 200
    assert client.post("/api/certificates/verify", content=b"{}",
                       headers={"content-type": "application/json"}).json()["valid"] is False
    assert client.get("/coordinator").status_code == 200 and client.get("/verify").status_code == 200
    assert client.get("/api/batches/999/certificate.pdf", headers=_as(s, "coordinator")).status_code == 404


def test_round_trip_pdf_and_json_belong_together(site, artifacts_dir: Path, tmp_path: Path) -> None:
    s, client = site
    co = _as(s, "coordinator")
    rj = client.get(f"/api/batches/{s.seeded.batch_a}/certificate.json", headers=co)
    rp = client.get(f"/api/batches/{s.seeded.batch_a}/certificate.pdf", headers=co)
    cert_id = rj.headers["x-certificate-id"]
    assert rp.headers["x-certificate-id"] == cert_id  # the identical issue is served again
    assert f'filename="{cert_id}.pdf"' in rp.headers["content-disposition"]
    doc = json.loads(rj.content)
    p = doc["payload"]
    assert p["certificate_id"] == cert_id and p["batch"]["lot_id"] == "LOT-A"
    assert p["batch"]["station_ids"] == ["st-1"] and p["batch"]["workshop"] == "Atelier Nord"
    c = p["counts"]
    assert (c["frames"], c["inspected"], c["passed"], c["failed"], c["unusable"]) == (24, 23, 19, 4, 1)
    assert c["failed_by_reason"] == {"ear_loop": 1, "hole": 1, "stain": 2, "width": 1}
    assert p["acceptance"]["mode"] == "100%" and p["acceptance"]["decision"] == "accepted"
    cal = bundled_sim_calibration()
    assert p["traceability"]["calibrations"] == [{"id": cal.id, "created_at": cal.created_at}]
    assert p["traceability"]["model_sha256"] == ["ab" * 32]
    assert p["dimensions"]["width"]["n"] == 23 and p["dimensions"]["width"]["max_mm"] == 186.2
    assert p["verify_url"] == f"{s.url}/verify"
    assert doc["signature"]["key_id"] == client.get("/api/keys").json()["keys"][0]["key_id"]

    ok = _verify(client, rj.content)
    assert ok["valid"] and ok["station_key"] and ok["checked"] == "json" and ok["reasons"] == []
    assert (ok["certificate_id"], ok["lot_id"], ok["decision"]) == (cert_id, "LOT-A", "accepted")
    both = _verify(client, rp.content, rj.content)
    assert both["valid"] and both["checked"] == "pdf+json"
    again = client.get(f"/api/certificates/{cert_id}.json", headers=co)
    assert again.content == rj.content and client.get(f"/api/certificates/{cert_id}.pdf").status_code == 401
    assert client.get(f"/api/certificates/{cert_id}.pdf", headers=co).content == rp.content
    assert client.get("/api/certificates/QC-20990101-0000000000.json", headers=co).status_code == 404
    sneaky = client.get("/api/certificates/..%2Fkeys%2Fstation-ed25519.pem", headers=co)
    assert sneaky.status_code in (400, 404) and b"PRIVATE" not in sneaky.content
    assert client.get("/api/certificates/x.json", headers=co).status_code == 400

    # the PDF looks like a report: render page 1 and keep it
    pdf = artifacts_dir / "certificate.pdf"
    pdf.write_bytes(rp.content)
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                        str(artifacts_dir / "certificate")], check=True, timeout=60)
        img = cv2.imread(str(artifacts_dir / "certificate.png"))
        assert img.shape[0] > img.shape[1] > 500  # A4 portrait
        assert (img < 128).mean() > 0.02  # text, tables, QR: not a blank page
        # the QR code (top right) leads to this station's verify page for this certificate
        subprocess.run(["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", "-x", "1100", "-y", "0",
                        "-W", "554", "-H", "500", "-singlefile", str(pdf), str(tmp_path / "qr")],
                       check=True, timeout=60)
        qr = cv2.imread(str(tmp_path / "qr.png"))
        assert _decode_qr(qr) == f"{s.url}/verify?id={cert_id}"


def test_one_byte_change_is_detected_by_the_api(site) -> None:
    s, client = site
    co = _as(s, "coordinator")
    j = client.get(f"/api/batches/{s.seeded.batch_c}/certificate.json", headers=co).content
    pdf = client.get(f"/api/batches/{s.seeded.batch_c}/certificate.pdf", headers=co).content
    assert _verify(client, pdf, j)["valid"]
    lot = j.index(b"LOT-C")
    for at in (lot + 4, j.index(b'"value":"') + 12, len(j) - 3, 0, len(j) - 1):
        bad = bytearray(j)
        bad[at] = ord("D") if bad[at] != ord("D") else ord("E")
        v = _verify(client, bytes(bad))
        assert not v["valid"] and v["reasons"], at
    bad_pdf = bytearray(pdf)
    bad_pdf[len(pdf) // 2] ^= 0x01
    v = _verify(client, bytes(bad_pdf), j)
    assert not v["valid"] and "PDF does not match" in v["reasons"][0]
    v = _verify(client, pdf)  # a PDF alone cannot be checked
    assert not v["valid"] and "JSON" in v["reasons"][0]


def _decode_qr(img) -> str:
    """The QR code's text, or ''. The crop can end close to the code, so it is also tried with a
    white quiet zone around it, and with OpenCV's second detector. The code's content changes
    with the port and the date, and one CI run's code (2026-11-29) decoded only with either."""
    padded = cv2.copyMakeBorder(img, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for im in (img, padded):
            text = detector.detectAndDecode(im)[0]
            if text:
                return text
    return ""


def test_a_genuine_signature_from_another_key_is_not_this_station(site) -> None:
    s, client = site
    j = client.get(f"/api/batches/{s.seeded.batch_a}/certificate.json", headers=_as(s, "coordinator")).content
    forged = document_bytes(sign_payload(json.loads(j)["payload"], Ed25519PrivateKey.generate()))
    v = _verify(client, forged)
    assert not v["valid"] and v["station_key"] is False
    assert "not one of the trusted station keys" in v["reasons"][0]


def test_iso2859_mode_and_bad_options(site) -> None:
    s, client = site
    co = _as(s, "coordinator")
    r = client.get(f"/api/batches/{s.seeded.batch_a}/certificate.json",
                   params={"mode": "iso2859", "aql_major": 1.5}, headers=co)
    acc = json.loads(r.content)["payload"]["acceptance"]
    assert acc["mode"] == "iso2859" and acc["decision"] in ("accepted", "rejected")
    major = acc["iso2859"]["per_class"]["major"]
    plan = single_sampling_plan(23, 1.5)
    assert (major["code_letter"], major["sample_size"], major["ac"], major["re"]) == (
        plan.code_letter, plan.sample_size, plan.ac, plan.re)
    assert _verify(client, r.content)["valid"]
    bad = client.get(f"/api/batches/{s.seeded.batch_a}/certificate.json", params={"aql_major": 3},
                     headers=co)
    assert bad.status_code == 400 and "preferred AQL" in bad.json()["detail"]
    assert client.get(f"/api/batches/{s.seeded.batch_a}/certificate.json", params={"mode": "50%"},
                      headers=co).status_code == 422
    assert client.post("/api/certificates/verify").status_code == 400
    garbage = client.post("/api/certificates/verify", files={"file": ("x.json", b"not json")}).json()
    assert not garbage["valid"] and "not a JSON document" in garbage["reasons"][0]
    assert "/api/certificates/verify" in client.get("/openapi.json").json()["paths"]
