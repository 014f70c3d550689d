"""Figures: pure Plotly builders for showers and comparisons (``figures``), the app's tables and panels
(``views``) and the HTML report (``report``)."""
