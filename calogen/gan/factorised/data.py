"""Training data of the factorised generators, held in memory in the form the nets consume.

A data set is one or more native shower files: the shards of a ``calogen produce`` folder (only those its
``manifest.json`` lists as written, in shard order) or single files. The held-out reference sample must never be
given here; :func:`load_training_data` refuses a file whose ``source`` attribute marks it as the reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from calogen.gan.factorised.shape_nets import critic_input
from calogen.gan.nets.layers import measured_angle
from calogen.io import read_showers

__all__ = ["TrainingData", "data_files", "data_physics", "describe_data", "load_training_data"]


@dataclass
class TrainingData:
    """N showers as tensors.

    critic_view:   float16 (N, Z, X, Y), ``log1p(cell / 0.1 MeV)`` (what the critic sees of a real shower).
    layer_energy:  float32 (N, Z), GeV per layer.
    energy_gev:    float32 (N,), primary energy, GeV.
    theta_rad:     float32 (N,), polar angle, radians.
    angle_rad:     float32 (N,), the 3DGAN measured angle from layer barycentres (cell units), radians.
    """

    critic_view: torch.Tensor
    layer_energy: torch.Tensor
    energy_gev: torch.Tensor
    theta_rad: torch.Tensor
    angle_rad: torch.Tensor

    def __len__(self) -> int:
        return int(self.energy_gev.shape[0])

    def split(self, n_holdout: int) -> tuple[TrainingData, TrainingData]:
        """(training, monitoring): the last ``n_holdout`` showers are kept out of training to monitor it."""
        if not 0 < n_holdout < len(self):
            raise ValueError(f"cannot hold out {n_holdout} of {len(self)} showers")
        cut = len(self) - n_holdout
        first = TrainingData(*(t[:cut] for t in self._tensors()))
        last = TrainingData(*(t[cut:] for t in self._tensors()))
        return first, last

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.critic_view, self.layer_energy, self.energy_gev, self.theta_rad, self.angle_rad


def data_files(path: str | Path) -> list[Path]:
    """The shower files of ``path``: a ``produce`` folder's written shards in order, or the file itself."""
    p = Path(path)
    if p.is_dir():
        manifest = p / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{p} has no manifest.json; give a folder made by `calogen produce` or a file")
        shards = json.loads(manifest.read_text()).get("shards", [])
        files = [p / s["file"] for s in sorted(shards, key=lambda s: s["index"]) if (p / s["file"]).exists()]
        if not files:
            raise FileNotFoundError(f"{p}: no shard written yet")
        return files
    if not p.exists():
        raise FileNotFoundError(f"no such shower file: {p}")
    return [p]


def describe_data(path: str | Path) -> dict[str, Any]:
    """Provenance for a card: the folder or file, its command and seed when made by produce, shard checksums."""
    p = Path(path)
    files = data_files(p)
    out: dict[str, Any] = {"path": str(p), "files": len(files)}
    if p.is_dir():
        manifest = json.loads((p / "manifest.json").read_text())
        out["command"] = manifest.get("command")
        out["parameters"] = manifest.get("parameters")
        digest = hashlib.sha256("".join(s.get("sha256", "") for s in manifest.get("shards", [])
                                        if (p / s["file"]).exists()).encode()).hexdigest()
        out["shards_sha256"] = digest
    return out


def data_physics(path: str | Path) -> str | None:
    """The Monte Carlo physics version (:data:`calogen.simulation.mc.PHYSICS_VERSION`) the data was made with:
    a ``produce`` folder's manifest, or a file's ``mc_physics`` attribute; None where it is not recorded (data
    made before versions were recorded, or not by the Monte Carlo)."""
    p = Path(path)
    if p.is_dir():
        manifest = json.loads((p / "manifest.json").read_text())
        version = manifest.get("parameters", {}).get("mc_physics")
    else:
        version = read_showers(p, stop=1).attrs.get("mc_physics")  # the attributes: one shower is read, not all
    return None if version is None else str(version)


def load_training_data(path: str | Path, *, max_showers: int | None = None) -> TrainingData:
    """Read the showers of ``path`` (see :func:`data_files`) into a :class:`TrainingData`."""
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in ("view", "layer", "energy", "theta", "angle")}
    n = 0
    for file in data_files(path):
        sample = read_showers(file)
        if str(sample.attrs.get("source", "")).lower() == "reference" or "reference" in file.name:
            raise ValueError(f"{file} is a reference sample; the held-out reference is never trained on")
        cells = torch.from_numpy(sample.showers)
        parts["view"].append(critic_input(cells).to(torch.float16).numpy())
        parts["layer"].append(sample.showers.sum(axis=(1, 2), dtype=np.float64).astype(np.float32))
        parts["energy"].append(sample.energy_gev)
        parts["theta"].append(sample.theta_rad)
        parts["angle"].append(measured_angle(cells).numpy().astype(np.float32))
        n += len(sample)
        if max_showers is not None and n >= max_showers:
            break
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    if max_showers is not None:
        arrays = {k: v[:max_showers] for k, v in arrays.items()}
    return TrainingData(*(torch.from_numpy(np.ascontiguousarray(arrays[k]))
                          for k in ("view", "layer", "energy", "theta", "angle")))
