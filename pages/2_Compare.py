"""Compare: generators against the Monte Carlo reference in chosen energy and angle bins."""

from __future__ import annotations

import math

import streamlit as st

from calogen import paths, sources
from calogen.plots import views
from pages import cached_source, chart, device, figures_table, page_setup, show_error

page_setup("Compare", "⚖️")
st.title("Compare with the Monte Carlo")
st.markdown("Reference showers are drawn from a Monte Carlo file in the data folder; each chosen source then "
            "generates showers at exactly the same energies and angles, and calogen.compare measures one sample "
            "against the other: sampling fraction, shower shapes, cell spectra, correlations and distances. A source "
            "is compared only where it was made for: conditions outside its range are refused.")

files = sources.reference_files()
if not files:
    st.info(f"No reference shower file in `{paths.data_dir()}/`: put a Monte Carlo sample there "
            "(python -m calogen simulate ... -o data/reference.h5) to compare against.")
    st.stop()
from calogen.compare import compare_source  # noqa: E402
from calogen.plots.figures import figures_from_results  # noqa: E402
from calogen.plots.report import bin_table, render_html_report, scoreboard_rows  # noqa: E402
from calogen.validation.binning import ConditionBins, default_energy_bins, default_theta_bins  # noqa: E402

available = {s.name: s for s in sources.rank_sources(sources.list_sources())}
reference_file = st.selectbox("Reference file", files, format_func=lambda p: p.name)
try:
    energy, theta = sources.reference_conditions(reference_file)
except (OSError, ValueError) as exc:
    show_error(f"Reading {reference_file.name}", exc)
    st.stop()
energy_bins = default_energy_bins(energy)
theta_bins = default_theta_bins(theta)
st.caption(f"{energy.size} showers, {energy.min():.3g}-{energy.max():.3g} GeV, "
           f"{math.degrees(theta.min()):.0f}-{math.degrees(theta.max()):.0f} deg.")

with st.form("compare"):
    chosen = st.multiselect("Sources", list(available),
                            default=[n for n in available if available[n].kind == "model"][:2])
    col1, col2 = st.columns(2)
    e_bins = col1.multiselect("Energy bins", energy_bins, default=energy_bins,
                              format_func=lambda b: views.energy_bin_label(*b))
    t_bins = col2.multiselect("Angle bins", theta_bins, default=theta_bins,
                              format_func=lambda b: views.theta_bin_label(*b))
    max_showers = st.slider("Reference showers (at most)", 10, 2000, 200, step=10,
                            help="The Monte Carlo as a source takes seconds per shower: keep this small then.")
    submitted = st.form_submit_button("Compare", type="primary")

if submitted:
    if not chosen or not e_bins or not t_bins:
        st.warning("Pick at least one source, one energy bin and one angle bin.")
        st.stop()
    results = {}
    bar = st.progress(0.0, text="Reading the reference ...")
    try:
        reference = sources.reference_in_bins(reference_file, e_bins, t_bins, max_showers)
    except (OSError, ValueError) as exc:
        show_error(f"Reading {reference_file.name}", exc)
        st.stop()
    bins = ConditionBins(tuple(e_bins), tuple(t_bins))
    for i, name in enumerate(chosen):
        bar.progress(i / len(chosen), text=f"{name}: generating {len(reference)} showers and comparing ...")
        try:
            results[name] = compare_source(cached_source(available[name], device()), reference, seed=1, bins=bins)
        except (OSError, RuntimeError, ValueError) as exc:  # one readable message per source (its range, ...)
            show_error(f"Comparing {name}", exc)
    bar.empty()
    if results:
        st.session_state["_compare"] = (reference_file.name, results)
    else:  # no source could be compared: do not leave an earlier comparison on screen as if it were this one
        st.session_state.pop("_compare", None)

if "_compare" not in st.session_state:
    st.stop()
ref_name, results = st.session_state["_compare"]
st.subheader("Scoreboard")
st.caption(f"Each source against the Monte Carlo showers of {ref_name}, at the same energies and angles. "
           "Every figure has its ideal value and the target a generator must meet to count as usable for physics "
           "checks; values that miss their target are red.")
figures_table(scoreboard_rows(results), columns=list(results), width="stretch")

figures = figures_from_results(results)
picked = st.multiselect("Figures (every source against the Monte Carlo)", list(figures),
                        default=[n for n in ("sf_vs_energy", "profile_z", "profile_x", "feature_sampling_fraction",
                                             "feature_measured_angle_rad", "cell_spectrum") if n in figures],
                        format_func=lambda n: figures[n].layout.title.text or n)
columns = st.columns(2)
for i, name in enumerate(picked):
    chart(figures[name], key=f"fig_{name}", where=columns[i % 2])

shown = st.selectbox("Per-bin table and HTML report for", list(results))
st.dataframe(bin_table(results[shown].bins, name=shown), hide_index=True)
st.download_button("Download the HTML report", render_html_report(results[shown], title=f"{shown} vs {ref_name}",
                                                                  name=shown),
                   file_name=f"compare_{shown.replace('/', '_')}.html", mime="text/html")
