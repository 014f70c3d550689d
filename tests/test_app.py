"""AppTest tests of every page of the Streamlit app (streamlit.testing.v1), run in-process.

Each test points the app at its own temporary models/runs/data folders through the CALOGEN_* environment
variables. Sources: a tiny random-weight conv3d model saved into the temporary models folder, and the Monte
Carlo at 2-10 GeV where a physical answer is needed.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from calogen import sources
from calogen.io import ShowerSet, write_showers
from calogen.showers import TRAINING_RANGE

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("models", "runs", "data")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.setenv("CALOGEN_MODELS", str(paths["models"]))
    monkeypatch.setenv("CALOGEN_RUNS", str(paths["runs"]))
    monkeypatch.setenv("CALOGEN_DATA", str(paths["data"]))
    return paths


def _tiny_model(models: Path, name: str = "tiny", validation: dict | None = None) -> Path:
    from calogen.gan.generate import save_model
    from calogen.gan.nets import build_generator

    torch.manual_seed(0)
    card = {"name": name, "arch": "conv3d", "config": {"latent_dim": 8},
            "condition_range": TRAINING_RANGE.to_json(),
            "description": "random weights, for tests", "training": {"epochs": 0}}
    if validation is not None:
        card["validation"] = validation
    return save_model(models / name, build_generator("conv3d", latent_dim=8), card)


def _toy_reference(data: Path, n: int = 24) -> Path:
    """A small reference file: toy showers (SF 5%) at 10 and 50 GeV, 90 deg (not physics, only plumbing)."""
    rng = np.random.default_rng(0)
    energy = np.repeat([10.0, 50.0], n // 2).astype(np.float32)
    showers = np.zeros((n, 51, 51, 25), np.float32)
    profile = np.exp(-0.5 * ((np.arange(25) - 8) / 4) ** 2)
    for i in range(n):
        showers[i, 24:27, 24:27, :] = 0.05 * energy[i] * profile / profile.sum() / 9 * rng.uniform(0.8, 1.2)
    shower_set = ShowerSet(showers, energy, np.full(n, math.pi / 2, np.float32), {"source": "mc"})
    return write_showers(data / "reference.h5", shower_set)


def _app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.run()
    return at


def _open(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = _app()
    at.query_params.update(query or {})
    at.switch_page(f"pages/{page}").run()
    return at


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _live_charts(at: AppTest) -> list[tuple[str, dict]]:
    """The charts drawn with pages.live_chart: (element id, its data {figure, label, src, config})."""
    return [(element.proto.id, json.loads(element.proto.json)) for element in at.get("bidi_component")
            if element.proto.component_name == "calogen_live_chart"]


def _charts(at: AppTest) -> list[dict]:
    """Every plotly figure on the page (as dicts), st.plotly_chart and live charts alike, in page order."""
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return figures + [json.loads(data["figure"]) for _, data in _live_charts(at)]


def _figure(at: AppTest, title: str) -> dict:
    """The plotly figure (as a dict) whose title text is ``title``."""
    for figure in _charts(at):
        if figure.get("layout", {}).get("title", {}).get("text") == title:
            return figure
    raise AssertionError(f"no figure titled {title!r}")


def _array(value: object) -> np.ndarray:
    """A plotly JSON array: a list, or the typed form {"dtype": ..., "bdata": base64}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def _stale(at: AppTest) -> list[str]:
    """The warnings that the settings differ from the batch on screen."""
    return [w.value for w in at.warning if "differ from the batch" in w.value]


def _deposited(at: AppTest) -> float:
    metric = next(m for m in at.metric if m.label == "Deposited energy")
    return float(metric.value.split()[0])


def test_home_lists_sources_device_and_links(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    (folders["runs"] / "bench").mkdir()
    (folders["runs"] / "bench" / "latest.json").write_text(json.dumps({
        "meta": {"device": "cuda" if torch.cuda.is_available() else "cpu", "energy_gev": 10.0},
        "results": [{"name": "tiny", "kind": "model", "device": "cpu", "batch_size": 16, "ms_per_shower": 2.0},
                    {"name": "Monte Carlo", "kind": "mc", "device": "cpu", "batch_size": 1, "ms_per_shower": 3e3}]}))
    at = _app()
    _no_errors(at)
    assert at.title[0].value == "calogen"
    assert at.sidebar.radio(key="device").value == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "tiny" in at.dataframe[0].value["source"].tolist()
    assert any("CPU" in i.value or "CUDA" in i.value for i in [*at.info, *at.success])
    assert at.query_params["device"] in ("cpu", "cuda")
    text = " ".join(m.value for m in at.markdown)
    assert "thousands of times" not in text and "1,500 times faster" in text


def test_home_shows_the_speedup_measured_here(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _app()  # no benchmark yet: a small one is measured and saved
    _no_errors(at)
    saved = json.loads((folders["runs"] / "bench" / "latest.json").read_text())
    assert {r["kind"] for r in saved["results"]} == {"model", "mc"}
    text = " ".join(m.value for m in at.markdown)
    assert "On this machine" in text and "tiny makes a shower in" in text and "times faster" in text
    saved["results"][0]["ms_per_shower"] = saved["results"][1]["ms_per_shower"] / 1234.0
    (folders["runs"] / "bench" / "latest.json").write_text(json.dumps(saved))
    again = _app()  # the latest saved benchmark is read, not measured again
    assert "1,234 times faster" in " ".join(m.value for m in again.markdown)


def test_generate_widgets_and_tiny_model(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "20", "n": "2"})
    _no_errors(at)
    assert at.slider(key="w_energy").value == 20.0
    assert at.selectbox(key="w_source").value == "tiny"
    assert at.number_input(key="w_n").value == 2
    at.button[0].click().run()
    _no_errors(at)
    assert len(_charts(at)) == 6
    assert len(at.get("download_button")) == 1
    first = _deposited(at)
    at.slider(key="w_shower").set_value(1).run()  # the second shower of the same batch
    _no_errors(at)
    assert _deposited(at) != first
    assert at.query_params["shower"] == "1" and at.query_params["energy"] == "20"


def test_generate_redraws_the_same_charts_in_place(folders: dict[str, Path]) -> None:
    """A new batch updates the charts already on the page (same element ids, so the browser calls Plotly.react
    on them instead of building new charts) with figures and labels for the new conditions."""
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "20", "n": "2"})
    at.button[0].click().run()
    before = _live_charts(at)
    at.slider(key="w_energy").set_value(40.0)
    next(b for b in at.button if b.label == "Generate").click().run()
    _no_errors(at)
    after = _live_charts(at)
    assert [i for i, _ in after] == [i for i, _ in before] and len(after) == 6
    assert all(d["label"].startswith("20 GeV, 90 deg") for _, d in before)
    assert all(d["label"].startswith("40 GeV, 90 deg") for _, d in after)
    assert after[0][1]["label"].endswith("points") and after[0][1]["figure"] != before[0][1]["figure"]
    assert all(d["src"].endswith("/plotly.min.js") and not d["src"].startswith("http") for _, d in after)


def test_generate_model_next_to_live_monte_carlo(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "2", "n": "1"})
    at.button[0].click().run()
    _no_errors(at)
    assert len(_charts(at)) == 6
    live = next(b for b in at.button if b.label == "Simulate Monte Carlo showers")
    next(n for n in at.number_input if n.label == "Monte Carlo showers to simulate").set_value(1)
    live.click().run()
    _no_errors(at)
    assert len(_charts(at)) == 7  # plus the Monte Carlo shower's projections
    names = [trace["name"] for trace in _figure(at, "Longitudinal profile")["data"]]
    assert names == ["tiny (mean of 1)", "Monte Carlo (mean of 1)"]  # like with like: mean against mean


def test_generate_monte_carlo_higher_energy_deposits_more(folders: dict[str, Path]) -> None:
    at = _open("1_Generate.py", {"source": sources.MONTE_CARLO, "energy": "2", "n": "2", "seed": "1"})
    at.button[0].click().run()
    _no_errors(at)
    low = _deposited(at)
    at.slider(key="w_energy").set_value(10.0)
    at.button[0].click().run()  # the settings form takes the new energy with the Generate press
    _no_errors(at)
    high = _deposited(at)
    assert high > 2 * low > 0  # deposited energy scales with the primary energy (sampling fraction ~1-2%)


def _bounds(at: AppTest, key: str) -> tuple[float, float]:
    slider = at.slider(key=key)
    return float(slider.min), float(slider.max)


def test_generate_sliders_follow_the_chosen_source(folders: dict[str, Path]) -> None:
    """A model trained on 2-500 GeV, 60-120 deg; GFlash accepts 0.1-5000 GeV, 30-150 deg."""
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "400"})
    _no_errors(at)
    assert _bounds(at, "w_energy") == (2.0, 500.0) and _bounds(at, "w_theta") == (60.0, 120.0)
    at.selectbox(key="w_source").set_value(sources.GFLASH).run()
    _no_errors(at)
    assert _bounds(at, "w_energy") == (0.1, 5000.0) and _bounds(at, "w_theta") == (30.0, 150.0)
    assert at.slider(key="w_energy").value == 400.0  # kept: inside GFlash's range too
    at.slider(key="w_energy").set_value(3000.0)
    at.slider(key="w_theta").set_value(40.0)
    at.number_input(key="w_n").set_value(1)
    at.button[0].click().run()
    _no_errors(at)
    assert at.query_params["energy"] in ("3000", ["3000"]) and at.query_params["theta"] in ("40", ["40"])
    at.selectbox(key="w_source").set_value("tiny").run()  # back to the model: the values move to its edges
    _no_errors(at)
    assert _bounds(at, "w_energy") == (2.0, 500.0)
    assert at.slider(key="w_energy").value == 500.0 and at.slider(key="w_theta").value == 60.0
    linked = _open("1_Generate.py", {"source": sources.GFLASH, "energy": "3000", "theta": "40", "n": "1"})
    _no_errors(linked)  # a link to GFlash beyond 500 GeV is not refused, and draws its showers
    assert not [w.value for w in linked.warning if "in the URL" in w.value]
    assert linked.slider(key="w_energy").value == 3000.0 and len(_charts(linked)) == 6


def test_generate_bad_query_params_warn_and_fall_back(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    query = {"energy": "9999", "theta": "abc", "source": "nope", "n": "2", "device": "cuda"}
    at = _open("1_Generate.py", query)
    _no_errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "energy=9999" in warnings and "theta='abc'" in warnings and "source='nope'" in warnings
    if not torch.cuda.is_available():
        assert "device=cuda" in warnings and at.query_params["device"] == "cpu"
    assert at.slider(key="w_energy").value == 50.0
    assert at.slider(key="w_theta").value == 90.0
    assert at.number_input(key="w_n").value == 2  # the good parameter is kept
    assert at.query_params["energy"] == "50"  # the URL is rewritten with the values in use
    at.run()
    assert not [w.value for w in at.warning if "in the URL" in w.value]  # warned once, not on every rerun


def test_generate_compares_with_reference_file(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    _toy_reference(folders["data"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "10", "n": "1"})
    at.button[0].click().run()
    _no_errors(at)
    assert any("reference showers from data/reference.h5" in c.value for c in at.caption)


def test_generate_opens_on_the_best_generator_not_the_monte_carlo(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"], "weak", {"sf_mre": 2.1, "separation_mean": 0.5, "classifier_auc_high": 1.0})
    _tiny_model(folders["models"], "better", {"sf_mre": 0.04, "separation_mean": 0.03, "classifier_auc_high": 0.6})
    at = _open("1_Generate.py")
    _no_errors(at)
    assert at.selectbox(key="w_source").value == "better"
    assert at.selectbox(key="w_source").options[-1].startswith(sources.MONTE_CARLO)
    assert not any("seconds per shower" in c.value for c in at.caption)
    at.selectbox(key="w_source").set_value(sources.MONTE_CARLO).run()  # opt-in, and it says what it costs
    assert any("seconds per shower" in c.value for c in at.caption)


def test_generate_widgets_win_over_a_lagging_url(folders: dict[str, Path]) -> None:
    """Quick key presses interrupt the reruns that update the URL, so a rerun can arrive with an old URL:
    the slider keeps its value instead of snapping back to the URL's."""
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "50", "n": "1"})
    assert at.slider(key="w_energy").value == 50.0
    at.slider(key="w_energy").set_value(55.0)
    at.button[0].click().run()
    assert at.query_params["energy"] == ["55"] or at.query_params["energy"] == "55"
    at.query_params["energy"] = "50"  # the browser's URL, one interrupted run behind
    at.slider(key="w_theta").set_value(80.0)
    at.button[0].click().run()
    _no_errors(at)
    assert at.slider(key="w_energy").value == 55.0 and at.slider(key="w_theta").value == 80.0
    assert at.query_params["energy"] in ("55", ["55"])  # and the URL follows the widgets again


def test_generate_deep_link_draws_the_showers_on_load(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _open("1_Generate.py", {"source": "tiny", "energy": "20", "theta": "70", "n": "2", "shower": "1"})
    _no_errors(at)
    assert len(_charts(at)) == 6  # no click needed
    assert not _stale(at)
    assert at.slider(key="w_shower").value == 1
    title = "Shower 1: log10 energy projections"
    assert _figure(at, title)
    at.run()  # a rerun does not generate again, and keeps the batch
    assert len(_charts(at)) == 6


def test_generate_link_without_conditions_waits_for_the_button(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _open("1_Generate.py")
    _no_errors(at)
    assert not _charts(at) and any("Press **Generate**" in i.value for i in at.info)


def test_generate_stale_batch_keeps_its_own_reference(folders: dict[str, Path]) -> None:
    """Moving a slider without pressing Generate changes nothing on screen (the settings form waits for the
    press); a new source, which takes effect at once, is named as differing from the batch on screen."""
    _tiny_model(folders["models"])
    _toy_reference(folders["data"])  # toy showers deposit 5 % of 10 or 50 GeV
    at = _open("1_Generate.py", {"source": "tiny", "energy": "10", "n": "1"})
    at.button[0].click().run()
    _no_errors(at)
    assert not _stale(at)
    at.slider(key="w_energy").set_value(50.0).run()  # no Generate: the form keeps the value to itself
    _no_errors(at)
    assert not _stale(at) and at.query_params["energy"] in ("10", ["10"])
    assert any("near 10 GeV" in c.value for c in at.caption)
    mc_mean = next(t for t in _figure(at, "Longitudinal profile")["data"] if t["name"].startswith("Monte Carlo"))
    # the 10 GeV reference (0.5 GeV deposited), not the 50 GeV one
    assert float(np.sum(_array(mc_mean["y"]))) == pytest.approx(0.05 * 10, rel=0.25)
    at.selectbox(key="w_source").set_value(sources.GFLASH).run()  # no Generate
    warning = " ".join(at.warning[i].value for i in range(len(at.warning)))
    assert "source GFlash (shown: tiny)" in warning and "press Generate" in warning
    assert any("near 10 GeV" in c.value for c in at.caption)  # still the batch's own reference
    at.selectbox(key="w_source").set_value("tiny").run()  # back to the batch's settings: no warning
    assert not _stale(at)


WEAK_VALIDATION = {"sf_mre": 2.1, "sf_relative_error_max_bin": 9.9, "separation_mean": 0.5,
                   "classifier_auc_high": 1.0, "bmre_profile_z": 0.9, "cell_variance_ratio": 0.008,
                   "ssim_L1": 0.9996, "reference": {"file": "reference.h5", "showers": 1500, "held_out": True},
                   "bins": [{"energy_bin_gev": [-3.0, 7.0], "theta_bin_deg": [80.67, 99.33], "n_reference": 100,
                             "n_candidate": 100, "sf_reference": 0.02, "sf_candidate": 0.2,
                             "sf_relative_error": 9.0}]}


def test_models_page_shows_cards(folders: dict[str, Path]) -> None:
    at = _open("5_Models.py")
    _no_errors(at)
    assert any("No model installed" in i.value for i in at.info)
    _tiny_model(folders["models"], validation=WEAK_VALIDATION)
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "### tiny" in text and "2-500 GeV" in text and "{" not in text
    assert any("tiny fails 6 of its 6 headline targets" in e.value for e in at.error)
    figures = [d.value for d in at.dataframe if "verdict" in d.value.columns][-1]  # every figure of the card
    verdict = dict(zip(figures["figure"], figures["verdict"]))
    assert verdict["SF error"] == "FAIL" and verdict["SSIM of mean showers (L=1)"] == "pass"
    assert set(figures.columns) >= {"figure", "value", "target", "ideal", "verdict", "meaning"}


def test_generate_shows_the_verdict_next_to_the_source(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"], validation=WEAK_VALIDATION)
    at = _open("1_Generate.py", {"source": "tiny", "n": "1"})
    assert not at.exception
    assert any("tiny fails 6 of its 6 headline targets" in e.value for e in at.error)


def test_benchmark_page_times_a_model(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    at = _open("4_Benchmark.py")
    _no_errors(at)
    at.multiselect[0].set_value(["installed models"])
    at.number_input[0].set_value(4)  # batch
    at.number_input[2].set_value(1)  # repeats
    at.button[0].click().run()
    _no_errors(at)
    table = at.dataframe[0].value
    assert table["source"].tolist() == ["tiny · generate() conv3d, GeV out"]
    assert float(table["showers_per_s"].iloc[0]) > 0
    assert len(_charts(at)) == 1


def test_train_page_background_run_cancel_and_listed_after_restart(folders: dict[str, Path]) -> None:
    from calogen.gan import jobs

    reference = _toy_reference(folders["data"], n=32)
    at = _open("3_Train.py")
    _no_errors(at)
    at.selectbox[2].set_value(reference)  # training data: the file
    at.number_input[0].set_value(50)  # epochs
    at.number_input[1].set_value(100)  # steps per epoch
    at.number_input[2].set_value(2)  # batch
    at.radio[1].set_value("cpu")  # the form's device switch (radio 0 is the sidebar's)
    at.text_input[0].set_value("tiny-run")
    at.number_input[3].set_value(4)  # held-out showers
    at.button[0].click().run()
    _no_errors(at)
    assert any("Started tiny-run" in s.value for s in at.success)
    run_dir = folders["runs"] / "tiny-run"
    try:
        _follow_and_cancel(at, run_dir)
    finally:
        jobs.cancel_run(run_dir)  # never leave a training process behind, whatever failed above

    fresh = _open("3_Train.py")  # a new session, as after a server restart
    _no_errors(fresh)
    table = fresh.dataframe[0].value
    assert table.loc[table["name"] == "tiny-run", "state"].tolist() == ["cancelled"]
    assert next(m.value for m in fresh.metric if m.label == "State") == "cancelled"


def _follow_and_cancel(at: AppTest, run_dir: Path) -> None:
    """Rerun the Train page until the run is running with metrics drawn, then press Cancel."""
    from calogen.gan import jobs

    deadline = time.monotonic() + 180
    state, charts = "", 0
    while time.monotonic() < deadline:
        at.run()
        state = next(m.value for m in at.metric if m.label == "State")
        charts = len(at.get("vega_lite_chart"))
        if state == "running" and charts and len(jobs.read_metrics(run_dir)):
            break
        time.sleep(1.0)
    assert state == "running", jobs.tail_log(run_dir, 30)
    assert charts >= 1  # the loss curve is drawn from metrics.csv
    cancel = next(b for b in at.button if b.label == "Cancel run")
    cancel.click().run()
    _no_errors(at)
    assert jobs.read_status(run_dir)["state"] == "cancelled"


def test_compare_page_scoreboard_figures_and_report(folders: dict[str, Path]) -> None:
    at = _open("2_Compare.py")
    _no_errors(at)
    assert any("No reference shower file" in i.value for i in at.info)
    _tiny_model(folders["models"])
    _tiny_model(folders["models"], "other")
    _toy_reference(folders["data"])
    at.run()
    _no_errors(at)
    chosen = ["tiny", "other"]
    at.multiselect[0].set_value(chosen)
    at.slider[0].set_value(20)
    at.button[0].click().run()
    _no_errors(at)
    board = at.dataframe[0].value
    assert list(board.columns) == ["figure", "target", "ideal", "tiny", "other", "meaning"]
    sf = board.set_index("figure").loc["SF error"]
    assert sf["target"] == "<= 0.05" and sf["ideal"] == "0" and sf["tiny"].endswith(("pass", "FAIL"))
    assert all(len(v.split()[0]) <= 9 for v in board["tiny"])  # 3 significant digits, powers for big ones
    profile = _figure(at, "Mean energy profile along the layers")
    names = [t.get("name") for t in profile["data"] if t.get("showlegend", True) is not False]
    assert names[:3] == ["Monte Carlo", "tiny", "other"]  # both sources overlaid, named
    ratio_range = profile["layout"]["yaxis2"]["range"]
    assert ratio_range[0] <= 0.5 and ratio_range[1] >= 1.5  # widened to the data, not clipped at 0.5-1.5
    bins = at.dataframe[1].value
    assert "45-55 GeV" in set(bins["energy"])
    assert all(re.fullmatch(r"\d+-\d+ deg", a) for a in bins["angle"])  # whole degrees, not radians
    assert len(at.get("download_button")) == 1


def test_seminar_page_one_click_between_the_reference_energies(folders: dict[str, Path]) -> None:
    _tiny_model(folders["models"])
    _toy_reference(folders["data"])  # energies 10 and 50 GeV at 90 deg: the page reads them from the file
    at = _open("6_Seminar.py")
    _no_errors(at)
    energy = at.radio(key="s_energy")
    assert energy.options == ["10 GeV", "50 GeV"] and energy.value == 50.0
    side = _figure(at, "Side view at 50 GeV, 90 deg (one colour scale)")
    assert len({(t["zmin"], t["zmax"]) for t in side["data"]}) == 1  # one colour scale for all four panels
    assert len(_figure(at, "Layer by layer, front view (press Play or drag the slider)")["frames"]) == 25
    energy.set_value(10.0).run()
    _no_errors(at)
    assert _figure(at, "Side view at 10 GeV, 90 deg (one colour scale)")
