"""The coordinator page and the /verify page in headless Chromium, tokens in use."""

from __future__ import annotations

from pathlib import Path

from dashboard_seed import served
from test_operator_page import (
    browser,  # noqa: F401  (the shared chromium fixture)
    pytestmark,  # noqa: F401  (browser marker + skip without chromium)
)


def test_coordinator_downloads_and_verifies(tmp_path: Path, browser, artifacts_dir: Path) -> None:  # noqa: F811
    with served(tmp_path / "data", tokens=True, images=False) as s:
        page = browser.new_page(viewport={"width": 1200, "height": 800}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{s.url}/coordinator?token={s.tokens['coordinator']}")
        page.wait_for_selector("#batches tbody tr a.dl-pdf", timeout=20_000)
        assert page.locator("#batches tbody tr").count() == 3
        assert "open" in page.inner_text(f"#batches tr[data-batch='{s.seeded.batch_b}']")
        assert page.locator("#keys li").count() == 1

        row = f"#batches tr[data-batch='{s.seeded.batch_a}']"
        with page.expect_download() as dl_pdf:
            page.click(f"{row} a.dl-pdf")
        with page.expect_download() as dl_json:
            page.click(f"{row} a.dl-json")
        pdf, js = Path(dl_pdf.value.path()), Path(dl_json.value.path())
        assert pdf.read_bytes().startswith(b"%PDF") and dl_pdf.value.suggested_filename.startswith("QC-")
        assert dl_json.value.suggested_filename == dl_pdf.value.suggested_filename.replace(".pdf", ".json")

        # verify the PDF with its JSON through the form
        page.set_input_files("#verify-file", str(pdf))
        page.set_input_files("#verify-json", str(js))
        page.click("#verify-go")
        page.wait_for_selector("#verify-headline", timeout=15_000)
        assert page.inner_text("#verify-headline") == "VALID"
        assert "LOT-A" in page.inner_text("#verify-result")
        page.screenshot(path=str(artifacts_dir / "coordinator.png"), full_page=True)

        # one changed byte in the JSON
        raw = bytearray(js.read_bytes())
        raw[raw.index(b"LOT-A") + 4] = ord("B")
        bad = tmp_path / "bad.json"
        bad.write_bytes(bytes(raw))
        page.set_input_files("#verify-file", str(bad))
        page.set_input_files("#verify-json", [])
        page.click("#verify-go")
        page.wait_for_function("document.getElementById('verify-headline')?.textContent === 'INVALID'",
                               timeout=15_000)
        assert "altered" in page.inner_text("#verify-reasons")

        # where the QR code points: the verify form alone, no token needed
        buyer = browser.new_context().new_page()
        buyer.goto(f"{s.url}/verify?id=QC-TEST")
        buyer.wait_for_selector("#keys li", timeout=15_000)
        assert not buyer.is_visible("#batches-card") and "QC-TEST" in buyer.inner_text("#verify-intro")
        buyer.set_input_files("#verify-file", str(js))
        buyer.click("#verify-go")
        buyer.wait_for_selector("#verify-headline", timeout=15_000)
        assert buyer.inner_text("#verify-headline") == "VALID"

        # an operator sees why there is nothing to download
        op = browser.new_context().new_page()
        op.goto(f"{s.url}/coordinator?token={s.tokens['operator']}")
        op.wait_for_selector("#batches tbody tr", timeout=15_000)
        assert op.locator("a.dl-pdf").count() == 0
        assert "coordinator role" in op.inner_text("#error")
        assert errors == []
