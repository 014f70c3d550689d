"""GAN objectives: the loss maths, kept apart from the networks and from the training loop.

Two recipes are provided:

* :class:`ThreeDGANObjective` — the 3DGAN angle-version objective (Khattak et al., IEEE Access 9 (2021),
  doi:10.1109/ACCESS.2021.3056983, and its public Keras code): a real/fake head trained with binary
  cross-entropy, an energy-regression head (MAPE against E/100), and two *non-trainable* heads computed from
  the image itself, the measured angle (MAE against the true theta) and the deposited-energy sum (MAPE against
  the sum of the real shower), weighted [3, 0.1, 25, 0.1]; 5 % of the discriminator labels are flipped; the
  generator is updated twice per discriminator update.
* :class:`WGANGPObjective` — the LHCb WGAN-GP recipe (Chekalina et al., "Generative Models for Fast
  Calorimeter Simulation: the LHCb case", arXiv:1812.01319): Wasserstein loss with gradient penalty (Gulrajani et
  al., arXiv:1704.00028, lambda = 10, five critic updates per generator update), conditioned through a separately
  pre-trained, frozen regressor of the conditions whose error on the generated showers (against the conditions
  asked for) is added to the generator loss with weight ``regressor_weight``.

The networks only map tensors; this module turns their outputs into losses. Every discriminator is called one
way, ``discriminator(images, energy_gev, theta_rad)``, and returns either a
:class:`calogen.gan.nets.layers.DiscriminatorOutput` (the 3DGAN heads) or a (B,) score. Images arrive in *network
units* with shape (B, X, Y, Z), described by the run's ``preprocessing`` card entry (see
:mod:`calogen.gan.preprocess`; 3DGAN: cell energy in GeV x 50 raised to the power 0.85).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from calogen.gan.nets.layers import ENERGY_SCALE_GEV, DiscriminatorOutput, measured_angle
from calogen.gan.preprocess import from_network_card

__all__ = [
    "EPSILON",
    "RECIPES",
    "REGRESSOR_WEIGHT",
    "DiscriminatorOutputs",
    "GANObjective",
    "ThreeDGANObjective",
    "WGANGPObjective",
    "build_objective",
    "call_discriminator",
    "condition_error",
]

EPSILON = 1e-7  # Keras K.epsilon(): guards the MAPE against a zero target
RECIPES = ("3dgan", "wgan-gp")
# Weight of the regressor's condition error in the WGAN-GP generator loss. The error is a fraction (relative
# energy error plus angle error in rad), so 10 makes a 1 % energy error weigh 0.1, as the 3DGAN energy head's
# 0.1 x MAPE (in per cent) does.
REGRESSOR_WEIGHT = 10.0


@dataclass
class DiscriminatorOutputs:
    """What a discriminator returned, normalised.

    score:        (B,) real/fake logit (3DGAN) or critic value (WGAN-GP).
    energy:       (B,) regressed primary energy / 100 GeV, or None when the network has no such head.
    ecal_sum_gev: (B,) deposited energy of the input, GeV (non-trainable head), or None.
    angle_rad:    (B,) angle measured from the input's layer barycentres (non-trainable head), or None.
    """

    score: torch.Tensor
    energy: torch.Tensor | None
    ecal_sum_gev: torch.Tensor | None = None
    angle_rad: torch.Tensor | None = None


def call_discriminator(
    discriminator: torch.nn.Module, images: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor
) -> DiscriminatorOutputs:
    """Run ``discriminator(images, energy_gev, theta_rad)`` on images (B, X, Y, Z) in network units and normalise
    what it returns: a :class:`calogen.gan.nets.layers.DiscriminatorOutput` (logit, energy_gev, ecal_sum_gev,
    angle_rad) or a (B,) score tensor. Anything else is a TypeError naming the network."""
    out: Any = discriminator(images, energy_gev, theta_rad)
    if isinstance(out, DiscriminatorOutput):
        return DiscriminatorOutputs(
            score=out.logit.float().reshape(-1),
            energy=out.energy_gev.float().reshape(-1) / ENERGY_SCALE_GEV,
            ecal_sum_gev=out.ecal_sum_gev.float().reshape(-1),
            angle_rad=out.angle_rad.float().reshape(-1),
        )
    if isinstance(out, torch.Tensor):
        return DiscriminatorOutputs(score=out.float().reshape(-1), energy=None)
    raise TypeError(f"{type(discriminator).__name__} returned {type(out).__name__}; a discriminator returns a "
                    "DiscriminatorOutput or a (B,) score tensor")


def condition_error(
    energy_pred_gev: torch.Tensor, theta_pred_rad: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor
) -> torch.Tensor:
    """How far regressed conditions lie from the true ones: mean |E' - E| / E + mean |theta' - theta| / (1 rad).

    All inputs (B,); energies GeV, angles radians. A dimensionless scalar: the relative energy error (a
    calorimeter's resolution is relative) plus the angle error in radians. It is both the regressor's
    pre-training loss and the term it adds to the WGAN-GP generator loss.
    """
    energy = energy_gev.float()
    energy_term = ((energy_pred_gev.float() - energy).abs() / energy.abs().clamp_min(EPSILON)).mean()
    return energy_term + (theta_pred_rad.float() - theta_rad.float()).abs().mean()


def _mape(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error in percent, as Keras defines it (the 3DGAN weights assume percent)."""
    return 100.0 * ((prediction - target).abs() / target.abs().clamp_min(EPSILON)).mean()


class GANObjective(ABC):
    """Common interface of the recipes.

    ``critic_steps``: discriminator phases per generator phase; ``generator_steps``: generator updates in a
    generator phase. :meth:`discriminator_updates` yields one ``(loss, parts)`` per optimiser update, computed
    lazily so that each one sees the weights left by the previous update; :meth:`generator_loss` returns one
    ``(loss, parts)``. ``parts`` maps head names to floats for logging.
    """

    name: str = ""
    critic_steps: int = 1
    generator_steps: int = 1
    head_names: tuple[str, ...] = ()

    def __init__(self, *, preprocessing: dict[str, Any] | None = None) -> None:
        self.preprocessing = dict(preprocessing or {"kind": "power", "power": 0.85, "scale": 50.0})

    def to_gev(self, images: torch.Tensor) -> torch.Tensor:
        """Network units -> GeV with the run's pre-processing (:func:`calogen.gan.preprocess.from_network_card`)."""
        return from_network_card(images.float(), self.preprocessing)

    @abstractmethod
    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """Losses for the discriminator updates of one step; real/fake (B, X, Y, Z) in network units."""

    @abstractmethod
    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss for one generator update; ``real_sum`` (B,) is the deposited sum of the real batch, GeV."""


class ThreeDGANObjective(GANObjective):
    """The 3DGAN angle-version losses (Khattak et al. 2021): weights [3, 0.1, 25, 0.1], 5 % label flips.

    The discriminator is updated on the real batch and then on the fake batch (two updates, as the Keras
    ``train_on_batch`` calls do): :meth:`discriminator_updates` yields two losses.
    """

    name = "3dgan"
    critic_steps = 1
    generator_steps = 2  # "the generator is trained twice per discriminator step" (3DGAN training script)
    head_names = ("bce", "energy_mape", "angle_mae", "sum_mape")

    def __init__(
        self,
        *,
        preprocessing: dict[str, Any] | None = None,
        weights: tuple[float, float, float, float] = (3.0, 0.1, 25.0, 0.1),
        label_flip: float = 0.05,
    ) -> None:
        super().__init__(preprocessing=preprocessing)
        if not 0.0 <= label_flip < 0.5:
            raise ValueError(f"label_flip={label_flip} must be in [0, 0.5); the 3DGAN recipe uses 0.05")
        self.weights = tuple(float(w) for w in weights)
        self.label_flip = label_flip

    def _aux_terms(
        self, outputs: DiscriminatorOutputs, images: torch.Tensor, real_sum: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Energy-regression MAPE (vs E/100), measured-angle MAE (rad), deposited-sum MAPE (vs real sum, GeV).

        The angle and sum come from the discriminator's non-trainable heads when it has them, otherwise they
        are computed here from the images with the same functions.
        """
        target_energy = energy_gev.float() / ENERGY_SCALE_GEV
        if outputs.energy is None:
            energy_term = torch.zeros((), device=images.device)
        else:
            energy_term = _mape(outputs.energy, target_energy)
        angle, total = outputs.angle_rad, outputs.ecal_sum_gev
        if angle is None or total is None:
            showers_gev = self.to_gev(images)
            angle = measured_angle(showers_gev) if angle is None else angle
            total = showers_gev.sum(dim=(1, 2, 3)) if total is None else total
        angle_term = (angle - theta_rad.float()).abs().mean()
        sum_term = _mape(total, real_sum.float())
        return energy_term, angle_term, sum_term

    def _weighted(
        self, outputs: DiscriminatorOutputs, images: torch.Tensor, labels: torch.Tensor, real_sum: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        bce = F.binary_cross_entropy_with_logits(outputs.score, labels)
        energy_term, angle_term, sum_term = self._aux_terms(outputs, images, real_sum, energy_gev, theta_rad)
        w_bce, w_energy, w_angle, w_sum = self.weights
        loss = w_bce * bce + w_energy * energy_term + w_angle * angle_term + w_sum * sum_term
        parts = {"bce": bce.item(), "energy_mape": energy_term.item(), "angle_mae": angle_term.item(),
                 "sum_mape": sum_term.item()}
        return loss, parts

    def batch_loss(
        self,
        discriminator: torch.nn.Module,
        images: torch.Tensor,
        *,
        real: bool,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Discriminator loss on one batch, real (label 1) or fake (label 0), 5 % of labels flipped."""
        batch = images.shape[0]
        labels = torch.full((batch,), 1.0 if real else 0.0, device=images.device)
        flip = torch.rand(batch, generator=generator, device="cpu") < self.label_flip
        labels = torch.where(flip.to(images.device), 1.0 - labels, labels)
        outputs = call_discriminator(discriminator, images, energy_gev, theta_rad)
        return self._weighted(outputs, images, labels, real_sum, energy_gev, theta_rad)

    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """Two updates, first on the real batch, then on the fake batch with the real batch's conditions."""
        real_sum = self.to_gev(real).sum(dim=(1, 2, 3))  # (B,) GeV
        yield self.batch_loss(discriminator, real, real=True, real_sum=real_sum,
                              energy_gev=energy_gev, theta_rad=theta_rad, generator=generator)
        yield self.batch_loss(discriminator, fake.detach(), real=False, real_sum=real_sum,
                              energy_gev=energy_gev, theta_rad=theta_rad, generator=generator)

    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator loss: fake images labelled real (no flips), same heads and weights as the discriminator."""
        labels = torch.ones(fake.shape[0], device=fake.device)
        outputs = call_discriminator(discriminator, fake, energy_gev, theta_rad)
        return self._weighted(outputs, fake, labels, real_sum, energy_gev, theta_rad)


class WGANGPObjective(GANObjective):
    """The LHCb WGAN-GP recipe (Chekalina et al. 2019): Wasserstein loss with gradient penalty (Gulrajani et al.
    2017: lambda 10, five critic updates per generator update) and a frozen condition regressor.

    The critic gets the conditions; the generator loss is -D(fake) plus ``regressor_weight`` x
    :func:`condition_error` of ``regressor(fake)`` against the conditions the showers were generated at.
    ``regressor``: showers (B, X, Y, Z) network units -> (energy_gev (B,), theta_rad (B,)), pre-trained on the
    training showers and frozen (its parameters get no gradient; the generator's do, through it). Without a
    regressor (``None``) the generator loss is the Wasserstein term alone.
    """

    name = "wgan-gp"
    critic_steps = 5
    generator_steps = 1
    head_names = ("wasserstein", "gradient_penalty", "regressor_error")

    def __init__(
        self,
        *,
        preprocessing: dict[str, Any] | None = None,
        gp_weight: float = 10.0,
        critic_steps: int = 5,
        regressor: torch.nn.Module | None = None,
        regressor_weight: float = REGRESSOR_WEIGHT,
    ) -> None:
        super().__init__(preprocessing=preprocessing)
        if regressor_weight < 0:
            raise ValueError(f"regressor_weight={regressor_weight} must be >= 0 (0 switches the regressor term off)")
        self.gp_weight = float(gp_weight)
        self.critic_steps = int(critic_steps)
        self.regressor = regressor
        self.regressor_weight = float(regressor_weight)
        if regressor is not None:
            regressor.eval().requires_grad_(False)

    def gradient_penalty(
        self, discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
        energy_gev: torch.Tensor, theta_rad: torch.Tensor, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat between real and fake (B, X, Y, Z)."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
        interpolates = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
        score = call_discriminator(discriminator, interpolates, energy_gev, theta_rad).score
        (grad,) = torch.autograd.grad(score.sum(), interpolates, create_graph=True)
        return ((grad.reshape(grad.shape[0], -1).norm(2, dim=1) - 1.0) ** 2).mean()

    def discriminator_updates(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, dict[str, float]]]:
        """One critic update, see :meth:`critic_loss`."""
        yield self.critic_loss(discriminator, real, fake, energy_gev, theta_rad, generator)

    def critic_loss(
        self,
        discriminator: torch.nn.Module,
        real: torch.Tensor,
        fake: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Critic loss D(fake) - D(real) + lambda GP."""
        out_real = call_discriminator(discriminator, real, energy_gev, theta_rad)
        out_fake = call_discriminator(discriminator, fake.detach(), energy_gev, theta_rad)
        wasserstein = out_fake.score.mean() - out_real.score.mean()
        penalty = self.gradient_penalty(discriminator, real, fake, energy_gev, theta_rad, generator)
        loss = wasserstein + self.gp_weight * penalty
        return loss, {"wasserstein": wasserstein.item(), "gradient_penalty": penalty.item()}

    def generator_loss(
        self,
        discriminator: torch.nn.Module,
        fake: torch.Tensor,
        real_sum: torch.Tensor,
        energy_gev: torch.Tensor,
        theta_rad: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """-D(fake) + regressor_weight x condition error of the frozen regressor on ``fake``; ``real_sum`` is
        part of the common signature and not used by this recipe."""
        loss = -call_discriminator(discriminator, fake, energy_gev, theta_rad).score.mean()
        if self.regressor is None:
            return loss, {}
        energy_pred, theta_pred = self.regressor(fake.float())
        error = condition_error(energy_pred, theta_pred, energy_gev, theta_rad)
        return loss + self.regressor_weight * error, {"regressor_error": error.item()}


def build_objective(
    recipe: str,
    *,
    preprocessing: dict[str, Any] | None = None,
    regressor: torch.nn.Module | None = None,
    regressor_weight: float = REGRESSOR_WEIGHT,
) -> GANObjective:
    """The objective of a recipe, ``"3dgan"`` or ``"wgan-gp"``.

    preprocessing: the run's card entry (default: the 3DGAN power transform). regressor, regressor_weight: the
    frozen condition regressor of the ``wgan-gp`` recipe and the weight of its error (the 3DGAN recipe takes
    none: its discriminator's heads condition the generator).
    """
    if recipe == "3dgan":
        if regressor is not None:
            raise ValueError("recipe='3dgan' conditions through its discriminator heads and takes no regressor; "
                             "use recipe='wgan-gp' for the regressor recipe")
        return ThreeDGANObjective(preprocessing=preprocessing)
    if recipe == "wgan-gp":
        return WGANGPObjective(preprocessing=preprocessing, regressor=regressor, regressor_weight=regressor_weight)
    raise ValueError(f"recipe={recipe!r} is unknown; choose one of {sorted(RECIPES)}")
