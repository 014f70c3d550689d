"""Latency of the app as a person feels it: slider change + Generate until every chart is drawn, in headless Chromium.

Starts `streamlit run app.py` on a free port with the shipped models and data, opens the Generate page with the
best shipped generator, then repeats: one ArrowRight on the energy slider (1 GeV up), press Generate, wait until
every chart says it has drawn the figure for the new energy (the live charts' data-drawn label) and no element
is stale (two animation frames after that); the sliders sit in a settings form, so the key press itself reruns
nothing. Times run on the page's own clock, from the key press and the click (their event time stamps) to the
drawn frame, so the test driver's round trips are not counted. Also times the 3D "volume" view from the click to
its drawn figure. Prints each time and the medians; a screenshot of the last state goes to --screenshot.

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

# In-page clock (performance.now(), the clock of event.timeStamp): when the person's key press and click happened,
# recorded by capturing listeners, so the times below exclude the test driver's own round trips.
_RECORD_EVENTS = """
() => {
  window.__calogenEvents = {};
  for (const type of ['keydown', 'click'])
    document.addEventListener(type, e => { window.__calogenEvents[type] = e.timeStamp; }, true);
}
"""

# Resolves with the in-page time at which at least n charts show the figure for the wanted conditions (their
# data-drawn label, set by the app's live charts), the first one in the wanted 3D view, and no Streamlit element
# is stale, two animation frames later (the frame is on screen); checked at every animation frame.
_WHEN_DRAWN = """
([n, prefix, suffix, timeoutMs]) => new Promise((resolve, reject) => {
  const start = performance.now();
  const check = () => {
    const charts = [...document.querySelectorAll('div.calogen-live-chart')];
    const stale = document.querySelectorAll('[data-stale="true"]').length;
    const drawn = charts.length >= n && charts.every(c => (c.dataset.drawn || '').startsWith(prefix))
      && (charts[0].dataset.drawn || '').endsWith(suffix);
    if (drawn && !stale) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now())));
    } else if (performance.now() - start > timeoutMs) {
      reject(new Error('the charts were not all drawn in time'));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})
"""

# Resolves with the in-page time at which the energy slider shows the wanted value.
_WHEN_SLIDER = """
([value, timeoutMs]) => new Promise((resolve, reject) => {
  const start = performance.now();
  const check = () => {
    const slider = document.querySelector('input[type="range"][aria-label="Energy (GeV)"]');
    if (slider && slider.value === String(value)) resolve(performance.now());
    else if (performance.now() - start > timeoutMs) reject(new Error('the slider did not move'));
    else requestAnimationFrame(check);
  };
  check();
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


def _when_drawn(page, n_charts: int, energy_gev: int, view: str = "points", timeout_s: float = 120.0) -> float:
    """In-page time (ms) at which ``n_charts`` charts are drawn for ``energy_gev`` at 90 deg, the 3D one in ``view``."""
    return float(page.evaluate(_WHEN_DRAWN, [n_charts, f"{energy_gev} GeV, 90 deg", view, timeout_s * 1000.0]))


def measure(url: str, source: str, energy_gev: int, repeats: int, screenshot: Path | None) -> dict[str, list[float]]:
    """Times in seconds on the page's own clock: "slider only" (key press to the slider showing the new value),
    "generate only" (click on Generate to every chart drawn), their sum "slider + generate", and "volume" (click
    on the 3D volume view to its figure drawn)."""
    from playwright.sync_api import expect, sync_playwright

    times: dict[str, list[float]] = {"slider + generate": [], "slider only": [], "generate only": [], "volume": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/Generate?source={source}&energy={energy_gev}&theta=90&n=4&seed=1")
            slider = page.get_by_role("slider", name="Energy (GeV)")
            expect(slider).to_be_visible(timeout=90_000)
            _when_drawn(page, N_CHARTS, energy_gev)  # the link draws its showers on load
            page.evaluate(_RECORD_EVENTS)
            for i in range(repeats):
                energy = energy_gev + i + 1
                slider.focus()
                page.keyboard.press("ArrowRight")
                moved = float(page.evaluate(_WHEN_SLIDER, [energy, 20_000]))
                slider_s = (moved - page.evaluate("() => window.__calogenEvents.keydown")) / 1000.0
                page.get_by_role("button", name="Generate", exact=True).click()
                drawn = _when_drawn(page, N_CHARTS, energy)
                generate_s = (drawn - page.evaluate("() => window.__calogenEvents.click")) / 1000.0
                times["slider + generate"].append(slider_s + generate_s)
                times["slider only"].append(slider_s)
                times["generate only"].append(generate_s)
            for i in range(max(1, repeats // 2)):
                for mode in ("volume", "points"):
                    page.get_by_text(mode, exact=True).click()
                    drawn = _when_drawn(page, N_CHARTS, energy_gev + repeats, mode)
                    if mode == "volume":
                        times["volume"].append((drawn - page.evaluate("() => window.__calogenEvents.click")) / 1000.0)
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
