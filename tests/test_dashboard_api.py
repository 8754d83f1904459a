"""Dashboard data routes (/api/dashboard, /api/spc, CSV export) on a real server over a seeded store."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest
from dashboard_seed import OTHER_STATION, served

from qc_station.spc import western_electric


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served(tmp_path_factory.mktemp("dash"), images=False) as s, \
            httpx.Client(base_url=s.url, timeout=20) as client:
        yield s, client


def test_dashboard_figures_match_the_store(site) -> None:
    s, client = site
    d = client.get("/api/dashboard").json()
    assert d["overall"]["total"] == s.seeded.total == 52
    # LOT-A: 4 fails + 1 unusable of 24; LOT-C: 1 fail of 6; LOT-B: 2 fails of 22
    assert (d["overall"]["failed"], d["overall"]["unusable"]) == (7, 1)
    assert d["overall"]["pass_rate"] == pytest.approx(44 / 51, abs=1e-4)
    assert d["today"]["total"] == 52  # all stored just now
    assert d["now"]["passed"] + d["now"]["failed"] == 50  # the last 50 judged masks
    lots = {b["lot_id"]: b for b in d["by_batch"]}
    assert set(lots) == {"LOT-A", "LOT-B", "LOT-C"}
    assert (lots["LOT-A"]["total"], lots["LOT-A"]["failed"], lots["LOT-A"]["operator"]) == (24, 4, "ana")
    assert lots["LOT-A"]["cpk_width"] is not None and lots["LOT-A"]["cpk_width"] > 1
    for dim in ("width", "height"):  # the table and the batch's control chart agree
        chart = client.get("/api/spc", params={"batch_id": s.seeded.batch_a, "dimension": dim}).json()
        assert lots["LOT-A"][f"cpk_{dim}"] == pytest.approx(chart["cpk"], abs=1e-3)
        assert lots["LOT-A"][f"cp_{dim}"] == pytest.approx(chart["cp"], abs=1e-3)
    assert d["open_batch"]["batch"]["lot_id"] == "LOT-B" and d["open_batch"]["counts"]["total"] == 22
    pareto = {p["code"]: p for p in d["pareto"]}
    assert pareto["stain"]["count"] == 4 and d["pareto"][0]["code"] == "stain"
    assert d["pareto"][-1]["cumulative_share"] == 1.0
    assert [r["id"] for r in d["rejects"]] == sorted(s.seeded.reject_ids, reverse=True)
    assert sum(h["total"] for h in d["by_hour"]) == 52
    assert d["options"]["operators"] == ["ana", "ben", "cy"]


def test_filters_narrow_every_figure(site) -> None:
    s, client = site
    by_op = client.get("/api/dashboard", params={"operator": "cy"}).json()
    assert by_op["overall"]["total"] == 6 and [b["lot_id"] for b in by_op["by_batch"]] == ["LOT-C"]
    by_station = client.get("/api/dashboard", params={"station_id": OTHER_STATION}).json()
    assert by_station["overall"] == by_op["overall"]
    by_batch = client.get("/api/dashboard", params={"batch_id": s.seeded.batch_a}).json()
    assert by_batch["overall"]["total"] == 24 and by_batch["scope"] == {"batch_id": s.seeded.batch_a}
    future = client.get("/api/dashboard", params={"since": time.time() + 3600}).json()
    assert future["overall"]["total"] == 0 and future["rejects"] == [] and future["pareto"] == []
    # bad filters are 4xx with a reason, never 500
    assert client.get("/api/dashboard", params={"since": "yesterday"}).status_code == 400
    assert client.get("/api/dashboard", params={"since": 10, "until": 5}).status_code == 400
    assert client.get("/api/spc", params={"dimension": "depth"}).status_code == 422
    assert client.get("/api/spc", params={"batch_id": 999}).status_code == 404
    assert client.get("/api/dashboard/export.csv", params={"batch_id": 999}).status_code == 404


def test_spc_flags_the_narrow_run_before_it_leaves_tolerance(site) -> None:
    s, client = site
    b = client.get("/api/spc", params={"batch_id": s.seeded.batch_b, "dimension": "width"}).json()
    assert (b["nominal"], b["lsl"], b["usl"]) == (180.0, 175.0, 185.0)
    assert b["n"] == 22 and len(b["points"]) == 22 and b["points"][0]["moving_range"] is None
    assert all(b["lsl"] < p["value"] < b["usl"] for p in b["points"])  # still inside the spec...
    we4 = [a for a in b["alerts"] if a["rule"] == "WE4"]
    assert len(we4) == 1 and we4[0]["side"] == "below"  # ...but drifting: one merged run
    assert "8 masks in a row narrower" in we4[0]["message"]
    assert we4[0]["first_id"] <= s.seeded.drift_first_id and we4[0]["last_id"] == b["points"][-1]["id"]
    assert b["lcl"] < b["mean"] < b["ucl"] and b["mr_ucl"] > b["mr_bar"] > 0
    a = client.get("/api/spc", params={"batch_id": s.seeded.batch_a, "dimension": "width"}).json()
    assert not [x for x in a["alerts"] if x["rule"] == "WE4"]
    assert [x["rule"] for x in a["alerts"]] == ["WE1"]  # the one out-of-spec width (186.2 mm)
    assert next(p for p in a["points"] if p["id"] == a["alerts"][0]["first_id"])["value"] == 186.2
    height = client.get("/api/spc", params={"batch_id": s.seeded.batch_b, "dimension": "height"}).json()
    assert height["dimension"] == "height" and height["nominal"] == 95.0


def test_alert_runs_are_merged_across_interleaved_rules() -> None:
    # WE2/WE3/WE4 fire on the same points; each rule's run must still come out once
    values = [180.0, 180.1, 179.9, *[179.3] * 12]
    alerts = western_electric(values, 180.0, 0.1)
    rules = [a.rule for a in alerts]
    assert len(rules) == len(set(rules)), rules
    we4 = next(a for a in alerts if a.rule == "WE4")
    assert (we4.first, we4.last) == (2, 14)  # 179.9 is already below nominal


def test_csv_export_is_what_is_shown(site) -> None:
    s, client = site
    r = client.get("/api/dashboard/export.csv", params={"operator": "ana"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 24 and {x["lot_id"] for x in rows} == {"LOT-A"}
    page = client.get("/api/inspections", params={"batch_id": s.seeded.batch_a, "limit": 100}).json()["items"]
    by_id = {str(i["id"]): i for i in page}
    for row in rows:
        rec = by_id[row["id"]]
        assert row["verdict"] == rec["verdict"] and row["reason_codes"].split() == rec["reason_codes"]
        if rec["measurements"]:
            assert float(row["width_mm"]) == pytest.approx(rec["measurements"]["width_mm"], abs=1e-3)
        else:
            assert row["width_mm"] == ""


def test_supervisor_role_needed_when_tokens_are_in_use(tmp_path) -> None:
    with served(tmp_path, tokens=True, images=False) as s, httpx.Client(base_url=s.url, timeout=20) as c:
        assert c.get("/api/dashboard").status_code == 401
        assert c.get("/dashboard").status_code == 200  # the page is static; its data needs the token
        op = {"Authorization": f"Bearer {s.tokens['operator']}"}
        assert c.get("/api/dashboard", headers=op).status_code == 403
        assert c.get("/api/spc", headers=op).status_code == 403
        assert c.get("/api/dashboard/export.csv", headers=op).status_code == 403
        sup = {"Authorization": f"Bearer {s.tokens['supervisor']}"}
        assert c.get("/api/dashboard", headers=sup).json()["overall"]["total"] == 52
        assert c.get("/api/spc", params={"token": s.tokens["coordinator"]}).status_code == 200
