"""What a production makes: its configuration and the plan of its shards (conditions and seeds per shard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from calogen.showers import ConditionRange

__all__ = ["FORMATS", "FileFormat", "ProductionConfig", "ShardPlan", "plan_shards"]

FORMATS = ("native", "3dgan", "calochallenge")
FileFormat = Literal["native", "3dgan", "calochallenge"]


@dataclass(frozen=True)
class ProductionConfig:
    """What to produce; every field but ``out_dir`` is recorded in the manifest and defines its content.

    seed None: a fresh seed for a new folder, the manifest's seed when the folder holds a production already.
    """

    source: str  # "mc", "gflash", a model name (python -m calogen models) or a model folder
    n: int  # showers in all
    shard_size: int  # showers per shard (one Dask task, one file); the last shard holds the remainder
    out_dir: str  # output folder: shard files + manifest.json
    energy_range_gev: tuple[float, float]  # primary energy range, GeV; drawn log-uniformly
    theta_range_rad: tuple[float, float]  # polar angle range, radians (pi/2 = normal incidence); drawn uniformly
    particle: str = "e-"  # the sources simulate and generate electrons
    seed: int | None = None  # production seed S; shard i uses SeedSequence([S, i])
    device: str = "cpu"  # "cpu" or "cuda" on the workers (CUDA shards ask Dask for the resource GPU=1)
    file_format: FileFormat = "native"  # shard files: native calogen HDF5, 3DGAN (GeV x 50) or CaloChallenge (MeV)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n}: ask for at least one shower")
        if self.shard_size < 1:
            raise ValueError(f"shard_size={self.shard_size}: a shard holds at least one shower")
        if self.particle != "e-":
            raise ValueError(f"particle {self.particle!r} is not produced; the sources give electron showers (e-)")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r} is not one of cpu, cuda")
        if self.file_format not in FORMATS:
            raise ValueError(f"file_format {self.file_format!r} is not one of {', '.join(FORMATS)}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be an integer in 0..2**63-1")
        try:
            _ = self.condition_range
        except (TypeError, ValueError):
            raise ValueError(f"energy range {self.energy_range_gev} GeV, theta range {self.theta_range_rad} rad: "
                             "give 0 < LO <= HI for both, angles below pi") from None

    @property
    def n_shards(self) -> int:
        """ceil(n / shard_size)."""
        return -(-self.n // self.shard_size)

    @property
    def condition_range(self) -> ConditionRange:
        """The energy and angle intervals the shards draw from."""
        (e_lo, e_hi), (t_lo, t_hi) = self.energy_range_gev, self.theta_range_rad
        return ConditionRange((e_lo, e_hi), (t_lo, t_hi))


@dataclass(frozen=True)
class ShardPlan:
    """One shard to make: its showers' conditions and the seed of its shower stream.

    energy_gev: float32 (size,), GeV; theta_rad: float32 (size,), radians; seed: the integer the source is
    seeded with (a torch.Generator seed), drawn from SeedSequence([production_seed, index]).
    """

    index: int
    size: int
    production_seed: int
    seed: int
    energy_gev: npt.NDArray[np.float32] = field(repr=False)
    theta_rad: npt.NDArray[np.float32] = field(repr=False)


def plan_shards(
    n: int,
    shard_size: int,
    seed: int,
    energy_range_gev: tuple[float, float],
    theta_range_rad: tuple[float, float],
    indices: list[int] | None = None,
) -> list[ShardPlan]:
    """The shards of a production of ``n`` showers (all of them, or only ``indices``).

    Shard i holds ``shard_size`` showers (the last one the remainder) and draws from SeedSequence([seed, i]),
    split in two streams: the conditions (:meth:`ConditionRange.sample`: energy log-uniform in
    energy_range_gev, GeV; theta uniform in theta_range_rad, radians) and the source's seed.
    """
    n_shards = -(-n // shard_size)
    accepted = ConditionRange(energy_range_gev, theta_range_rad)
    plans = []
    for index in range(n_shards) if indices is None else indices:
        size = min(shard_size, n - index * shard_size)
        conditions_seq, shower_seq = np.random.SeedSequence([seed, index]).spawn(2)
        drawn = accepted.sample(size, np.random.default_rng(conditions_seq))
        shower_seed = int(shower_seq.generate_state(1, np.uint64)[0] >> np.uint64(1))  # 63 bits for torch
        plans.append(ShardPlan(index, size, seed, shower_seed, drawn.energy_gev.astype(np.float32),
                               drawn.theta_rad.astype(np.float32)))
    return plans
