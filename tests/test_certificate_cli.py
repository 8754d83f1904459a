"""``qc-station certificate``: issue from a real store, verify (exit codes, reasons), and the API agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from dashboard_seed import served

from qc_station.cli import main


def test_issue_verify_tamper_and_the_station_api_agrees(tmp_path: Path, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    with served(data, images=False) as s:
        # by lot id, while the station is serving (SQLite WAL: readers do not block)
        assert main(["certificate", "LOT-A", "--out", str(out), "--data", str(data),
                     "--verify-url", "http://qc.example:8000"]) == 0
        said = capsys.readouterr().out
        assert "for lot LOT-A" in said and "23 inspected, 19 passed, 4 failed, 1 unusable" in said
        pdf = next(out.glob("QC-*.pdf"))
        doc = json.loads(pdf.with_suffix(".json").read_bytes())
        assert doc["payload"]["verify_url"] == "http://qc.example:8000/verify"
        assert doc["payload"]["batch"]["batch_id"] == str(s.seeded.batch_a)

        # the station's API says the CLI's certificate is genuine and signed by its own key
        files = {"file": ("c.pdf", pdf.read_bytes()),
                 "json": ("c.json", pdf.with_suffix(".json").read_bytes())}
        v = httpx.post(f"{s.url}/api/certificates/verify", files=files, timeout=30).json()
        assert v["valid"] and v["station_key"] and v["lot_id"] == "LOT-A"

    # verify: the PDF finds its JSON beside it; with --data the key is checked against the station
    assert main(["certificate", "verify", str(pdf), "--data", str(data)]) == 0
    said = capsys.readouterr().out
    assert "VALID" in said and "a key of this station" in said
    assert main(["certificate", "verify", str(pdf.with_suffix(".json"))]) == 0
    capsys.readouterr()

    # one changed byte in the JSON -> exit 1 with the reasons
    bad = tmp_path / "bad.json"
    raw = bytearray(pdf.with_suffix(".json").read_bytes())
    at = raw.index(b'"passed":') + 9  # first digit of the passed count: a plausible forgery
    raw[at] = ord("2") if raw[at] != ord("2") else ord("3")
    bad.write_bytes(bytes(raw))
    assert main(["certificate", "verify", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and "altered" in err

    # another station's keys do not vouch for it
    other = tmp_path / "other"
    from qc_station.certificates.service import signing_key

    signing_key(other)
    assert main(["certificate", "verify", str(pdf), "--data", str(other)]) == 1
    assert "not one of the trusted station keys" in capsys.readouterr().err

    # usage errors are clean
    assert main(["certificate", "1"]) == 2
    assert main(["certificate", "verify"]) == 2
    assert main(["certificate", "1", "--out", str(out), "--data", str(tmp_path / "nothing")]) == 8
    assert "no station store" in capsys.readouterr().err
    assert main(["certificate", "LOT-Z", "--out", str(out), "--data", str(data)]) == 1
    assert "LOT-Z" in capsys.readouterr().err
    assert main(["certificate", "1", "--out", str(out), "--data", str(data), "--aql-major", "3"]) == 2
    assert "preferred AQL" in capsys.readouterr().err


def test_console_script_exit_codes(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    with served(data, images=False):
        pass
    cmd = [sys.executable, "-m", "qc_station", "certificate"]
    r = subprocess.run([*cmd, "2", "--out", str(out), "--data", str(data), "--mode", "iso2859"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pdf = next(out.glob("*.pdf"))
    ok = subprocess.run([*cmd, "verify", str(pdf)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "VALID" in ok.stdout
    raw = bytearray(pdf.read_bytes())
    raw[len(raw) // 3] ^= 0x20
    pdf.write_bytes(bytes(raw))
    bad = subprocess.run([*cmd, "verify", str(pdf)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "PDF does not match" in bad.stderr
    helped = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert "qc-station certificate verify" in helped.stdout
