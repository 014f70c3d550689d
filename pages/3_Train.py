"""Train: start a GAN training run in the background, follow its curves and log, cancel or resume it."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from calogen import sources
from calogen.paths import runs_dir
from pages import device, page_setup, show_error

page_setup("Train", ":material/model_training:")
st.title("Train a generator")
st.markdown("A run trains in its own background process and writes everything to its folder under "
            f"`{runs_dir()}/` (config, metrics, log, checkpoints), so it keeps going when this tab is "
            "closed. A finished run's selected generator appears as a source on the Generate page.")

from calogen.gan import jobs  # noqa: E402
from calogen.gan.nets import ARCHITECTURES  # noqa: E402

root = runs_dir()
files = [str(p) for p in sources.reference_files()]
with st.form("train"):
    col1, col2, col3 = st.columns(3)
    arch = col1.selectbox("Architecture", list(ARCHITECTURES), help="; ".join(
        f"{k}: {a.description}" for k, a in ARCHITECTURES.items()))
    recipe = col2.selectbox("Recipe", ["3dgan", "wgan-gp"])
    data = col3.selectbox("Training data", ["mc", *files],
                          format_func=lambda d: "Monte Carlo on the fly" if d == "mc" else Path(d).name)
    energy = st.slider("Energy range (GeV)", 2.0, 500.0, (2.0, 500.0), step=1.0)
    theta = st.slider("Angle range (deg)", 60.0, 120.0, (60.0, 120.0), step=1.0)
    col4, col5, col6 = st.columns(3)
    epochs = col4.number_input("Epochs", 1, 1000, 10)
    steps = col5.number_input("Steps per epoch", 1, 100000, 100)
    batch = col6.number_input("Batch size", 2, 1024, 64)
    run_device = st.radio("Device", ["auto", "cpu", "cuda"], index=["auto", "cpu", "cuda"].index(device()),
                          horizontal=True)
    with st.expander("More options"):
        name = st.text_input("Run name (empty: <arch>-<recipe>-<time>)",
                             help=f"One folder name inside {root}/: letters, digits, '-', '_' and '.', not "
                                  f"starting with '.', at most {jobs.RUN_NAME_MAX_CHARS} characters")
        heldout = st.number_input("Held-out showers for the SF error", 1, 10000, 100)
        seed = st.number_input("Seed", 0, 2**31 - 1, 0)
    started = st.form_submit_button("Start training", type="primary")

if started:
    config = {"arch": arch, "recipe": recipe, "data": data, "energy_range_gev": list(energy),
              "theta_range_rad": [math.radians(t) for t in theta],  # the one degrees -> radians conversion
              "epochs": int(epochs), "steps_per_epoch": int(steps), "batch": int(batch), "device": run_device,
              "heldout_mc": int(heldout), "seed": int(seed),
              "command": "calogen app, Train page"}
    if name.strip():
        config["run_dir"] = name.strip()
    try:
        st.session_state["_run"] = str(jobs.start_run(config, root=root))
        st.success(f"Started {Path(st.session_state['_run']).name}.")
    except (ValueError, OSError) as exc:  # bad options (jobs.RunError is a ValueError), an existing run
        show_error("Starting the run", exc)

REFRESH_S = 2.0  # seconds between refreshes of the table and the chosen run while a run is going
runs = jobs.list_runs(root)
if not runs:
    st.info(f"No runs in `{root}/` yet.")
    st.stop()
st.subheader("Runs")


@st.fragment(run_every=REFRESH_S if any(r.get("state") in jobs.ACTIVE_STATES for r in runs) else None)
def _table() -> None:
    st.dataframe(jobs.runs_table(root), hide_index=True, column_config={
        "total_steps": st.column_config.NumberColumn("total steps"),
        "percent": st.column_config.ProgressColumn("progress", format="%.1f %%", min_value=0, max_value=100),
        "eta": st.column_config.TextColumn("ETA"), "exit_reason": st.column_config.TextColumn("exit reason")})


_table()
names = [r["name"] for r in runs]
chosen_dir = st.session_state.get("_run")
default = names.index(Path(chosen_dir).name) if chosen_dir and Path(chosen_dir).name in names else 0
run_name = st.selectbox("Run", names, index=default)
run_dir = jobs.run_path(run_name, root)
active = jobs.read_status(run_dir, root=root).get("state") in jobs.ACTIVE_STATES


@st.fragment(run_every=REFRESH_S if active else None)
def _live(run_dir: Path) -> None:
    status = jobs.read_status(run_dir, root=root)
    state = status.get("state", "unknown")
    done = jobs.progress(status)
    cols = st.columns(5)
    cols[0].metric("State", state)
    cols[1].metric("Epochs done", f"{status.get('epoch', '-')} / {status.get('total_epochs', '-')}")
    cols[2].metric("Step", f"{done['step'] if done['step'] is not None else '-'} / {done['total_steps'] or '-'}")
    cols[3].metric("ETA", done["eta"])
    cols[4].metric("SF error", f"{status['sf_error']:.4f}" if "sf_error" in status else "-")
    if done["percent"] is not None:
        st.progress(min(float(done["percent"]) / 100.0, 1.0), text=f"{done['percent']:.1f} % of the planned steps")
    if state == "preparing" and status.get("phase"):
        st.caption(f"Before the first step: {status['phase']}.")
    if status.get("exit_reason"):
        st.caption(f"Exit reason: {status['exit_reason']}")
    metrics = jobs.read_metrics(run_dir, root=root)
    regressor = metrics["regressor_heldout_error"].dropna() if "regressor_heldout_error" in metrics else []
    if len(regressor):
        st.caption(f"Condition regressor (wgan-gp): held-out error {float(regressor.iloc[-1]):.4f} "
                   "(relative energy error + angle error in rad)")
    if len(metrics):
        left, right = st.columns(2)
        losses = [c for c in ("loss_d", "loss_g") if c in metrics and metrics[c].notna().any()]
        left.line_chart(metrics, x="step", y=losses, x_label="step", y_label="loss")
        sf = metrics.dropna(subset=["sf_error"]) if "sf_error" in metrics else metrics.iloc[0:0]
        if len(sf):
            right.line_chart(sf, x="step", y="sf_error", x_label="step", y_label="SF relative error")
    else:
        st.caption("No metrics yet (the first steps are on their way).")
    st.code("\n".join(jobs.tail_log(run_dir, 15, root=root)) or "(log is empty)", language=None)
    if state not in jobs.ACTIVE_STATES and active:
        st.rerun()  # the run just stopped: refresh the buttons and the table


_live(run_dir)
col_cancel, col_resume = st.columns(2)
if col_cancel.button("Cancel run", disabled=not active):
    with st.spinner("Stopping (the run saves a checkpoint first) ..."):
        try:
            jobs.cancel_run(run_dir, root=root)
        except (ValueError, OSError) as exc:  # shown, not raised
            show_error("Cancelling", exc)
    st.rerun()
if col_resume.button("Resume run", disabled=active):
    try:
        st.session_state["_run"] = str(jobs.resume_run(run_dir, root=root))
        st.rerun()
    except (ValueError, OSError) as exc:  # e.g. no checkpoint yet
        show_error("Resuming", exc)
model_dir = run_dir / "model"
if (model_dir / "card.json").exists():
    source = next((s for s in sources.list_sources() if s.path == str(model_dir)), None)
    if source is not None:
        st.page_link("pages/1_Generate.py", label=f"Generate with {source.name}", icon=":material/bolt:",
                     query_params={"source": source.name})
