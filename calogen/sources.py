"""One way to get showers from any source: the Monte Carlo, GFlash, an installed model or a trained run's model.

The app and scripts name a source by a string: ``"Monte Carlo"``, ``"GFlash"`` or a model name. This module
finds what is available (optional back-ends are imported lazily and reported with the reason when missing),
samples a :class:`calogen.io.ShowerSet` from any of them and looks up Monte Carlo reference showers in
``data/`` (timing lives in :mod:`calogen.bench`).

Folders (overridable by environment variables, e.g. in tests): models ``CALOGEN_MODELS`` (default
``models``), trained runs ``CALOGEN_RUNS`` (``runs``), reference data ``CALOGEN_DATA`` (``data``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from calogen.io import ShowerSet, read_showers

__all__ = [
    "GFLASH",
    "MONTE_CARLO",
    "Source",
    "cuda_available",
    "data_dir",
    "list_sources",
    "load_model",
    "model_card",
    "models_dir",
    "rank_sources",
    "reference_conditions",
    "reference_files",
    "reference_in_bins",
    "reference_near",
    "resolve_device",
    "runs_dir",
    "sample",
]

MONTE_CARLO = "Monte Carlo"
GFLASH = "GFlash"
Progress = Callable[[int, int], None]
MC_PROGRESS_STEPS = 16  # at most this many Monte Carlo chunks when a progress callback is given


@dataclass(frozen=True)
class Source:
    """A named shower source.

    name:   what the UI shows and the URL carries ("Monte Carlo", "GFlash" or the model name).
    kind:   "mc", "gflash" or "model".
    path:   the model folder (models/<name>/ with generator.safetensors + card.json) for kind "model".
    origin: "built-in", "installed" or "run <run folder name>".
    """

    name: str
    kind: Literal["mc", "gflash", "model"]
    path: str | None = None
    origin: str = "built-in"


_REPO_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """Folder of installed models (env CALOGEN_MODELS, default <repository root>/models, as calogen.gan.generate)."""
    return Path(os.environ.get("CALOGEN_MODELS") or _REPO_ROOT / "models")


def runs_dir() -> Path:
    """Folder of training runs (env CALOGEN_RUNS, default ./runs)."""
    return Path(os.environ.get("CALOGEN_RUNS", "runs"))


def data_dir() -> Path:
    """Folder of reference shower files (env CALOGEN_DATA, default <repository root>/data)."""
    return Path(os.environ.get("CALOGEN_DATA") or _REPO_ROOT / "data")


# The name each optional back-end must provide before the app offers it (a half-written package is not enough).
def cuda_available() -> bool:
    """True if torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(requested: str) -> str:
    """"auto" -> "cuda" when available else "cpu"; "cuda" without a GPU raises ValueError naming the fix."""
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; choose 'cpu' or 'auto'")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"device {requested!r} is not one of auto, cpu, cuda")
    return requested


def _model_sources(folder: Path, origin: str) -> list[Source]:
    if not folder.is_dir():
        return []
    found = []
    for card_path in sorted(folder.glob("*/card.json")):
        try:
            name = str(json.loads(card_path.read_text()).get("name") or card_path.parent.name)
        except (OSError, json.JSONDecodeError):
            continue
        found.append(Source(name=name, kind="model", path=str(card_path.parent), origin=origin))
    return found


def _run_model_sources(root: Path) -> list[Source]:
    """Models written by training runs: any folder with a card.json inside a run folder."""
    if not root.is_dir():
        return []
    found = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        for card_path in sorted(run.glob("**/card.json")):
            try:
                card = json.loads(card_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            base = str(card.get("name") or card_path.parent.name)
            name = base if base.startswith(run.name) else f"{run.name}/{base}"
            found.append(Source(name=name, kind="model", path=str(card_path.parent), origin=f"run {run.name}"))
    return found


def list_sources(*, include_runs: bool = True) -> list[Source]:
    """Available sources: installed models, then trained runs' models, then the Monte Carlo and GFlash.

    The Monte Carlo and GFlash are always listed; model names that repeat keep their first occurrence.
    """
    sources = _model_sources(models_dir(), "installed")
    if include_runs:
        sources += _run_model_sources(runs_dir())
    sources.append(Source(MONTE_CARLO, "mc"))
    sources.append(Source(GFLASH, "gflash"))
    seen: set[str] = set()
    unique = []
    for source in sources:
        if source.name not in seen:
            seen.add(source.name)
            unique.append(source)
    return unique


def _validation_rank(source: Source) -> tuple[int, float]:
    """(headline figures failed, SF error) of a model's card; (big, inf) when the card has no validation."""
    from calogen.plots.report import failed_headlines

    try:
        validation = model_card(source).get("validation") or {}
    except ValueError:
        validation = {}
    if not isinstance(validation, dict) or "sf_mre" not in validation:
        return (1_000, float("inf"))
    sf_mre = validation.get("sf_mre")
    return (len(failed_headlines(validation)), float(sf_mre) if isinstance(sf_mre, (int, float)) else float("inf"))


def rank_sources(found: list[Source]) -> list[Source]:
    """``found`` with the best fast source first and the Monte Carlo last.

    Models come first, ordered by their card's validation figures (fewest headline figures failing their
    target, then the smallest sampling-fraction error; models without validation after validated ones),
    then GFlash, then the Monte Carlo (seconds per shower on a CPU: opt-in, never the default).
    """
    order = {"model": 0, "gflash": 1, "mc": 2}
    models = sorted((s for s in found if s.kind == "model"), key=_validation_rank)
    return models + sorted((s for s in found if s.kind != "model"), key=lambda s: order[s.kind])


def model_card(source: Source) -> dict[str, Any]:
    """The card.json of a model source as a dict (raises ValueError naming the file if unreadable)."""
    if source.kind != "model" or source.path is None:
        raise ValueError(f"source {source.name!r} is not a model")
    card_path = Path(source.path) / "card.json"
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path}: unreadable model card ({exc})") from exc
    return dict(card)


def load_model(path: str, device: str = "cpu") -> Any:
    """Load a model folder with calogen.gan.generate.load_generator on its fastest exact inference path
    (conv3d: pixel-shuffle rewrite + channels-last; outputs equal to the published form within 1e-4)."""
    from calogen.gan.generate import load_generator

    return load_generator(path, device=device, fast=True)


def _conditions(
    energy_gev: float | npt.ArrayLike, theta_rad: float | npt.ArrayLike, n: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    energy = np.broadcast_to(np.asarray(energy_gev, dtype=np.float32), (n,)).copy()
    theta = np.broadcast_to(np.asarray(theta_rad, dtype=np.float32), (n,)).copy()
    return energy, theta


def sample(
    source: Source,
    energy_gev: float | npt.ArrayLike,
    theta_rad: float | npt.ArrayLike,
    n: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    model: Any = None,
    progress: Progress | None = None,
    allow_extrapolation: bool = False,
) -> ShowerSet:
    """``n`` showers from ``source`` at the given conditions (GeV, radians; scalars or arrays (n,)).

    model: an already loaded generator for kind "model" (pass the cached one); loaded from source.path if None.
    progress: callable(done, total). Each call seeds its own random stream (a torch.Generator per request for
    models). allow_extrapolation: let a model sample outside the condition ranges of its card.
    """
    if n < 1:
        raise ValueError(f"n={n}: ask for at least one shower")
    energy, theta = _conditions(energy_gev, theta_rad, n)
    if source.kind == "mc":
        from calogen.simulation.mc import simulate

        # With a progress callback the showers go in about MC_PROGRESS_STEPS chunks, so the callback (and a
        # Stop button that acts between Streamlit calls) fires during the run, not only at its end.
        chunk = max(1, math.ceil(n / MC_PROGRESS_STEPS)) if progress is not None else 64
        return simulate(energy, theta, n=n, seed=seed, device=device, progress=progress, max_chunk_showers=chunk)
    if source.kind == "gflash":
        from calogen.simulation.gflash import simulate_gflash

        return simulate_gflash(energy, theta, n=n, seed=seed, device=device, progress=progress)
    if model is None:
        if source.path is None:
            raise ValueError(f"source {source.name!r} has no model folder")
        model = load_model(source.path, device)
    return model.generate(energy, theta, seed=seed, progress=progress, allow_extrapolation=allow_extrapolation)


# ---------------------------------------------------------------- reference data


def reference_files() -> list[Path]:
    """HDF5 shower files in the data folder, reference.h5 first."""
    folder = data_dir()
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
    return sorted(files, key=lambda p: p.name != "reference.h5")


def reference_conditions(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(energy_gev (N,), theta_rad (N,)) of a native or 3DGAN shower file, without reading the showers."""
    with h5py.File(path, "r") as h5:
        if "energy" not in h5 or "theta" not in h5:
            raise ValueError(f"{path}: no 'energy'/'theta' datasets; not a native or 3DGAN shower file")
        return (np.asarray(h5["energy"][...], np.float32).reshape(-1),
                np.asarray(h5["theta"][...], np.float32).reshape(-1))


def reference_near(
    path: str | os.PathLike[str],
    energy_gev: float,
    theta_rad: float,
    n: int,
    *,
    energy_tolerance: float = 0.1,
    theta_tolerance_deg: float = 5.0,
) -> ShowerSet | None:
    """Up to ``n`` showers of the file closest to (energy_gev, theta_rad), or None if none is close.

    Close: |E - energy_gev| <= energy_tolerance * energy_gev and |theta - theta_rad| <= theta_tolerance_deg.
    """
    energy, theta = reference_conditions(path)
    d_energy = np.abs(energy - energy_gev) / max(energy_gev, 1e-6)
    d_theta = np.abs(np.degrees(theta - theta_rad))
    close = np.flatnonzero((d_energy <= energy_tolerance) & (d_theta <= theta_tolerance_deg))
    if close.size == 0:
        return None
    order = close[np.argsort(d_energy[close] / energy_tolerance + d_theta[close] / theta_tolerance_deg)][:n]
    return _read_rows(path, order)


def _read_rows(path: str | os.PathLike[str], rows: npt.NDArray[np.int64]) -> ShowerSet:
    return ShowerSet.concatenate([read_showers(path, start=int(i), stop=int(i) + 1) for i in np.sort(rows)])


def reference_in_bins(
    path: str | os.PathLike[str],
    energy_bins_gev: list[tuple[float, float]],
    theta_bins_rad: list[tuple[float, float]],
    max_showers: int,
    *,
    seed: int = 0,
) -> ShowerSet:
    """Showers of the file whose energy falls in one of ``energy_bins_gev`` and angle in one of
    ``theta_bins_rad`` (closed intervals), at most ``max_showers`` of them drawn at random with ``seed``.

    Raises ValueError naming the bins when no shower falls in them.
    """
    energy, theta = reference_conditions(path)
    in_energy = np.zeros(energy.shape, bool)
    for lo, hi in energy_bins_gev:
        in_energy |= (energy >= lo) & (energy <= hi)
    in_theta = np.zeros(theta.shape, bool)
    for lo, hi in theta_bins_rad:
        in_theta |= (theta >= lo) & (theta <= hi)
    rows = np.flatnonzero(in_energy & in_theta)
    if rows.size == 0:
        raise ValueError(f"{path}: no shower in energy bins {energy_bins_gev} GeV and angle bins "
                         f"{theta_bins_rad} rad; choose other bins")
    if rows.size > max_showers:
        rows = np.random.default_rng(seed).choice(rows, size=max_showers, replace=False)
    return _read_rows(path, rows)
