"""What defines a training run (:class:`TrainConfig`), its schedule of stages, and the checks made before a run
starts (:func:`check_config`) and the steps it plans (:func:`planned_steps`).

Units: energies in GeV, angles in radians (the app and the command line convert degrees once, where people type
them). A config.json written before angles were held in radians (``theta_range_deg``) is converted once, in
:meth:`TrainConfig.from_dict`, where configs are read.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from calogen.gan.nets import ARCHITECTURES
from calogen.gan.objectives import RECIPES, REGRESSOR_WEIGHT
from calogen.gan.preprocess import DEFAULT_SCALE
from calogen.showers import TRAINING_RANGE, ConditionRange

__all__ = [
    "MC_SAMPLING_FRACTION",
    "Stage",
    "TrainConfig",
    "check_config",
    "planned_steps",
    "resolve_device",
    "stage_of",
    "stages",
    "training_showers",
]

# Mean deposited / primary energy of calogen.simulation.mc electrons in the CLIC ECAL, 10-300 GeV (1.7-1.9 %
# measured on data/reference.h5); used only to predict which simulated showers pass the 3DGAN loader cut.
MC_SAMPLING_FRACTION = 0.019
_RANGE_FIELDS = ("energy_range_gev", "theta_range_rad", "stage1_energy_range_gev")


@dataclass
class TrainConfig:
    """Everything that defines a training run (written to config.json, every checkpoint and the model card)."""

    arch: str = "conv3d"  # calogen.gan.nets architecture name
    recipe: Literal["3dgan", "wgan-gp"] = "3dgan"
    data: str = "mc"  # "mc" (simulated on the fly with calogen.simulation.mc) or the path of a shower file
    energy_range_gev: tuple[float, float] = TRAINING_RANGE.energy_gev  # primary energy, (final) stage, GeV
    theta_range_rad: tuple[float, float] = TRAINING_RANGE.theta_rad  # polar angle of incidence, radians
    epochs: int = 10  # epochs of the final stage
    steps_per_epoch: int | None = 100  # mc: steps per epoch; file: cap on steps per pass (None = whole file)
    batch: int = 64  # showers per step and per process (3DGAN: 64)
    lr: float = 1e-3  # learning rate of both optimisers (3DGAN: RMSprop 1e-3; WGAN-GP: Adam)
    power: float = 0.85  # cell pre-processing (scale * E) ** power (3DGAN loader), for "power" architectures
    preprocessing: dict[str, Any] | None = None  # card entry; None: from the architecture (resolved at start)
    cell_threshold: float = 1e-4  # cells below this, in GeV x 50 (3DGAN file units), are zeroed
    min_sum: float = 10.0  # keep showers whose cell sum exceeds this, GeV x 50 (3DGAN loader: sum > 10)
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    bf16: bool = False  # bfloat16 autocast of the forward passes (CUDA only)
    select_last_k: int = 10  # final model: smallest SF error among the generators of the last K epochs
    heldout: str | None = None  # held-out shower file for the per-epoch SF error (None: see heldout_mc)
    heldout_mc: int = 100  # held-out size: showers simulated (data "mc") or kept from the end of the data file
    two_step: bool = False  # 3DGAN schedule: stage 1 on stage1_energy_range_gev, then warm-start the final stage
    stage1_energy_range_gev: tuple[float, float] = (100.0, 200.0)  # GeV
    stage1_epochs: int = 5
    run_dir: str = "runs/run"
    generator_config: dict[str, Any] = field(default_factory=dict)  # kwargs of calogen.gan.nets.build_generator
    discriminator_config: dict[str, Any] = field(default_factory=dict)  # kwargs of build_discriminator
    # wgan-gp recipe: the condition regressor (calogen.gan.nets.build_regressor kwargs; its shape defaults to the
    # showers'), pre-trained on up to regressor_showers training showers for regressor_steps Adam steps
    regressor_config: dict[str, Any] = field(default_factory=dict)
    regressor_weight: float = REGRESSOR_WEIGHT  # weight of its condition error in the generator loss (0: off)
    regressor_steps: int = 300
    regressor_showers: int = 1024
    checkpoint_every: int = 50  # steps between checkpoints/last.pt (also written at every epoch end)
    threads: int | None = None  # torch CPU threads (None: torch default)
    command: str = ""  # the command line that started the run (recorded in the model card)

    def __post_init__(self) -> None:
        self.energy_range_gev = _pair("energy_range_gev", self.energy_range_gev)
        self.theta_range_rad = _pair("theta_range_rad", self.theta_range_rad)
        self.stage1_energy_range_gev = _pair("stage1_energy_range_gev", self.stage1_energy_range_gev)
        for name in ("energy_range_gev", "stage1_energy_range_gev"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise ValueError(f"{name}=({lo:g}, {hi:g}) GeV must satisfy 0 < lo <= hi")
        lo, hi = self.theta_range_rad
        if not 0.0 < lo <= hi < math.pi:
            raise ValueError(f"theta_range_rad=({lo:g}, {hi:g}) must satisfy 0 < lo <= hi < pi radians; "
                             f"60-120 deg is ({math.radians(60):.4f}, {math.radians(120):.4f}) rad")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe={self.recipe!r} is unknown; choose one of {', '.join(RECIPES)}")
        for name in ("epochs", "batch", "select_last_k", "checkpoint_every", "regressor_steps", "regressor_showers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if self.regressor_weight < 0:
            raise ValueError(f"regressor_weight={self.regressor_weight} must be >= 0 (0 switches the term off)")
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

    @property
    def condition_range(self) -> ConditionRange:
        """The conditions of the final stage: energy_range_gev (GeV) and theta_range_rad (radians)."""
        return ConditionRange(self.energy_range_gev, self.theta_range_rad)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them. A ``theta_range_deg`` entry (the
        config.json of runs made before angles were held in radians) is converted to ``theta_range_rad``."""
        values = dict(values)
        if "theta_range_deg" in values:
            if "theta_range_rad" in values:
                raise ValueError("give theta_range_rad (radians) or the older theta_range_deg, not both")
            values["theta_range_rad"] = [math.radians(float(v)) for v in values.pop("theta_range_deg")]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known options are {sorted(known)}")
        for key in _RANGE_FIELDS:
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be two numbers (lo, hi)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}=({lo:g}, {hi:g}) must be finite")
    return lo, hi


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: epochs [first_epoch, first_epoch + epochs) on energy_range_gev (GeV)."""

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


def stage_of(schedule: list[Stage], epoch: int) -> Stage:
    """The stage that ``epoch`` belongs to (the last one past the end)."""
    for stage in schedule:
        if epoch < stage.first_epoch + stage.epochs:
            return stage
    return schedule[-1]


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cpu', 'cuda', 'cuda:N' as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"device={name!r} is not a training device; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def check_config(config: TrainConfig, *, world: int = 1) -> None:
    """Checks that need the machine or the data, made before anything is created or launched (by
    :func:`calogen.gan.jobs.start_run`, the ``train`` command and :func:`calogen.gan.train.train`); ValueError
    says what to change.

    A known architecture, an available device, at least one batch of training showers in a data file, and
    for ``data="mc"`` an energy range whose simulated showers pass the 3DGAN loader cut often enough.
    """
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"arch={config.arch!r} is unknown; choose one of {sorted(ARCHITECTURES)}")
    resolve_device(config.device)
    if config.data == "mc":
        for stage in stages(config):
            _check_mc_cut(config, stage.energy_range_gev)
    else:
        n_train = training_showers(config)
        if n_train < config.batch * world:
            raise ValueError(f"data={config.data!r} leaves {n_train} showers for training after the held-out "
                             f"part, fewer than one batch of {config.batch} x {world} process(es); lower the "
                             "batch or give a larger file")


def _check_mc_cut(config: TrainConfig, energy_range_gev: tuple[float, float]) -> None:
    """Refuse an energy range where most simulated batches would not keep the 2 showers a step needs.

    The fraction of showers above the cut is counted on energies drawn as the Monte Carlo source draws them
    (:meth:`calogen.showers.ConditionRange.sample`, seeded, so the check is reproducible).
    """
    e_cut = config.min_sum / DEFAULT_SCALE / MC_SAMPLING_FRACTION  # primary energy whose mean deposit is the cut
    lo, hi = energy_range_gev
    drawn = ConditionRange(energy_range_gev, config.theta_range_rad).sample(4096, np.random.default_rng(0))
    p = float(np.mean(drawn.energy_gev > e_cut))
    b = config.batch
    p_step = 1.0 - (1.0 - p) ** b - b * p * (1.0 - p) ** (b - 1)  # P(at least 2 of b showers pass)
    if p_step < 0.5:
        raise ValueError(
            f"with data='mc', batch={b} and energies {lo:g}-{hi:g} GeV only {p_step:.0%} of the simulated batches "
            f"would keep the 2 showers a step needs: the 3DGAN loader cut keeps showers that deposit more than "
            f"min_sum/{DEFAULT_SCALE:g} = {config.min_sum / DEFAULT_SCALE:g} GeV, which takes about {e_cut:.0f} GeV "
            f"of primary energy (sampling fraction about {MC_SAMPLING_FRACTION:.1%}); raise the upper energy above "
            f"{e_cut:.0f} GeV, raise the batch, or lower min_sum (0 keeps every shower)")


def training_showers(config: TrainConfig) -> int:
    """Showers of a data file available for training: the file less the held-out tail (the last
    ``min(heldout_mc, n // 2)`` showers, unless a separate ``heldout`` file is given)."""
    from calogen.io import count_showers

    n = count_showers(config.data)
    return n if config.heldout is not None else n - min(config.heldout_mc, n // 2)


def planned_steps(config: TrainConfig, *, world: int = 1) -> int:
    """Steps the whole schedule will take: ``steps_per_epoch`` x epochs, or for a file pass an upper estimate
    from the number of training showers (the loader cut and the energy window can make epochs shorter)."""
    total_epochs = sum(s.epochs for s in stages(config))
    if config.data == "mc" and config.steps_per_epoch is not None:
        return config.steps_per_epoch * total_epochs
    per_epoch = max(1, training_showers(config) // (config.batch * world))
    if config.steps_per_epoch is not None:
        per_epoch = min(per_epoch, config.steps_per_epoch)
    return per_epoch * total_epochs
