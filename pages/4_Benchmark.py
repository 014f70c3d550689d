"""Benchmark: showers per second of each generator and of the Monte Carlo, and the speed-up."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calogen import paths
from calogen.app.state import slider_bounds, to_radians
from calogen.plots import views
from calogen.showers import TRAINING_RANGE
from pages import chart, device, page_setup, save_bench, show_error

page_setup("Benchmark", "⏱️")
st.title("Benchmark")
st.markdown("Times every source on one device with calogen.bench: the published 3DGAN generator architecture "
            "(random weights, several inference paths), the installed models, GFlash and the Monte Carlo. "
            "Each source gets a warm-up call, then the median of the timed calls counts. The Monte Carlo runs "
            "its own small batch because it takes seconds per shower on a CPU.")

from calogen.bench import run_benchmark  # noqa: E402

energy_bounds, theta_bounds = slider_bounds(TRAINING_RANGE)  # the domain of the generators: 2-500 GeV, 60-120 deg
with st.form("bench"):
    col1, col2, col3 = st.columns(3)
    energy = col1.slider("Energy (GeV)", *energy_bounds, value=10.0, step=1.0)
    theta = col2.slider("Angle (deg)", *theta_bounds, value=90.0, step=1.0)
    batch = col3.number_input("Batch size (generators)", 1, 8192, 16)
    col4, col5, col6 = st.columns(3)
    include = col4.multiselect("Include", ["published conv3d", "installed models", "GFlash", "Monte Carlo"],
                               default=["published conv3d", "installed models", "Monte Carlo"])
    mc_showers = col5.number_input("Monte Carlo showers", 1, 64, 1)
    repeats = col6.number_input("Timed repeats", 1, 20, 3)
    onnx = st.checkbox("Also time the ONNX Runtime path of the published generator", value=False)
    submitted = st.form_submit_button("Run benchmark", type="primary")

if submitted:
    if not include:
        st.warning("Pick at least one kind of source.")
        st.stop()
    with st.status(f"Timing on {device()} ...", expanded=False) as status:
        try:
            results = run_benchmark(
                device=device(), batch_size=int(batch), energy_gev=float(energy), theta_rad=to_radians(theta),
                mc_showers=int(mc_showers), repeats=int(repeats), include_mc="Monte Carlo" in include,
                include_gflash="GFlash" in include,
                include_published="published conv3d" in include, include_models="installed models" in include,
                include_onnx=onnx, models_dir=str(paths.models_dir()), progress=status.write,
            )
            st.session_state["_bench"] = [r.to_dict() for r in results]
            save_bench(st.session_state["_bench"], {"device": device(), "energy_gev": float(energy),
                                                    "theta_deg": float(theta), "source": "the Benchmark page"})
            status.update(label=f"Timed {len(results)} sources on {device()}", state="complete")
        except (ValueError, RuntimeError, OSError) as exc:  # one readable message
            status.update(label="Benchmark failed", state="error")
            show_error("The benchmark", exc)

rows = st.session_state.get("_bench")
if rows:
    table = pd.DataFrame(rows)
    table["source"] = table["name"] + " · " + table["path"]
    shown = ["source", "kind", "device", "batch_size", "ms_per_shower", "showers_per_s", "speedup_vs_mc",
             "speedup_vs_published"]
    st.dataframe(table[shown].style.format({"ms_per_shower": "{:.3g}", "showers_per_s": "{:,.3g}",
                                            "speedup_vs_mc": "{:,.0f}x", "speedup_vs_published": "{:.2f}x"},
                                           na_rep="-"), hide_index=True)
    chart(views.throughput_figure(rows))
    if table["speedup_vs_mc"].isna().all():
        st.caption("Include the Monte Carlo to get the speed-up ratios.")
