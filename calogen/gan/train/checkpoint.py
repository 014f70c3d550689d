"""Checkpoints of a run (save, load, resume), the per-epoch generators kept for the final choice, and the export
of the chosen generator with its model card.

``run_dir/checkpoints/last.pt`` holds the version, the resolved config, step, epoch, step in epoch, stage, the
per-epoch history, wall time, both networks, both optimisers, both random states and, for the ``wgan-gp``
recipe, the frozen condition regressor with its build options and held-out fit. ``generator_epoch_NNNN.pt``
holds one epoch's generator and its held-out SF error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from calogen.gan.runs import RunDirectory
from calogen.gan.train.config import TrainConfig, stages
from calogen.gan.train.data import data_provenance
from calogen.showers import ConditionRange
from calogen.version import __version__

__all__ = [
    "CHECKPOINT_VERSION",
    "Networks",
    "TrainState",
    "export_model",
    "keep_epoch_generator",
    "load_checkpoint",
    "restore",
    "save_atomic",
    "save_checkpoint",
    "select_epoch",
]

CHECKPOINT_VERSION = 2  # 2: config angles in radians, optional condition regressor


@dataclass
class TrainState:
    """Where the schedule stands: steps done, the epoch and the step inside it, the per-epoch history
    ({"epoch", "stage", "sf_error"}) and the training wall time of all invocations so far (s)."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0


@dataclass
class Networks:
    """The networks and optimisers of a run; ``regressor`` (frozen) and ``regressor_kwargs`` (its
    :func:`calogen.gan.nets.build_regressor` options) and ``regressor_fit`` (its held-out figures) only for the
    ``wgan-gp`` recipe."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    regressor: nn.Module | None = None
    regressor_kwargs: dict[str, Any] = field(default_factory=dict)
    regressor_fit: dict[str, Any] = field(default_factory=dict)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash leaves the previous good file."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`calogen.gan.train.train` (tensors and plain containers only:
    ``weights_only=True``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}; the run has not saved one yet") from None


def save_checkpoint(run: RunDirectory, config: TrainConfig, state: TrainState, nets: Networks, *, stage: int,
                    rng: tuple[torch.Tensor, torch.Tensor], path: Path | None = None) -> None:
    """Write last.pt (or ``path``) on the writing rank; ``rng`` = (torch CPU state, label-flip generator state)."""
    if not run.writer:
        return
    payload: dict[str, Any] = {
        "version": CHECKPOINT_VERSION, "calogen_version": __version__, "config": config.to_dict(),
        "step": state.step, "epoch": state.epoch, "step_in_epoch": state.step_in_epoch, "stage": stage,
        "history": state.history, "wall_time_s": state.wall_time_s,
        "generator": nets.generator.state_dict(), "discriminator": nets.discriminator.state_dict(),
        "optimizer_g": nets.opt_g.state_dict(), "optimizer_d": nets.opt_d.state_dict(),
        "rng_torch": rng[0], "rng_flip": rng[1],
    }
    if nets.regressor is not None:
        payload.update(regressor=nets.regressor.state_dict(), regressor_kwargs=nets.regressor_kwargs,
                       regressor_fit=nets.regressor_fit)
    save_atomic(payload, path or run.last)


def restore(ckpt: dict[str, Any], nets: Networks, state: TrainState, flip_rng: torch.Generator) -> None:
    """Load networks, optimisers, schedule position and random states from a checkpoint (resume); the
    regressor is restored by the caller, which must build it first (see ``regressor_kwargs``)."""
    nets.generator.load_state_dict(ckpt["generator"])
    nets.discriminator.load_state_dict(ckpt["discriminator"])
    nets.opt_g.load_state_dict(ckpt["optimizer_g"])
    nets.opt_d.load_state_dict(ckpt["optimizer_d"])
    state.step, state.epoch, state.step_in_epoch = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
    state.history = list(ckpt["history"])
    state.wall_time_s = float(ckpt["wall_time_s"])
    torch.set_rng_state(ckpt["rng_torch"])
    flip_rng.set_state(ckpt["rng_flip"])


def keep_epoch_generator(run: RunDirectory, generator: nn.Module, *, epoch: int, stage: int, sf_error: float,
                         step: int, keep: int) -> None:
    """Save this epoch's generator and delete all but the last ``keep`` of them."""
    if not run.writer:
        return
    save_atomic({"epoch": epoch, "stage": stage, "sf_error": sf_error, "step": step,
                 "generator": generator.state_dict()}, run.checkpoints / f"generator_epoch_{epoch:04d}.pt")
    for old in sorted(run.checkpoints.glob("generator_epoch_*.pt"))[:-keep]:
        old.unlink()


def select_epoch(history: list[dict[str, Any]], *, stage: int, last_k: int) -> dict[str, Any]:
    """The entry of ``history`` with the smallest SF error among the last ``last_k`` epochs of ``stage`` (the
    3DGAN choice of the final model); a NaN error counts as worst."""
    candidates = [h for h in history if h["stage"] == stage][-last_k:]
    if not candidates:
        raise ValueError(f"no epoch of stage {stage} was validated; nothing to choose the final model from")
    return min(candidates, key=lambda h: h["sf_error"] if math.isfinite(h["sf_error"]) else math.inf)


def export_model(run: RunDirectory, config: TrainConfig, nets: Networks, state: TrainState, *,
                 chosen: dict[str, Any], device: torch.device) -> Path:
    """Load the chosen epoch's generator and write it with its card to run_dir/model; returns that folder."""
    from calogen.gan.generate import save_model

    saved = load_checkpoint(run.checkpoints / f"generator_epoch_{int(chosen['epoch']):04d}.pt", map_location=device)
    nets.generator.load_state_dict(saved["generator"])
    final = stages(config)[-1]
    validation: dict[str, Any] = {
        "sf_mre": float(chosen["sf_error"]), "sf_mre_by_epoch": state.history,
        "heldout": config.heldout or ("mc" if config.data == "mc" else f"tail of {config.data}"),
    }
    if nets.regressor_fit:
        validation["regressor"] = nets.regressor_fit
    card = {
        "name": run.path.name,
        "arch": config.arch,
        "config": dict(config.generator_config),
        "condition_range": ConditionRange(final.energy_range_gev, config.theta_range_rad).to_json(),  # GeV, rad
        "preprocessing": dict(config.preprocessing or {}),
        "training": {
            "command": config.command, "data": config.data, "device": str(device),
            "wall_time_s": round(state.wall_time_s, 2), "epochs": sum(s.epochs for s in stages(config)),
            "steps": state.step, "selected_epoch": int(chosen["epoch"]), "recipe": config.recipe,
            "batch": config.batch, "lr": config.lr, "seed": config.seed, "two_step": config.two_step,
            "config": config.to_dict(), "data_provenance": data_provenance(config.data),
        },
        "validation": validation,
        "parameters": sum(p.numel() for p in nets.generator.parameters()),
        "calogen_version": __version__,
    }
    return save_model(run.path / "model", nets.generator.cpu(), card)
