"""Certificate content, PDF rendering (looked at as PNG) and file verification."""

import json
import shutil
import subprocess
from datetime import UTC, datetime

import numpy as np
import pytest

from qc_station.certificates import (
    BatchInfo,
    CertificateSettings,
    InspectionRow,
    build_payload,
    issue_certificate,
    load_or_create_key,
    verify_file,
)
from qc_station.spec import load_spec


def _rows(n=200, seed=1, fail_every=20, thumb=None):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        verdict, codes = "pass", []
        if i % fail_every == 0:
            verdict, codes = "fail", ["stain"] if i % 40 else ["width", "hole"]
        if i % 50 == 7:
            verdict, codes = "unusable", ["blur"]
        rows.append(InspectionRow(
            id=str(i), time=f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}+00:00", verdict=verdict,
            reason_codes=codes, width_mm=float(180 + rng.normal(0, 1.0)),
            height_mm=float(95 + rng.normal(0, 0.8)), station_id="st-1", calibration_id="cal-abc",
            model_sha256="f" * 64, thumbnail_path=thumb if verdict == "fail" else None))
    return rows


BATCH = BatchInfo(batch_id="1", lot_id="LOT-2026-042", workshop="Atelier Solidaire", operator="Amina",
                  station_ids=["st-1"], opened_at="2026-11-28T09:00:00+00:00",
                  closed_at="2026-11-28T12:00:00+00:00")


def test_counts_statistics_and_plans():
    spec = load_spec()
    rows = _rows()
    p = build_payload(BATCH, spec, rows, issued_at=datetime(2026, 11, 28, tzinfo=UTC), certificate_id="QC-T")
    c = p["counts"]
    judged = [r for r in rows if r.verdict != "unusable"]
    assert c["frames"] == 200 and c["unusable"] == 4 and c["inspected"] == 196
    assert c["failed"] == sum(r.verdict == "fail" for r in rows)
    assert c["failed_by_reason"]["hole"] == c["failed_by_reason"]["width"]
    assert c["failed_by_severity"]["critical"] == c["failed_by_reason"]["hole"]  # hole is critical
    widths = np.array([r.width_mm for r in judged])
    w = p["dimensions"]["width"]
    assert w["mean_mm"] == pytest.approx(widths.mean(), abs=1e-3)
    sd = widths.std(ddof=1)
    assert w["ppk"] == pytest.approx(min(185 - widths.mean(), widths.mean() - 175) / (3 * sd), abs=1e-3)
    sigma_st = np.abs(np.diff(widths)).mean() / 1.128
    assert w["cpk"] == pytest.approx(min(185 - widths.mean(), widths.mean() - 175) / (3 * sigma_st), abs=1e-3)
    iso = p["acceptance"]["iso2859"]
    assert iso["per_class"]["major"]["code_letter"] == "G"  # 196 masks, level II
    assert iso["per_class"]["major"]["sample_size"] == 32
    assert p["acceptance"]["decision"] == "accepted"  # 100 % mode, closed batch


def test_sampling_mode_rejects_a_bad_lot():
    spec = load_spec()
    rows = [r.model_copy(update={"verdict": "fail", "reason_codes": ["hole"]}) if i % 4 == 0 else r
            for i, r in enumerate(_rows())]  # a quarter of the lot has holes (critical)
    p = build_payload(BATCH, spec, rows, CertificateSettings(mode="iso2859"))
    assert p["acceptance"]["decision"] == "rejected"
    assert p["acceptance"]["iso2859"]["per_class"]["critical"]["decision"] == "reject"


def test_open_batch_is_not_decided():
    p = build_payload(BATCH.model_copy(update={"closed_at": None}), load_spec(), _rows(20))
    assert p["acceptance"]["decision"] == "not decided"


def test_issue_write_verify_and_tamper(tmp_path, artifacts_dir):
    import cv2

    thumb = tmp_path / "reject.jpg"
    img = np.full((120, 200, 3), (60, 120, 200), np.uint8)
    cv2.putText(img, "FAIL", (40, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 255), 3)
    cv2.imwrite(str(thumb), img)
    key = load_or_create_key(tmp_path / "station.pem")
    cert = issue_certificate(BATCH, load_spec(), _rows(thumb=str(thumb)), key)
    json_path, pdf_path = cert.write(tmp_path / "out")
    assert verify_file(json_path).valid
    assert verify_file(pdf_path).valid
    payload = json.loads(json_path.read_bytes())["payload"]
    assert payload["batch"]["lot_id"] == "LOT-2026-042"
    # one byte changed in the PDF -> invalid, and the reason says so
    pdf = bytearray(pdf_path.read_bytes())
    pdf[len(pdf) // 2] ^= 0x01
    bad_pdf = tmp_path / "out" / "tampered.pdf"
    bad_pdf.write_bytes(bytes(pdf))
    v = verify_file(bad_pdf, json_path=json_path)
    assert not v.valid and "PDF does not match" in v.reasons[0]
    lonely = tmp_path / "lonely.pdf"
    shutil.copy(pdf_path, lonely)
    assert "was not found" in verify_file(lonely).reasons[0]
    assert "cannot read" in verify_file(tmp_path / "nope.json").reasons[0]
    # the PDF looks like a report: render page 1 to PNG and keep it as an artefact
    if shutil.which("pdftoppm"):
        out = artifacts_dir / "certificate"
        cmd = ["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", str(pdf_path), str(out)]
        subprocess.run(cmd, check=True)
        png = next(artifacts_dir.glob("certificate*.png"))
        page = cv2.imread(str(png))
        assert page is not None and page.shape[0] > 700
        # the green "LOT ACCEPTED" banner is drawn near the top of the page
        top = page[: page.shape[0] // 3]
        green = (top[..., 1] > 100) & (top[..., 0] < 90) & (top[..., 2] < 90)
        assert green.sum() > 2000
