"""End-to-end test in a real headless Chromium: deep link to Generate, move the energy slider, generate, see 3D.

Needs the Debian chromium (`apt-get install -y chromium`, /usr/bin/chromium) and the playwright package; the
test is skipped with the reason when either is missing. The screenshot goes to tests/artifacts/ or to the
folder in CALOGEN_ARTIFACTS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: apt-get install -y chromium"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_server(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s} s")


@pytest.fixture()
def server(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A fresh `streamlit run app.py` on a free port, with empty model/run/data folders."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    del sync_api
    port = _free_port()
    env = dict(os.environ, CALOGEN_MODELS=str(tmp_path / "models"), CALOGEN_RUNS=str(tmp_path / "runs"),
               CALOGEN_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    log = (tmp_path / "streamlit.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, process)
        yield url, env
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_generate_page_deep_link_slider_and_3d_plot(server: tuple[str, dict[str, str]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    artifacts = Path(os.environ.get("CALOGEN_ARTIFACTS", ROOT / "tests" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 3400})
        try:
            # Deep link on a fresh server: the first request goes straight to the Generate page.
            page.goto(f"{url}/Generate?energy=2&theta=90&n=1&seed=3", wait_until="domcontentloaded")
            slider = page.get_by_role("slider", name="Energy (GeV)")
            expect(slider).to_be_visible(timeout=60_000)
            expect(page.get_by_text("Generate showers")).to_be_visible()
            expect(page.locator('[data-testid="stSidebar"]')).to_be_visible()
            expect(slider).to_have_value("2")

            slider.focus()
            page.keyboard.press("ArrowRight")  # 2 -> 3 GeV
            expect(slider).to_have_value("3", timeout=20_000)
            page.wait_for_function("window.location.search.includes('energy=3')", timeout=20_000)

            start = time.perf_counter()
            page.get_by_role("button", name="Generate", exact=True).click()
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=240_000)
            expect(page.locator(".js-plotly-plot")).to_have_count(6, timeout=120_000)
            elapsed = time.perf_counter() - start
            page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
            shot = artifacts / "generate_page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nslider change -> Generate -> all plots drawn: {elapsed:.2f} s; screenshot {shot}")

            assert page.locator(ERROR_SELECTOR).count() == 0
            assert page.get_by_text("Deposited energy").is_visible()
        finally:
            browser.close()
