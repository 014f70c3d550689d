"""calogen: machine-learned calorimeter simulation next to a built-in electromagnetic-cascade Monte Carlo.

The names most users need are available here (the heavier ones are imported on first use):

    >>> import calogen
    >>> mc = calogen.simulate(100.0, 1.5708, n=10, seed=1)          # Monte Carlo, ShowerSet in GeV
    >>> gen = calogen.load_generator("conv2d")                       # a model folder under models/
    >>> fake = gen.generate(100.0, 1.5708, n=10, seed=1)
    >>> report = calogen.compare(mc, fake)                           # metrics as a JSON-able dict

Everything else lives in the topic modules (``calogen.detector``, ``calogen.simulation.mc``, ``calogen.simulation.gflash``,
``calogen.io``, ``calogen.validation.features``, ``calogen.validation.metrics``, ``calogen.plots.figures``, ``calogen.gan.nets``,
``calogen.gan.train``, ``calogen.gan.generate``, ``calogen.gan.jobs``, ``calogen.bench``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from calogen.io import ShowerFileError, ShowerSet, iter_showers, read_showers, write_showers

_LAZY = {
    "simulate": "calogen.simulation.mc",
    "simulate_gflash": "calogen.simulation.gflash",
    "clic_ecal": "calogen.detector",
    "get_detector": "calogen.detector",
    "load_generator": "calogen.gan.generate",
    "list_models": "calogen.gan.generate",
    "compare": "calogen.validation.metrics",
    "validate_files": "calogen.validation.metrics",
    "run_benchmark": "calogen.bench",
}

__all__ = [
    "__version__",
    "ShowerFileError",
    "ShowerSet",
    "iter_showers",
    "read_showers",
    "write_showers",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calogen' has no attribute {name!r}")
