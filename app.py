"""calogen app: home page. Run with `streamlit run app.py`; the other pages live in pages/."""

from __future__ import annotations

import streamlit as st

from calogen import paths, sources
from pages import PAGES, device, measured_speedup, page_setup

page_setup("Home", "🏠")

st.title("calogen")
st.markdown(
    "calogen simulates electron showers in a 51 x 51 x 25-cell tungsten/silicon electromagnetic calorimeter "
    "(the CLIC ECAL of the public 3DGAN data). "
    "It ships a Monte Carlo of the electromagnetic cascade that produces the reference showers, and "
    "generative networks (GANs) that learn to produce the same showers in a fraction of the time. "
    "Here you can generate and inspect showers, compare generators with the Monte Carlo, train new models "
    "and benchmark their speed."
)
speedup = measured_speedup(device())
if speedup:
    st.markdown(f"**{speedup}** The Benchmark page measures every source in detail.")

st.subheader("Device")
name = device()
if name == "cuda":
    import torch

    st.success(f"Running on CUDA: {torch.cuda.get_device_name(0)}. Switch to the CPU in the sidebar.")
else:
    st.info("Running on the CPU" + (" (a CUDA device is available in the sidebar)." if sources.cuda_available()
                                    else "; no CUDA device was found."))

left, right = st.columns(2)
with left:
    st.subheader("Shower sources")
    found = sources.list_sources()
    if found:
        st.dataframe(
            [{"source": s.name, "kind": s.kind, "from": s.origin} for s in found],
            hide_index=True,
        )
    else:
        st.info("No source is available yet: neither the Monte Carlo (calogen.simulation.mc) nor any model in "
                f"`{paths.models_dir()}/`.")
with right:
    st.subheader("Reference data")
    files = sources.reference_files()
    if files:
        st.dataframe(
            [{"file": p.name, "size (MB)": round(p.stat().st_size / 1e6, 1)} for p in files],
            hide_index=True,
        )
    else:
        st.info(f"No reference shower file in `{paths.data_dir()}/`; Monte Carlo showers are simulated "
                "live where needed.")

st.subheader("Pages")
purpose = {
    "Generate": "showers from any source at a chosen energy and angle, in 3D, projections and profiles",
    "Compare": "generators against the Monte Carlo reference: histograms, scoreboard, HTML report",
    "Train": "background training runs with live loss and sampling-fraction curves",
    "Benchmark": "showers per second of each generator and of the Monte Carlo",
    "Models": "the model cards",
    "Seminar": "for a talk: the best generator next to the Monte Carlo in large panels, one click per energy",
}
for path, label, _icon in PAGES[1:]:
    st.page_link(path, label=f"{label}: {purpose[label]}")
