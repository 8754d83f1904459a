"""The supervisor dashboard in real headless Chromium (Debian chromium + Playwright) over a seeded store."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
from dashboard_seed import STATION, _result, served
from test_operator_page import (
    browser,  # noqa: F401  (the shared chromium fixture)
    pytestmark,  # noqa: F401  (browser marker + skip without chromium)
)

from qc_station.api.events import LiveEvent

CANVASES = ("chart-width", "chart-width-mr", "chart-height", "chart-pareto", "chart-hours")

# non-blank pixels of a canvas: proves Chart.js drew, not just that the element exists
INK_JS = """(id) => {
  const c = document.getElementById(id);
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
  return {ink, w: c.width, h: c.height};
}"""


def _loaded(page, total: int) -> None:
    page.wait_for_function(f"document.body.dataset.total === '{total}'", timeout=20_000)


def test_dashboard_shows_the_store_live(tmp_path: Path, browser, artifacts_dir: Path) -> None:  # noqa: F811
    with served(tmp_path / "data") as s:
        page = browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(s.url + "/dashboard")
        _loaded(page, 52)

        # tiles and charts
        assert page.inner_text("#tile-scope .value") == "86.3 %"  # 44 passed / 51 judged
        assert "LOT-B" in page.inner_text("#tile-open")
        for cid in CANVASES:
            ink = page.evaluate(INK_JS, cid)
            assert ink["w"] > 100 and ink["ink"] > 500, (cid, ink)
        n_points = page.evaluate("Chart.getChart('chart-width').data.datasets[0].data.length")
        assert n_points == 51  # every measured mask (the unusable one has no width)
        labels = page.evaluate("Chart.getChart('chart-width').data.datasets.map(d => d.label)")
        assert {"USL", "LSL", "UCL", "LCL", "nominal"} <= set(labels)
        assert page.evaluate("Chart.getChart('chart-pareto').data.labels[0]") == "stain"

        # the drift of LOT-B is flagged on the page
        assert page.is_visible("#alerts")
        assert "8 masks in a row narrower" in page.inner_text("#alert-list li[data-rule='WE4']")
        assert page.locator("#batches tbody tr").count() == 3
        assert page.locator("#gallery .reject").count() == len(s.seeded.reject_ids)
        page.wait_for_function("[...document.querySelectorAll('#gallery img')].every(i => i.complete "
                               "&& i.naturalWidth > 0)", timeout=15_000)
        page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)

        # click-through to one inspection
        first = s.seeded.reject_ids[-1]
        page.click(f"#gallery .reject[data-id='{first}']")
        page.wait_for_function("document.getElementById('detail-img').naturalWidth > 0", timeout=10_000)
        assert page.is_visible("#detail") and f"#{first}" in page.inner_text("#detail-title")
        page.screenshot(path=str(artifacts_dir / "dashboard-inspection.png"))
        page.click("#detail button")

        # a filter changes what is shown: LOT-A is in control (no WE4), 24 masks
        page.select_option("#f-batch", str(s.seeded.batch_a))
        _loaded(page, 24)
        assert page.locator("#alert-list li[data-rule='WE4']").count() == 0
        assert page.locator("#batches tbody tr").count() == 1
        assert page.evaluate("Chart.getChart('chart-width').data.datasets[0].data.length") == 23
        assert "batch=" in page.url  # the view can be bookmarked / shared

        # CSV export of what is shown
        with page.expect_download() as dl:
            page.click("#export")
        text = Path(dl.value.path()).read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 24 and {r["lot_id"] for r in rows} == {"LOT-A"}
        api_csv = httpx.get(f"{s.url}/api/dashboard/export.csv", params={"batch_id": s.seeded.batch_a}).text
        assert text == api_csv

        # live: a new inspection in the open batch shows up without a reload
        page.click("#clear-filters")
        _loaded(page, 52)
        page.wait_for_selector("#live.live-on", timeout=10_000)
        rec = s.store.record_inspection(_result("pass", (), 180.0, 95.0), station_id=STATION)
        s.app.state.ctx.events.publish(LiveEvent("inspection", rec.model_dump(mode="json"), id=rec.id))
        _loaded(page, 53)
        assert "23 masks" in page.inner_text("#tile-open")

        # a phone: everything stacks, nothing scrolls sideways
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                 is_mobile=True)
        phone.goto(s.url + "/dashboard")
        phone.wait_for_function("document.body.dataset.total === '53'", timeout=20_000)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert phone.evaluate(INK_JS, "chart-width")["ink"] > 500
        phone.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
        assert errors == []
