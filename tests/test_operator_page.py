"""The operator screen in real headless Chromium (Debian chromium + Playwright), fed by a live station."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import pytest
from station_factories import image
from test_station import FlakyCamera, ScriptedInspector, _folder, _station

from qc_station.api import create_app
from qc_station.api.server import ServerThread
from qc_station.capture.folder_source import FolderSource

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="no chromium"),
]


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _mask_like_frame(path: Path) -> None:
    """A frame that looks like something on a tray, for a readable screenshot."""
    img = image(960, 540, 5) // 4 + 40
    cv2.rectangle(img, (230, 140), (730, 400), (200, 160, 90), -1)
    for y in (210, 270, 330):
        cv2.line(img, (230, y), (730, y), (150, 120, 70), 3)
    cv2.imwrite(str(path), img)


def test_operator_screen_shows_live_verdicts(tmp_path: Path, browser, artifacts_dir: Path) -> None:
    folder = _folder(tmp_path, 0)
    station, store = _station(
        tmp_path,
        FolderSource(folder, mode="watch", poll_s=0.05, stable_s=0.05),
        ScriptedInspector([("fail", ("stain", "open_seam")), ("pass", ()), ("unusable", ("blur",))]),
    )
    app = create_app(station.config, store, station)
    station.start()
    with ServerThread(app) as srv:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.url + "/")
        page.wait_for_selector("#live.live-on", timeout=20_000)
        assert page.inner_text("#verdict") == "WAITING"

        # open a batch through the touch dialog
        page.click("#open-batch")
        page.fill("#lot-input", "LOT-2026-11")
        page.fill("#operator-input", "Ana")
        page.click("#batch-ok")
        page.wait_for_function("document.getElementById('lot').textContent === 'LOT-2026-11'", timeout=15_000)
        assert store.open_batch_of("st-1").operator == "Ana"
        assert page.is_visible("#close-batch") and not page.is_visible("#open-batch")

        # a mask arrives: the station inspects it and the screen turns red, live
        _mask_like_frame(folder / "mask_000.png")
        page.wait_for_function("document.getElementById('verdict').textContent === 'FAIL'", timeout=20_000)
        assert _rgb(page.eval_on_selector("#verdict", "e => getComputedStyle(e).backgroundColor")) == (
            198,
            40,
            40,
        )
        assert page.inner_text("#reasons").splitlines() == ["Stain", "Open seam"]
        page.wait_for_function(
            "document.getElementById('image').complete && document.getElementById('image').naturalWidth > 0",
            timeout=5000,
        )
        assert "/image/annotated" in page.get_attribute("#image", "src")
        page.wait_for_function("document.getElementById('n-fail').textContent === '1'", timeout=15_000)
        verdict_box = page.eval_on_selector("#verdict", "e => e.getBoundingClientRect().height")
        font_px = float(page.eval_on_selector("#verdict", "e => getComputedStyle(e).fontSize")[:-2])
        assert font_px >= 90 and verdict_box > 100  # readable from a few metres
        page.screenshot(path=str(artifacts_dir / "operator_screen_fail.png"))
        page.click("#health")  # no hover on a touchscreen: a tap explains the status
        page.wait_for_function(
            "document.getElementById('toast').textContent.includes('model:')", timeout=5000
        )

        # the next one passes: green
        _mask_like_frame(folder / "mask_001.png")
        page.wait_for_function("document.getElementById('verdict').textContent === 'PASS'", timeout=20_000)
        assert _rgb(page.eval_on_selector("#verdict", "e => getComputedStyle(e).backgroundColor")) == (
            27,
            138,
            58,
        )
        assert page.inner_text("#reasons") == "Good mask"
        page.wait_for_function("document.getElementById('rate').textContent === '50.0 %'", timeout=15_000)
        page.screenshot(path=str(artifacts_dir / "operator_screen_pass.png"))

        # the manual trigger button: a watch folder has nothing new, so it takes the next file dropped
        page.click("#trigger")
        page.wait_for_selector("#toast:not([hidden])", timeout=15_000)
        _mask_like_frame(folder / "mask_002.png")
        page.wait_for_function(
            "document.getElementById('verdict').textContent === 'UNUSABLE'", timeout=10_000
        )
        assert page.inner_text("#reasons") == "Picture is blurred - hold still"
        assert page.eval_on_selector("#verdict", "e => e.scrollWidth <= e.clientWidth")  # the word fits
        assert store.list_inspections().items[0].trigger == "manual"
        page.screenshot(path=str(artifacts_dir / "operator_screen_unusable.png"))

        # close the batch (confirm dialog accepted)
        page.on("dialog", lambda d: d.accept())
        page.click("#close-batch")
        page.wait_for_function("document.getElementById('lot').textContent === 'none open'", timeout=15_000)
        assert store.open_batch_of("st-1") is None
        assert not errors, errors
        page.close()
    station.stop()
    store.close()
    time.sleep(0.1)


def test_camera_fault_shown_on_screen(tmp_path: Path, browser, artifacts_dir: Path) -> None:
    station, store = _station(tmp_path, FlakyCamera(bad_reads=10**6), ScriptedInspector([("pass", ())]))
    app = create_app(station.config, store, station)
    with ServerThread(app) as srv:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(srv.url + "/")
        page.wait_for_selector("#live.live-on", timeout=20_000)
        station.start()  # the fault arrives live as a health event
        page.wait_for_selector("#fault:not([hidden])", timeout=20_000)
        # other faults (no model, no calibration) may show first: wait for the camera's own line
        page.wait_for_function("document.getElementById('fault').innerText.includes('camera unplugged')",
                               timeout=20_000)
        assert "camera: camera unplugged" in page.inner_text("#fault")
        assert page.inner_text("#health") == "FAULT"
        page.screenshot(path=str(artifacts_dir / "operator_screen_camera_fault.png"))
        page.close()
    station.stop()
    store.close()
