"""The condition regressor of the ``wgan-gp`` recipe (Chekalina et al., "Generative Models for Fast Calorimeter
Simulation: the LHCb case", arXiv:1812.01319): pre-trained on the training showers to predict the primary energy
and the angle from the shower, before the GAN stage; then frozen, its error on generated showers against the
conditions asked for enters the generator loss (:class:`calogen.gan.objectives.WGANGPObjective`).

Its own held-out error (on the run's held-out showers) goes to metrics.csv, the log and the model card, next to
the error of predicting the training means, so one can see that it learned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from calogen.gan.nets import build_regressor
from calogen.gan.objectives import condition_error
from calogen.gan.preprocess import to_network_card
from calogen.gan.train.config import TrainConfig
from calogen.gan.train.data import Batch, loader_3dgan
from calogen.showers import ShowerSet

__all__ = ["REGRESSOR_BATCH", "REGRESSOR_LR", "build", "collect_showers", "evaluate", "pretrain"]

REGRESSOR_LR = 1e-3  # Adam learning rate of the pre-training
REGRESSOR_BATCH = 64  # showers per pre-training step
_EVAL_CHUNK = 64  # showers per forward pass when evaluating (memory of the 51x51x25 convolutions)


def collect_showers(batches: Iterator[Batch], n: int) -> Batch:
    """Concatenate batches (network-unit showers (B, X, Y, Z), energy GeV (B,), theta rad (B,)) until ``n``
    showers or the end of the stream; ValueError when the stream is empty."""
    parts: list[Batch] = []
    count = 0
    for batch in batches:
        parts.append(batch)
        count += len(batch[1])
        if count >= n:
            break
    if not parts:
        raise ValueError("no training showers to pre-train the condition regressor on; check the data, the "
                         "energy and angle ranges and the batch size")
    return (torch.cat([p[0] for p in parts])[:n], torch.cat([p[1] for p in parts])[:n],
            torch.cat([p[2] for p in parts])[:n])


def build(config: TrainConfig, shape: tuple[int, ...], device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture's regressor for showers of ``shape`` (X, Y, Z), with ``config.regressor_config`` on top;
    initialised from its own seed so that the GAN's random stream does not depend on it. Returns the network
    and the build options (for the checkpoint)."""
    kwargs = {"shape": [int(s) for s in shape], **config.regressor_config}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 31)
        regressor = build_regressor(config.arch, **kwargs).to(device)
    return regressor, kwargs


def pretrain(regressor: nn.Module, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor, *,
             steps: int, seed: int) -> list[float]:
    """Fit ``regressor`` to (energy_gev, theta_rad) (N,) from showers (N, X, Y, Z) in network units by Adam on
    :func:`calogen.gan.objectives.condition_error`, ``steps`` mini-batches of :data:`REGRESSOR_BATCH` drawn with
    ``seed``; then freeze it (eval mode, no parameter gradients). Returns the loss of every step."""
    draw = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(regressor.parameters(), lr=REGRESSOR_LR)
    regressor.train().requires_grad_(True)
    losses = []
    n = len(energy_gev)
    for _ in range(steps):
        idx = torch.randint(n, (min(REGRESSOR_BATCH, n),), generator=draw).to(showers.device)
        energy_pred, theta_pred = regressor(showers[idx])
        loss = condition_error(energy_pred, theta_pred, energy_gev[idx], theta_rad[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    regressor.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def evaluate(regressor: nn.Module, heldout: ShowerSet, config: TrainConfig, *, device: torch.device,
             mean_energy_gev: float, mean_theta_rad: float) -> dict[str, float]:
    """The regressor's error on held-out showers (GeV; the training loader cuts and pre-processing applied).

    Returns ``heldout_error`` (:func:`condition_error`), its two parts ``energy_relative_error`` (mean |dE|/E)
    and ``angle_error_rad`` (mean |d theta|), ``mean_prediction_error`` (the same error when predicting the
    training means ``mean_energy_gev``, ``mean_theta_rad``: what a regressor that learned nothing scores) and
    ``showers`` (held-out showers used).
    """
    cleaned, keep = loader_3dgan(heldout.showers, threshold=config.cell_threshold, min_sum=config.min_sum)
    if keep.sum() < 2:
        keep = np.ones(len(heldout), dtype=bool)
    showers = to_network_card(cleaned[keep], config.preprocessing)
    energy = torch.as_tensor(heldout.energy_gev[keep], dtype=torch.float32)
    theta = torch.as_tensor(heldout.theta_rad[keep], dtype=torch.float32)
    predicted = [regressor(torch.as_tensor(showers[lo:lo + _EVAL_CHUNK], device=device))
                 for lo in range(0, len(energy), _EVAL_CHUNK)]
    energy_pred = torch.cat([p[0].float().cpu() for p in predicted])
    theta_pred = torch.cat([p[1].float().cpu() for p in predicted])
    zero = torch.zeros_like(theta)
    return {
        "heldout_error": condition_error(energy_pred, theta_pred, energy, theta).item(),
        "energy_relative_error": condition_error(energy_pred, zero, energy, zero).item(),
        "angle_error_rad": (theta_pred - theta).abs().mean().item(),
        "mean_prediction_error": condition_error(torch.full_like(energy, mean_energy_gev),
                                                 torch.full_like(theta, mean_theta_rad), energy, theta).item(),
        "showers": len(energy),
    }
