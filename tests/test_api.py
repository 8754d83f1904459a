"""Every API route against a real uvicorn server on loopback, including malformed requests."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from station_factories import image, result

from qc_station.api import create_app
from qc_station.api.events import LiveEvent
from qc_station.api.server import ServerThread
from qc_station.config import StationConfig, parse_config
from qc_station.errors import ConfigError
from qc_station.store import ImagePolicy, Store


def _config(tmp_path: Path, **api) -> StationConfig:
    return parse_config(
        {"data_dir": str(tmp_path), "station": {"id": "st-1", "name": "Test station"}, "api": api}
    )


@pytest.fixture
def served(tmp_path: Path):
    store = Store(tmp_path, policy=ImagePolicy(min_free_mb=0))
    app = create_app(_config(tmp_path), store)
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client, store, app.state.ctx
    store.close()


def _fill(store: Store, batch_id: int | None = None) -> list[int]:
    ids = []
    for v, codes in [
        ("pass", ()),
        ("fail", ("width",)),
        ("unusable", ("blur",)),
        ("fail", ("stain", "hole")),
        ("pass", ()),
    ]:
        rec = store.record_inspection(
            result(v, *codes), station_id="st-1", frame_bgr=image(), annotated_bgr=image(seed=3)
        )
        ids.append(rec.id)
    return ids


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["detail"] and body["error"]
    return body["detail"]


def test_health_is_open_and_names_each_part(served) -> None:
    client, _, _ = served
    h = client.get("/api/health").json()
    assert h["station_id"] == "st-1" and h["status"] == "fault"  # no camera loop in this server
    assert h["camera"]["state"] == "absent" and "no camera" in h["camera"]["message"]
    assert h["disk"]["ok"] is True and h["disk"]["details"]["free_mb"] > 0
    assert h["store"]["details"]["schema_version"] >= 1


def test_batches_open_close_list(served) -> None:
    client, _, _ = served
    assert client.get("/api/batches/current").json() is None
    r = client.post("/api/batches", json={"lot_id": "LOT-7", "operator": "ann", "note": "first"})
    assert r.status_code == 201, r.text
    batch = r.json()
    assert (
        batch["lot_id"] == "LOT-7"
        and batch["spec_name"] == "resilience-pleated"
        and batch["closed_at"] is None
    )
    assert "already has batch" in _error(client.post("/api/batches", json={"lot_id": "LOT-8"}), 409)
    assert client.get("/api/batches/current").json()["id"] == batch["id"]
    assert client.get(f"/api/batches/{batch['id']}").json()["operator"] == "ann"
    closed = client.post(f"/api/batches/{batch['id']}/close").json()
    assert closed["closed_at"] is not None
    assert "already closed" in _error(client.post(f"/api/batches/{batch['id']}/close"), 409)
    client.post("/api/batches", json={"lot_id": "LOT-8"})
    page = client.get("/api/batches", params={"is_open": "false"}).json()
    assert [b["lot_id"] for b in page["items"]] == ["LOT-7"] and page["total"] == 1
    assert client.get("/api/batches", params={"lot_id": "LOT-8"}).json()["total"] == 1
    # malformed
    assert "lot_id" in _error(client.post("/api/batches", json={}), 422)
    assert "lot_id" in _error(client.post("/api/batches", json={"lot_id": "  "}), 422)
    assert "extra" in _error(client.post("/api/batches", json={"lot_id": "X", "colour": "red"}), 422).lower()
    _error(
        client.post("/api/batches", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    _error(client.get("/api/batches/999"), 404)
    _error(client.post("/api/batches/999/close"), 404)
    _error(client.get("/api/batches/abc"), 422)
    _error(client.get("/api/batches", params={"limit": 0}), 422)


def test_inspections_list_filter_page_get_images(served) -> None:
    client, store, _ = served
    ids = _fill(store)
    page = client.get("/api/inspections").json()
    assert page["total"] == 5 and [i["id"] for i in page["items"]] == ids[::-1]
    assert client.get("/api/inspections", params={"verdict": "fail"}).json()["total"] == 2
    assert [i["id"] for i in client.get("/api/inspections", params={"reason": "hole"}).json()["items"]] == [
        ids[3]
    ]
    now = time.time()
    assert client.get("/api/inspections", params={"since": now + 100}).json()["total"] == 0
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    assert client.get("/api/inspections", params={"since": iso}).json()["total"] == 5
    first = client.get("/api/inspections", params={"limit": 2}).json()
    second = client.get("/api/inspections", params={"limit": 2, "before_id": first["next_before_id"]}).json()
    assert [i["id"] for i in first["items"] + second["items"]] == ids[::-1][:4]

    one = client.get(f"/api/inspections/{ids[1]}").json()
    assert one["verdict"] == "fail" and one["plain_words"] == ["wrong width"]
    assert one["measurements"]["width_mm"] == 180.0 and one["calibration_id"] == "cal-000000000000"
    kinds = {i["kind"]: i["url"] for i in one["images"]}
    assert set(kinds) == {"frame", "annotated", "thumb"}
    img = client.get(kinds["annotated"])
    assert (
        img.status_code == 200
        and img.headers["content-type"] == "image/jpeg"
        and img.content[:2] == b"\xff\xd8"
    )
    # a pass keeps only its thumbnail
    assert "no frame image" in _error(client.get(f"/api/inspections/{ids[0]}/image/frame"), 404)
    # malformed
    assert "unknown reason" in _error(client.get("/api/inspections", params={"reason": "dirt"}), 400)
    assert "not a time" in _error(client.get("/api/inspections", params={"since": "yesterday"}), 400)
    assert "must be after" in _error(client.get("/api/inspections", params={"since": 10, "until": 5}), 400)
    _error(client.get("/api/inspections", params={"verdict": "maybe"}), 422)
    _error(client.get("/api/inspections", params={"limit": 501}), 422)
    _error(client.get("/api/inspections", params={"batch_id": "x"}), 422)
    _error(client.get("/api/inspections/123456"), 404)
    _error(client.get("/api/inspections/abc"), 422)
    _error(client.get(f"/api/inspections/{ids[1]}/image/raw"), 422)
    _error(client.get("/api/inspections/999/image/thumb"), 404)


def test_stats(served) -> None:
    client, store, _ = served
    batch = client.post("/api/batches", json={"lot_id": "S-1"}).json()
    _fill(store)
    s = client.get("/api/stats").json()
    assert s["overall"] == {"total": 5, "passed": 2, "failed": 2, "unusable": 1, "pass_rate": 0.5}
    assert s["by_batch"][0]["batch_id"] == batch["id"] and s["by_batch"][0]["total"] == 5
    assert {r["code"]: r["count"] for r in s["by_reason"]} == {"width": 1, "blur": 1, "stain": 1, "hole": 1}
    assert sum(h["total"] for h in s["by_hour"]) == 5
    assert client.get("/api/stats", params={"batch_id": batch["id"]}).json()["overall"]["total"] == 5
    assert client.get("/api/stats", params={"since": time.time() + 10}).json()["overall"]["total"] == 0
    series = client.get("/api/measurements", params={"batch_id": batch["id"]}).json()
    assert [p["verdict"] for p in series] == ["pass", "fail", "fail", "pass"]  # unusable: not measured
    assert series[0]["width_mm"] == 180.0 and series[0]["id"] < series[-1]["id"]
    assert len(client.get("/api/measurements", params={"limit": 2}).json()) == 2
    _error(client.get("/api/measurements", params={"batch_id": 999}), 404)
    _error(client.get("/api/measurements", params={"limit": 0}), 422)
    _error(client.get("/api/stats", params={"batch_id": 999}), 404)
    _error(client.get("/api/stats", params={"until": "noon"}), 400)


def test_station_view_trigger_audit_docs(served) -> None:
    client, store, _ = served
    client.post("/api/batches", json={"lot_id": "V-1"})
    _fill(store)
    v = client.get("/api/station").json()
    assert v["name"] == "Test station" and v["open_batch"]["lot_id"] == "V-1"
    assert v["batch_counts"]["total"] == 5 and v["last_inspection"]["verdict"] == "pass"
    assert v["you"] == "local" and v["tokens_required"] is False
    assert "no camera loop" in _error(client.post("/api/trigger"), 503)
    assert [a["action"] for a in client.get("/api/audit").json()] == ["batch.open"]
    _error(client.get("/api/audit", params={"limit": -1}), 422)
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/inspections",
        "/api/inspections/{inspection_id}",
        "/api/inspections/{inspection_id}/image/{kind}",
        "/api/batches",
        "/api/batches/{batch_id}/close",
        "/api/events",
        "/api/stats",
        "/api/health",
        "/api/trigger",
        "/api/station",
        "/api/measurements",
        "/api/audit",
    ):
        assert path in schema["paths"], path
    assert client.get("/docs").status_code == 200
    _error(client.get("/api/nothing"), 404)
    assert client.get("/").headers["content-type"].startswith("text/html")


def _read_events(url: str, want: int, headers: dict | None = None, got: list | None = None) -> list[dict]:
    got = [] if got is None else got
    with httpx.stream("GET", url, headers=headers or {}, timeout=15) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in r.iter_lines():
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("id:"):
                event["id"] = int(line[3:])
            elif line.startswith("data:"):
                event["data"] = json.loads(line[5:])
            elif line == "" and event:
                got.append(event)
                event = {}
                if sum(e["event"] == "inspection" for e in got) >= want:
                    break
    return got


def test_events_live_and_catch_up(served) -> None:
    client, store, ctx = served
    got: list[dict] = []
    listener = threading.Thread(
        target=_read_events, args=(str(client.base_url) + "/api/events", 2, None, got)
    )
    listener.start()
    deadline = time.monotonic() + 5
    while ctx.events.subscriber_count == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    for v in ("fail", "pass"):  # what the station does after each stored result
        rec = store.record_inspection(result(v, *(("stain",) if v == "fail" else ())), station_id="st-1")
        ctx.events.publish(LiveEvent("inspection", rec.model_dump(mode="json"), id=rec.id))
    client.post("/api/batches", json={"lot_id": "E-1"})
    listener.join(10)
    kinds = [e["event"] for e in got]
    assert kinds[0] == "hello" and kinds.count("inspection") == 2
    insp = [e for e in got if e["event"] == "inspection"]
    assert [e["data"]["verdict"] for e in insp] == ["fail", "pass"] and insp[0]["data"]["plain_words"] == [
        "stain"
    ]
    assert insp[0]["id"] == insp[0]["data"]["id"]
    # a client that reconnects with Last-Event-ID gets what it missed first
    missed = _read_events(str(client.base_url) + "/api/events", 1, {"Last-Event-ID": str(insp[0]["id"])})
    assert [e["id"] for e in missed if e["event"] == "inspection"] == [insp[1]["id"]]
    _error(client.get("/api/events", headers={"Last-Event-ID": "yesterday"}), 400)


def test_tokens_and_roles_when_required(tmp_path: Path) -> None:
    store = Store(tmp_path, policy=ImagePolicy(min_free_mb=0))
    with pytest.raises(ConfigError, match="none exists yet"):
        create_app(_config(tmp_path, require_tokens=True), store)
    _, op_token = store.add_user("olga", "operator")
    _, sup_token = store.add_user("sam", "supervisor")
    app = create_app(_config(tmp_path, require_tokens=True), store)
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        assert client.get("/api/health").status_code == 200  # health stays open for monitoring
        assert "requires an API token" in _error(client.get("/api/inspections"), 401)
        assert client.get("/api/inspections").headers["www-authenticate"] == "Bearer"
        assert "invalid" in _error(
            client.get("/api/inspections", headers={"Authorization": "Bearer nope"}), 401
        )
        assert "Bearer" in _error(client.get("/api/inspections", headers={"Authorization": "Basic abc"}), 401)
        op = {"Authorization": f"Bearer {op_token}"}
        assert client.get("/api/inspections", headers=op).status_code == 200
        assert (
            client.get("/api/inspections", params={"token": op_token}).status_code == 200
        )  # EventSource/<img>
        r = client.post("/api/batches", json={"lot_id": "T-1"}, headers=op)
        assert r.status_code == 201 and r.json()["operator"] == "olga"
        assert "needs supervisor" in _error(client.get("/api/audit", headers=op), 403)
        audit = client.get("/api/audit", headers={"Authorization": f"Bearer {sup_token}"}).json()
        assert audit[0]["actor"] == "olga" and audit[0]["action"] == "batch.open"
        assert client.get("/api/station", headers=op).json()["your_role"] == "operator"
        store.revoke_tokens("olga")
        _error(client.get("/api/inspections", headers=op), 401)
    store.close()


def test_loopback_open_but_bad_tokens_still_refused(served) -> None:
    client, store, _ = served
    _, token = store.add_user("olga", "operator")
    assert client.post("/api/batches", json={"lot_id": "L"}).status_code == 201  # no token on loopback
    _error(client.get("/api/audit", headers={"Authorization": f"Bearer {token}"}), 403)  # a sent token counts
    _error(client.get("/api/inspections", headers={"Authorization": "Bearer wrong"}), 401)


def test_lan_bind_needs_tokens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="require_tokens cannot be false"):
        _config(tmp_path, host="0.0.0.0", require_tokens=False)
    cfg = _config(tmp_path, host="0.0.0.0")
    assert cfg.api.tokens_required
    store = Store(tmp_path)
    with pytest.raises(ConfigError, match="reachable from the network"):
        create_app(cfg, store)
    store.add_user("admin", "admin")
    create_app(cfg, store)  # now it may start
    store.close()
