"""The source registry: every way calogen makes showers, by name, and the one way to get showers from them.

A source is a :class:`calogen.showers.Source`: the Monte Carlo (:class:`calogen.simulation.mc.MonteCarlo`),
GFlash (:class:`calogen.simulation.gflash.GFlash`) or a trained model
(:class:`calogen.gan.generate.LoadedGenerator`). The app, ``bench``, the ``simulate``/``generate`` commands and
``produce`` name one by a string and get showers through :func:`sample`:

    >>> from calogen import sources
    >>> from calogen.showers import Conditions
    >>> entry = sources.find_source("conv2d")                 # or "mc", "gflash", a model folder
    >>> entry.condition_range.describe()                      # without loading any weights
    '2-500 GeV, 60-120 deg'
    >>> showers = sources.sample(entry, Conditions.broadcast(100.0, 1.5708, n=4), seed=1)

:func:`list_sources` lists the :class:`SourceEntry` of every source available (installed models, models of
training runs, the Monte Carlo, GFlash); :func:`load_source` makes the Source of an entry. This module also
finds Monte Carlo reference showers in the data folder (:func:`calogen.paths.data_dir`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt

from calogen import paths
from calogen.gan.generate import LoadedGenerator, card_condition_range, load_generator
from calogen.io import read_showers
from calogen.showers import ConditionRange, Conditions, Progress, ShowerSet, Source
from calogen.simulation import gflash, mc

__all__ = [
    "GFLASH",
    "MONTE_CARLO",
    "PROGRESS_STEPS",
    "SourceEntry",
    "cuda_available",
    "find_source",
    "list_sources",
    "load_source",
    "model_card",
    "rank_sources",
    "reference_conditions",
    "reference_files",
    "reference_in_bins",
    "reference_near",
    "resolve_device",
    "sample",
]

MONTE_CARLO = mc.NAME  # "Monte Carlo"
GFLASH = gflash.NAME  # "GFlash"
PROGRESS_STEPS = 16  # chunks of an interactive Monte Carlo request: progress and Stop come during the run
_ALIASES = {"mc": MONTE_CARLO, "gflash": GFLASH}


@dataclass(frozen=True)
class SourceEntry:
    """A source as the registry lists it, before anything is loaded.

    name:   what the UI shows and the URL carries ("Monte Carlo", "GFlash" or the model name).
    kind:   "mc", "gflash" or "model".
    path:   the model folder (weights + card.json) for kind "model".
    origin: "built-in", "installed", "run <run folder name>" or "folder".
    """

    name: str
    kind: Literal["mc", "gflash", "model"]
    path: str | None = None
    origin: str = "built-in"

    @property
    def condition_range(self) -> ConditionRange:
        """The range the source accepts (a model's from its card, without loading the weights)."""
        if self.kind == "mc":
            return mc.CONDITION_RANGE
        if self.kind == "gflash":
            return gflash.CONDITION_RANGE
        try:
            return card_condition_range(model_card(self))
        except ValueError as exc:
            raise ValueError(f"{self.path}/card.json: {exc}") from None

    def check(self, conditions: Conditions) -> None:
        """Raise :class:`calogen.showers.OutOfRangeError` for conditions outside the range, with the message the
        source's own ``sample`` gives (before anything is loaded or started)."""
        who = {"mc": f"the {MONTE_CARLO}", "gflash": GFLASH}.get(self.kind, f"model {self.name}")
        self.condition_range.check(conditions, who)


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


def _card_name(card_path: Path) -> str | None:
    """The name a card gives its model (its folder's name when it names none); None if unreadable."""
    try:
        return str(json.loads(card_path.read_text()).get("name") or card_path.parent.name)
    except (OSError, AttributeError, json.JSONDecodeError):
        return None


def _model_sources(folder: Path, origin: str) -> list[SourceEntry]:
    if not folder.is_dir():
        return []
    found = []
    for card_path in sorted(folder.glob("*/card.json")):
        name = _card_name(card_path)
        if name is not None:
            found.append(SourceEntry(name=name, kind="model", path=str(card_path.parent), origin=origin))
    return found


def _run_model_sources(root: Path) -> list[SourceEntry]:
    """Models written by training runs: any folder with a card.json inside a run folder."""
    if not root.is_dir():
        return []
    found = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        for card_path in sorted(run.glob("**/card.json")):
            base = _card_name(card_path)
            if base is None:
                continue
            name = base if base.startswith(run.name) else f"{run.name}/{base}"
            found.append(SourceEntry(name=name, kind="model", path=str(card_path.parent), origin=f"run {run.name}"))
    return found


def list_sources(*, include_runs: bool = True) -> list[SourceEntry]:
    """Available sources: installed models, then trained runs' models, then the Monte Carlo and GFlash.

    The Monte Carlo and GFlash are always listed; model names that repeat keep their first occurrence.
    """
    found = _model_sources(paths.models_dir(), "installed")
    if include_runs:
        found += _run_model_sources(paths.runs_dir())
    found.append(SourceEntry(MONTE_CARLO, "mc"))
    found.append(SourceEntry(GFLASH, "gflash"))
    seen: set[str] = set()
    unique = []
    for entry in found:
        if entry.name not in seen:
            seen.add(entry.name)
            unique.append(entry)
    return unique


def find_source(name: str) -> SourceEntry:
    """The entry of "mc", "gflash", a listed source name or a model folder.

    Model folders get an absolute path (workers may run in another directory). Raises ValueError listing the
    available sources when ``name`` is none of them.
    """
    listed = list_sources()
    wanted = _ALIASES.get(name.lower(), name)
    for entry in listed:
        if entry.name == wanted:
            return SourceEntry(entry.name, entry.kind, str(Path(entry.path).resolve()), entry.origin) if entry.path \
                else entry
    folder = Path(name)
    if (folder / "card.json").is_file():
        card_name = _card_name(folder / "card.json")
        if card_name is None:
            raise ValueError(f"{folder / 'card.json'}: unreadable model card")
        return SourceEntry(card_name, "model", str(folder.resolve()), "folder")
    names = ", ".join([*_ALIASES, *(e.name for e in listed if e.kind == "model")])
    raise ValueError(f"source {name!r} is neither a known source nor a model folder; choose one of: {names}")


def _validation_rank(entry: SourceEntry) -> tuple[int, float]:
    """(headline figures failed, SF error) of a model's card; (big, inf) when the card has no validation."""
    from calogen.validation.targets import failed_headlines

    try:
        validation = model_card(entry).get("validation") or {}
    except ValueError:
        validation = {}
    if not isinstance(validation, dict) or "sf_mre" not in validation:
        return (1_000, float("inf"))
    sf_mre = validation.get("sf_mre")
    return (len(failed_headlines(validation)), float(sf_mre) if isinstance(sf_mre, (int, float)) else float("inf"))


def rank_sources(found: list[SourceEntry]) -> list[SourceEntry]:
    """``found`` with the best fast source first and the Monte Carlo last.

    Models come first, ordered by their card's validation figures (fewest headline figures failing their
    target, then the smallest sampling-fraction error; models without validation after validated ones),
    then GFlash, then the Monte Carlo (seconds per shower on a CPU: opt-in, never the default).
    """
    order = {"model": 0, "gflash": 1, "mc": 2}
    models = sorted((s for s in found if s.kind == "model"), key=_validation_rank)
    return models + sorted((s for s in found if s.kind != "model"), key=lambda s: order[s.kind])


def model_card(entry: SourceEntry) -> dict[str, Any]:
    """The card.json of a model entry as a dict (raises ValueError naming the file if unreadable)."""
    if entry.kind != "model" or entry.path is None:
        raise ValueError(f"source {entry.name!r} is not a model")
    card_path = Path(entry.path) / "card.json"
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path}: unreadable model card ({exc})") from exc
    if isinstance(card, dict):
        return card
    raise ValueError(f"{card_path}: holds a {type(card).__name__}, not a JSON object")


def load_source(entry: SourceEntry | str, device: str = "cpu", *, progress_steps: int = 1) -> Source:
    """The :class:`calogen.showers.Source` of an entry (or of a name, see :func:`find_source`) on ``device``.

    Models are loaded on their fastest exact inference path (conv3d: pixel-shuffle rewrite + channels-last;
    outputs equal to the published form within 1e-4). progress_steps: split each Monte Carlo request into at
    least this many chunks so that progress (and a Stop button between calls) comes during the run; small
    chunks run several times slower per shower (:data:`PROGRESS_STEPS` for the app).
    """
    if isinstance(entry, str):
        entry = find_source(entry)
    if entry.kind == "mc":
        return mc.MonteCarlo(device=device, progress_steps=progress_steps)
    if entry.kind == "gflash":
        return gflash.GFlash(device=device)
    if entry.path is None:
        raise ValueError(f"source {entry.name!r} has no model folder")
    return load_generator(entry.path, device=device, fast=True)


def sample(
    source: Source | SourceEntry | str,
    conditions: Conditions,
    *,
    seed: int | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    allow_extrapolation: bool = False,
) -> ShowerSet:
    """One shower per condition (energy GeV, angle radians) from ``source``: the one way calogen gets showers.

    source: a loaded Source (pass the app's cached one), or an entry or a name, loaded on ``device``.
    seed: the same seed gives the same showers; progress: callable(done, total).
    allow_extrapolation: let a trained model sample outside its card's range (engines keep theirs).
    Returns showers float32 (n, nx, ny, nz) GeV. Raises :class:`calogen.showers.OutOfRangeError`, naming the
    source and its range in GeV and degrees, for conditions outside what the source accepts.
    """
    if isinstance(source, (str, SourceEntry)):
        source = load_source(source, device)
    if allow_extrapolation and isinstance(source, LoadedGenerator):
        return source.generate(conditions.energy_gev, conditions.theta_rad, seed=seed, progress=progress,
                               allow_extrapolation=True, batch_size=source.batch_size)
    return source.sample(conditions, seed=seed, progress=progress)


# ---------------------------------------------------------------- reference data


def reference_files() -> list[Path]:
    """HDF5 shower files in the data folder, reference.h5 first."""
    folder = paths.data_dir()
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
    theta_tolerance_rad: float = math.pi / 36.0,
) -> ShowerSet | None:
    """Up to ``n`` showers of the file closest to (energy_gev, theta_rad), or None if none is close.

    Close: |E - energy_gev| <= energy_tolerance * energy_gev and |theta - theta_rad| <= theta_tolerance_rad
    (default 5 deg).
    """
    energy, theta = reference_conditions(path)
    d_energy = np.abs(energy - energy_gev) / max(energy_gev, 1e-6)
    d_theta = np.abs(theta - theta_rad)
    close = np.flatnonzero((d_energy <= energy_tolerance) & (d_theta <= theta_tolerance_rad))
    if close.size == 0:
        return None
    order = close[np.argsort(d_energy[close] / energy_tolerance + d_theta[close] / theta_tolerance_rad)][:n]
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
