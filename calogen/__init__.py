"""calogen: machine-learned calorimeter simulation next to a built-in electromagnetic-cascade Monte Carlo.

The names most users need are re-exported here; everything else lives in the topic modules
(``calogen.detector``, ``calogen.mc``, ``calogen.io``, ``calogen.features``, ``calogen.metrics``,
``calogen.plots``, ``calogen.nets``, ``calogen.train``, ``calogen.generate``, ``calogen.jobs``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from calogen.io import ShowerFileError, ShowerSet, iter_showers, read_showers, write_showers

__all__ = [
    "__version__",
    "ShowerFileError",
    "ShowerSet",
    "iter_showers",
    "read_showers",
    "write_showers",
]
