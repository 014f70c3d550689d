"""Models: the model cards of installed models and of models written by training runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calogen import paths, sources
from calogen.app import texts
from calogen.plots import report
from calogen.validation.comparison import Comparison
from pages import figures_table, page_setup, source_verdict

page_setup("Models", "🗂️")
st.title("Models")
st.markdown("Every model folder holds the generator weights and a card: architecture, the conditions it was "
            "trained on, how it was trained and how it validated against held-out Monte Carlo showers. "
            f"Installed models live in `{paths.models_dir()}/`, models of training runs in "
            f"`{paths.runs_dir()}/`. The best validated model comes first.")

models = [s for s in sources.rank_sources(sources.list_sources()) if s.kind == "model"]
if not models:
    st.info(f"No model installed: `{paths.models_dir()}/` holds no folder with a card.json, and no training "
            "run has written a model yet. Train one on the Train page.")
    st.stop()

st.dataframe(
    [{"model": s.name, "from": s.origin, "folder": s.path} for s in models], hide_index=True,
)
for source in models:
    with st.container(border=True):
        try:
            card = sources.model_card(source)
        except ValueError as exc:
            st.error(str(exc))
            continue
        st.markdown(texts.format_card(card))
        source_verdict(source)
        try:
            comparison = Comparison.from_json(card.get("validation") or {})
        except ValueError as exc:
            st.error(f"{source.name}: the card's validation does not read ({exc})")
            continue
        rows = report.judged_rows(comparison.metrics)
        if rows:
            st.markdown("**Every figure of the card**")
            figures_table(rows, key=f"figures_{source.name}")
        if comparison.bins:
            with st.expander("Sampling fraction per energy and angle bin"):
                st.dataframe(pd.DataFrame(report.bin_table(comparison.bins, name=source.name)), hide_index=True)
        st.caption(f"{source.origin} · folder `{source.path}`")
        with st.expander("card.json"):
            st.json(card, expanded=False)
        st.page_link("pages/1_Generate.py", label=f"Generate with {source.name}",
                     query_params={"source": source.name})
