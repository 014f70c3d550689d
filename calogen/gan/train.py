"""GAN training: configuration, data sources, the training loop, run directories, checkpoints and resume.

A run lives in one directory::

    run_dir/config.json          resolved :class:`TrainConfig`
    run_dir/metrics.csv          one row per step (losses, heads) plus one per epoch end (sf_error)
    run_dir/log.txt              human-readable log
    run_dir/status.json          queued / running / finished / failed / cancelled, pid, pgid, times, reason
    run_dir/checkpoints/last.pt  step, epoch, stage, both nets, both optimisers, config, version
    run_dir/checkpoints/generator_epoch_NNNN.pt   the generators of the last ``select_last_k`` epochs
    run_dir/model/               the selected generator, exported with :func:`calogen.gan.generate.save_model`

The 3DGAN recipe (Khattak et al., IEEE Access 2021, and its public Keras code): RMSprop lr 1e-3 for both
networks, batch 64, the losses of :class:`calogen.gan.objectives.ThreeDGANObjective`, the generator updated twice
per discriminator step, first trained on 100-200 GeV and then warm-started on 2-500 GeV, and the final model
chosen among the last ten epochs by the smallest sampling-fraction error on held-out Monte Carlo.

Data-parallel training: ``torchrun --nproc_per_node=K -m calogen.gan.train ...``; each rank reads its own shard
of the batches, gradients are averaged with ``torch.distributed.all_reduce`` (gloo on CPU, NCCL on CUDA) after
every backward pass, and only rank 0 writes to the run directory.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from calogen import __version__
from calogen.gan.objectives import GANObjective, build_objective
from calogen.gan.preprocess import DEFAULT_SCALE, fit_boxcox, from_network_card, to_network_card

__all__ = [
    "CHECKPOINT_VERSION",
    "LOCK_ENV",
    "METRIC_COLUMNS",
    "MCSource",
    "RunDirectory",
    "ShowerFileSource",
    "Stage",
    "TrainConfig",
    "TrainingFailed",
    "check_config",
    "data_provenance",
    "format_duration",
    "load_checkpoint",
    "main",
    "planned_steps",
    "process_alive",
    "sampling_fraction_mre",
    "stages",
    "train",
    "write_json_atomic",
]

CHECKPOINT_VERSION = 1
METRIC_COLUMNS = ("step", "epoch", "stage", "loss_d", "loss_g", "bce", "energy_mape", "angle_mae", "sum_mape",
                  "wasserstein", "gradient_penalty", "sf_error", "time_s")
LOCK_ENV = "CALOGEN_RUN_LOCK"  # token a launcher (calogen.gan.jobs) put in run_dir/lock before starting us
PROGRESS_EVERY_S = 10.0  # seconds between progress lines (log.txt and the terminal)
# Mean deposited / primary energy of calogen.simulation.mc electrons in the CLIC ECAL, 10-300 GeV (1.7-1.9 % measured on
# data/reference.h5); used only to predict which simulated showers pass the 3DGAN loader cut.
_MC_SAMPLING_FRACTION = 0.019


@dataclass
class TrainConfig:
    """Everything that defines a training run (written to config.json, every checkpoint and the model card)."""

    arch: str = "conv3d"  # calogen.gan.nets architecture name
    recipe: Literal["3dgan", "wgan-gp"] = "3dgan"
    data: str = "mc"  # "mc" (simulated on the fly with calogen.simulation.mc) or the path of a shower file
    energy_range_gev: tuple[float, float] = (2.0, 500.0)  # primary energy range of the (final) stage, GeV
    theta_range_deg: tuple[float, float] = (60.0, 120.0)  # polar-angle range, degrees
    epochs: int = 10  # epochs of the final stage
    steps_per_epoch: int | None = 100  # mc: steps per epoch; file: cap on steps per pass (None = whole file)
    batch: int = 64  # showers per step and per process (3DGAN: 64)
    lr: float = 1e-3  # learning rate of both optimisers (3DGAN: RMSprop 1e-3; WGAN-GP: Adam)
    power: float = 0.85  # cell pre-processing (scale * E) ** power (3DGAN loader), for "power" architectures
    preprocessing: dict[str, Any] | None = None  # card entry; None: from the architecture (resolved at start)
    cell_threshold: float = 1e-4  # cells below this, in GeV x 50 (3DGAN file units), are zeroed
    min_sum: float = 10.0  # keep showers whose cell sum exceeds this, GeV x 50 (3DGAN loader: sum > 10)
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    bf16: bool = False  # bfloat16 autocast of the forward passes (CUDA only)
    select_last_k: int = 10  # final model: smallest SF error among the generators of the last K epochs
    heldout: str | None = None  # held-out shower file for the per-epoch SF error (None: see heldout_mc)
    heldout_mc: int = 100  # held-out size: showers simulated (data "mc") or kept from the end of the data file
    two_step: bool = False  # 3DGAN schedule: stage 1 on stage1_energy_range_gev, then warm-start the final stage
    stage1_energy_range_gev: tuple[float, float] = (100.0, 200.0)
    stage1_epochs: int = 5
    run_dir: str = "runs/run"
    generator_config: dict[str, Any] = field(default_factory=dict)  # kwargs of calogen.gan.nets.build_generator
    discriminator_config: dict[str, Any] = field(default_factory=dict)  # kwargs of build_discriminator
    checkpoint_every: int = 50  # steps between checkpoints/last.pt (also written at every epoch end)
    threads: int | None = None  # torch CPU threads (None: torch default)
    command: str = ""  # the command line that started the run (recorded in the model card)

    def __post_init__(self) -> None:
        self.energy_range_gev = _range("energy_range_gev", self.energy_range_gev, (0.0, 1.0e4), "GeV")
        self.theta_range_deg = _range("theta_range_deg", self.theta_range_deg, (0.0, 180.0), "deg")
        self.stage1_energy_range_gev = _range("stage1_energy_range_gev", self.stage1_energy_range_gev,
                                              (0.0, 1.0e4), "GeV")
        if self.recipe not in ("3dgan", "wgan-gp"):
            raise ValueError(f"recipe={self.recipe!r} is unknown; choose '3dgan' or 'wgan-gp'")
        for name in ("epochs", "batch", "select_last_k", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.batch < 2:
            raise ValueError(f"batch={self.batch}: a step needs at least 2 showers (the loader keeps a batch only "
                             "when 2 or more of its showers pass the cell-sum cut); use batch >= 2")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch} must be positive (or None for a file pass)")
        if self.steps_per_epoch is None and self.data == "mc":
            raise ValueError("steps_per_epoch=None needs a data file (one pass per epoch); with data='mc' showers "
                             "are simulated without end, so give steps_per_epoch")
        if self.two_step and self.stage1_epochs < 1:
            raise ValueError(f"stage1_epochs={self.stage1_epochs} must be positive with two_step=True")
        if self.data != "mc" and not Path(self.data).is_file():
            raise ValueError(f"data={self.data!r} is neither 'mc' nor an existing shower file; "
                             "give a file written by calogen (python -m calogen simulate) or 'mc'")
        if self.heldout is not None and not Path(self.heldout).is_file():
            raise ValueError(f"heldout={self.heldout!r} does not exist; give a shower file or leave it out")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known options are {sorted(known)}")
        values = dict(values)
        for key in ("energy_range_gev", "theta_range_deg", "stage1_energy_range_gev"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _range(name: str, value: Any, allowed: tuple[float, float], unit: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (allowed[0] <= lo <= hi <= allowed[1]):
        raise ValueError(f"{name}=({lo:g}, {hi:g}) {unit} must satisfy {allowed[0]:g} <= lo <= hi <= "
                         f"{allowed[1]:g}")
    return (lo, hi)


def check_config(config: TrainConfig, *, world: int = 1) -> None:
    """Checks that need the machine or the data, made before anything is created or launched (by
    :func:`calogen.gan.jobs.start_run`, the ``train`` command and :func:`train`); ValueError says what to change.

    A known architecture, an available device, at least one batch of training showers in a data file, and
    for ``data="mc"`` an energy range whose simulated showers pass the 3DGAN loader cut often enough.
    """
    from calogen.gan.nets import ARCHITECTURES

    if config.arch not in ARCHITECTURES:
        raise ValueError(f"arch={config.arch!r} is unknown; choose one of {sorted(ARCHITECTURES)}")
    _resolve_device(config.device)
    if config.data == "mc":
        for stage in stages(config):
            _check_mc_cut(config, stage.energy_range_gev)
    else:
        n_train = _training_showers(config)
        if n_train < config.batch * world:
            raise ValueError(f"data={config.data!r} leaves {n_train} showers for training after the held-out "
                             f"part, fewer than one batch of {config.batch} x {world} process(es); lower the "
                             "batch or give a larger file")


def _check_mc_cut(config: TrainConfig, energy_range_gev: tuple[float, float]) -> None:
    """Refuse an energy range where most simulated batches would not keep the 2 showers a step needs."""
    e_cut = config.min_sum / DEFAULT_SCALE / _MC_SAMPLING_FRACTION  # primary energy whose mean deposit is at the cut
    lo, hi = energy_range_gev
    p = float(hi > e_cut) if hi <= lo else float(np.clip((hi - e_cut) / (hi - lo), 0.0, 1.0))
    b = config.batch
    p_step = 1.0 - (1.0 - p) ** b - b * p * (1.0 - p) ** (b - 1)  # P(at least 2 of b showers pass)
    if p_step < 0.5:
        raise ValueError(
            f"with data='mc', batch={b} and energies {lo:g}-{hi:g} GeV only {p_step:.0%} of the simulated batches "
            f"would keep the 2 showers a step needs: the 3DGAN loader cut keeps showers that deposit more than "
            f"min_sum/{DEFAULT_SCALE:g} = {config.min_sum / DEFAULT_SCALE:g} GeV, which takes about {e_cut:.0f} GeV "
            f"of primary energy (sampling fraction about {_MC_SAMPLING_FRACTION:.1%}); raise the upper energy above "
            f"{e_cut:.0f} GeV, raise the batch, or lower min_sum (0 keeps every shower)")


def _training_showers(config: TrainConfig) -> int:
    """Showers of a data file available for training: the file less the held-out tail (see :func:`_heldout`)."""
    from calogen.io import count_showers

    n = count_showers(config.data)
    return n if config.heldout is not None else n - min(config.heldout_mc, n // 2)


def planned_steps(config: TrainConfig, *, world: int = 1) -> int:
    """Steps the whole schedule will take: ``steps_per_epoch`` x epochs, or for a file pass an upper estimate
    from the number of training showers (the loader cut and the energy window can make epochs shorter)."""
    total_epochs = sum(s.epochs for s in stages(config))
    if config.data == "mc" and config.steps_per_epoch is not None:
        return config.steps_per_epoch * total_epochs
    per_epoch = max(1, _training_showers(config) // (config.batch * world))
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    return per_epoch * total_epochs


def format_duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min' (or '-' for None): how long, to the precision an ETA deserves."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------------------------------------------------
# schedule


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: epochs [first_epoch, first_epoch + epochs) on energy_range_gev."""

    index: int
    energy_range_gev: tuple[float, float]
    first_epoch: int
    epochs: int


def stages(config: TrainConfig) -> list[Stage]:
    """The schedule: one stage, or with ``two_step`` the 3DGAN 100-200 GeV stage then the full range."""
    if not config.two_step:
        return [Stage(0, config.energy_range_gev, 0, config.epochs)]
    return [Stage(0, config.stage1_energy_range_gev, 0, config.stage1_epochs),
            Stage(1, config.energy_range_gev, config.stage1_epochs, config.epochs)]


def _stage_of(schedule: list[Stage], epoch: int) -> Stage:
    for stage in schedule:
        if epoch < stage.first_epoch + stage.epochs:
            return stage
    return schedule[-1]


# ---------------------------------------------------------------------------------------------------------
# data


def _loader_3dgan(
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


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # network-unit showers (B,X,Y,Z), energy (B,), theta (B,)


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
        theta_lo, theta_hi = np.deg2rad(self.config.theta_range_deg)
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
            cleaned, keep = _loader_3dgan(chunk.showers, threshold=self.config.cell_threshold,
                                          min_sum=self.config.min_sum)
            keep &= (chunk.energy_gev >= energy_range_gev[0]) & (chunk.energy_gev <= energy_range_gev[1])
            keep &= (chunk.theta_rad >= theta_lo - 1e-6) & (chunk.theta_rad <= theta_hi + 1e-6)
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
        x = torch.from_numpy(to_network_card(showers_gev, self.config.preprocessing)).to(self.device)
        return (x, torch.from_numpy(energy.astype(np.float32)).to(self.device),
                torch.from_numpy(theta.astype(np.float32)).to(self.device))


class MCSource:
    """Batches simulated on the fly with :func:`calogen.simulation.mc.simulate` on the training device.

    Energies and angles are uniform in the stage's ranges; every (epoch, step, rank) has its own seed, so a
    resumed run sees the same showers it would have seen. The 3DGAN loader cuts are applied as for files.
    """

    def __init__(self, config: TrainConfig, *, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.config, self.device, self.rank, self.world = config, device, rank, world

    def batches(self, epoch: int, energy_range_gev: tuple[float, float], skip: int = 0) -> Iterator[Batch]:
        """Endless stream of batches for ``epoch`` (the trainer stops after ``steps_per_epoch``)."""
        from calogen.simulation.mc import simulate

        step, empty_in_a_row = skip, 0
        while True:
            rng = np.random.default_rng([self.config.seed, epoch, step, self.rank, 11])
            energy, theta = _uniform_conditions(rng, self.config.batch, energy_range_gev, self.config.theta_range_deg)
            sim = simulate(energy, theta, n=len(energy), seed=int(rng.integers(2**31)), device=str(self.device))
            cleaned, keep = _loader_3dgan(np.asarray(sim.showers, dtype=np.float32),
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
            x = torch.from_numpy(to_network_card(cleaned[keep], self.config.preprocessing)).to(self.device)
            yield (x, torch.from_numpy(np.asarray(sim.energy_gev, np.float32)[keep]).to(self.device),
                   torch.from_numpy(np.asarray(sim.theta_rad, np.float32)[keep]).to(self.device))


def _uniform_conditions(
    rng: np.random.Generator, n: int, energy_range_gev: tuple[float, float], theta_range_deg: tuple[float, float]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    energy = rng.uniform(*energy_range_gev, n).astype(np.float32)
    theta = np.deg2rad(rng.uniform(*theta_range_deg, n)).astype(np.float32)
    return energy, theta


# ---------------------------------------------------------------------------------------------------------
# validation


def sampling_fraction_mre(
    reference_showers: Any, candidate_showers: Any, energy_gev: npt.ArrayLike, *, n_bins: int = 10
) -> float:
    """The 3DGAN sampling-fraction error: mean over energy bins of |<SF_ref> - <SF_cand>| / <SF_ref>.

    Both sample sets share the conditions ``energy_gev`` (N,); showers are (N, X, Y, Z) in GeV. Bins hold
    equal numbers of showers (at most ``n_bins``, at least 10 showers each). SF = cell sum / primary energy
    (Khattak et al. 2021, section V).
    """
    from calogen.validation.features import sampling_fraction

    energy = np.asarray(energy_gev, dtype=np.float64)
    sf_ref = np.asarray(sampling_fraction(reference_showers, energy), dtype=np.float64)
    sf_cand = np.asarray(sampling_fraction(candidate_showers, energy), dtype=np.float64)
    n_used = max(1, min(n_bins, len(energy) // 10))
    order = np.argsort(energy, kind="stable")
    errors = [abs(sf_ref[idx].mean() - sf_cand[idx].mean()) / max(abs(sf_ref[idx].mean()), 1e-12)
              for idx in np.array_split(order, n_used) if len(idx)]
    return float(np.mean(errors))


# ---------------------------------------------------------------------------------------------------------
# run directory


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file next to ``path`` and rename it over ``path`` (readers never see half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RunDirectory:
    """The files of one run (see the module docstring); only rank 0 writes, other ranks get a silent one."""

    def __init__(self, path: str | os.PathLike[str], *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"

    def prepare(self, config: TrainConfig) -> None:
        if not self.writer:
            return
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / "config.json", config.to_dict())

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def status(self, state: str, **extra: Any) -> None:
        """Merge ``extra`` into status.json with state and timestamps, atomically."""
        if not self.writer:
            return
        status = self.read_status()
        status.update(extra)
        status["state"] = state
        status["updated"] = _now()
        if state in ("finished", "failed", "cancelled"):
            status["ended"] = status["updated"]
        write_json_atomic(self.path / "status.json", status)

    def log(self, message: str) -> None:
        if not self.writer:
            return
        line = f"{_now()} {message}"
        with open(self.path / "log.txt", "a") as fh:
            fh.write(line + "\n")
        print(line, file=sys.stderr, flush=True)

    def metrics(self, row: dict[str, Any]) -> None:
        if not self.writer:
            return
        path = self.path / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})

    def save(self, payload: dict[str, Any], path: Path) -> None:
        """torch.save to a temporary file, then rename: a crash leaves the previous good file."""
        if not self.writer:
            return
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`train` (tensors and plain containers only: ``weights_only=True``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}; the run has not saved one yet") from None


def _acquire_lock(run: RunDirectory) -> None:
    """Own run_dir/lock (O_EXCL): refuse when another live process holds it; take over a stale one."""
    lock = run.path / "lock"
    token = os.environ.get(LOCK_ENV)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            content = lock.read_text().strip() if lock.exists() else ""
            if token and content == f"launching {token}":
                lock.write_text(str(os.getpid()))
                return
            pid = int(content) if content.isdigit() else None
            if pid is not None and pid != os.getpid() and process_alive(pid):
                raise RuntimeError(f"run {run.path} is already being trained by process {pid}; cancel it first "
                                   "(calogen.gan.jobs.cancel_run) or choose another --run-dir")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return
    raise RuntimeError(f"could not take the lock {lock}; another process keeps creating it")


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (Linux /proc; elsewhere kill(pid, 0) only)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------------------------------------------
# distributed helpers


def _dist_init(device_name: str) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_name.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _broadcast_module(module: torch.nn.Module, world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def _average_gradients(module: torch.nn.Module, world: int) -> None:
    """All-reduce and average the gradients of ``module`` across ranks in one flat buffer."""
    if world <= 1:
        return
    import torch.distributed as dist

    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def _any_rank(flag: bool, world: int, device: torch.device) -> bool:
    if world <= 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


# ---------------------------------------------------------------------------------------------------------
# training


class TrainingFailed(RuntimeError):
    """Training started and then failed; status.json says ``failed`` with the message."""


class _StopNow(BaseException):
    """A stop request that interrupted the loop where it was (not an error: the run ends ``cancelled``)."""


class _Stop:
    """SIGTERM / SIGINT ask the run to stop without waiting for the current step.

    Inside :meth:`interruptible` blocks (simulating or reading a batch, forward and backward passes, the
    held-out simulation) the signal handler raises :class:`_StopNow` at once, so a stop waits at most for the
    torch operation in progress; inside :meth:`deferred` blocks (an optimiser update) it waits for the block
    to finish. Elsewhere (metrics, checkpoints) it sets ``reason``, read by the loop at the next safe point.
    With several processes (``immediate=False``) every request waits for the end of the step, where all
    ranks agree to stop together.
    """

    def __init__(self, *, immediate: bool = True) -> None:
        self.reason: str | None = None
        self.immediate = immediate
        self._armed = False
        self._previous: dict[int, Any] = {}

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a stop request ends at once (raises :class:`_StopNow`)."""
        self.raise_if_requested()
        self._armed = self.immediate
        try:
            yield
        finally:
            self._armed = False

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block inside :meth:`interruptible` that is always finished (an optimiser update)."""
        armed, self._armed = self._armed, False
        try:
            yield
        finally:
            self._armed = armed
        if armed:
            self.raise_if_requested()

    def raise_if_requested(self) -> None:
        if self.reason is not None and self.immediate:
            raise _StopNow(self.reason)

    def install(self) -> None:
        """Install the handlers (only possible in the main thread; elsewhere the run has no signal stop)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.reason = f"{signal.Signals(signum).name} received"
        if self._armed:
            self._armed = False
            raise _StopNow(self.reason)


def _optimisers(config: TrainConfig, generator: torch.nn.Module, discriminator: torch.nn.Module,
                ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    if config.recipe == "3dgan":  # RMSprop lr 1e-3 for both networks (3DGAN training script)
        return (torch.optim.RMSprop(generator.parameters(), lr=config.lr),
                torch.optim.RMSprop(discriminator.parameters(), lr=config.lr))
    # WGAN-GP: Adam with beta1 = 0, beta2 = 0.9 (Gulrajani et al. 2017, algorithm 1)
    return (torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.0, 0.9)),
            torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(0.0, 0.9)))


def _resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cpu', 'cuda', 'cuda:N' as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"device={name!r} is not a training device; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def _resolve_preprocessing(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The architecture's cell transform as a card entry; Box-Cox is fitted on the first training showers."""
    from calogen.gan.nets import ARCHITECTURES

    kind = getattr(ARCHITECTURES[config.arch], "preprocessing_kind", "power")
    if kind == "identity":
        return {"kind": "identity"}
    if kind == "boxcox":
        from calogen.io import read_showers

        if config.data == "mc":
            from calogen.simulation.mc import simulate

            rng = np.random.default_rng([config.seed, 3])
            energy, theta = _uniform_conditions(rng, 16, config.energy_range_gev, config.theta_range_deg)
            sample = simulate(energy, theta, n=16, seed=config.seed, device=str(device)).showers
        else:
            sample = read_showers(config.data, stop=256).showers
        return fit_boxcox(sample, seed=config.seed).to_card()
    return {"kind": "power", "power": config.power, "scale": DEFAULT_SCALE}


def _heldout(config: TrainConfig, run: RunDirectory, *, needed: bool, device: torch.device,
             ) -> tuple[Any, int | None]:
    """Held-out showers (ShowerSet, None when not ``needed``) and, for a data file without a separate held-out
    file, the index where the training part of the file stops."""
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
    energy, theta = _uniform_conditions(rng, config.heldout_mc, config.energy_range_gev, config.theta_range_deg)
    what = (f"held-out Monte Carlo for the per-epoch SF error ({config.heldout_mc} showers at "
            f"{config.energy_range_gev[0]:g}-{config.energy_range_gev[1]:g} GeV, once per run)")
    run.log(f"simulating the {what}")
    held = simulate(energy, theta, n=len(energy), seed=int(rng.integers(2**31)), device=str(device),
                    progress=_simulation_progress(run, what))
    if run.writer:
        write_showers(cache, held)
    return held, None


def _simulation_progress(run: RunDirectory, what: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for :func:`calogen.simulation.mc.simulate` that logs every
    :data:`PROGRESS_EVERY_S` seconds with the ETA."""
    start, last = time.monotonic(), [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S or done <= 0 or done >= total:
            return
        last[0] = now
        run.log(f"{what}: {done}/{total} simulated, ETA {format_duration((now - start) / done * (total - done))}")

    return report


@torch.no_grad()
def _generate_gev(generator: torch.nn.Module, energy: np.ndarray, theta: np.ndarray, *, preprocessing: dict[str, Any],
                  device: torch.device, seed: int, batch: int = 64) -> np.ndarray:
    was_training = generator.training
    generator.eval()
    noise_rng = torch.Generator().manual_seed(seed)
    out = []
    for lo in range(0, len(energy), batch):
        e = torch.as_tensor(energy[lo:lo + batch], dtype=torch.float32, device=device)
        t = torch.as_tensor(theta[lo:lo + batch], dtype=torch.float32, device=device)
        noise = torch.randn(len(e), generator.latent_dim, generator=noise_rng).to(device)
        out.append(from_network_card(generator(e, t, noise).float(), preprocessing).cpu().numpy())
    generator.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


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


def _card(config: TrainConfig, run: RunDirectory, generator: torch.nn.Module, *, wall_time_s: float, step: int,
          selected_epoch: int, sf_mre: float, history: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    final = stages(config)[-1]
    return {
        "name": run.path.name,
        "arch": config.arch,
        "config": dict(config.generator_config),
        "condition_ranges": {"energy_gev": list(final.energy_range_gev), "theta_deg": list(config.theta_range_deg)},
        "preprocessing": dict(config.preprocessing or {}),
        "training": {
            "command": config.command, "data": config.data, "device": str(device), "wall_time_s": wall_time_s,
            "epochs": sum(s.epochs for s in stages(config)), "steps": step, "selected_epoch": selected_epoch,
            "recipe": config.recipe, "batch": config.batch, "lr": config.lr, "seed": config.seed,
            "two_step": config.two_step, "config": config.to_dict(),
            "data_provenance": data_provenance(config.data),
        },
        "validation": {"sf_mre": sf_mre, "sf_mre_by_epoch": history,
                       "heldout": config.heldout or ("mc" if config.data == "mc" else f"tail of {config.data}")},
        "parameters": sum(p.numel() for p in generator.parameters()),
        "calogen_version": __version__,
    }


def train(config: TrainConfig, *, resume: bool = False, max_steps: int | None = None) -> Path:
    """Train (or with ``resume`` continue) the run in ``config.run_dir``; returns the run directory.

    ``max_steps``: stop after this many steps of this call as SIGTERM would (checkpoint, status ``cancelled``
    with the reason), so that a run can be advanced in slices and resumed.

    Rank 0 writes the run directory. Ends with status ``finished`` (and run_dir/model exported), or
    ``cancelled`` after SIGTERM/SIGINT (checkpoint saved; the step in progress is cut short, see
    :class:`_Stop`), or ``failed`` with the exception message (raised as :class:`TrainingFailed`). Problems found
    before training starts (:func:`check_config`, a run directory in use) raise ValueError / FileNotFoundError /
    RuntimeError and leave status.json alone.
    """
    rank, world = _dist_init(_resolve_device(config.device).type)
    check_config(config, world=world)
    run = RunDirectory(config.run_dir, writer=rank == 0)
    stop = _Stop(immediate=world == 1)
    locked = False
    if run.writer:
        if not resume and run.last.exists():
            raise ValueError(f"{run.path} already holds a checkpoint; continue it with --resume {run.path} or "
                             "choose a new --run-dir")
        if resume and not run.last.exists():
            raise FileNotFoundError(f"{run.last} does not exist, so {run.path} cannot be resumed; start a new run")
        run.path.mkdir(parents=True, exist_ok=True)
        _acquire_lock(run)
        locked = True
    stop.install()
    try:
        _train(config, run, stop, rank=rank, world=world, resume=resume, max_steps=max_steps)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        run.log("failed: " + message + "\n" + traceback.format_exc())
        run.status("failed", exit_reason=message)
        raise TrainingFailed(f"training in {run.path} failed: {message}") from exc
    except _StopNow as exc:  # during set-up, before the first step of this call
        message = (f"{exc} while setting up, before the first step; "
                   + (f"the checkpoint is unchanged; continue with --resume {run.path}" if resume
                      else "nothing to resume from yet; start the run again"))
        run.log(message)
        run.status("cancelled", exit_reason=message)
    except BaseException as exc:
        run.status("failed", exit_reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.restore()
        if locked:
            (run.path / "lock").unlink(missing_ok=True)
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return run.path


def _autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _train(config: TrainConfig, run: RunDirectory, stop: _Stop, *, rank: int, world: int, resume: bool,
           max_steps: int | None = None) -> None:
    from calogen.gan.nets import build_discriminator, build_generator

    # (0) set-up: device, networks, optimisers, objective, data, state
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed + 1000 * rank)
    generator = build_generator(config.arch, **config.generator_config).to(device)
    discriminator = build_discriminator(config.arch, **config.discriminator_config).to(device)
    opt_g, opt_d = _optimisers(config, generator, discriminator)
    if config.preprocessing is None:
        with stop.interruptible():
            config.preprocessing = _resolve_preprocessing(config, device)
    objective: GANObjective = build_objective(config.recipe, preprocessing=config.preprocessing)
    schedule = stages(config)
    total_epochs = schedule[-1].first_epoch + schedule[-1].epochs
    flip_rng = torch.Generator().manual_seed(config.seed + 7919 * rank)
    state: dict[str, Any] = {"step": 0, "epoch": 0, "step_in_epoch": 0, "history": [], "wall_time_s": 0.0}
    if resume:
        ckpt = load_checkpoint(run.last, map_location=device)
        generator.load_state_dict(ckpt["generator"])
        discriminator.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["optimizer_g"])
        opt_d.load_state_dict(ckpt["optimizer_d"])
        state.update({k: ckpt[k] for k in ("step", "epoch", "step_in_epoch", "history", "wall_time_s")})
        torch.set_rng_state(ckpt["rng_torch"])
        flip_rng.set_state(ckpt["rng_flip"])
    _broadcast_module(generator, world)
    _broadcast_module(discriminator, world)
    run.prepare(config)
    with stop.interruptible():  # simulating the held-out showers can take minutes on a CPU
        heldout, data_stop = _heldout(config, run, needed=run.writer, device=device)
    if config.data == "mc":
        source: ShowerFileSource | MCSource = MCSource(config, device=device, rank=rank, world=world)
    else:
        source = ShowerFileSource(config.data, config, device=device, rank=rank, world=world, stop=data_stop)
    monitor_rng = np.random.default_rng([config.seed, 5])  # fixed monitoring batch: conditions and noise seed
    monitor_e, monitor_t = _uniform_conditions(monitor_rng, 16, config.energy_range_gev, config.theta_range_deg)
    progress = _Progress(total=planned_steps(config, world=world), first_step=int(state["step"]))
    run.status("running", pid=os.getpid(), pgid=os.getpgid(0), started=_now(), world_size=world,
               step=state["step"], epoch=state["epoch"], total_epochs=total_epochs, resumed=resume,
               exit_reason=None, ended=None, **progress.fields(int(state["step"])))
    run.log(f"{'resumed' if resume else 'started'} {config.recipe} training of {config.arch} on {config.data}: "
            f"step {state['step']}/{progress.total}, epoch {state['epoch']}/{total_epochs}, {world} process(es), "
            f"device {device}")
    clock = time.monotonic() - float(state["wall_time_s"])
    first_step = int(state["step"])

    def gan_step(real: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor,
                 ) -> tuple[float, float | None, dict[str, float]]:
        """One training step on a real batch; returns loss_d, loss_g (None without a generator update) and the
        objective's heads. Optimiser updates are never cut in half by a stop request (``stop.deferred``)."""
        # (1) discriminator update(s): the fake batch uses the real batch's conditions
        with torch.no_grad(), _autocast(device, config.bf16):
            noise = torch.randn(len(energy), generator.latent_dim, device=device)
            fake = generator(energy, theta, noise).float()
        loss_d_total, parts_d = 0.0, {}
        for loss_d, parts_d in objective.discriminator_updates(
                _ac(discriminator, device, config.bf16), real, fake, energy, theta, flip_rng):
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            with stop.deferred():
                _average_gradients(discriminator, world)
                opt_d.step()
            loss_d_total += loss_d.item()

        # (2) generator update(s), through a frozen discriminator
        loss_g_total, parts_g = None, {}
        if (state["step"] + 1) % objective.critic_steps == 0:
            discriminator.requires_grad_(False)
            real_sum = objective.to_gev(real).sum(dim=(1, 2, 3))  # (B,) GeV, target of the sum head
            loss_g_total = 0.0
            for _ in range(objective.generator_steps):
                noise = torch.randn(len(energy), generator.latent_dim, device=device)
                with _autocast(device, config.bf16):
                    fake = generator(energy, theta, noise).float()
                loss_g, parts_g = objective.generator_loss(
                    _ac(discriminator, device, config.bf16), fake, real_sum, energy, theta)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                with stop.deferred():
                    _average_gradients(generator, world)
                    opt_g.step()
                loss_g_total += loss_g.item() / objective.generator_steps
            discriminator.requires_grad_(True)
        return loss_d_total, loss_g_total, {f"{k}": v for k, v in (parts_g or parts_d).items()}

    def checkpoint(path: Path | None = None, rng: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        state["wall_time_s"] = time.monotonic() - clock
        run.save({
            "version": CHECKPOINT_VERSION, "calogen_version": __version__, "config": config.to_dict(),
            "step": state["step"], "epoch": state["epoch"], "step_in_epoch": state["step_in_epoch"],
            "stage": _stage_of(schedule, state["epoch"]).index, "history": state["history"],
            "wall_time_s": state["wall_time_s"],
            "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
            "optimizer_g": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(),
            "rng_torch": rng[0] if rng else torch.get_rng_state(),
            "rng_flip": rng[1] if rng else flip_rng.get_state(),
        }, path or run.last)

    def cancel(reason: str, *, cut_short: bool = False, rng: tuple[torch.Tensor, torch.Tensor] | None = None,
               ) -> None:
        discriminator.requires_grad_(True)
        checkpoint(rng=rng)
        cut = f" (step {state['step'] + 1} was cut short; resuming repeats it)" if cut_short else ""
        message = (f"{reason}: stopped at step {state['step']}{cut} (epoch {state['epoch']}); checkpoint saved; "
                   f"continue with python -m calogen train --resume {run.path}")
        run.log(message)
        run.status("cancelled", exit_reason=message, step=state["step"], epoch=state["epoch"], eta_s=None)

    for epoch in range(int(state["epoch"]), total_epochs):
        stage = _stage_of(schedule, epoch)
        if stage.index > 0 and epoch == stage.first_epoch and state["step_in_epoch"] == 0:
            # warm start of the next stage: same weights, fresh optimisers (a new Keras run in 3DGAN)
            opt_g, opt_d = _optimisers(config, generator, discriminator)
            run.log(f"stage {stage.index}: warm start on {stage.energy_range_gev} GeV")
        batches = source.batches(epoch, stage.energy_range_gev, skip=int(state["step_in_epoch"]))
        while config.steps_per_epoch is None or state["step_in_epoch"] < config.steps_per_epoch:
            # (1)-(2) the batch and the discriminator / generator updates; a stop request ends them at once
            rng_at_start = (torch.get_rng_state(), flip_rng.get_state())
            try:
                with stop.interruptible():
                    batch = next(batches, None)
                    if _any_rank(batch is None, world, device):
                        break
                    assert batch is not None
                    loss_d_total, loss_g_total, heads = gan_step(*batch)
            except _StopNow as exc:
                cancel(str(exc), cut_short=True, rng=rng_at_start)
                return

            # (3) bookkeeping: metrics, status and progress, periodic checkpoint, stop request
            state["step"] += 1
            state["step_in_epoch"] += 1
            if not all(math.isfinite(v) for v in [loss_d_total, *(heads.values())]):
                raise FloatingPointError(f"non-finite loss at step {state['step']}: loss_d={loss_d_total}, "
                                         f"heads={heads}; lower the learning rate or check the data")
            run.metrics({"step": state["step"], "epoch": epoch, "stage": stage.index, "loss_d": loss_d_total,
                         "loss_g": loss_g_total, **heads, "time_s": round(time.monotonic() - clock, 3)})
            run.status("running", step=state["step"], epoch=epoch, **progress.fields(state["step"]))
            if progress.due():
                run.log(progress.line(state["step"], epoch, total_epochs, loss_d_total, loss_g_total))
            if state["step"] % config.checkpoint_every == 0:
                checkpoint()
            if max_steps is not None and state["step"] - first_step >= max_steps:
                stop.reason = stop.reason or f"step limit reached (max_steps={max_steps})"
            if _any_rank(stop.reason is not None, world, device):
                cancel(stop.reason or "stop requested by another process")
                return

        # (4) epoch end: held-out sampling-fraction error, keep the last K generators
        if state["step_in_epoch"] == 0:
            raise ValueError(
                f"epoch {epoch} had no batch of {config.batch} showers in {stage.energy_range_gev} GeV and "
                f"{config.theta_range_deg} deg after the loader cuts; check the data file, ranges and --batch")
        if config.data != "mc":  # an epoch of a file pass is now measured: the plan follows it
            progress.total = state["step"] + (total_epochs - epoch - 1) * int(state["step_in_epoch"])
        state["epoch"] = epoch + 1
        state["step_in_epoch"] = 0
        if run.writer:
            lo, hi = stage.energy_range_gev
            sel = (heldout.energy_gev >= lo) & (heldout.energy_gev <= hi)
            held = heldout.select(sel) if sel.sum() >= 2 else heldout
            fake_gev = _generate_gev(generator, held.energy_gev, held.theta_rad, preprocessing=config.preprocessing,
                                     device=device, seed=config.seed + 17)
            sf_error = sampling_fraction_mre(held.showers, fake_gev, held.energy_gev)
            monitor = _generate_gev(generator, monitor_e, monitor_t, preprocessing=config.preprocessing, device=device,
                                    seed=config.seed + 5)
            state["history"].append({"epoch": epoch, "stage": stage.index, "sf_error": sf_error})
            run.metrics({"step": state["step"], "epoch": epoch, "stage": stage.index, "sf_error": sf_error,
                         "time_s": round(time.monotonic() - clock, 3)})
            run.log(f"epoch {epoch} (stage {stage.index}) done at step {state['step']}: SF error {sf_error:.4f} "
                    f"on {len(held)} held-out showers; monitoring batch mean deposit "
                    f"{float(monitor.sum(axis=(1, 2, 3)).mean()):.3f} GeV")
            run.save({"epoch": epoch, "stage": stage.index, "sf_error": sf_error, "step": state["step"],
                      "generator": generator.state_dict()}, run.checkpoints / f"generator_epoch_{epoch:04d}.pt")
            for old in sorted(run.checkpoints.glob("generator_epoch_*.pt"))[:-config.select_last_k]:
                old.unlink()
            checkpoint()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        if _any_rank(stop.reason is not None, world, device):
            cancel(stop.reason or "stop requested by another process")
            return

    # (5) final model: the smallest SF error among the last K epochs of the final stage
    if run.writer:
        final_stage = schedule[-1].index
        candidates = [h for h in state["history"] if h["stage"] == final_stage][-config.select_last_k:]
        best = min(candidates, key=lambda h: h["sf_error"])
        chosen = load_checkpoint(run.checkpoints / f"generator_epoch_{best['epoch']:04d}.pt", map_location=device)
        generator.load_state_dict(chosen["generator"])
        from calogen.gan.generate import save_model

        wall = time.monotonic() - clock
        card = _card(config, run, generator, wall_time_s=round(wall, 2), step=state["step"],
                     selected_epoch=int(best["epoch"]), sf_mre=float(best["sf_error"]), history=state["history"],
                     device=device)
        save_model(run.path / "model", generator.cpu(), card)
        checkpoint()
        run.log(f"finished: selected epoch {best['epoch']} (SF error {best['sf_error']:.4f}); model in "
                f"{run.path / 'model'}")
        run.status("finished", exit_reason="completed", selected_epoch=int(best["epoch"]),
                   sf_error=float(best["sf_error"]), model_dir=str(run.path / "model"), step=state["step"],
                   total_steps=state["step"], percent=100.0, eta_s=0.0)


@dataclass
class _Progress:
    """Steps done against the plan, the mean time per step of this invocation and the ETA from it."""

    total: int  # planned steps of the whole schedule
    first_step: int  # the step this invocation started from (resume)
    start: float = field(default_factory=time.monotonic)
    last_line: float = -math.inf

    def fields(self, step: int) -> dict[str, Any]:
        """status.json entries: total_steps, percent, s_per_step and eta_s (None before the first step)."""
        done = step - self.first_step
        per_step = (time.monotonic() - self.start) / done if done > 0 else None
        return {"total_steps": self.total, "percent": round(100.0 * min(step / max(self.total, 1), 1.0), 1),
                "s_per_step": None if per_step is None else round(per_step, 3),
                "eta_s": None if per_step is None else round(max(self.total - step, 0) * per_step, 1)}

    def due(self) -> bool:
        """True at the first call and then every :data:`PROGRESS_EVERY_S` seconds."""
        now = time.monotonic()
        if now - self.last_line < PROGRESS_EVERY_S:
            return False
        self.last_line = now
        return True

    def line(self, step: int, epoch: int, epochs: int, loss_d: float, loss_g: float | None) -> str:
        """'step 12/1000 (1.2 %), epoch 1/10, loss_d 0.532, loss_g 1.204, 3.10 s/step, ETA 51 min'."""
        f = self.fields(step)
        loss_g_text = "-" if loss_g is None else f"{loss_g:.4g}"
        return (f"step {step}/{self.total} ({f['percent']:.1f} %), epoch {epoch + 1}/{epochs}, loss_d "
                f"{loss_d:.4g}, loss_g {loss_g_text}, {f['s_per_step']:.2f} s/step, ETA {format_duration(f['eta_s'])}")


class _AutocastModule(torch.nn.Module):
    """Runs the wrapped network under bf16 autocast (CUDA); keeps its forward signature visible."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self._device = device

    def forward(self, *args: Any) -> Any:
        with _autocast(self._device, True):
            return self.module(*args)


def _ac(module: torch.nn.Module, device: torch.device, bf16: bool) -> torch.nn.Module:
    return _AutocastModule(module, device) if bf16 and device.type == "cuda" else module


def main(argv: list[str] | None = None) -> int:
    """Entry for ``python -m calogen.gan.train`` and ``torchrun -m calogen.gan.train``: the ``train`` command's options."""
    import argparse

    from calogen.cli import train as cli_train
    from calogen.cli._common import CliError

    parser = argparse.ArgumentParser(prog="python -m calogen.gan.train", description="Train a shower GAN.")
    cli_train.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cli_train.run(args)
    except (CliError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
