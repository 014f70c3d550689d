"""An exponential moving average of the shape generator's weights: the weights a campaign monitors and exports.

A GAN's generator does not settle at one point: as the critic moves, its weights circle around where the two
would agree, and the weights of any one step are one point on that circle. Their moving average over the last
steps lies nearer its centre (Yazici et al., arXiv:1806.04498; Karras et al., arXiv:1710.10196, evaluate their
generators so). The average is taken with :class:`torch.optim.swa_utils.AveragedModel` and
:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`: after step t, ``average = decay * average + (1 - decay) *
weights``, starting from the weights of the step where averaging began, so that the last ~1 / (1 - decay) steps
count. Buffers (the placement tables) are the generator's own, copied rather than averaged.

The energy flow is not averaged: it is fitted by maximum likelihood, not against the critic
(:mod:`calogen.gan.factorised.flow_fit`).

    >>> average = shape_average(model.shape, decay=0.9995)
    >>> average.update_parameters(model.shape)          # after each generator step
    >>> with averaged_weights(model.shape, average):    # monitor or export the averaged generator
    ...     figures = monitor_figures(model, holdout, cells, seed)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["averaged_state", "averaged_weights", "shape_average"]


def shape_average(shape: nn.Module, decay: float) -> AveragedModel:
    """A moving average of ``shape``'s parameters with ``decay`` per step (0 < decay < 1), starting from its
    weights as they are now (the first ``update_parameters`` copies them)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay={decay}: an exponential moving average needs 0 < decay < 1 (e.g. 0.999: the last "
                         "~1,000 steps count)")
    return AveragedModel(shape, multi_avg_fn=get_ema_multi_avg_fn(decay))


def averaged_state(saved: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The shape generator's state dict held in ``saved``, an :class:`AveragedModel`'s state dict (its
    ``module.`` entries; its step count left out)."""
    return {k.removeprefix("module."): v for k, v in saved.items() if k.startswith("module.")}


@contextlib.contextmanager
def averaged_weights(shape: nn.Module, average: AveragedModel | None) -> Iterator[nn.Module]:
    """Within the block ``shape`` carries the averaged weights (its own ones when ``average`` is None); its own
    weights are put back afterwards, exactly, whatever happens in the block."""
    if average is None:
        yield shape
        return
    own = {k: v.detach().clone() for k, v in shape.state_dict().items()}
    with torch.no_grad():
        shape.load_state_dict(average.module.state_dict())
    try:
        yield shape
    finally:
        with torch.no_grad():
            shape.load_state_dict(own)
