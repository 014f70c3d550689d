"""Where calogen keeps its files: the repository root, installed models, training runs and reference data.

Each folder can be moved with an environment variable (tests and deployments do):

- models: ``$CALOGEN_MODELS``, default ``<repository root>/models`` (a folder per model: weights + card.json);
- runs:   ``$CALOGEN_RUNS``, default ``runs`` in the working directory (training runs, benchmarks);
- data:   ``$CALOGEN_DATA``, default ``<repository root>/data`` (reference shower files).

The repository root is the folder holding the ``calogen`` package; background jobs put it on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "models_dir", "repo_root", "runs_dir"]


def repo_root() -> Path:
    """The folder holding the ``calogen`` package (absolute)."""
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """Folder of installed models: ``$CALOGEN_MODELS``, else ``<repository root>/models``."""
    return Path(os.environ.get("CALOGEN_MODELS") or repo_root() / "models")


def runs_dir() -> Path:
    """Folder of training runs and benchmarks: ``$CALOGEN_RUNS``, else ``runs`` (relative to the working
    directory)."""
    return Path(os.environ.get("CALOGEN_RUNS") or "runs")


def data_dir() -> Path:
    """Folder of reference shower files: ``$CALOGEN_DATA``, else ``<repository root>/data``."""
    return Path(os.environ.get("CALOGEN_DATA") or repo_root() / "data")
