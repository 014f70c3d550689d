"""Latency of the app as a person feels it: slider change + Generate until every chart is drawn, in headless Chromium.

Starts `streamlit run app.py` on a free port with the shipped models and data, opens the Generate page with the
best shipped generator, then repeats: one ArrowRight on the energy slider (1 GeV up), press Generate, wait until
the page shows the new energy, no element is stale and every plotly chart has drawn its data (two animation
frames after the last one); the sliders sit in a settings form, so the key press itself reruns nothing. Also
times the 3D "volume" view from the click to its drawn figure. Prints each
time and the medians; a screenshot of the last state goes to --screenshot.

    python scripts/app_latency.py --repeats 7 --source conv2d

Needs /usr/bin/chromium and the playwright package. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
N_CHARTS = 6  # Generate page without a reference file's extra projections: 3D, projections, 2 profiles, mean, SF

# True once every plotly chart has data drawn and no Streamlit element is stale; resolves after two frames.
_ALL_DRAWN = """
() => new Promise(resolve => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const stale = document.querySelectorAll('[data-stale="true"]').length;
  const drawn = plots.length >= %d && plots.every(p => p._fullData && p._fullData.length > 0);
  if (!drawn || stale) { resolve(false); return; }
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(true)));
})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_server(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
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


def _wait_drawn(page, n_charts: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(_ALL_DRAWN % n_charts):
            return
        page.wait_for_timeout(20)
    raise TimeoutError(f"the charts were not all drawn within {timeout_s} s")


def measure(url: str, source: str, energy_gev: int, repeats: int, screenshot: Path | None) -> dict[str, list[float]]:
    """Times in seconds: "slider + generate" (key press, Generate, all drawn), its two halves, and "volume"
    (the 3D volume view drawn after its click)."""
    from playwright.sync_api import expect, sync_playwright

    times: dict[str, list[float]] = {"slider + generate": [], "slider only": [], "generate only": [], "volume": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/Generate?source={source}&energy={energy_gev}&theta=90&n=4&seed=1")
            slider = page.get_by_role("slider", name="Energy (GeV)")
            expect(slider).to_be_visible(timeout=90_000)
            _wait_drawn(page, N_CHARTS)  # the link draws its showers on load
            for i in range(repeats):
                energy = energy_gev + i + 1
                start = time.perf_counter()
                slider.focus()
                page.keyboard.press("ArrowRight")
                expect(slider).to_have_value(str(energy), timeout=20_000)
                middle = time.perf_counter()
                page.get_by_role("button", name="Generate", exact=True).click()
                expect(page.get_by_text(f"conditions ({energy} GeV, 90 deg)")).to_be_visible(timeout=120_000)
                _wait_drawn(page, N_CHARTS)
                end = time.perf_counter()
                times["slider + generate"].append(end - start)
                times["slider only"].append(middle - start)
                times["generate only"].append(end - middle)
            for i in range(max(1, repeats // 2)):
                for mode in ("volume", "points"):
                    start = time.perf_counter()
                    page.get_by_text(mode, exact=True).click()
                    kind = "volume" if mode == "volume" else "scatter3d"
                    page.wait_for_function(
                        "k => { const p = document.querySelector('.js-plotly-plot');"
                        " return p && p._fullData && p._fullData[0] && p._fullData[0].type === k; }",
                        arg=kind, timeout=60_000)
                    _wait_drawn(page, N_CHARTS)
                    if mode == "volume":
                        times["volume"].append(time.perf_counter() - start)
            if screenshot is not None:
                page.set_viewport_size({"width": 1400, "height": 3400})
                page.wait_for_timeout(1500)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="conv2d", help="shower source (default conv2d, the shipped generator)")
    parser.add_argument("--energy", type=int, default=50, help="starting energy, GeV (each repeat adds 1 GeV)")
    parser.add_argument("--repeats", type=int, default=7, help="timed slider + Generate rounds")
    parser.add_argument("--screenshot", type=Path, default=None, help="PNG of the page after the last round")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_server(url, process)
        times = measure(url, args.source, args.energy, args.repeats, args.screenshot)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: median {statistics.median(values):.2f} s over {len(values)} ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
