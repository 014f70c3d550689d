"""End-to-end tests in a real headless Chromium: a deep link draws its showers, keyboard slider edits stick, a
moved slider leaves the batch on screen and its comparison at the batch's own conditions until Generate, and no
page fetches anything from outside.

Needs the Debian chromium (`apt-get install -y chromium`, /usr/bin/chromium) and the playwright package; the
tests are skipped with the reason when either is missing. The screenshot goes to tests/artifacts/ or to the
folder in CALOGEN_ARTIFACTS.
"""

from __future__ import annotations

import os
import re
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


def _tiny_model(models: Path) -> None:
    """A small random-weight conv3d generator: a fast source, so links draw their showers on load."""
    import torch

    from calogen.gan.generate import save_model
    from calogen.gan.nets import build_generator

    torch.manual_seed(0)
    card = {"name": "tiny", "arch": "conv3d", "config": {"latent_dim": 8},
            "condition_ranges": {"energy_gev": [2.0, 500.0], "theta_deg": [60.0, 120.0]},
            "description": "random weights, for tests", "training": {"epochs": 0}}
    save_model(models / "tiny", build_generator("conv3d", latent_dim=8), card)


@pytest.fixture()
def server(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A fresh `streamlit run app.py` on a free port, with one tiny model and empty run/data folders."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    del sync_api
    _tiny_model(tmp_path / "models")
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


def test_deep_link_draws_showers_and_keyboard_slider_edits_stick(server: tuple[str, dict[str, str]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    artifacts = Path(os.environ.get("CALOGEN_ARTIFACTS", ROOT / "tests" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 3400})
        try:
            # A shared link on a fresh server: the showers are drawn without pressing anything.
            start = time.perf_counter()
            page.goto(f"{url}/Generate?source=tiny&energy=50&theta=90&n=2&seed=3", wait_until="domcontentloaded")
            slider = page.get_by_role("slider", name="Energy (GeV)")
            expect(slider).to_be_visible(timeout=60_000)
            expect(slider).to_have_value("50")
            # every chart drawn (plotly.js served by the app) with the linked conditions
            drawn_at = "div.calogen-live-chart.js-plotly-plot[data-drawn^='{} GeV, 90 deg']"
            expect(page.locator(drawn_at.format(50))).to_have_count(6, timeout=120_000)
            print(f"\ndeep link -> all plots drawn: {time.perf_counter() - start:.2f} s")
            expect(page.get_by_text("Deposited energy")).to_be_visible()

            # Five quick key presses: 50 -> 55, and it stays there (the settings form does not rerun the page).
            slider.focus()
            for _ in range(5):
                page.keyboard.press("ArrowRight")
            expect(slider).to_have_value("55", timeout=20_000)
            page.wait_for_timeout(3000)
            expect(slider).to_have_value("55")

            # The batch on screen is still the 50 GeV one, and so is its Monte Carlo comparison.
            expect(page.get_by_text("conditions (50 GeV, 90 deg)")).to_be_visible()
            expect(page.get_by_text("conditions (55 GeV, 90 deg)")).to_have_count(0)

            start = time.perf_counter()
            page.get_by_role("button", name="Generate", exact=True).click()
            expect(page.get_by_text("conditions (55 GeV, 90 deg)")).to_be_visible(timeout=120_000)
            expect(page.locator(drawn_at.format(55))).to_have_count(6, timeout=120_000)  # the same charts, redrawn
            expect(page.locator(".js-plotly-plot")).to_have_count(6)
            page.wait_for_function("window.location.search.includes('energy=55')", timeout=20_000)
            print(f"Generate at 55 GeV -> all plots drawn: {time.perf_counter() - start:.2f} s")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(artifacts / "generate_page.png"), full_page=True)
            assert page.locator(ERROR_SELECTOR).count() == 0
        finally:
            browser.close()


def test_every_page_works_offline(server: tuple[str, dict[str, str]]) -> None:
    """Nothing is fetched from outside the app (no icon fonts, no usage statistics): a seminar laptop
    without network sees the same pages."""
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.on("request", lambda request: outside.append(request.url)
                if not request.url.startswith((url, "data:", "blob:", "about:")) else None)
        try:
            for path, heading in (("", "calogen"), ("/Generate?source=tiny&n=1", "Generate showers"),
                                  ("/Compare", "Compare with the Monte Carlo"), ("/Train", "Train a generator"),
                                  ("/Benchmark", "Benchmark"),
                                  ("/Seminar", "Machine-learned showers next to the Monte Carlo"),
                                  ("/Models", "Models")):
                page.goto(f"{url}{path}", wait_until="domcontentloaded")
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=60_000)
                page.wait_for_timeout(1500)
                assert page.locator(ERROR_SELECTOR).count() == 0, path
        finally:
            browser.close()
    assert outside == [], sorted(set(outside))[:10]


def test_monte_carlo_run_shows_time_left_and_stops(server: tuple[str, dict[str, str]]) -> None:
    """The Monte Carlo is opt-in: its run reports progress with the time left, and Stop ends it."""
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        try:
            page.goto(f"{url}/Generate?energy=50&theta=90&n=6&seed=1", wait_until="domcontentloaded")
            source = page.get_by_role("combobox").first
            expect(source).to_be_visible(timeout=60_000)
            page.wait_for_function("window.location.search.includes('source=tiny')", timeout=60_000)  # not the MC
            source.click()
            page.get_by_role("option", name="Monte Carlo (built-in)").click()
            expect(page.get_by_text("The Monte Carlo simulates every particle")).to_be_visible(timeout=20_000)
            page.get_by_role("button", name="Generate", exact=True).click()
            progress = page.get_by_text(re.compile(r"1/6 showers, .* so far, about .* left"))
            expect(progress).to_be_visible(timeout=180_000)
            page.get_by_role("button", name="Stop", exact=True).click()
            expect(page.get_by_text("Stopped before the batch was complete")).to_be_visible(timeout=120_000)
            assert page.locator(ERROR_SELECTOR).count() == 0
        finally:
            browser.close()
