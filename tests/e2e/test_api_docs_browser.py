"""/docs rendered by a real browser (Debian's headless chromium, driven by Selenium through
Debian's chromedriver) from the real server, with the network limited to that server: the
operations appear, and the Authorize button is there."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.server import ServerProcess

pytestmark = pytest.mark.e2e


def _browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "Debian's chromium and chromium-driver are not installed (.ci/install-chromium.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: .ci/run installs them, so CI must have them")
    pytest.skip(reason)


def test_docs_render_in_headless_chromium(db_url: str, policy_dir: Path, tmp_path: Path) -> None:
    chromium, driver_path = _browser_or_skip()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium comes with the test extra"
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Nothing but the server itself: a CDN would not load, and the page must not
        # need one.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    with ServerProcess(db_url, policy_dir, tmp_path) as server:
        browser = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            browser.set_page_load_timeout(60)
            browser.get(f"{server.base_url}/docs")
            wait = WebDriverWait(browser, 60)
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
            paths = {
                e.get_attribute("data-path")
                for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
            }
            assert {"/v1/attestations", "/k8s/validate", "/v1/decisions"} <= paths, paths
            assert browser.find_elements(By.CSS_SELECTOR, "button.authorize")
            browser.save_screenshot(str(tmp_path / "docs.png"))
            browser.get(f"{server.base_url}/redoc")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-section-id]")))
            assert "/v1/attestations" in browser.page_source
        finally:
            browser.quit()
