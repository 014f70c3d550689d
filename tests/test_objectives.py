"""GAN objectives: known answers for the 3DGAN loss heads and weights, the WGAN-GP penalty, and the condition
regressor's term in the WGAN-GP generator loss."""

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
    condition_error,
)

IDENTITY = {"kind": "identity"}  # images in GeV, so sums and angles are easy to check by hand


class _FixedHeads(nn.Module):
    """Discriminator returning fixed head values (a stand-in with known outputs); ignores the conditions."""

    def __init__(self, logit: float, energy_gev: float, ecal_sum_gev: float, angle_rad: float) -> None:
        super().__init__()
        self.values = (logit, energy_gev, ecal_sum_gev, angle_rad)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> DiscriminatorOutput:
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
    # a network returning just a score: the sum and angle come from the images themselves
    class LogitOnly(nn.Module):
        def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
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
    with pytest.raises(ValueError, match="takes no regressor"):
        build_objective("3dgan", regressor=_FixedRegressor(100.0, 1.5))


def test_every_discriminator_gets_the_conditions_and_other_outputs_are_refused() -> None:
    seen: list[tuple[float, float]] = []

    class Recording(nn.Module):
        def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
            seen.append((energy_gev[0].item(), theta_rad[0].item()))
            return showers.sum(dim=(1, 2, 3))

    class ReturnsTuple(nn.Module):
        def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> tuple:
            return (showers.sum(dim=(1, 2, 3)), energy_gev)

    images = torch.ones(2, 2, 2, 1)
    out = call_discriminator(Recording(), images, torch.full((2,), 42.0), torch.full((2,), 1.25))
    assert seen == [(42.0, 1.25)] and out.score.tolist() == [4.0, 4.0] and out.energy is None
    with pytest.raises(TypeError, match="ReturnsTuple returned tuple; a discriminator returns"):
        call_discriminator(ReturnsTuple(), images, torch.full((2,), 42.0), torch.full((2,), 1.25))


class _FixedRegressor(nn.Module):
    """Regressor stand-in: energy = E0 x (1 + mean cell value), angle fixed; one parameter (to check it stays
    frozen)."""

    def __init__(self, energy_gev: float, theta_rad: float) -> None:
        super().__init__()
        self.values = (energy_gev, theta_rad)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, showers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        energy = self.values[0] * self.gain * (1.0 + showers.mean(dim=(1, 2, 3)))
        return energy, torch.full((showers.shape[0],), self.values[1])


def test_condition_error_known_answer() -> None:
    # 110 GeV predicted for 100 GeV: 10 %; 1.6 rad for 1.5 rad: 0.1 rad
    error = condition_error(torch.tensor([110.0, 90.0]), torch.tensor([1.6, 1.4]), torch.tensor([100.0, 100.0]),
                            torch.tensor([1.5, 1.5]))
    assert error.item() == pytest.approx(0.1 + 0.1, rel=1e-5)


def test_wgan_gp_generator_loss_carries_the_regressor_term() -> None:
    # the critic scores 0, the regressor says 100 GeV (fake cells are 0) and 1.6 rad for conditions 80 GeV and
    # 1.5 rad: condition error 0.25 + 0.1, so the loss is 0 + weight x 0.35
    critic, regressor = _LinearCritic((3, 3, 2)), _FixedRegressor(100.0, 1.6)
    fake = torch.zeros(4, 3, 3, 2, requires_grad=True)
    cond = (torch.full((4,), 80.0), torch.full((4,), 1.5))
    real_sum = torch.ones(4)
    off = WGANGPObjective(preprocessing=IDENTITY, regressor=regressor, regressor_weight=0.0)
    on = WGANGPObjective(preprocessing=IDENTITY, regressor=regressor, regressor_weight=10.0)
    loss_off, parts_off = off.generator_loss(critic, fake, real_sum, *cond)
    loss_on, parts_on = on.generator_loss(critic, fake, real_sum, *cond)
    assert parts_on["regressor_error"] == parts_off["regressor_error"] == pytest.approx(0.35, rel=1e-5)
    assert loss_off.item() == pytest.approx(0.0, abs=1e-6)
    assert loss_on.item() - loss_off.item() == pytest.approx(10.0 * 0.35, rel=1e-5)
    # the gradient reaches the generated showers through the frozen regressor, not the regressor's weights
    (grad,) = torch.autograd.grad(loss_on, fake)
    assert grad.abs().sum() > 0 and not regressor.gain.requires_grad
    assert WGANGPObjective(preprocessing=IDENTITY).generator_loss(critic, fake, real_sum, *cond)[1] == {}
