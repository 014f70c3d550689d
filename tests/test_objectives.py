"""GAN objectives: known answers for the 3DGAN loss heads and weights and for the WGAN-GP penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from calogen.gan.nets.layers import DiscriminatorOutput
from calogen.gan.objectives import (
    ThreeDGANObjective,
    WGANGPObjective,
    build_objective,
    call_discriminator,
)

IDENTITY = {"kind": "identity"}  # images in GeV, so sums and angles are easy to check by hand


class _FixedHeads(nn.Module):
    """Image-only discriminator returning fixed head values (a stand-in with known outputs)."""

    def __init__(self, logit: float, energy_gev: float, ecal_sum_gev: float, angle_rad: float) -> None:
        super().__init__()
        self.values = (logit, energy_gev, ecal_sum_gev, angle_rad)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, showers: torch.Tensor) -> DiscriminatorOutput:
        b = showers.shape[0]
        logit, energy, total, angle = (torch.full((b,), v) * self.scale for v in self.values)
        return DiscriminatorOutput(logit=logit, energy_gev=energy, ecal_sum_gev=total, angle_rad=angle)


class _LinearCritic(nn.Module):
    """Conditional critic D(x) = sum(w * x) with a fixed weight whose L2 norm is 2."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        w = torch.zeros(shape)
        w[0, 0, 0] = 2.0
        self.w = nn.Parameter(w)

    def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
        return (showers * self.w).sum(dim=(1, 2, 3))


def test_3dgan_weighted_heads_match_hand_computation() -> None:
    objective = ThreeDGANObjective(preprocessing=IDENTITY, label_flip=0.0)
    # real energy 100 GeV -> target E/100 = 1; regressed 110 GeV -> MAPE 10 %
    # angle 1.6 rad vs theta 1.5 -> MAE 0.1; sum 2.4 GeV vs real sum 2.0 -> MAPE 20 %; logit 0 -> BCE ln 2
    disc = _FixedHeads(logit=0.0, energy_gev=110.0, ecal_sum_gev=2.4, angle_rad=1.6)
    images = torch.zeros(4, 3, 3, 2)
    loss, parts = objective.generator_loss(disc, images, torch.full((4,), 2.0), torch.full((4,), 100.0),
                                           torch.full((4,), 1.5))
    assert parts["bce"] == pytest.approx(math.log(2.0), rel=1e-5)
    assert parts["energy_mape"] == pytest.approx(10.0, rel=1e-4)
    assert parts["angle_mae"] == pytest.approx(0.1, rel=1e-4)
    assert parts["sum_mape"] == pytest.approx(20.0, rel=1e-4)
    expected = 3.0 * math.log(2.0) + 0.1 * 10.0 + 25.0 * 0.1 + 0.1 * 20.0
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_3dgan_label_flipping_is_five_percent() -> None:
    # a confident "real" logit of +20: unflipped real labels cost ~0, flipped ones ~20 each, so the mean BCE
    # over many showers is 0.05 * 20 = 1.0
    objective = ThreeDGANObjective(preprocessing=IDENTITY)
    disc = _FixedHeads(logit=20.0, energy_gev=100.0, ecal_sum_gev=1.0, angle_rad=1.5)
    n = 40_000
    images = torch.zeros(n, 1, 1, 1)
    _, parts = objective.batch_loss(disc, images, real=True, real_sum=torch.ones(n),
                                    energy_gev=torch.full((n,), 100.0), theta_rad=torch.full((n,), 1.5),
                                    generator=torch.Generator().manual_seed(0))
    assert parts["bce"] == pytest.approx(0.05 * 20.0, rel=0.05)


def test_3dgan_schedule_and_update_order() -> None:
    objective = build_objective("3dgan")
    assert (objective.critic_steps, objective.generator_steps) == (1, 2)  # generator trained twice per D step
    assert objective.weights == (3.0, 0.1, 25.0, 0.1)
    disc = _FixedHeads(logit=0.0, energy_gev=100.0, ecal_sum_gev=1.0, angle_rad=1.5)
    real = torch.rand(2, 4, 4, 3)
    updates = list(objective.discriminator_updates(disc, real, real.clone(), torch.full((2,), 100.0),
                                                   torch.full((2,), 1.5)))
    assert len(updates) == 2  # one update on the real batch, one on the fake batch
    assert all(torch.isfinite(loss) for loss, _ in updates)


def test_sum_and_angle_fall_back_to_images_without_heads() -> None:
    # an image-only network returning just a logit: the sum and angle come from the images themselves
    class LogitOnly(nn.Module):
        def forward(self, showers: torch.Tensor) -> torch.Tensor:
            return showers.sum(dim=(1, 2, 3)) * 0.0

    images = torch.zeros(2, 5, 5, 4)
    images[:, 2, 2, :] = 0.5  # a straight track along the layers: normal incidence, sum 2 GeV
    objective = ThreeDGANObjective(preprocessing=IDENTITY)
    outputs = call_discriminator(LogitOnly(), images, torch.full((2,), 100.0), torch.full((2,), math.pi / 2))
    assert outputs.energy is None and outputs.angle_rad is None
    _, parts = objective.generator_loss(LogitOnly(), images, torch.full((2,), 2.0), torch.full((2,), 100.0),
                                        torch.full((2,), math.pi / 2))
    assert parts["sum_mape"] == pytest.approx(0.0, abs=1e-4)
    assert parts["angle_mae"] == pytest.approx(0.0, abs=1e-4)
    assert parts["energy_mape"] == 0.0


def test_gradient_penalty_of_linear_critic_is_known() -> None:
    # D(x) = <w, x> has gradient w everywhere; ||w|| = 2 gives (2 - 1)^2 = 1
    objective = WGANGPObjective(preprocessing=IDENTITY)
    critic = _LinearCritic((3, 3, 2))
    real, fake = torch.rand(8, 3, 3, 2), torch.rand(8, 3, 3, 2)
    cond = (torch.full((8,), 50.0), torch.full((8,), 1.5))
    penalty = objective.gradient_penalty(critic, real, fake, *cond, generator=torch.Generator().manual_seed(1))
    assert penalty.item() == pytest.approx(1.0, rel=1e-5)
    (loss, parts), = objective.discriminator_updates(critic, real, fake, *cond)
    wasserstein = (critic(fake, *cond).mean() - critic(real, *cond).mean()).item()
    assert parts["wasserstein"] == pytest.approx(wasserstein, rel=1e-5, abs=1e-6)
    assert loss.item() == pytest.approx(wasserstein + 10.0 * 1.0, rel=1e-5)
    assert (objective.critic_steps, objective.generator_steps) == (5, 1)


def test_unknown_recipe_is_named() -> None:
    with pytest.raises(ValueError, match="recipe='lsgan' is unknown"):
        build_objective("lsgan")
