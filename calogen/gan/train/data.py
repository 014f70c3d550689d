"""Training and held-out showers: batches streamed from a shower file or simulated on the fly, the 3DGAN loader
cuts, the held-out sample for the per-epoch validation, the cell pre-processing and the data's provenance.

Conditions of simulated showers are drawn with :meth:`calogen.showers.ConditionRange.sample` in the stage's
energy range (GeV) and the run's angle range (radians).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from calogen.gan.preprocess import DEFAULT_SCALE, fit_boxcox, to_network_card
from calogen.gan.runs import PROGRESS_EVERY_S, RunDirectory, format_duration
from calogen.gan.train.config import TrainConfig
from calogen.showers import ConditionRange, ShowerSet

__all__ = [
    "Batch",
    "MCSource",
    "ShowerFileSource",
    "data_provenance",
    "heldout_showers",
    "loader_3dgan",
    "resolve_preprocessing",
    "sample_conditions",
]

# a training batch: showers (B, X, Y, Z) in network units, energy_gev (B,), theta_rad (B,)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
_EDGE_RAD = 1e-6  # tolerance on the angle window (float32 angles in files)


def sample_conditions(
    condition_range: ConditionRange, n: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``n`` conditions drawn by :meth:`ConditionRange.sample`: energy_gev float32 (n,), theta_rad float32 (n,)."""
    drawn = condition_range.sample(n, rng)
    return drawn.energy_gev.astype(np.float32), drawn.theta_rad.astype(np.float32)


def loader_3dgan(
    showers_gev: npt.NDArray[np.float32], *, threshold: float, min_sum: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """The 3DGAN loader cuts (Khattak et al. 2021 public code), applied in its file units (GeV x 50).

    showers_gev: (N, X, Y, Z) GeV. Cells below ``threshold`` (GeV x 50) are zeroed; showers whose sum is at
    most ``min_sum`` (GeV x 50) are dropped. Returns the cleaned showers in GeV and the (N,) keep mask.
    """
    file_units = showers_gev * np.float32(DEFAULT_SCALE)
    cleaned = np.where(file_units < threshold, np.float32(0.0), showers_gev).astype(np.float32)
    keep = (cleaned * np.float32(DEFAULT_SCALE)).sum(axis=(1, 2, 3)) > min_sum
    return cleaned, keep


def _to_batch(showers_gev: np.ndarray, energy: np.ndarray, theta: np.ndarray, config: TrainConfig,
              device: torch.device) -> Batch:
    x = torch.from_numpy(to_network_card(showers_gev, config.preprocessing)).to(device)
    return (x, torch.from_numpy(energy.astype(np.float32)).to(device),
            torch.from_numpy(theta.astype(np.float32)).to(device))


class ShowerFileSource:
    """Streams batches from a shower file with :func:`calogen.io.iter_showers` (never the whole file).

    Each epoch reads the file in chunks, applies the 3DGAN loader and the energy/theta window, shuffles within
    a buffer of ``shuffle_buffer`` showers (seeded by seed and epoch; 512 showers of 51x51x25 take 133 MB) and
    deals batch k to rank k % world.
    Showers with index >= ``stop`` (the held-out tail) are never used.
    """

    def __init__(self, path: str, config: TrainConfig, *, device: torch.device, rank: int = 0, world: int = 1,
                 stop: int | None = None, shuffle_buffer: int = 512) -> None:
        self.path, self.config, self.device = path, config, device
        self.rank, self.world, self.stop = rank, world, stop
        self.shuffle_buffer = max(shuffle_buffer, config.batch)

    def batches(self, epoch: int, energy_range_gev: tuple[float, float], skip: int = 0) -> Iterator[Batch]:
        """Batches of this rank for ``epoch``, the first ``skip`` of them left out (resume mid-epoch)."""
        from calogen.io import iter_showers

        rng = np.random.default_rng([self.config.seed, epoch, 7])
        theta_lo, theta_hi = self.config.theta_range_rad
        batch, k, mine = self.config.batch, 0, 0
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n_pending, start = 0, 0

        def flush(final: bool) -> Iterator[Batch]:
            nonlocal pending, n_pending, k, mine
            if not pending:
                return
            x = np.concatenate([p[0] for p in pending])
            e = np.concatenate([p[1] for p in pending])
            t = np.concatenate([p[2] for p in pending])
            order = rng.permutation(len(e))
            usable = (len(e) // batch) * batch
            for lo in range(0, usable, batch):
                idx = order[lo:lo + batch]
                if k % self.world == self.rank:
                    if mine >= skip:
                        yield self._to_batch(x[idx], e[idx], t[idx])
                    mine += 1
                k += 1
            rest = order[usable:]
            pending = [] if final or len(rest) == 0 else [(x[rest], e[rest], t[rest])]
            n_pending = 0 if final else len(rest)

        for chunk in iter_showers(self.path, batch_size=max(batch, 128)):
            n = len(chunk)
            index = np.arange(start, start + n)
            start += n
            cleaned, keep = loader_3dgan(chunk.showers, threshold=self.config.cell_threshold,
                                         min_sum=self.config.min_sum)
            keep &= (chunk.energy_gev >= energy_range_gev[0]) & (chunk.energy_gev <= energy_range_gev[1])
            keep &= (chunk.theta_rad >= theta_lo - _EDGE_RAD) & (chunk.theta_rad <= theta_hi + _EDGE_RAD)
            if self.stop is not None:
                keep &= index < self.stop
            if keep.any():
                pending.append((cleaned[keep], chunk.energy_gev[keep], chunk.theta_rad[keep]))
                n_pending += int(keep.sum())
            if n_pending >= self.shuffle_buffer:
                yield from flush(final=False)
            if self.stop is not None and start >= self.stop:
                break
        yield from flush(final=True)

    def _to_batch(self, showers_gev: np.ndarray, energy: np.ndarray, theta: np.ndarray) -> Batch:
        return _to_batch(showers_gev, energy, theta, self.config, self.device)


class MCSource:
    """Batches simulated on the fly with :func:`calogen.simulation.mc.simulate` on the training device.

    Conditions are drawn with :meth:`ConditionRange.sample` in the stage's energy range and the run's angle
    range; every (epoch, step, rank) has its own seed, so a resumed run sees the same showers it would have
    seen. The 3DGAN loader cuts are applied as for files.
    """

    def __init__(self, config: TrainConfig, *, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.config, self.device, self.rank, self.world = config, device, rank, world

    def batches(self, epoch: int, energy_range_gev: tuple[float, float], skip: int = 0) -> Iterator[Batch]:
        """Endless stream of batches for ``epoch`` (the trainer stops after ``steps_per_epoch``)."""
        from calogen.simulation.mc import simulate

        stage_range = ConditionRange(energy_range_gev, self.config.theta_range_rad)
        step, empty_in_a_row = skip, 0
        while True:
            rng = np.random.default_rng([self.config.seed, epoch, step, self.rank, 11])
            energy, theta = sample_conditions(stage_range, self.config.batch, rng)
            sim = simulate(energy, theta, n=len(energy), seed=int(rng.integers(2**31)), device=str(self.device))
            cleaned, keep = loader_3dgan(np.asarray(sim.showers, dtype=np.float32),
                                         threshold=self.config.cell_threshold, min_sum=self.config.min_sum)
            step += 1
            if keep.sum() < 2:
                empty_in_a_row += 1
                if empty_in_a_row >= 20:
                    raise ValueError(
                        f"the 3DGAN loader cut (cell sum > min_sum={self.config.min_sum} in GeV x 50) removed "
                        f"almost every simulated shower of 20 batches at {energy_range_gev} GeV; lower min_sum "
                        "or raise the energy range")
                continue
            empty_in_a_row = 0
            yield _to_batch(cleaned[keep], np.asarray(sim.energy_gev, np.float32)[keep],
                            np.asarray(sim.theta_rad, np.float32)[keep], self.config, self.device)


def resolve_preprocessing(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The architecture's cell transform as a card entry; Box-Cox is fitted on the first training showers."""
    from calogen.gan.nets import ARCHITECTURES

    kind = ARCHITECTURES[config.arch].preprocessing_kind
    if kind == "identity":
        return {"kind": "identity"}
    if kind == "boxcox":
        from calogen.io import read_showers

        if config.data == "mc":
            from calogen.simulation.mc import simulate

            energy, theta = sample_conditions(config.condition_range, 16, np.random.default_rng([config.seed, 3]))
            sample = simulate(energy, theta, n=16, seed=config.seed, device=str(device)).showers
        else:
            sample = read_showers(config.data, stop=256).showers
        return fit_boxcox(sample, seed=config.seed).to_card()
    return {"kind": "power", "power": config.power, "scale": DEFAULT_SCALE}


def heldout_showers(config: TrainConfig, run: RunDirectory, *, needed: bool, device: torch.device,
                    ) -> tuple[ShowerSet | None, int | None]:
    """Held-out showers in GeV (None when not ``needed``, i.e. on ranks that do not validate) and, for a data
    file without a separate held-out file, the index where the training part of the file stops.

    Sources, in order: the ``heldout`` file (its first 2,000 showers); the last ``min(heldout_mc, n // 2)``
    showers of the data file; ``heldout_mc`` showers simulated once per run in the final stage's range and
    cached as run_dir/heldout.h5.
    """
    from calogen.io import count_showers, read_showers, write_showers

    if config.heldout is not None:
        return (read_showers(config.heldout, stop=2000) if needed else None), None
    if config.data != "mc":
        n = count_showers(config.data)
        n_held = min(config.heldout_mc, n // 2)
        return (read_showers(config.data, start=n - n_held) if needed else None), n - n_held
    if not needed:
        return None, None
    cache = run.path / "heldout.h5"
    if cache.exists():
        return read_showers(cache), None
    from calogen.simulation.mc import simulate

    rng = np.random.default_rng([config.seed, 99])
    energy, theta = sample_conditions(config.condition_range, config.heldout_mc, rng)
    what = (f"held-out Monte Carlo for the per-epoch SF error ({config.heldout_mc} showers at "
            f"{config.condition_range.describe()}, once per run)")
    run.log(f"simulating the {what}")
    held = simulate(energy, theta, n=len(energy), seed=int(rng.integers(2**31)), device=str(device),
                    progress=_simulation_progress(run, what))
    if run.writer:
        write_showers(cache, held)
    return held, None


def _simulation_progress(run: RunDirectory, what: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for :func:`calogen.simulation.mc.simulate` that logs every
    :data:`calogen.gan.runs.PROGRESS_EVERY_S` seconds with the ETA."""
    start, last = time.monotonic(), [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S or done <= 0 or done >= total:
            return
        last[0] = now
        run.log(f"{what}: {done}/{total} simulated, ETA {format_duration((now - start) / done * (total - done))}")

    return report


def data_provenance(data: str) -> dict[str, Any]:
    """How the training showers were made: the shower file's attributes (command, seed, device, wall time)
    and its number of showers, or ``{"source": "mc", "on_the_fly": True}`` for ``data == "mc"``."""
    if data == "mc":
        return {"source": "mc", "on_the_fly": True}
    from calogen.io import count_showers, read_showers

    attrs = read_showers(data, start=0, stop=0).attrs
    return {**{k: _plain(v) for k, v in attrs.items()}, "showers": count_showers(data)}


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so that the value is JSON."""
    return value.item() if hasattr(value, "item") else value
