"""The energy flow's fit: maximum likelihood on the training showers' layer energies, with early stopping on the
monitoring showers (:mod:`calogen.gan.factorised.campaign` calls it once per run, and again when the data changes).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from calogen.gan.factorised.data import TrainingData
from calogen.gan.factorised.energy_flow import LayerEnergyFlow, context_features, to_flow_space

__all__ = ["train_energy_flow"]


def train_energy_flow(flow: LayerEnergyFlow, train: TrainingData, holdout: TrainingData, *, epochs: int,
                      batch: int, lr: float, seed: int,
                      log: Callable[[str], None] = lambda line: None) -> list[dict[str, Any]]:
    """Fit ``flow`` by maximum likelihood for ``epochs`` epochs of ``batch`` showers (Adam at ``lr``, cosine
    schedule; ``seed`` draws the dequantisation and the order); returns per-epoch mean negative log-likelihoods
    (train, held out).

    The flow keeps the weights of the epoch with the lowest held-out negative log-likelihood (early stopping on
    the monitoring showers, never the reference): on a few thousand showers the training likelihood goes on
    rising after the held-out one has turned, and the flow would learn the fluctuations of these showers. That
    epoch is marked ``"kept": True`` in the history."""
    rng = np.random.default_rng(seed)
    device = flow.shift.device
    layer_train, energy_train = train.layer_energy.cpu().numpy(), train.energy_gev.cpu().numpy()
    u_train = to_flow_space(layer_train, energy_train, rng)
    flow.fit_standardisation(u_train)
    u_hold = torch.from_numpy(to_flow_space(holdout.layer_energy.cpu().numpy(), holdout.energy_gev.cpu().numpy(),
                                            rng)).to(device)
    c_train = context_features(train.energy_gev, train.theta_rad).to(device)
    c_hold = context_features(holdout.energy_gev, holdout.theta_rad).to(device)
    optimiser = torch.optim.Adam(flow.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(epochs, 1))
    history: list[dict[str, Any]] = []
    best_nll, best_state, best_epoch = math.inf, None, 0
    for epoch in range(epochs):
        u_epoch = torch.from_numpy(to_flow_space(layer_train, energy_train, rng)).to(device)
        order = torch.from_numpy(rng.permutation(len(train))).to(device)
        losses = []
        for start in range(0, len(train), batch):
            idx = order[start:start + batch]
            loss = -flow.log_prob(u_epoch[idx], c_train[idx]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        scheduler.step()
        with torch.no_grad():
            held = float(-flow.log_prob(u_hold, c_hold).mean())
        history.append({"epoch": epoch + 1, "nll_train": float(np.mean(losses)), "nll_holdout": held})
        log(f"energy flow epoch {epoch + 1}/{epochs}: NLL {np.mean(losses):.3f} (held out {held:.3f})")
        if held < best_nll:
            best_nll, best_state, best_epoch = held, copy.deepcopy(flow.state_dict()), epoch + 1
    if best_state is not None:  # None only when no epoch gave a finite held-out likelihood: the last weights stay
        flow.load_state_dict(best_state)
        history[best_epoch - 1]["kept"] = True
        log(f"energy flow: kept epoch {best_epoch} (held-out NLL {best_nll:.3f})")
    return history
