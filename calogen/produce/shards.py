"""One shard (made on a worker) and the manifest that lists the finished ones.

A shard is one task and one HDF5 file, ``shard-00012.h5``, written atomically; ``manifest.json`` beside the
shards holds the production's parameters and one :class:`ShardRecord` per finished shard, with the file's sha256,
so that a rerun keeps what is complete and makes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calogen.io import ShowerSet, atomic_write, write_3dgan, write_calochallenge, write_showers
from calogen.memory import keep_freed_memory
from calogen.produce.plan import FileFormat, ProductionConfig, ShardPlan
from calogen.showers import Conditions, OutOfRangeError, Source
from calogen.simulation import mc
from calogen.sources import SourceEntry, load_source, sample

__all__ = [
    "MANIFEST_NAME",
    "ProductionMismatch",
    "ShardRecord",
    "card_sha256",
    "check_conditions",
    "check_same",
    "complete_records",
    "file_sha256",
    "make_shard",
    "parameters",
    "read_manifest",
    "shard_file_name",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"


class ProductionMismatch(ValueError):
    """The output folder holds a production made with other parameters; the message says which differ."""


@dataclass(frozen=True)
class ShardRecord:
    """A finished shard as the manifest lists it (times in seconds, conditions in GeV and radians)."""

    index: int
    file: str  # file name inside the output folder
    showers: int
    seed: int  # the source's seed for this shard
    seed_sequence: list[int]  # [production seed, index]
    sha256: str  # of the shard file
    conditions: dict[str, dict[str, float]]  # energy_gev / theta_rad: min, max, mean
    source: str
    card_sha256: str | None  # sha256 of the model's card.json; None for the Monte Carlo and GFlash
    device: str
    wall_time_s: float  # inside the task: sampling + writing
    worker: str  # the Dask worker's address (host:pid outside Dask)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_sha256(entry: SourceEntry) -> str | None:
    """sha256 of a model entry's card.json; None for the Monte Carlo and GFlash."""
    return file_sha256(Path(entry.path) / "card.json") if entry.kind == "model" and entry.path else None


def shard_file_name(index: int) -> str:
    """``shard-00012.h5`` for index 12."""
    return f"shard-{index:05d}.h5"


# ---------------------------------------------------------------- one shard (runs on a worker)

_MODELS: dict[tuple[str, str, str], Source] = {}  # (folder, device, card sha256) -> loaded generator, per worker


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # outside a Dask worker
        return f"{socket.gethostname()}:{os.getpid()}"


def _summary(values: npt.NDArray[np.float32]) -> dict[str, float]:
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}


def _source(entry: SourceEntry, device: str, planned_sha256: str | None) -> Source:
    """The entry's Source; a model is loaded once per worker, and refused if its card changed since planning."""
    if entry.kind != "model":
        return load_source(entry, device)
    found = card_sha256(entry)
    if found != planned_sha256:
        raise ValueError(f"{entry.path}/card.json changed since the production was planned (sha256 {found} here, "
                         f"{planned_sha256} in the manifest); use a new output folder for a new model")
    key = (str(entry.path), device, str(found))
    if key not in _MODELS:
        _MODELS[key] = load_source(entry, device)
    return _MODELS[key]


def make_shard(
    plan: ShardPlan,
    entry: SourceEntry,
    out_dir: str,
    *,
    device: str = "cpu",
    file_format: FileFormat = "native",
    card_sha256: str | None = None,
    attrs: dict[str, Any] | None = None,
    torch_threads: int | None = 1,
) -> ShardRecord:
    """Sample the shard's showers from the source of ``entry`` and write ``out_dir/shard-<index>.h5`` atomically.

    card_sha256: the card checksum the production was planned with; a model whose card.json no longer
    matches is refused (ValueError). attrs: extra file attributes (native format). torch_threads: torch's
    intra-op threads in this process (None leaves them alone). Returns the shard's manifest record.
    """
    import torch

    start = time.perf_counter()
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    if torch.device(device).type == "cpu":
        keep_freed_memory()  # the Monte Carlo's freed arrays reused: 13 % less time per shower (calogen.memory)
    source = _source(entry, device, card_sha256)
    showers: ShowerSet = sample(source, Conditions.broadcast(plan.energy_gev, plan.theta_rad), seed=plan.seed)
    showers.attrs.update(attrs or {})
    showers.attrs.update({"source": entry.name, "seed": plan.seed, "shard": plan.index,
                          "production_seed": plan.production_seed})
    path = Path(out_dir) / shard_file_name(plan.index)
    if file_format == "native":
        write_showers(path, showers)
    elif file_format == "3dgan":
        write_3dgan(path, showers)
    else:
        write_calochallenge(path, showers)
    return ShardRecord(
        index=plan.index,
        file=path.name,
        showers=len(showers),
        seed=plan.seed,
        seed_sequence=[plan.production_seed, plan.index],
        sha256=file_sha256(path),
        conditions={"energy_gev": _summary(plan.energy_gev), "theta_rad": _summary(plan.theta_rad)},
        source=entry.name,
        card_sha256=card_sha256,
        device=device,
        wall_time_s=round(time.perf_counter() - start, 4),
        worker=_worker_name(),
    )


# ---------------------------------------------------------------- manifest


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's manifest.json as a dict, or None when there is none (ValueError if unreadable)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc}); move it away to start the folder afresh") from exc
    if isinstance(manifest, dict) and isinstance(manifest.get("parameters"), dict):
        return manifest
    raise ValueError(f"{path}: not a calogen production manifest (no 'parameters'); choose another folder")


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` to ``path`` atomically (readers never see half a file)."""
    text = json.dumps(manifest, indent=1) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    atomic_write(path, write)


def parameters(config: ProductionConfig, entry: SourceEntry, card_sha: str | None, seed: int) -> dict[str, Any]:
    """The parameters that define a production's content, as the manifest holds them (read back from JSON)."""
    params = {
        "source": entry.name,
        "source_kind": entry.kind,
        "card_sha256": card_sha,
        "mc_physics": mc.PHYSICS_VERSION if entry.kind == "mc" else None,
        "particle": config.particle,
        "energy_range_gev": list(config.energy_range_gev),
        "theta_range_rad": list(config.theta_range_rad),
        "n": config.n,
        "shard_size": config.shard_size,
        "seed": seed,
        "device": config.device,
        "format": config.file_format,
    }
    return dict(json.loads(json.dumps(params)))  # as read back from JSON (lists, floats), for comparison


def check_same(out_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise :class:`ProductionMismatch` naming every parameter in which ``new`` differs from the folder's."""
    differ = [f"{key} {old.get(key)!r} there, {new[key]!r} now" for key in new if old.get(key) != new[key]]
    if differ:
        raise ProductionMismatch(
            f"{out_dir} holds a production with other parameters ({'; '.join(differ)}); rerun with that "
            "folder's parameters (see its manifest.json) to complete it, or choose another output folder"
        )


def check_conditions(entry: SourceEntry, config: ProductionConfig) -> None:
    """Refuse condition ranges outside what the source accepts (its ConditionRange), before any worker starts."""
    corners = Conditions.broadcast(list(config.energy_range_gev), list(config.theta_range_rad))
    try:
        entry.check(corners)
    except OutOfRangeError as exc:
        raise OutOfRangeError(f"{exc}; choose condition ranges inside it") from None


def complete_records(out_dir: Path, manifest: dict[str, Any] | None, n_shards: int) -> dict[int, ShardRecord]:
    """Records of the manifest whose file is present with the recorded checksum."""
    done: dict[int, ShardRecord] = {}
    for entry in (manifest or {}).get("shards", []):
        try:
            record = ShardRecord(**entry)
        except TypeError:
            continue
        path = out_dir / record.file
        if record.index < n_shards and path.is_file() and file_sha256(path) == record.sha256:
            done[record.index] = record
    return done
