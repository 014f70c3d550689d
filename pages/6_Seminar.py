"""Seminar: the best generator next to the Monte Carlo in a few large panels, one click between energies."""

from __future__ import annotations

import numpy as np
import streamlit as st

from calogen import paths, sources
from calogen.app.texts import angle_label
from calogen.plots import views
from calogen.showers import Conditions
from pages import cached_reference, cached_source, device, live_chart, page_setup, show_error

page_setup("Seminar")
st.html("<style>.stMainBlockContainer p, .stMainBlockContainer label p { font-size: 1.35rem; }"
        " [data-testid='stMetricValue'], [data-testid='stMetricValue'] * { font-size: 2.8rem !important; }</style>")
st.title("Machine-learned showers next to the Monte Carlo")

fast = [s for s in sources.rank_sources(sources.list_sources()) if s.kind != "mc"]
files = sources.reference_files()
if not fast or not files:
    st.info("The seminar view needs a fast source (an installed model or GFlash) and a Monte Carlo reference file "
            f"in `{paths.data_dir()}/`; see the Models page and `python -m calogen reference`.")
    st.stop()
try:
    energy_all, theta_all = sources.reference_conditions(files[0])
except (OSError, ValueError) as exc:
    show_error(f"Reading {files[0].name}", exc)
    st.stop()
energies = [float(e) for e in np.unique(np.round(energy_all, 3))]  # the grid of the file, never assumed
_, first = np.unique(np.round(theta_all, 3), return_index=True)  # the file's grid angles (to 0.06 deg)
thetas = [float(theta_all[i]) for i in first]  # radians, as the file holds them

left, right = st.columns([3, 2])
energy = left.radio("Energy", energies, horizontal=True, format_func=lambda e: f"{e:g} GeV", key="s_energy",
                    index=energies.index(min(energies, key=lambda e: abs(e - 50.0))))
theta = right.radio("Angle", thetas, horizontal=True, format_func=angle_label, key="s_theta",
                    index=thetas.index(min(thetas, key=lambda t: abs(t - np.pi / 2))))
with st.sidebar:
    chosen = st.selectbox("Generator", [s.name for s in fast], key="s_source",
                          help="The best validated generator comes first.")
source = next(s for s in fast if s.name == chosen)

n_showers = 32
try:
    batch = sources.sample(cached_source(source, device()), Conditions.broadcast(energy, theta, n_showers), seed=0)
except (ValueError, RuntimeError, OSError) as exc:  # one readable message
    show_error(f"Generating with {source.name}", exc)
    st.stop()
reference, ref_file = cached_reference(energy, theta, n_showers)
if reference is None:
    st.warning(f"{ref_file or 'The reference file'} has no Monte Carlo showers near {energy:g} GeV, "
               f"{angle_label(theta)}.")
    st.stop()

sf_gen = float(batch.showers.sum(axis=(1, 2, 3)).mean() / energy)
sf_mc = float(reference.showers.sum(axis=(1, 2, 3)).mean() / energy)
cols = st.columns(3)
cols[0].metric(f"Sampling fraction, {source.name}", f"{sf_gen:.4f}", f"{(sf_gen / sf_mc - 1):+.0%} vs Monte Carlo",
               delta_color="green" if abs(sf_gen / sf_mc - 1) <= 0.05 else "red")
cols[1].metric("Sampling fraction, Monte Carlo", f"{sf_mc:.4f}")
cols[2].metric("Showers compared", f"{len(batch)} / {len(reference)}")

shown = f"{energy:g} GeV, {angle_label(theta)}, {source.name}"  # what the charts show, on each chart's element
live_chart(views.side_by_side_figure(
    {f"{source.name}, one shower": batch.showers[0], "Monte Carlo, one shower": reference.showers[0],
     f"{source.name}, mean of {len(batch)}": batch.showers.mean(axis=0),
     f"Monte Carlo, mean of {len(reference)}": reference.showers.mean(axis=0)},
    plane="yz", title=f"Side view at {energy:g} GeV, {angle_label(theta)} (one colour scale)", font_size=18),
    key="s_side", label=shown)
live_chart(views.layer_animation_figure(
    {f"{source.name} (mean)": batch.showers.mean(axis=0), "Monte Carlo (mean)": reference.showers.mean(axis=0)},
    title="Layer by layer, front view (press Play or drag the slider)", font_size=18), key="s_layers", label=shown)
