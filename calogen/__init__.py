"""calogen: machine-learned calorimeter simulation next to a built-in electromagnetic-cascade Monte Carlo.

The names most users need are available here (the heavier ones are imported on first use):

    >>> import calogen
    >>> conditions = calogen.Conditions.broadcast(100.0, 1.5708, n=10)   # GeV, radians
    >>> mc = calogen.sample("mc", conditions, seed=1)                    # Monte Carlo, ShowerSet in GeV
    >>> fake = calogen.sample("conv2d", conditions, seed=1)              # a model folder under models/
    >>> result = calogen.compare_samples(mc, fake)                       # a typed Comparison

Every source (the Monte Carlo, GFlash, a trained model) is a :class:`Source` with its own
:class:`ConditionRange`; :mod:`calogen.sources` lists them and :func:`sample` is the one way to get showers.
Everything else lives in the topic modules (``calogen.detector``, ``calogen.simulation.mc``,
``calogen.simulation.gflash``, ``calogen.io``, ``calogen.validation``, ``calogen.compare``, ``calogen.plots``,
``calogen.gan``, ``calogen.produce``, ``calogen.bench``).
"""

from __future__ import annotations

import importlib
from typing import Any

from calogen.io import ShowerFileError, iter_showers, read_showers, write_showers
from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions, OutOfRangeError, ShowerSet, Source
from calogen.version import __version__

_LAZY = {
    "sample": "calogen.sources",
    "find_source": "calogen.sources",
    "list_sources": "calogen.sources",
    "MonteCarlo": "calogen.simulation.mc",
    "simulate": "calogen.simulation.mc",
    "GFlash": "calogen.simulation.gflash",
    "simulate_gflash": "calogen.simulation.gflash",
    "clic_ecal": "calogen.detector",
    "get_detector": "calogen.detector",
    "load_generator": "calogen.gan.generate",
    "list_models": "calogen.gan.generate",
    "compare_samples": "calogen.compare",
    "compare_files": "calogen.compare",
    "run_benchmark": "calogen.bench",
}

__all__ = [  # the lazy names of _LAZY included
    "TRAINING_RANGE",
    "ConditionRange",
    "Conditions",
    "GFlash",
    "MonteCarlo",
    "OutOfRangeError",
    "ShowerFileError",
    "ShowerSet",
    "Source",
    "__version__",
    "clic_ecal",
    "compare_files",
    "compare_samples",
    "find_source",
    "get_detector",
    "iter_showers",
    "list_models",
    "list_sources",
    "load_generator",
    "read_showers",
    "run_benchmark",
    "sample",
    "simulate",
    "simulate_gflash",
    "write_showers",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calogen' has no attribute {name!r}")
