"""Generators: architectures (``nets``), cell preprocessing, losses (``objectives``), training (``train``),
background runs (``jobs``), model folders and cards (``generate``, ``cards``) and export."""
