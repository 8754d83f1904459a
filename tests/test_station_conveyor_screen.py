"""The operator screen (real headless Chromium) shows a conveyor link fault live, and its end."""

from __future__ import annotations

from pathlib import Path

from test_operator_page import browser  # noqa: F401 - the Playwright fixture
from test_station_conveyor import NamedInspector, _frames, _host, _station

from qc_station.api import create_app
from qc_station.api.server import ServerThread
from qc_station.capture.folder_source import FolderSource


def test_link_fault_shown_on_the_operator_screen(tmp_path: Path, browser, artifacts_dir: Path) -> None:  # noqa: F811
    host = _host(0, time_scale=1.0).start()
    station, store = _station(tmp_path, host, FolderSource(_frames(tmp_path, ["pass"]), loop=True),
                              NamedInspector(), belt_speed_pct=None)
    app = create_app(station.config, store, station)
    try:
        with ServerThread(app) as srv:
            page = browser.new_page(viewport={"width": 800, "height": 480})
            page.goto(srv.url + "/")
            page.wait_for_selector("#live.live-on", timeout=20_000)
            assert "next mask on the belt" in page.inner_text("#reasons")  # not "place on the tray"
            station.start()
            page.wait_for_function("() => document.querySelector('#health').textContent !== 'FAULT'",
                                   timeout=20_000)  # connected (degraded: no calibration in this test)
            host.unplug()  # the fault arrives live as a health event
            page.wait_for_selector("#fault:not([hidden])", timeout=20_000)
            assert "conveyor: conveyor controller not connected" in page.inner_text("#fault")
            assert page.inner_text("#health") == "FAULT"
            page.screenshot(path=str(artifacts_dir / "operator_screen_conveyor_fault.png"))
            host.replug()
            page.wait_for_selector("#fault[hidden]", state="attached", timeout=20_000)
            assert page.inner_text("#health") != "FAULT"
            page.close()
    finally:
        station.stop()
        host.stop()
        store.close()
