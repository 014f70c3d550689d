"""Widgets shared by every page of the calogen app: page setup, the sidebar, URL state and cached loaders.

This file is not a page (Streamlit skips ``__init__.py`` when it discovers pages); each page calls
:func:`page_setup` first, so the sidebar is the same whichever page a visitor opens first.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import plotly
import streamlit as st
import streamlit.components.v1 as components_v1

from calogen import paths, sources
from calogen.app import texts
from calogen.app.state import ViewState, parse_view_state, to_radians, view_state_to_query
from calogen.io import ShowerSet, atomic_write
from calogen.plots import report
from calogen.showers import ConditionRange, Source

__all__ = [
    "PAGES",
    "bench_file",
    "cached_reference",
    "cached_source",
    "chart",
    "device",
    "figures_table",
    "live_chart",
    "measured_speedup",
    "page_setup",
    "remember",
    "save_bench",
    "show_error",
    "source_ranges",
    "source_verdict",
    "url_state",
]

# Emoji, not ":material/...:" icons: those make the browser fetch the Material Symbols font from Google, which
# fails (a broken icon per link and a stream of failed requests) on a laptop without network.
PAGES = (
    ("app.py", "Home", "🏠"),
    ("pages/1_Generate.py", "Generate", "⚡"),
    ("pages/2_Compare.py", "Compare", "⚖️"),
    ("pages/3_Train.py", "Train", "🏋️"),
    ("pages/4_Benchmark.py", "Benchmark", "⏱️"),
    ("pages/5_Models.py", "Models", "🗂️"),
    ("pages/6_Seminar.py", "Seminar", "🎓"),
)
_PAGE_ICONS = {label: icon for _, label, icon in PAGES}
_WIDGET_KEYS = {
    "energy_gev": "w_energy",
    "theta_deg": "w_theta",
    "n_showers": "w_n",
    "seed": "w_seed",
    "source": "w_source",
    "shower_index": "w_shower",
}


def page_setup(title: str, icon: str = "") -> None:
    """Page config and the shared sidebar (device switch, back-end status).

    icon: an emoji; a ":material/...:" icon is replaced by the page's emoji (or none), so that nothing is
    fetched from outside the app."""
    if not icon or icon.startswith(":material/"):
        icon = _PAGE_ICONS.get(title, "🔬")
    st.set_page_config(page_title=f"calogen · {title}", page_icon=icon, layout="wide")
    if st.session_state.get("_page") != title:  # entered from a link, a page switch or a fresh load
        st.session_state["_page"] = title
        st.session_state["_url_pending"] = True
    _sidebar()


def _sidebar() -> None:
    has_cuda = sources.cuda_available()
    options = ["cuda", "cpu"] if has_cuda else ["cpu"]
    wanted = st.query_params.get("device")
    if "device" not in st.session_state or (wanted is not None and wanted != st.session_state.get("_device_url")):
        # first run of the session, or a URL edited by hand / opened from a link
        if wanted == "cuda" and not has_cuda:
            st.warning("device=cuda in the URL, but no CUDA device is visible; using the CPU.")
        elif wanted not in (None, "auto", *options):
            st.warning(f"device={wanted!r} in the URL is not one of auto, {', '.join(options)}; using "
                       f"{options[0]}.")
        st.session_state["device"] = wanted if wanted in options else options[0]
    with st.sidebar:
        for path, label, _icon in PAGES:  # no icons in links: emoji need a colour-emoji font the laptop may lack
            st.page_link(path, label=label)
        st.divider()
        st.radio("Device", options, key="device", horizontal=True,
                 help="Where generators and the Monte Carlo run. CUDA is offered when torch sees a GPU.")
        st.caption("GPU: " + ("CUDA available" if has_cuda else "none found, running on the CPU"))
    st.query_params["device"] = st.session_state["_device_url"] = st.session_state["device"]


def device() -> str:
    """The device chosen in the sidebar ("cpu" or "cuda")."""
    return str(st.session_state.get("device", "cpu"))


def chart(fig: Any, *, key: str | None = None, where: Any = None) -> None:
    """Draw a plotly figure as calogen styled it (calogen.plots.figures.style_figure), not re-themed by Streamlit,
    in ``where`` (a column or container; default the page)."""
    (where or st).plotly_chart(fig, key=key, theme=None, config={"displaylogo": False})


# plotly.js as installed with the plotly package (the version its figures are written for), served by the app
# itself: nothing is fetched from outside, so a laptop without network draws every chart.
_PLOTLY_JS = components_v1.declare_component("plotly_js", path=str(Path(plotly.__file__).parent / "package_data"))
_LIVE_CHART = st.components.v2.component(
    "calogen_live_chart", js=(Path(__file__).parent / "live_chart.js").read_text(encoding="utf-8"),
    isolate_styles=False)


def live_chart(fig: Any, *, key: str, label: str, where: Any = None) -> None:
    """Draw a plotly figure that later reruns update in place (Plotly.react on the chart already drawn).

    A page that redraws the same charts for new data (Generate: each new batch) uses this instead of
    :func:`chart`: st.plotly_chart makes a new chart for every new figure, and in a browser without GPU a new 3D
    chart costs most of a second. key: the chart's name on the page, the same at every rerun. label: what the
    figure shows (conditions, view); the chart's element carries ``data-drawn=label`` once it is on screen."""
    data = {"figure": fig.to_json(), "label": label, "src": f"component/{_PLOTLY_JS.name}/plotly.min.js",
            "config": {"displaylogo": False, "responsive": True}}
    if where is None:
        _LIVE_CHART(key=key, data=data)
        return
    with where:
        _LIVE_CHART(key=key, data=data)


def show_error(what: str, exc: BaseException) -> None:
    """One readable error box (no traceback)."""
    st.error(f"{what} failed: {exc}")


def _verdict_colour(value: Any) -> str:
    text = str(value)
    if text == "FAIL" or text.endswith(" FAIL"):
        return "color: #c0392b; font-weight: bold"
    if text == "pass" or text.endswith(" pass"):
        return "color: #1e8449"
    return "color: #888" if text == "n/a" else ""


def figures_table(rows: list[dict[str, Any]], *, columns: list[str] | None = None, **kwargs: Any) -> None:
    """A table of judged figures (calogen.plots.report.judged_rows or scoreboard_rows): a failing verdict red, a
    passing one green, no value grey. columns: the columns that carry verdicts (default "verdict")."""
    table = pd.DataFrame(rows)
    st.dataframe(table.style.map(_verdict_colour, subset=columns or ["verdict"]), hide_index=True, **kwargs)


def source_verdict(source: sources.SourceEntry) -> None:
    """What the source's validation says, in one box, with the headline figures of a model's card below it."""
    if source.kind == "mc":
        st.caption("The Monte Carlo is the reference the generators are measured against.")
        return
    if source.kind == "gflash":
        st.caption("GFlash: a parametrised shower model (no training, no card figures); compare it on the "
                   "Compare page.")
        return
    try:
        validation = sources.model_card(source).get("validation") or {}
    except ValueError as exc:
        st.error(str(exc))
        return
    if "sf_mre" not in validation:
        st.warning(f"{source.name} has no validation figures in its card: run `python -m calogen validate "
                   f"--model {source.path} --reference data/reference.h5 --update-card`.")
        return
    failed = report.failed_headlines(validation)
    total = len([k for k in report.HEADLINE_METRICS if k in validation])
    if failed:
        st.error(f"{source.name} fails {len(failed)} of its {total} headline targets ({'; '.join(failed)}): "
                 "use it to see the tool work, not for physics.")
    else:
        st.success(f"{source.name} meets all {total} headline targets of its card.")
    with st.expander("Headline figures of the card"):
        figures_table(report.judged_rows(validation, report.HEADLINE_METRICS))


def source_ranges(entries: list[sources.SourceEntry]) -> dict[str, ConditionRange]:
    """name -> the range each source accepts, in the order given; a model whose card gives no readable range is
    left out with one warning."""
    ranges = {}
    for entry in entries:
        try:
            ranges[entry.name] = entry.condition_range
        except ValueError as exc:
            st.warning(f"{entry.name} is left out: {exc}")
    return ranges


def url_state(ranges: dict[str, ConditionRange]) -> ViewState:
    """The page's state: read from the URL when the page is entered (first load, a link, a page switch),
    otherwise from the widgets. ranges: the available sources (name -> range), the best first; the energy and
    angle are checked against the range of the source in effect. Bad URL values give one st.warning each and
    fall back to defaults. After a read, ``st.session_state["_url_conditions"]`` says whether the URL named
    conditions (energy, angle or source), i.e. whether it was a link to showers rather than to the page.

    Within a page the widgets win on every rerun: the URL the browser sends with a rerun can lag behind the
    widgets (quick key presses on a slider interrupt the runs that would have updated it), so reading it
    again would snap the widgets back.
    """
    base: ViewState = st.session_state.get("_view", ViewState())
    if ranges and base.source not in ranges:
        base = dataclasses.replace(base, source=next(iter(ranges)))
    if st.session_state.get("_url_pending"):
        page_params = {k: v for k, v in st.query_params.to_dict().items() if k != "device"}  # the sidebar's
        state, warnings = parse_view_state(page_params, default=base, ranges=ranges or None)
        for field, key in _WIDGET_KEYS.items():
            st.session_state[key] = getattr(state, field)
        st.session_state["_url_pending"] = False
        st.session_state["_url_conditions"] = bool({"energy", "theta", "source"} & set(page_params))
        for warning in warnings:
            st.warning(warning)
        return state
    for field, key in _WIDGET_KEYS.items():
        st.session_state.setdefault(key, getattr(base, field))
    return base


def remember(state: ViewState, keys: tuple[str, ...]) -> None:
    """Store ``state`` for the session and write its ``keys`` (query names) and the device into the URL."""
    state = dataclasses.replace(state, device=device())
    st.session_state["_view"] = state
    query = {k: v for k, v in view_state_to_query(state).items() if k in keys or k == "device"}
    st.query_params.from_dict(query)


def bench_file() -> Path:
    """Where the app keeps its latest benchmark (runs/bench/latest.json, the format of `calogen bench --json`)."""
    return paths.runs_dir() / "bench" / "latest.json"


def save_bench(rows: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write benchmark rows (BenchResult.to_dict()) and their meta to :func:`bench_file`, atomically."""
    meta = {**meta, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps({"meta": meta, "results": rows}, indent=2)
    return atomic_write(bench_file(), lambda tmp: tmp.write_text(text, encoding="utf-8"))


@st.cache_data(max_entries=4, show_spinner="Measuring the speed-up on this machine (once): a small "
                                           "benchmark of the installed models and the Monte Carlo ...")
def _quick_bench(device_name: str, models: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from calogen.bench import run_benchmark

    energy_gev, theta_deg = 10.0, 90.0  # one 10 GeV Monte Carlo shower takes about a second on a CPU
    results = run_benchmark(device=device_name, batch_size=16, energy_gev=energy_gev,
                            theta_rad=to_radians(theta_deg), mc_showers=1, repeats=2, include_gflash=False,
                            include_published=False, include_onnx=False, models_dir=models)
    return [r.to_dict() for r in results], {"device": device_name, "energy_gev": energy_gev,
                                            "theta_deg": theta_deg, "source": "the app's quick benchmark"}


def measured_speedup(device_name: str) -> str | None:
    """The speed-up sentence of the latest benchmark on ``device_name`` (runs/bench/latest.json), or of a
    small one measured now (and saved there) when there is none; None when nothing can be compared."""
    path = bench_file()
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("meta", {}).get("device") == device_name:
                sentence = texts.speedup_sentence(saved["results"], saved["meta"])
                if sentence:
                    return sentence
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable file is measured again and replaced
    if not any(s.kind == "model" for s in sources.list_sources(include_runs=False)):
        return None
    rows, meta = _quick_bench(device_name, str(paths.models_dir()))
    save_bench(rows, meta)
    return texts.speedup_sentence(rows, meta)


def _folder_mtime(path: str) -> float:
    return max((p.stat().st_mtime for p in Path(path).iterdir()), default=0.0)


@st.cache_resource(max_entries=4, show_spinner="Loading model ...")
def _load_model(path: str, mtime: float, device_name: str) -> Source:
    return sources.load_source(sources.SourceEntry(Path(path).name, "model", path), device_name)


def cached_source(entry: sources.SourceEntry, device_name: str) -> Source:
    """The Source of an entry on ``device_name``: a model loaded once (cached by folder, modification time and
    device); the Monte Carlo in :data:`calogen.sources.PROGRESS_STEPS` chunks, so that its progress bar moves
    and Stop acts during a run."""
    if entry.kind == "model" and entry.path is not None:
        return _load_model(entry.path, _folder_mtime(entry.path), device_name)
    return sources.load_source(entry, device_name, progress_steps=sources.PROGRESS_STEPS)


@st.cache_data(max_entries=32, show_spinner="Reading reference showers ...")
def _reference(path: str, mtime: float, energy_gev: float, theta_rad: float, n: int) -> ShowerSet | None:
    return sources.reference_near(path, energy_gev, theta_rad, n)


def cached_reference(energy_gev: float, theta_rad: float, n: int) -> tuple[ShowerSet | None, str]:
    """Monte Carlo reference showers near (energy, angle) from the first reference file in data/.

    Returns (showers or None, the file name or "" when there is no reference file)."""
    files = sources.reference_files()
    if not files:
        return None, ""
    path = files[0]
    return _reference(str(path), path.stat().st_mtime, energy_gev, theta_rad, n), path.name
