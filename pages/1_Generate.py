"""Generate: showers from any source at a chosen energy and angle, in 3D, projections, profiles and numbers."""

from __future__ import annotations

import time

import streamlit as st

from calogen import paths, sources
from calogen.app import texts
from calogen.app.state import MAX_SHOWERS, ViewState, slider_bounds, stale_batch_message
from calogen.io import showers_to_bytes
from calogen.plots import views
from pages import (
    cached_reference,
    cached_source,
    device,
    live_chart,
    page_setup,
    remember,
    show_error,
    source_ranges,
    source_verdict,
    url_state,
)

page_setup("Generate", "⚡")
st.title("Generate showers")
st.markdown("Pick a source and the conditions of the primary electron, then press **Generate**: the settings take "
            "effect together, and each request has its own seed, so the same settings give the same showers. The "
            "Monte Carlo runs at a few seconds per shower on a CPU.")

ranked = sources.rank_sources(sources.list_sources())  # best generator first
ranges = source_ranges(ranked)  # what each source accepts: the sliders follow the chosen one
available = {s.name: s for s in ranked if s.name in ranges}
if not available:
    st.info(f"No shower source is available yet: the Monte Carlo (calogen.simulation.mc) does not import and "
            f"`{paths.models_dir()}/` holds no model.")
    st.stop()
state = url_state(ranges)
if st.session_state.get("w_source") not in ranges:  # a model removed since the last run of this session
    st.session_state.w_source = state.source if state.source in ranges else next(iter(ranges))

# the sliders span the chosen source's range; a value left from another source moves to its nearest edge
(e_lo, e_hi), (t_lo, t_hi) = slider_bounds(ranges[st.session_state.w_source])
st.session_state.w_energy = min(max(float(st.session_state.w_energy), e_lo), e_hi)
st.session_state.w_theta = min(max(float(st.session_state.w_theta), t_lo), t_hi)
left, right = st.columns([1, 1])
with right:  # outside the form: a new source changes the sliders' ranges at once
    st.selectbox("Source", list(available), key="w_source",
                 format_func=lambda n: f"{n} ({available[n].origin})")
    source_verdict(available[st.session_state.w_source])
with left, st.form("w_settings", border=False):  # the settings take effect together, when Generate is pressed
    st.slider("Energy (GeV)", e_lo, e_hi, step=1.0, format="%.0f" if e_lo >= 1.0 else "%.1f", key="w_energy",
              help=f"{st.session_state.w_source} accepts {ranges[st.session_state.w_source].describe()}.")
    st.slider("Angle theta (deg, 90 = normal incidence)", t_lo, t_hi, step=1.0, format="%.0f", key="w_theta")
    col_n, col_seed = st.columns(2)
    col_n.number_input("Showers", 1, MAX_SHOWERS, key="w_n")
    col_seed.number_input("Seed", 0, 2**31 - 1, key="w_seed")
    pressed = st.form_submit_button("Generate", type="primary")
state = ViewState(
    energy_gev=float(st.session_state.w_energy), theta_deg=float(st.session_state.w_theta),
    n_showers=int(st.session_state.w_n), seed=int(st.session_state.w_seed), source=st.session_state.w_source,
    shower_index=min(int(st.session_state.w_shower), int(st.session_state.w_n) - 1), device=device(),
)
remember(state, ("energy", "theta", "n", "seed", "source", "shower"))
if available[state.source].kind == "mc":
    st.caption("The Monte Carlo simulates every particle of the cascade: seconds per shower on a CPU, more at "
               "high energy. The progress bar gives the time left, and Stop ends the run.")

# A shared link that names the conditions shows its showers at once, when the source is fast.
linked = st.session_state.pop("_url_conditions", False) and available[state.source].kind != "mc"
if linked and st.session_state.get("_batch", (None,))[0] == state:
    linked = False  # that batch is already on screen
if pressed or linked:
    entry = available[state.source]
    stop_slot = st.empty()
    stop_slot.button("Stop", key="w_stop", help="End the run; the batch shown before stays.")
    bar = st.progress(0.0, text=f"Generating {state.n_showers} showers with {entry.name} ...")
    started = time.perf_counter()
    try:
        batch = sources.sample(
            cached_source(entry, device()), state.conditions, seed=state.seed,
            progress=lambda done, total: bar.progress(
                done / max(total, 1), text=texts.progress_text(done, total, time.perf_counter() - started)),
        )
        st.session_state["_batch"] = (state, batch)
    except (ValueError, RuntimeError, OSError) as exc:  # a user-facing failure: one readable message
        show_error(f"Generating with {entry.name}", exc)
    bar.empty()
    stop_slot.empty()
elif st.session_state.get("w_stop"):  # Stop interrupted the run at its last progress update
    st.warning("Stopped before the batch was complete; nothing new was generated.")

if "_batch" not in st.session_state:
    st.info("Press **Generate** to sample showers.")
    st.stop()
shown, batch = st.session_state["_batch"]  # every figure below is for the batch's own conditions
stale = stale_batch_message(shown, state)
if stale:
    st.warning(stale)
n_made = len(batch)
index = 0
if n_made > 1:
    st.session_state.w_shower = min(int(st.session_state.get("w_shower", 0)), n_made - 1)
    index = int(st.slider("Shower shown", 0, n_made - 1, key="w_shower"))
shower = batch.showers[index]
shown_label = f"{shown.energy_gev:g} GeV, {shown.theta_deg:g} deg, seed {shown.seed}, shower {index}"
numbers = texts.shower_numbers(shower, float(batch.energy_gev[index]), float(batch.theta_rad[index]))
cols = st.columns(5)
cols[0].metric("Deposited energy", f"{numbers['deposited_gev']:.3g} GeV")
cols[1].metric("Sampling fraction", f"{numbers['sampling_fraction']:.4f}")
cols[2].metric("Hits (> 0.2 MeV)", f"{numbers['hits']}")
angle_off = numbers["measured_theta_deg"] - numbers["theta_deg"]
tolerance = texts.angle_tolerance_deg(numbers["energy_gev"])
cols[3].metric("Measured angle", f"{numbers['measured_theta_deg']:.1f} deg", f"{angle_off:+.1f} deg vs true",
               delta_color="green" if abs(angle_off) <= tolerance else "red",
               help=f"Red when further than {tolerance:.1f} deg from the true angle, the Monte Carlo's own "
                    "spread at this energy.")
cols[4].metric("Layer of maximum", f"{numbers['max_layer']}")

mode = st.radio("3D view", ["points", "volume"], horizontal=True,
                help="points: cells above 0.2 MeV coloured by log energy; volume: log-energy isosurfaces")
live_chart(views.shower_3d_figure(shower, mode=mode), key="shower3d", label=f"{shown_label}, {mode}")
live_chart(views.projections_figure(shower, title=f"Shower {index}: log10 energy projections"), key="projections",
           label=shown_label)

reference, ref_file = cached_reference(shown.energy_gev, shown.theta_rad, 16)
with st.expander(f"Monte Carlo at the batch's conditions ({shown.energy_gev:g} GeV, {shown.theta_deg:g} deg)",
                 expanded=reference is not None):
    if reference is not None:
        st.caption(f"{len(reference)} reference showers from data/{ref_file} near {shown.energy_gev:g} GeV, "
                   f"{shown.theta_deg:g} deg.")
    elif sources.MONTE_CARLO in available:
        n_live = st.number_input("Monte Carlo showers to simulate", 1, 8, 2)
        if st.button("Simulate Monte Carlo showers"):
            bar = st.progress(0.0, text="Simulating ...")
            try:
                live = sources.sample(cached_source(available[sources.MONTE_CARLO], device()),
                                      ViewState(shown.energy_gev, shown.theta_deg, int(n_live)).conditions,
                                      seed=shown.seed + 1,
                                      progress=lambda d, t: bar.progress(d / max(t, 1), text=f"{d}/{t} showers"))
                st.session_state["_live_mc"] = ((shown.energy_gev, shown.theta_deg), live)
            except (ValueError, RuntimeError, OSError) as exc:  # shown, not raised
                show_error("Simulating Monte Carlo showers", exc)
            bar.empty()
        live_key, live = st.session_state.get("_live_mc", (None, None))
        reference = live if live_key == (shown.energy_gev, shown.theta_deg) else None
    else:
        st.info("No reference file in data/ and no Monte Carlo to simulate one.")
    if reference is not None:
        live_chart(views.projections_figure(
            reference.showers[0], title=f"Monte Carlo shower at {float(reference.energy_gev[0]):.3g} GeV, "
                                        f"{texts.angle_label(float(reference.theta_rad[0]))}"),
            key="mc_projections", label=shown_label)

# like with like: the mean of the batch against the mean of the Monte Carlo showers
curves = {f"{shown.source} (mean of {n_made})": batch.showers}
if reference is not None and shown.source != sources.MONTE_CARLO:
    curves[f"Monte Carlo (mean of {len(reference)})"] = reference.showers
left, right = st.columns(2)
live_chart(views.longitudinal_profile_figure(curves), key="longitudinal", label=shown_label, where=left)
live_chart(views.lateral_profile_figure(curves), key="lateral", label=shown_label, where=right)

st.subheader(f"The batch ({n_made} showers)")
live_chart(views.mean_images_figure(batch.showers), key="batch_mean", label=shown_label)
spread = {shown.source: (batch.showers, batch.energy_gev)}
if reference is not None:
    spread["Monte Carlo reference"] = (reference.showers, reference.energy_gev)
live_chart(views.sampling_fraction_figure(spread), key="sampling_fraction", label=shown_label)
st.download_button("Download the batch (HDF5)", showers_to_bytes(batch), mime="application/x-hdf5",
                   file_name=f"showers_{shown.energy_gev:g}GeV_{shown.theta_deg:g}deg.h5")
