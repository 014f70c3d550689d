"""Models: the model cards of installed models and of models written by training runs."""

from __future__ import annotations

import streamlit as st

from calogen import sources, views
from pages import page_setup

page_setup("Models", ":material/inventory_2:")
st.title("Models")
st.markdown("Every model folder holds the generator weights and a card: architecture, the conditions it was "
            f"trained on, how it was trained and how it validated. Installed models live in "
            f"`{sources.models_dir()}/`, models of training runs in `{sources.runs_dir()}/`.")

models = [s for s in sources.list_sources() if s.kind == "model"]
if not models:
    st.info(f"No model installed: `{sources.models_dir()}/` holds no folder with a card.json, and no training "
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
        st.markdown(views.format_card(card))
        st.caption(f"{source.origin} · folder `{source.path}`")
        with st.expander("card.json"):
            st.json(card)
        st.page_link("pages/1_Generate.py", label=f"Generate with {source.name}", icon=":material/bolt:",
                     query_params={"source": source.name})
